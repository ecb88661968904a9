//! The inventory: which machines are the cluster's nodes and how to reach them.
//!
//! ```yaml
//! cluster: prod-eu            # optional; names locks and journals (default "kubeadm")
//! ssh:                        # defaults for every node; unset values come from ~/.ssh/config
//!   user: ubuntu
//!   sudo: true                # non-root login with password-less sudo
//!   known_hosts: strict       # strict (default) or accept-new
//!   # config_file, identity_file, known_hosts_file, port, connect_timeout_secs, control_dir
//! control_plane:              # the first entry runs `kubeadm upgrade apply` and the etcd backup
//!   - name: cp-1              # the Kubernetes node name
//!     host: cp-1.internal     # SSH destination: host, alias from the SSH config, or user@host
//!   - name: cp-2
//!     host: 10.0.0.12
//!     port: 2222
//! workers:
//!   - name: w-1
//!     host: w-1.internal
//!     pool: general           # worker pool (default "workers")
//!     package_manager: dnf    # apt, dnf or yum; detected on the node when unset
//!     repo_file: /etc/yum.repos.d/k8s.repo   # when not at the default path
//!   - name: w-2
//!     local: true             # this machine (no SSH)
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::exec::{KnownHosts, LocalExecutor, NodeExecutor, SshExecutor, SshOptions};
use crate::packages::PackageManager;

/// The pool name of workers that name none.
pub const DEFAULT_WORKER_POOL: &str = "workers";
/// The pool name of the control-plane nodes.
pub const CONTROL_PLANE_POOL: &str = "control-plane";

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Runs the control plane (and, with kubeadm's stacked etcd, an etcd member).
    ControlPlane,
    /// Runs workloads only.
    Worker,
}

/// One node of the inventory, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// The Kubernetes node name.
    pub name: String,
    /// Its role.
    pub role: NodeRole,
    /// Its pool ([`CONTROL_PLANE_POOL`] for control-plane nodes).
    pub pool: String,
    /// How to reach it; `None` for the machine kup runs on.
    pub ssh: Option<SshOptions>,
    /// Run local commands through `sudo -n` (for `local: true` nodes).
    pub local_sudo: bool,
    /// The package manager, when the inventory fixes it.
    pub package_manager: Option<PackageManager>,
    /// The node's Kubernetes repository definition, when it is not at the settings' default
    /// path (`/etc/apt/sources.list.d/kubernetes.list`, `/etc/yum.repos.d/kubernetes.repo`).
    pub repo_file: Option<String>,
}

impl NodeSpec {
    /// An executor reaching this node.
    pub fn executor(&self) -> Arc<dyn NodeExecutor> {
        match &self.ssh {
            Some(opts) => Arc::new(SshExecutor::new(&self.name, opts.clone())),
            None => Arc::new(LocalExecutor::new(&self.name).with_sudo(self.local_sudo)),
        }
    }
}

