//! The provider: versions and pools read from the Kubernetes API; control-plane and pool
//! upgrades declared unsupported, naming the tool that does them.

use std::collections::BTreeSet;

use async_trait::async_trait;
use kup_core::{
    AvailableVersion, Capabilities, ClusterInfo, ControlPlaneOptions, Error, Finding, KubeVersion,
    NodePoolOptions, Operation, OperationStatus, ProviderKind, Result, Severity, SupportStatus,
    UpgradeProvider, VersionScope,
};
use kup_kube::drain::{DrainOptions, DrainReport, Drainer};
use kup_kube::kube_error::{kubernetes_provider, to_core_error};

use crate::distribution::Distribution;
use crate::nodes;

/// The name runs are recorded under (journal, plan and lock in the cluster's kube-system)
/// when none is given: they live in the cluster itself, so one name per cluster suffices.
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";

/// Any conformant cluster, bound to it through a Kubernetes client.
#[derive(Clone)]
pub struct KubernetesProvider {
    client: kube::Client,
    name: String,
    pool_label: Option<String>,
    distribution: Distribution,
}

impl std::fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("name", &self.name)
            .field("pool_label", &self.pool_label)
            .field("distribution", &self.distribution)
            .finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl KubernetesProvider {
    /// Binds to the cluster `client` reaches, recording runs under `name` (a DNS label; see
    /// [`DEFAULT_CLUSTER_NAME`]). Asks the API server for its version and lists the nodes
    /// once, to tell which distribution runs it.
    pub async fn connect(client: kube::Client, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if !valid_name(&name) {
            return Err(Error::invalid_input(
                "cluster_name",
                format!(
                    "{name:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"
                ),
            ));
        }
        let version = client.apiserver_version().await.map_err(to_core_error)?;
        let all = nodes::list(&client).await.map_err(to_core_error)?;
        Ok(Self {
            distribution: Distribution::detect(&version.git_version, &all),
            client,
            name,
            pool_label: None,
        })
    }

    /// Groups worker nodes into pools by this label's value (`node.kubernetes.io/pool`,
    /// `karpenter.sh/nodepool`); without it, every worker is in pool `workers`.
    pub fn with_pool_label(mut self, key: impl Into<String>) -> Self {
        self.pool_label = Some(key.into()).filter(|k: &String| !k.is_empty());
        self
    }

    /// The distribution the API server and nodes point to.
    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    /// Cordons and drains `node` through the eviction API, honouring PodDisruptionBudgets.
    pub async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        events: &dyn kup_core::EventSink,
    ) -> Result<DrainReport> {
        Ok(Drainer::new(self.client.clone())
            .drain(node, opts, events)
            .await?)
    }

    /// Makes `node` schedulable again; false when it already was.
    pub async fn uncordon(&self, node: &str) -> Result<bool> {
        Ok(Drainer::new(self.client.clone()).uncordon(node).await?)
    }

    fn tool(&self) -> String {
        format!(
            "this cluster runs {}: {}; kup checks before (kup preflight), drains nodes (kup \
             drain) and validates after (kup validate)",
            self.distribution,
            self.distribution.upgrade_tool()
        )
    }

    fn refuse(&self, what: &str) -> Error {
        Error::not_supported(self.kind(), format!("{what} ({})", self.tool()))
    }

    async fn api_server(&self) -> Result<KubeVersion> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(to_core_error)?;
        KubeVersion::parse(&info.git_version).map_err(|e| {
            Error::invalid_input(
                "/version",
                format!(
                    "the API server reports gitVersion {:?}: {e}",
                    info.git_version
                ),
            )
        })
    }
}

#[async_trait]
impl UpgradeProvider for KubernetesProvider {
    fn kind(&self) -> ProviderKind {
        kubernetes_provider()
    }

    fn cluster_name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| {
            c.control_plane_upgrade = false;
            // The distribution picks its builds; kup names minors.
            c.control_plane_patch_selectable = false;
            c.upgrade_tool = Some(self.tool());
        })
    }

    async fn cluster(&self) -> Result<ClusterInfo> {
        let control_plane = self.api_server().await?;
        let all = nodes::list(&self.client).await.map_err(to_core_error)?;
        Ok(ClusterInfo {
            provider: self.kind(),
            name: self.name.clone(),
            control_plane,
            api_servers: Vec::new(),
            node_pools: nodes::pools(&all, self.pool_label.as_deref()),
            addons: Vec::new(),
            in_progress: Vec::new(),
            status: None,
        })
    }

    /// What the cluster runs (the API server's build, every kubelet build) and the next
    /// minor, the default target of checks. What the distribution really offers is its own
    /// tool's to say, so every support status is unknown.
    async fn available_versions(&self) -> Result<Vec<AvailableVersion>> {
        let info = self.cluster().await?;
        let cp = info.control_plane.clone();
        let mut seen: Vec<(KubeVersion, VersionScope)> = vec![(cp.clone(), VersionScope::Both)];
        let all = nodes::list(&self.client).await.map_err(to_core_error)?;
        let kubelets: BTreeSet<String> = all
            .iter()
            .filter_map(|n| {
                Some(
                    n.status
                        .as_ref()?
                        .node_info
                        .as_ref()?
                        .kubelet_version
                        .clone(),
                )
            })
            .collect();
        for k in kubelets {
            if let Ok(v) = KubeVersion::parse(&k)
                && !seen.iter().any(|(s, _)| s.same_build(&v))
            {
                seen.push((v, VersionScope::Nodes));
            }
        }
        seen.push((cp.next_minor(), VersionScope::Both));
        seen.sort_by(|a, b| a.0.cmp_build(&b.0));
        Ok(seen
            .into_iter()
            .map(|(version, scope)| {
                let mut a = AvailableVersion::new(version, SupportStatus::Unknown);
                a.scope = scope;
                a
            })
            .collect())
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        _opts: &ControlPlaneOptions,
    ) -> Result<Operation> {
        Err(self.refuse(&format!("control-plane upgrades (to {to})")))
    }

    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        _opts: &NodePoolOptions,
    ) -> Result<Operation> {
        Err(self.refuse(&format!("node pool upgrades ({pool} to {to})")))
    }

    async fn poll(&self, op: &Operation) -> Result<OperationStatus> {
        // This provider starts no operations, so any it is asked about is someone else's.
        Err(Error::NotFound {
            kind: "operation".into(),
            name: op.id.clone(),
            scope: Some(format!(
                "cluster {} (the kubernetes provider starts no operations)",
                self.name
            )),
        })
    }

    async fn preflight(&self, to: &KubeVersion) -> Result<Vec<Finding>> {
        Ok(vec![
            Finding::new(
                "kubernetes.upgrade-tool",
                Severity::Info,
                format!(
                    "kup checks this cluster for {to} but does not move its versions: {}",
                    self.distribution.upgrade_tool()
                ),
            )
            .remediation(format!(
                "after {} has moved the cluster, run kup validate",
                self.distribution
            ))
            .source("kubernetes"),
        ])
    }
}
