//! The control-plane and node sequences of [`KubeadmProvider`].

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kup_core::{
    BackupRecord, ControlPlaneOptions, Event, Finding, KubeVersion, Operation, OperationTarget,
    ProviderKind, Severity,
};
use serde_json::json;

use super::KubeadmProvider;
use crate::cluster_state;
use crate::error::{Error, Result};
use crate::etcd::restore::save_pre_upgrade_state;
use crate::etcd::{self, EtcdTools};
use crate::exec::NodeCommand;
use crate::inventory::NodeRole;
use crate::kubeadm::{self, UpgradePlanOutput};
use crate::packages::NodePackages;

/// Set on a control-plane node while kup holds it cordoned, so a resumed run tells its own
/// cordon from one an operator made (which it must keep).
pub const CORDONED_BY_KUP_ANNOTATION: &str = "kubeadm.kup.dev/cordoned-for-upgrade";

fn op_id(kind: &str, subject: &str, to: &KubeVersion) -> String {
    format!("kubeadm-{kind}-{subject}-{to}")
}

impl KubeadmProvider {
    fn control_plane_failed(
        &self,
        node: &str,
        step: &str,
        source: Error,
        backup: &BackupRecord,
    ) -> Error {
        Error::ControlPlaneFailed {
            node: node.to_string(),
            step: step.to_string(),
            source: Box::new(source),
            backup: Box::new(backup.clone()),
        }
    }

    async fn check_repositories(&self, nodes: &[String], to: &KubeVersion) -> Result<()> {
        let mut missing = Vec::new();
        for node in nodes {
            let pm = self.package_manager(node).await?;
            if !self.releases.repository_exists(to, pm).await? {
                missing.push(format!("{} ({node})", self.releases.repository_url(to, pm)));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Precondition(format!(
                "the package repository for {}.{} does not exist: {}",
                to.major(),
                to.minor(),
                missing.join(", ")
            )))
        }
    }

