//! The parts of ARM's Microsoft.ContainerService resources that upgrades read, typed. Writes
//! start from the resource as ARM returned it (a PUT replaces the whole resource), so unknown
//! fields survive a round trip.

use serde::Deserialize;

/// `managedClusters/{name}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManagedCluster {
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub properties: ClusterProperties,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterProperties {
    pub kubernetes_version: Option<String>,
    pub current_kubernetes_version: Option<String>,
    pub provisioning_state: Option<String>,
}

/// `agentPools/{name}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentPool {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: AgentPoolProperties,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentPoolProperties {
    pub count: Option<u32>,
    pub orchestrator_version: Option<String>,
    pub current_orchestrator_version: Option<String>,
    pub node_image_version: Option<String>,
    pub provisioning_state: Option<String>,
}

/// `agentPools` list page.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentPoolList {
    #[serde(default)]
    pub value: Vec<AgentPool>,
    pub next_link: Option<String>,
}

/// `upgradeProfiles/default` of the cluster.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterUpgradeProfile {
    #[serde(default)]
    pub properties: ClusterUpgradeProfileProperties,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterUpgradeProfileProperties {
    #[serde(default)]
    pub control_plane_profile: PoolUpgradeProfileProperties,
}

/// `agentPools/{name}/upgradeProfiles/default`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PoolUpgradeProfile {
    #[serde(default)]
    pub properties: PoolUpgradeProfileProperties,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PoolUpgradeProfileProperties {
    #[serde(default)]
    pub upgrades: Vec<UpgradeOffer>,
    /// What the pool ran before its recent upgrades (a pool's profile only), newest first.
    #[serde(default)]
    pub recently_used_versions: Vec<RecentlyUsedVersion>,
}

/// One way back an agent pool's upgrade profile offers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecentlyUsedVersion {
    pub orchestrator_version: String,
    pub node_image_version: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpgradeOffer {
    pub kubernetes_version: String,
    #[serde(default)]
    pub is_preview: bool,
}

/// `locations/{loc}/kubernetesVersions`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KubernetesVersionList {
    #[serde(default)]
    pub values: Vec<RegionVersion>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegionVersion {
    #[serde(default)]
    pub is_preview: bool,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub capabilities: VersionCapabilities,
    #[serde(default)]
    pub patch_versions: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionCapabilities {
    #[serde(default)]
    pub support_plan: Vec<String>,
}