/// The validated inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// The cluster's name.
    pub cluster: String,
    /// Control-plane nodes; the first is where `kubeadm upgrade apply` and the etcd backup run.
    pub control_plane: Vec<NodeSpec>,
    /// Worker nodes.
    pub workers: Vec<NodeSpec>,
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::InventoryFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path.parent()).map_err(|e| match e {
            Error::InventoryFile { message, .. } => Error::InventoryFile {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates inventory YAML. Relative paths resolve against `base` when given.
    pub fn parse(yaml: &str, base: Option<&Path>) -> Result<Self> {
        let raw: RawInventory = serde_saphyr::from_str(yaml).map_err(|e| Error::InventoryFile {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        raw.validate(base)
    }

    /// Every node, control plane first.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        self.control_plane.iter().chain(self.workers.iter())
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes().find(|n| n.name == name)
    }

    /// The worker pools and their nodes, in inventory order.
    pub fn worker_pools(&self) -> Vec<(String, Vec<String>)> {
        let mut pools: Vec<(String, Vec<String>)> = Vec::new();
        for w in &self.workers {
            match pools.iter_mut().find(|(p, _)| *p == w.pool) {
                Some((_, nodes)) => nodes.push(w.name.clone()),
                None => pools.push((w.pool.clone(), vec![w.name.clone()])),
            }
        }
        pools
    }

    /// The first control-plane node.
    pub fn first_control_plane(&self) -> &NodeSpec {
        // `validate` guarantees at least one.
        &self.control_plane[0]
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    user: Option<String>,
    port: Option<i64>,
    identity_file: Option<PathBuf>,
    config_file: Option<PathBuf>,
    known_hosts_file: Option<PathBuf>,
    known_hosts: Option<String>,
    sudo: Option<bool>,
    connect_timeout_secs: Option<u64>,
    control_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<String>,
    host: Option<String>,
    #[serde(default)]
    local: bool,
    user: Option<String>,
    port: Option<i64>,
    identity_file: Option<PathBuf>,
    sudo: Option<bool>,
    package_manager: Option<String>,
    repo_file: Option<String>,
    pool: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    cluster: Option<String>,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    control_plane: Vec<RawNode>,
    #[serde(default)]
    workers: Vec<RawNode>,
}

/// DNS-1123 subdomain, as Kubernetes requires of node names.
fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_port(field: &str, port: Option<i64>) -> Result<Option<u16>> {
    match port {
        None => Ok(None),
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| Error::invalid(field, format!("{p} is not a port; accepted: 1-65535"))),
    }
}

/// Values handed to `ssh` must not be read as options.
fn no_option(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.starts_with('-') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("{value:?} must not start with '-' or contain whitespace"),
        ));
    }
    Ok(())
}

fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    let expanded = match path.to_str().and_then(|p| p.strip_prefix("~/")) {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .unwrap_or_else(|| path.to_path_buf()),
        None => path.to_path_buf(),
    };
    match base {
        Some(b) if expanded.is_relative() => b.join(expanded),
        _ => expanded,
    }
}

fn existing_file(field: &str, base: Option<&Path>, path: &Path) -> Result<PathBuf> {
    let resolved = resolve(base, path);
    if !resolved.is_file() {
        return Err(Error::invalid(
            field,
            format!("{} does not exist or is not a file", resolved.display()),
        ));
    }
    Ok(resolved)
}

