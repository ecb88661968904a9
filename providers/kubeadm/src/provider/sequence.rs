//! The worker sequence and the provider-native pre-flight of [`KubeadmProvider`] (the
//! control-plane hop is in `hop.rs`).

use kup_core::{Finding, KubeVersion, Operation, OperationTarget, ProviderKind, Severity};

use super::KubeadmProvider;
use crate::cluster_state;
use crate::error::{Error, Result};
use crate::etcd::{self, EtcdTools};
use crate::exec::NodeCommand;
use crate::inventory::NodeRole;
use crate::kubeadm;
use crate::packages::NodePackages;

fn op_id(kind: &str, subject: &str, to: &KubeVersion) -> String {
    format!("kubeadm-{kind}-{subject}-{to}")
}

impl KubeadmProvider {
    /// Upgrades one node the engine has cordoned and drained.
    pub(super) async fn run_node(
        &self,
        pool: &str,
        node: &str,
        to: &KubeVersion,
    ) -> Result<Operation> {
        let spec = self.spec(node)?;
        if spec.pool != pool {
            return Err(Error::invalid(
                "node",
                format!("node {node} is in pool {}, not {pool}", spec.pool),
            ));
        }
        let to = self.resolve_target(to).await?;
        let op = Operation::new(
            ProviderKind::Kubeadm,
            op_id("node", node, &to),
            OperationTarget::Node {
                node: node.to_string(),
            },
        )
        .with_version(&to);
        let state = cluster_state::node(&self.client, node).await?;
        if state.ready_at(&to) {
            return Ok(op);
        }
        let control_plane = self.control_plane_version().await?;
        // `to` ahead of the control plane (a later minor, or a later patch of its minor).
        if control_plane.minor_distance(&to) > 0
            || (control_plane.same_minor(&to) && to > control_plane)
        {
            return Err(Error::Precondition(format!(
                "node {node} cannot move to {to}: the control plane runs {control_plane}, and a \
                 kubelet must never be newer than the API server"
            )));
        }
        if let Some(kubelet) = &state.kubelet
            && kubelet.minor_distance(&to) > 1
        {
            return Err(Error::Precondition(format!(
                "node {node} runs {kubelet}; kubeadm moves a node one minor at a time \
                 (upgrade it to {}.{} first)",
                kubelet.major(),
                kubelet.minor() + 1
            )));
        }
        if spec.role == NodeRole::ControlPlane {
            let api = cluster_state::api_servers(&self.client).await?;
            if api.get(node) != Some(&to) {
                return Err(Error::Precondition(format!(
                    "{node} is a control-plane node: its components move with the control-plane \
                     upgrade, which also moves its kubelet"
                )));
            }
        }
        if !state.unschedulable {
            return Err(Error::Precondition(format!(
                "node {node} is schedulable: cordon and drain it before upgrading it (the engine \
                 does so for kup-rolled pools)"
            )));
        }
        let exec = self.executor(node)?;
        let pm = self.package_manager(node).await?;
        self.check_node_repositories(node, &to).await?;
        let pkgs = NodePackages::new(exec.as_ref(), pm, &self.settings.packages)
            .with_repo_file(spec.repo_file.as_deref());
        // A rollback moves a worker back: the earlier packages are installed as a downgrade.
        let downgrade = state.kubelet.as_ref().is_some_and(|k| *k > to);
        pkgs.upgrade_kubeadm(&to, downgrade).await?;
        exec.run_checked(&kubeadm::upgrade_node(self.settings.kubeadm_timeout))
            .await?;
        pkgs.upgrade_kubelet(&to, downgrade).await?;
        Ok(op)
    }

    /// Provider-native checks before moving to `to`; nothing on the nodes changes.
    pub(super) async fn preflight_findings(&self, to: &KubeVersion) -> Result<Vec<Finding>> {
        let source = "kubeadm";
        let mut findings = Vec::new();
        let to = self.resolve_target(to).await?;
        let current = self.control_plane_version().await?;
        if current.minor_distance(&to) > 1 {
            findings.push(
                Finding::new(
                    "kubeadm.minor-skip",
                    Severity::Info,
                    format!(
                        "{current} → {to} spans {} minors; kubeadm moves the control plane one \
                         minor per `kubeadm upgrade apply`, so the plan has one hop per minor",
                        current.minor_distance(&to)
                    ),
                )
                .source(source),
            );
        }
        let nodes = cluster_state::nodes(&self.client).await?;
        for spec in &self.inventory.control_plane {
            if !nodes.get(&spec.name).is_some_and(|s| s.ready) {
                findings.push(
                    Finding::new(
                        "kubeadm.control-plane-not-ready",
                        Severity::Blocker,
                        format!("control-plane node {} is not Ready", spec.name),
                    )
                    .object(kup_core::ObjectRef::cluster("Node", &spec.name))
                    .source(source),
                );
            }
        }
        let mut reachable = Vec::new();
        for spec in self.inventory.nodes() {
            let exec = self.executor(&spec.name)?;
            match exec.run_checked(&NodeCommand::new("true")).await {
                Ok(_) => reachable.push(spec.name.clone()),
                Err(e) => findings.push(
                    Finding::new(
                        "kubeadm.node-unreachable",
                        Severity::Blocker,
                        format!("cannot run commands on {}: {e}", spec.name),
                    )
                    .remediation("check the inventory's SSH settings and that the node is up")
                    .object(kup_core::ObjectRef::cluster("Node", &spec.name))
                    .source(source),
                ),
            }
        }
        for name in &reachable {
            let pm = match self.package_manager(name).await {
                Ok(pm) => pm,
                Err(e) => {
                    findings.push(
                        Finding::new(
                            "kubeadm.package-manager-unknown",
                            Severity::Blocker,
                            e.to_string(),
                        )
                        .source(source),
                    );
                    continue;
                }
            };
            if !self.releases.repository_exists(&to, pm).await? {
                findings.push(
                    Finding::new(
                        "kubeadm.package-repository-missing",
                        Severity::Blocker,
                        format!(
                            "no package repository {} for {name}",
                            self.releases.repository_url(&to, pm)
                        ),
                    )
                    .source(source),
                );
            }
        }
        let first = &self.inventory.first_control_plane().name;
        if reachable.contains(first) {
            let exec = self.executor(first)?;
            let health = match EtcdTools::find(exec.as_ref(), &self.settings.etcd).await {
                Ok(tools) => etcd::health(exec.as_ref(), &tools, &self.settings.etcd).await,
                Err(e) => Err(e),
            };
            if let Err(e) = health {
                findings.push(
                    Finding::new("kubeadm.etcd-unhealthy", Severity::Blocker, e.to_string())
                        .source(source),
                );
            }
        }
        if self.drain.is_none() {
            findings.push(
                Finding::new(
                    "kubeadm.no-drain",
                    Severity::Blocker,
                    "no drain is configured for control-plane nodes",
                )
                .source(source),
            );
        }
        if self.local_tool_available().is_none() {
            findings.push(
                Finding::new(
                    "kubeadm.no-local-etcdctl",
                    Severity::Info,
                    "no etcdctl or etcdutl on this machine: snapshots are verified by size, \
                     SHA-256 and etcd's own checksum, without a second local `snapshot status`",
                )
                .source(source),
            );
        }
        Ok(findings)
    }

    fn local_tool_available(&self) -> Option<std::path::PathBuf> {
        crate::etcd::verify::find_local_tool(self.settings.etcd.local_tool.as_deref())
    }
}