    /// Runs one control-plane hop (see [`KubeadmProvider`] for the sequence).
    pub(super) async fn run_control_plane(
        &self,
        to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> Result<Operation> {
        let to = self.resolve_target(to).await?;
        let cp_names: Vec<String> = self
            .inventory
            .control_plane
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let op = Operation::new(
            ProviderKind::Kubeadm,
            op_id("control-plane", &self.inventory.cluster, &to),
            OperationTarget::ControlPlane,
        )
        .with_version(&to)
        .with_handle("nodes", cp_names.join(","));
        let api = cluster_state::api_servers(&self.client).await?;
        let nodes = cluster_state::nodes(&self.client).await?;
        let done = |n: &String| {
            api.get(n).is_some_and(|v| *v == to) && nodes.get(n).is_some_and(|s| s.ready_at(&to))
        };
        if cp_names.iter().all(done) {
            return Ok(op);
        }
        let current = self.control_plane_version().await?;
        let distance = current.minor_distance(&to);
        if distance < 0 {
            return Err(Error::Precondition(format!(
                "the control plane runs {current}; kubeadm cannot downgrade it to {to}. Rolling \
                 back is a restore of the etcd snapshot taken before the upgrade"
            )));
        }
        if distance > 1 {
            return Err(Error::Precondition(format!(
                "kubeadm upgrades the control plane one minor at a time: upgrade from {current} \
                 to {}.{} first",
                current.major(),
                current.minor() + 1
            )));
        }
        // The control plane is touched only with a verified snapshot of its current state.
        let Some(backup) = self.verified_backup().await else {
            return Err(Error::Precondition(format!(
                "no verified etcd snapshot of the control plane at {current}: take one with \
                 `backup` first (kup never moves a kubeadm control plane without one)"
            )));
        };
        if backup.control_plane != current {
            return Err(Error::Precondition(format!(
                "the verified etcd snapshot {} was taken at {}, but the control plane runs \
                 {current}: take a new backup before this hop",
                backup.id, backup.control_plane
            )));
        }
        self.verify_record(&backup).await?;
        let Some(drain) = self.drain.clone() else {
            return Err(Error::Precondition(
                "no drain is configured for control-plane nodes (KubeadmProvider::with_drain)"
                    .into(),
            ));
        };

        // Health first; nothing has changed yet.
        let not_ready: Vec<&String> = cp_names
            .iter()
            .filter(|n| !nodes.get(*n).is_some_and(|s| s.ready))
            .collect();
        if !not_ready.is_empty() {
            return Err(Error::Precondition(format!(
                "control-plane nodes not Ready: {}",
                not_ready
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let first = self.inventory.first_control_plane().name.clone();
        let first_exec = self.executor(&first)?;
        let tools = EtcdTools::find(first_exec.as_ref(), &self.settings.etcd).await?;
        etcd::health(first_exec.as_ref(), &tools, &self.settings.etcd).await?;
        self.check_repositories(&cp_names, &to).await?;

        for name in &cp_names {
            let exec = self.executor(name)?;
            let pm = self.package_manager(name).await?;
            let pkgs = NodePackages::new(exec.as_ref(), pm, &self.settings.packages)
                .with_repo_file(self.spec(name)?.repo_file.as_deref());
            let api_now = cluster_state::api_servers(&self.client).await?;
            if api_now.get(name) != Some(&to) {
                let step = async {
                    save_pre_upgrade_state(exec.as_ref(), &self.settings.etcd, &backup.id).await?;
                    pkgs.upgrade_kubeadm(&to, false).await?;
                    // `upgrade apply` once per hop: on the first node, unless a resumed run
                    // finds that some API server already moved (then the others join it
                    // with `upgrade node`).
                    let applied = api_now.values().any(|v| *v == to);
                    if *name == first && !applied {
                        let plan = exec
                            .run_checked(&kubeadm::upgrade_plan(&to, self.settings.kubeadm_timeout))
                            .await?;
                        let plan = UpgradePlanOutput::parse(&plan.stdout).map_err(|message| {
                            Error::UnexpectedOutput {
                                node: name.clone(),
                                what: "kubeadm upgrade plan".into(),
                                message,
                            }
                        })?;
                        let blockers = plan.blockers(&to);
                        if !blockers.is_empty() {
                            return Err(Error::Precondition(blockers.join("; ")));
                        }
                        exec.run_checked(&kubeadm::upgrade_apply(
                            &to,
                            self.settings.kubeadm_timeout,
                        ))
                        .await?;
                    } else {
                        exec.run_checked(&kubeadm::upgrade_node(self.settings.kubeadm_timeout))
                            .await?;
                    }
                    Ok(())
                };
                step.await.map_err(|e| {
                    self.control_plane_failed(name, "control-plane components", e, &backup)
                })?;
            }
            let state = cluster_state::node(&self.client, name).await?;
            if !state.ready_at(&to) {
                self.kubelet_with_drain(name, &pkgs, &to, drain.as_ref())
                    .await
                    .map_err(|e| self.control_plane_failed(name, "kubelet", e, &backup))?;
            }
        }
        Ok(op)
    }

    async fn annotate_cordon(&self, node: &str, ours: bool) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let value = if ours { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"annotations": {CORDONED_BY_KUP_ANNOTATION: value}}});
        api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Cordon, drain, kubelet and kubectl, Ready at `to`, uncordon (unless the node was
    /// cordoned before kup touched it).
    async fn kubelet_with_drain(
        &self,
        name: &str,
        pkgs: &NodePackages<'_>,
        to: &KubeVersion,
        drain: &dyn crate::drain::NodeDrain,
    ) -> Result<()> {
        let before = cluster_state::node(&self.client, name).await?;
        let ours_already = before
            .annotations
            .get(CORDONED_BY_KUP_ANNOTATION)
            .is_some_and(|v| v == "true");
        let was_cordoned = drain.cordon(name).await?;
        let keep_cordoned = was_cordoned && !ours_already;
        if !was_cordoned {
            self.annotate_cordon(name, true).await?;
        }
        self.emit(Event::NodeCordoned {
            node: name.to_string(),
            was_cordoned: keep_cordoned,
        });
        drain.drain(name, self.events.as_ref()).await?;
        pkgs.upgrade_kubelet(to, false).await?;
        cluster_state::wait_ready_at(&self.client, name, to, self.settings.node_ready_timeout)
            .await?;
        self.emit(Event::NodeUpgraded {
            node: name.to_string(),
            version: to.to_string(),
        });
        if keep_cordoned {
            self.emit(Event::NodeLeftCordoned {
                node: name.to_string(),
                reason: "it was cordoned before the upgrade".into(),
            });
        } else {
            drain.uncordon(name).await?;
            self.annotate_cordon(name, false).await?;
            self.emit(Event::NodeUncordoned {
                node: name.to_string(),
            });
        }
        Ok(())
    }

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
        self.check_repositories(&[node.to_string()], &to).await?;
        let pkgs = NodePackages::new(exec.as_ref(), pm, &self.settings.packages)
            .with_repo_file(spec.repo_file.as_deref());
        pkgs.upgrade_kubeadm(&to, false).await?;
        exec.run_checked(&kubeadm::upgrade_node(self.settings.kubeadm_timeout))
            .await?;
        pkgs.upgrade_kubelet(&to, false).await?;
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