impl RawInventory {
    fn validate(self, base: Option<&Path>) -> Result<Inventory> {
        let cluster = self.cluster.unwrap_or_else(|| "kubeadm".into());
        if cluster.trim().is_empty() {
            return Err(Error::invalid("cluster", "must not be empty"));
        }
        let ssh = &self.ssh;
        if let Some(user) = &ssh.user {
            no_option("ssh.user", user)?;
        }
        let default_port = valid_port("ssh.port", ssh.port)?;
        let known_hosts = match ssh.known_hosts.as_deref() {
            None | Some("strict") => KnownHosts::Strict,
            Some("accept-new") => KnownHosts::AcceptNew,
            Some(other) => {
                return Err(Error::invalid(
                    "ssh.known_hosts",
                    format!(
                        "unknown value {other:?}; accepted values: {}",
                        KnownHosts::ACCEPTED
                    ),
                ));
            }
        };
        let identity = ssh
            .identity_file
            .as_deref()
            .map(|p| existing_file("ssh.identity_file", base, p))
            .transpose()?;
        let config_file = ssh
            .config_file
            .as_deref()
            .map(|p| existing_file("ssh.config_file", base, p))
            .transpose()?;
        let known_hosts_file = ssh.known_hosts_file.as_deref().map(|p| resolve(base, p));
        let control_dir = ssh.control_dir.as_deref().map(|p| resolve(base, p));
        if self.control_plane.is_empty() {
            return Err(Error::invalid(
                "control_plane",
                "at least one control-plane node is required (the first one runs `kubeadm \
                 upgrade apply` and the etcd backup)",
            ));
        }

        let mut seen = BTreeSet::new();
        let mut build = |raw: RawNode, role: NodeRole, field: String| -> Result<NodeSpec> {
            let name = raw
                .name
                .ok_or_else(|| Error::invalid(format!("{field}.name"), "is required"))?;
            if !valid_node_name(&name) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!(
                        "{name:?} is not a Kubernetes node name (lowercase letters, digits, '-' \
                         and '.', at most 253 characters)"
                    ),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(Error::invalid(
                    format!("{field}.name"),
                    format!("node {name:?} is listed twice"),
                ));
            }
            let package_manager = raw
                .package_manager
                .as_deref()
                .map(|pm| {
                    pm.parse::<PackageManager>()
                        .map_err(|m| Error::invalid(format!("{field}.package_manager"), m))
                })
                .transpose()?;
            let pool = match role {
                NodeRole::ControlPlane => {
                    if raw.pool.is_some() {
                        return Err(Error::invalid(
                            format!("{field}.pool"),
                            format!(
                                "control-plane nodes are always in pool {CONTROL_PLANE_POOL:?}"
                            ),
                        ));
                    }
                    CONTROL_PLANE_POOL.to_string()
                }
                NodeRole::Worker => {
                    let pool = raw.pool.unwrap_or_else(|| DEFAULT_WORKER_POOL.into());
                    if !valid_node_name(&pool) || pool.contains('.') || pool == CONTROL_PLANE_POOL {
                        return Err(Error::invalid(
                            format!("{field}.pool"),
                            format!(
                                "{pool:?} is not a valid pool name (lowercase letters, digits and \
                                 '-'; {CONTROL_PLANE_POOL:?} is reserved)"
                            ),
                        ));
                    }
                    pool
                }
            };
            let sudo = raw.sudo.or(ssh.sudo).unwrap_or(false);
            let ssh_opts = if raw.local {
                if raw.host.is_some() || raw.port.is_some() || raw.user.is_some() {
                    return Err(Error::invalid(
                        format!("{field}.local"),
                        "a local node takes no host, port or user",
                    ));
                }
                None
            } else {
                let host = raw.host.ok_or_else(|| {
                    Error::invalid(
                        format!("{field}.host"),
                        "is required (an SSH destination: host, alias or user@host), unless \
                         `local: true`",
                    )
                })?;
                no_option(&format!("{field}.host"), &host)?;
                if let Some(user) = &raw.user {
                    no_option(&format!("{field}.user"), user)?;
                }
                let port = valid_port(&format!("{field}.port"), raw.port)?.or(default_port);
                let identity_file = match raw.identity_file.as_deref() {
                    Some(p) => Some(existing_file(&format!("{field}.identity_file"), base, p)?),
                    None => identity.clone(),
                };
                Some(SshOptions {
                    destination: host,
                    user: raw.user.or_else(|| ssh.user.clone()),
                    port,
                    identity_file,
                    config_file: config_file.clone(),
                    known_hosts_file: known_hosts_file.clone(),
                    known_hosts,
                    connect_timeout: ssh.connect_timeout_secs.map(Duration::from_secs),
                    sudo,
                    control_dir: control_dir.clone(),
                })
            };
            if let Some(file) = &raw.repo_file
                && !file.starts_with('/')
            {
                return Err(Error::invalid(
                    format!("{field}.repo_file"),
                    format!("{file:?} must be an absolute path on the node"),
                ));
            }
            Ok(NodeSpec {
                name,
                role,
                pool,
                ssh: ssh_opts,
                local_sudo: sudo,
                package_manager,
                repo_file: raw.repo_file,
            })
        };

