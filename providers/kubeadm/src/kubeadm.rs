//! kubeadm's own commands and what they print.

use std::time::Duration;

use kup_core::KubeVersion;
use serde::Deserialize;

use crate::exec::NodeCommand;

/// `kubeadm upgrade plan vX.Y.Z -o json`: kubeadm's health checks (control-plane nodes
/// Ready, static pod manifests present, a test Job when nodes are schedulable) and the
/// components it would move. The version argument skips kubeadm's own internet lookup.
pub fn upgrade_plan(to: &KubeVersion, timeout: Duration) -> NodeCommand {
    NodeCommand::new("kubeadm")
        .args(["upgrade", "plan"])
        .arg(v(to))
        .args(["-o", "json"])
        .timeout(timeout)
}

/// `kubeadm upgrade apply vX.Y.Z --yes` (first control-plane node).
pub fn upgrade_apply(to: &KubeVersion, timeout: Duration) -> NodeCommand {
    NodeCommand::new("kubeadm")
        .args(["upgrade", "apply"])
        .arg(v(to))
        .arg("--yes")
        .timeout(timeout)
}

/// `kubeadm upgrade node` (other control-plane nodes and workers).
pub fn upgrade_node(timeout: Duration) -> NodeCommand {
    NodeCommand::new("kubeadm")
        .args(["upgrade", "node"])
        .timeout(timeout)
}

/// `v1.31.2`, as kubeadm wants it.
pub fn v(version: &KubeVersion) -> String {
    format!(
        "v{}.{}.{}",
        version.major(),
        version.minor(),
        version.patch().unwrap_or(0)
    )
}

/// One row of `kubeadm upgrade plan -o json` (`output.kubeadm.k8s.io/v1alpha3`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentUpgrade {
    /// `kube-apiserver`, `kubelet`, `etcd`…
    pub name: String,
    /// Its version now.
    #[serde(default)]
    pub current_version: String,
    /// The version it would move to.
    #[serde(default)]
    pub new_version: String,
    /// The node, for per-node components.
    #[serde(default)]
    pub node_name: String,
}

/// One upgrade kubeadm offers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpgrade {
    /// kubeadm's description.
    #[serde(default)]
    pub description: String,
    /// The components it moves.
    #[serde(default)]
    pub components: Vec<ComponentUpgrade>,
}

/// A component configuration's version state.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVersionState {
    /// The API group (`kubeproxy.config.k8s.io`).
    pub group: String,
    /// Whether a person must migrate it before the upgrade.
    #[serde(default)]
    pub manual_upgrade_required: bool,
}

/// `kubeadm upgrade plan -o json` output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlanOutput {
    /// Upgrades offered.
    #[serde(default)]
    pub available_upgrades: Vec<AvailableUpgrade>,
    /// Component configurations.
    #[serde(default)]
    pub config_versions: Vec<ConfigVersionState>,
}

impl UpgradePlanOutput {
    /// Parses the JSON object in `stdout` (kubeadm may print log lines before it).
    pub fn parse(stdout: &str) -> Result<Self, String> {
        let start = stdout
            .find("{")
            .ok_or_else(|| "no JSON object in `kubeadm upgrade plan -o json` output".to_string())?;
        let mut it = serde_json::Deserializer::from_str(&stdout[start..]).into_iter::<Self>();
        match it.next() {
            Some(Ok(plan)) => Ok(plan),
            Some(Err(e)) => Err(format!("cannot read `kubeadm upgrade plan` output: {e}")),
            None => Err("empty `kubeadm upgrade plan` output".into()),
        }
    }

    /// Reasons the plan cannot proceed to `to`: component configs needing manual migration,
    /// and no offered upgrade moving the API server to `to` (when something still needs to
    /// move).
    pub fn blockers(&self, to: &KubeVersion) -> Vec<String> {
        let mut out: Vec<String> = self
            .config_versions
            .iter()
            .filter(|c| c.manual_upgrade_required)
            .map(|c| {
                format!(
                    "kubeadm reports that component config {} needs a manual upgrade before \
                     moving to {}",
                    c.group,
                    v(to)
                )
            })
            .collect();
        let target = v(to);
        let api_servers: Vec<&ComponentUpgrade> = self
            .available_upgrades
            .iter()
            .flat_map(|u| &u.components)
            .filter(|c| c.name == "kube-apiserver")
            .collect();
        if !api_servers.is_empty() && !api_servers.iter().any(|c| c.new_version == target) {
            out.push(format!(
                "kubeadm offers no upgrade of kube-apiserver to {target} (it offers {})",
                api_servers
                    .iter()
                    .map(|c| c.new_version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_kubeadm_json_plan_after_log_lines() {
        let out = "[preflight] Running pre-flight checks.\n{\"kind\":\"UpgradePlan\",\"apiVersion\":\"output.kubeadm.k8s.io/v1alpha3\",\"availableUpgrades\":[{\"description\":\"version in the v1.31 series\",\"components\":[{\"name\":\"kube-apiserver\",\"currentVersion\":\"v1.30.6\",\"newVersion\":\"v1.31.2\",\"nodeName\":\"cp-1\"},{\"name\":\"kubelet\",\"currentVersion\":\"v1.30.6\",\"newVersion\":\"v1.31.2\",\"nodeName\":\"w-1\"}]}],\"configVersions\":[{\"group\":\"kubeproxy.config.k8s.io\",\"currentVersion\":\"v1alpha1\",\"preferredVersion\":\"v1alpha1\",\"manualUpgradeRequired\":false}]}\n";
        let plan = UpgradePlanOutput::parse(out).unwrap();
        assert_eq!(plan.available_upgrades[0].components.len(), 2);
        let to: KubeVersion = "1.31.2".parse().unwrap();
        assert!(plan.blockers(&to).is_empty());
        let other: KubeVersion = "1.31.3".parse().unwrap();
        assert_eq!(
            plan.blockers(&other),
            vec!["kubeadm offers no upgrade of kube-apiserver to v1.31.3 (it offers v1.31.2)"]
        );
        let manual = UpgradePlanOutput::parse("{\"configVersions\":[{\"group\":\"kubelet.config.k8s.io\",\"manualUpgradeRequired\":true}]}").unwrap();
        assert!(manual.blockers(&to)[0].contains("kubelet.config.k8s.io needs a manual upgrade"));
        assert_eq!(
            upgrade_apply(&to, Duration::from_secs(1)).to_string(),
            "kubeadm upgrade apply v1.31.2 --yes"
        );
    }
}
