//! A simulated node for the kubeadm demo: an in-process [`NodeExecutor`] that plays kubeadm,
//! apt and the kubelet against the Kubernetes simulator (as the test lab's node shims do over
//! SSH), and runs every other command (files, checksums, a real etcdctl) on this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kup_core::KubeVersion;
use kup_kubeadm::exec::{CommandOutput, LocalExecutor, NodeCommand, NodeExecutor};
use kup_kubeadm::{Error, Result};
use kup_mocks::k8s::SimHandle;

use super::etcd::SimulatedEtcd;

/// The packages kubeadm clusters pin.
const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

#[derive(Debug)]
struct State {
    /// Installed package versions (`1.33.5`).
    installed: BTreeMap<String, String>,
    held: BTreeSet<String>,
}

/// One simulated node.
pub struct SimNode {
    name: String,
    control_plane: bool,
    repo_file: PathBuf,
    state: Mutex<State>,
    sim: SimHandle,
    client: kube::Client,
    local: LocalExecutor,
    /// Plays etcdctl when no real etcd is installed (first control-plane node only).
    etcd: Option<SimulatedEtcd>,
    /// A real etcdctl and endpoint the upgraded API server writes its version to.
    etcd_writer: Option<(PathBuf, String)>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("name", &self.name)
            .field("control_plane", &self.control_plane)
            .finish_non_exhaustive()
    }
}