        let mut control_plane = Vec::new();
        for (i, raw) in self.control_plane.into_iter().enumerate() {
            control_plane.push(build(
                raw,
                NodeRole::ControlPlane,
                format!("control_plane[{i}]"),
            )?);
        }
        let mut workers = Vec::new();
        for (i, raw) in self.workers.into_iter().enumerate() {
            workers.push(build(raw, NodeRole::Worker, format!("workers[{i}]"))?);
        }
        Ok(Inventory {
            cluster,
            control_plane,
            workers,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(yaml: &str) -> String {
        Inventory::parse(yaml, None).unwrap_err().to_string()
    }

    #[test]
    fn parses_nodes_pools_and_defaults() {
        let inv = Inventory::parse(
            "cluster: prod\nssh: {user: ubuntu, sudo: true, port: 2222}\n\
             control_plane:\n  - {name: cp-1, host: cp-1.internal}\n  - {name: cp-2, host: 'root@10.0.0.2', port: 22, sudo: false}\n\
             workers:\n  - {name: w-1, host: w1, pool: gpu, package_manager: dnf}\n  - {name: w-2, local: true}\n",
            None,
        )
        .unwrap();
        assert_eq!(inv.cluster, "prod");
        let cp1 = inv.first_control_plane();
        assert_eq!(cp1.name, "cp-1");
        let ssh = cp1.ssh.as_ref().unwrap();
        assert_eq!(
            (ssh.user.as_deref(), ssh.port, ssh.sudo),
            (Some("ubuntu"), Some(2222), true)
        );
        let cp2 = inv.node("cp-2").unwrap().ssh.as_ref().unwrap();
        assert_eq!((cp2.port, cp2.sudo), (Some(22), false));
        assert_eq!(
            inv.node("w-1").unwrap().package_manager,
            Some(PackageManager::Dnf)
        );
        assert!(inv.node("w-2").unwrap().ssh.is_none());
        assert_eq!(
            inv.worker_pools(),
            vec![
                ("gpu".to_string(), vec!["w-1".to_string()]),
                ("workers".to_string(), vec!["w-2".to_string()])
            ]
        );
    }

    #[test]
    fn errors_name_the_field_and_accepted_values() {
        assert_eq!(
            err("control_plane: []"),
            "invalid control_plane: at least one control-plane node is required (the first one runs \
             `kubeadm upgrade apply` and the etcd backup)"
        );
        let e = err("control_plane:\n  - {name: cp-1, host: a, port: 70000}");
        assert!(
            e.starts_with("invalid control_plane[0].port: 70000 is not a port"),
            "{e}"
        );
        let e = err(
            "control_plane:\n  - {name: cp-1, host: a}\nworkers:\n  - {name: w, host: b, package_manager: zypper}",
        );
        assert!(
            e.contains("workers[0].package_manager") && e.contains("apt, dnf, yum"),
            "{e}"
        );
        let e = err("control_plane:\n  - {name: CP_1, host: a}");
        assert!(e.contains("control_plane[0].name"), "{e}");
        let e = err("control_plane:\n  - {name: cp-1, host: '-oProxyCommand=x'}");
        assert!(
            e.contains("control_plane[0].host") && e.contains("must not start with '-'"),
            "{e}"
        );
        let e = err("control_plane:\n  - {name: cp-1, host: a}\n  - {name: cp-1, host: b}");
        assert!(
            e.contains("control_plane[1].name") && e.contains("listed twice"),
            "{e}"
        );
        let e = err("control_plane:\n  - {name: cp-1}");
        assert!(e.contains("control_plane[0].host: is required"), "{e}");
        let e = err("ssh: {known_hosts: off}\ncontrol_plane:\n  - {name: cp-1, host: a}");
        assert!(
            e.contains("ssh.known_hosts") && e.contains("strict, accept-new"),
            "{e}"
        );
        let e = err("control_plane:\n  - {name: cp-1, host: a, identity_file: /nonexistent/key}");
        assert!(e.contains("control_plane[0].identity_file"), "{e}");
        // Typos are refused, not ignored.
        let e = err("control_plane:\n  - {name: cp-1, hots: a}");
        assert!(e.contains("hots"), "{e}");
    }
}