fn ok(stdout: impl Into<String>) -> CommandOutput {
    CommandOutput {
        status: Some(0),
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

fn failed(status: i32, stderr: impl Into<String>) -> CommandOutput {
    CommandOutput {
        status: Some(status),
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

fn version(text: &str) -> Option<KubeVersion> {
    KubeVersion::parse(text.trim_end_matches("-*")).ok()
}

impl SimNode {
    /// A node at `installed` whose repository definition is the file `repo_file`; commands
    /// run here get `path_prefix` in front of `PATH` (where a real etcdctl is).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        control_plane: bool,
        installed: &str,
        repo_file: &Path,
        sim: SimHandle,
        client: kube::Client,
        path_prefix: Option<&Path>,
        etcd: Option<SimulatedEtcd>,
    ) -> Self {
        let mut local = LocalExecutor::new(name);
        if let Some(dir) = path_prefix {
            local = local.with_path_prefix(dir.display().to_string());
        }
        Self {
            name: name.to_string(),
            control_plane,
            repo_file: repo_file.to_path_buf(),
            state: Mutex::new(State {
                installed: PACKAGES
                    .iter()
                    .map(|p| (p.to_string(), installed.to_string()))
                    .collect(),
                held: PACKAGES.iter().map(|p| p.to_string()).collect(),
            }),
            sim,
            client,
            local,
            etcd,
            etcd_writer: None,
        }
    }

    /// Writes the cluster's version to a real etcd on `kubeadm upgrade apply` (etcdctl, endpoint).
    pub fn with_etcd_writer(mut self, writer: Option<(PathBuf, String)>) -> Self {
        self.etcd_writer = writer;
        self
    }

    fn installed(&self, package: &str) -> String {
        self.state
            .lock()
            .map(|s| s.installed.get(package).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The kubelet restarts the API server's static pod from the new manifest; its mirror pod
    /// shows the new image.
    async fn set_apiserver(&self, v: &str) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "kube-system");
        let patch = serde_json::json!({"spec": {"containers": [{"name": "kube-apiserver",
            "image": format!("registry.k8s.io/kube-apiserver:v{v}")}]}});
        pods.patch(
            &format!("kube-apiserver-{}", self.name),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .map_err(|e| Error::Precondition(format!("the simulated kubelet on {}: {e}", self.name)))?;
        Ok(())
    }

    async fn kubeadm(&self, args: &[String]) -> Result<CommandOutput> {
        let installed = self.installed("kubeadm");
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["version", "-o", "short"] => Ok(ok(format!("v{installed}\n"))),
            ["upgrade", "plan", target, ..] => {
                let target = target.trim_start_matches('v');
                if version(&installed) < version(target) {
                    return Ok(failed(
                        1,
                        format!(
                            "[upgrade/version] FATAL: Specified version to upgrade to \"v{target}\" \
                             is higher than the kubeadm version \"v{installed}\"\n"
                        ),
                    ));
                }
                let current = self.sim.api_server_version();
                Ok(ok(format!(
                    "{{\"kind\":\"UpgradePlan\",\"apiVersion\":\"output.kubeadm.k8s.io/v1alpha3\",\
                     \"availableUpgrades\":[{{\"description\":\"target version\",\"components\":\
                     [{{\"name\":\"kube-apiserver\",\"currentVersion\":\"{current}\",\
                     \"newVersion\":\"v{target}\",\"nodeName\":\"{}\"}}]}}],\"configVersions\":[]}}\n",
                    self.name
                )))
            }
            ["upgrade", "apply", target, ..] => {
                let target = target.trim_start_matches('v');
                if target != installed {
                    return Ok(failed(
                        1,
                        format!(
                            "[upgrade/version] FATAL: Specified version to upgrade to \"v{target}\" \
                             is not the kubeadm version \"v{installed}\"\n"
                        ),
                    ));
                }
                self.set_apiserver(target).await?;
                if let Some((etcdctl, endpoint)) = &self.etcd_writer {
                    let put = NodeCommand::new("env")
                        .arg("ETCDCTL_API=3")
                        .arg(etcdctl.display().to_string())
                        .arg(format!("--endpoints={endpoint}"))
                        .args(["put", "/registry/kup-demo/cluster-version"])
                        .arg(format!("v{target}"));
                    self.local.run_checked(&put).await?;
                }
                self.sim
                    .set_api_server_version(&format!("v{target}"))
                    .map_err(|e| Error::Precondition(e.to_string()))?;
                Ok(ok(format!(
                    "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v{target}\". Enjoy!\n"
                )))
            }
            ["upgrade", "node", ..] => {
                if self.control_plane {
                    self.set_apiserver(&installed).await?;
                }
                Ok(ok(
                    "[upgrade] The configuration for this node was successfully updated!\n",
                ))
            }
            _ => Ok(failed(
                1,
                format!("unknown kubeadm command: {}\n", words.join(" ")),
            )),
        }
    }

    fn apt_get(&self, args: &[String]) -> Result<CommandOutput> {
        match args.first().map(String::as_str) {
            Some("update") => return Ok(ok("Reading package lists... Done\n")),
            Some("install") => {}
            other => return Ok(failed(100, format!("E: Invalid operation {other:?}\n"))),
        }
        let downgrades = args.iter().any(|a| a == "--allow-downgrades");
        let repo = std::fs::read_to_string(&self.repo_file).unwrap_or_default();
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Precondition("node state poisoned".into()))?;
        let mut changes = Vec::new();
        for a in args.iter().filter(|a| a.contains('=')) {
            let (package, wanted) = a.split_once('=').unwrap_or_default();
            let Some(wanted) = version(wanted) else {
                return Ok(failed(100, format!("E: Version '{a}' is not valid\n")));
            };
            if !repo.contains(&format!("/v{}.{}/", wanted.major(), wanted.minor())) {
                return Ok(failed(
                    100,
                    format!("E: Version '{wanted}-*' for '{package}' was not found\n"),
                ));
            }
            if state.held.contains(package) {
                return Ok(failed(
                    100,
                    "E: Held packages were changed and -y was used without \
                     --allow-change-held-packages.\n",
                ));
            }
            let current = state.installed.get(package).and_then(|v| version(v));
            if current.is_some_and(|c| wanted < c) && !downgrades {
                return Ok(failed(
                    100,
                    "E: Packages were downgraded and -y was used without --allow-downgrades.\n",
                ));
            }
            changes.push((package.to_string(), wanted.to_string()));
        }
        let mut out = String::new();
        for (package, v) in changes {
            out.push_str(&format!("Setting up {package} ({v}-1.1) ...\n"));
            state.installed.insert(package, v);
        }
        Ok(ok(out))
    }

    fn apt_mark(&self, args: &[String]) -> Result<CommandOutput> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Precondition("node state poisoned".into()))?;
        let mut out = String::new();
        match args.first().map(String::as_str) {
            Some("hold") => {
                for p in &args[1..] {
                    state.held.insert(p.clone());
                    out.push_str(&format!("{p} set on hold.\n"));
                }
            }
            Some("unhold") => {
                for p in &args[1..] {
                    state.held.remove(p);
                    out.push_str(&format!("Canceled hold on {p}.\n"));
                }
            }
            other => return Ok(failed(100, format!("E: Invalid operation {other:?}\n"))),
        }
        Ok(ok(out))
    }

    fn systemctl(&self, args: &[String]) -> Result<CommandOutput> {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["daemon-reload"] => Ok(ok("")),
            ["restart", "kubelet"] => {
                // The kubelet comes back NotReady, then Ready reporting its new version.
                let v = self.installed("kubelet");
                self.sim
                    .set_kubelet_version(&self.name, &format!("v{v}"))
                    .map_err(|e| Error::Precondition(e.to_string()))?;
                Ok(ok(""))
            }
            _ => Ok(failed(
                1,
                format!("Unknown command verb {}.\n", words.join(" ")),
            )),
        }
    }

    /// `command -v PROGRAM` probes for the programs this node plays.
    fn probe(&self, args: &[String]) -> Option<CommandOutput> {
        let script = args.get(1)?;
        if args.first().map(String::as_str) != Some("-c") || !script.starts_with("command -v") {
            return None;
        }
        let program = args.last()?.as_str();
        let present = match program {
            "kubeadm" | "kubelet" | "kubectl" | "apt-get" | "apt-mark" | "systemctl" => true,
            "crictl" | "dnf" | "yum" => false,
            "etcdctl" if self.etcd.is_some() => true,
            "etcdutl" if self.etcd.is_some() => false,
            _ => return None,
        };
        Some(if present { ok("") } else { failed(1, "") })
    }
}

#[async_trait]
impl NodeExecutor for SimNode {
    fn node(&self) -> &str {
        &self.name
    }

    async fn run(&self, command: &NodeCommand) -> Result<CommandOutput> {
        let args = command.arguments();
        match command.program() {
            "sh" => match self.probe(args) {
                Some(answer) => Ok(answer),
                None => self.local.run(command).await,
            },
            "kubeadm" => self.kubeadm(args).await,
            "apt-get" => self.apt_get(args),
            "apt-mark" => self.apt_mark(args),
            "systemctl" => self.systemctl(args),
            "env" if args.get(1).map(String::as_str) == Some("etcdctl") => match &self.etcd {
                Some(etcd) => Ok(etcd.run(&args[2..])),
                None => self.local.run(command).await,
            },
            _ => self.local.run(command).await,
        }
    }

    async fn copy_from(&self, remote: &str, local: &Path) -> Result<u64> {
        self.local.copy_from(remote, local).await
    }

    async fn copy_to(&self, local: &Path, remote: &str) -> Result<u64> {
        self.local.copy_to(local, remote).await
    }
}
