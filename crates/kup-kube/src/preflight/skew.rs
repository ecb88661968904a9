//! Version skew now, and after every step of a proposed plan.
//!
//! Versions come from `/version` (the API server), the control-plane static pods in
//! kube-system when the cluster shows them (kubeadm: one kube-apiserver per control-plane
//! node, so HA skew is visible), and every node's `status.nodeInfo` (kubelet, kube-proxy).
//! The rules are `kup_core::SkewPolicy`'s.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kup_core::{
    Component, ComponentVersion, Finding, KubeVersion, ObjectRef, Severity, SkewPolicy, SkewRule,
    SkewViolation, StepAction, UpgradePlan,
};

/// The kube-system `component` labels of control-plane static pods.
const CONTROL_PLANE_COMPONENTS: [(&str, Component); 4] = [
    ("kube-apiserver", Component::ApiServer),
    ("kube-controller-manager", Component::ControllerManager),
    ("kube-scheduler", Component::Scheduler),
    (
        "cloud-controller-manager",
        Component::CloudControllerManager,
    ),
];

/// The version in the tag of an image of `component` (`registry.k8s.io/kube-apiserver:v1.31.4`).
/// Other images (a pause image, a wrapper) say nothing about the component's version.
pub(crate) fn image_version(image: &str, component: &str) -> Option<KubeVersion> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (name, tag) = last.split_once(':')?;
    if name != component {
        return None;
    }
    KubeVersion::parse(tag).ok()
}

#[derive(Debug)]
struct NodeVersions {
    name: String,
    pool: Option<String>,
    kubelet: KubeVersion,
    kube_proxy: Option<KubeVersion>,
}

/// Collects versions while nodes and kube-system pods stream past.
#[derive(Debug)]
pub(crate) struct SkewCheck {
    policy: SkewPolicy,
    api_server: Option<KubeVersion>,
    control_plane: Vec<ComponentVersion>,
    nodes: Vec<NodeVersions>,
    unknown: Vec<(String, String)>,
}

fn code(v: &SkewViolation) -> &'static str {
    match (&v.component, &v.rule) {
        (_, SkewRule::ApiServersApart { .. }) => "skew.apiservers-apart",
        (_, SkewRule::KubeProxyVsKubelet { .. }) => "skew.kube-proxy-vs-kubelet",
        (Component::Kubelet, SkewRule::NewerThanApiServer) => "skew.kubelet-too-new",
        (Component::Kubelet, _) => "skew.kubelet-too-old",
        (Component::KubeProxy, SkewRule::NewerThanApiServer) => "skew.kube-proxy-too-new",
        (Component::KubeProxy, _) => "skew.kube-proxy-too-old",
        (_, SkewRule::NewerThanApiServer) => "skew.controller-too-new",
        _ => "skew.controller-too-old",
    }
}

fn remediation(code: &str) -> &'static str {
    match code {
        "skew.kubelet-too-old" | "skew.kube-proxy-too-old" => {
            "upgrade these nodes' pools before moving the control plane further (the planner \
             moves pools when skew requires it; include them in the plan)"
        }
        "skew.kubelet-too-new" | "skew.kube-proxy-too-new" => {
            "kubelets must never be newer than the API server: upgrade the control plane \
             first or replace these nodes with ones at the control plane's version"
        }
        "skew.kube-proxy-vs-kubelet" => "upgrade kube-proxy (an add-on) to the kubelets' minor",
        "skew.apiservers-apart" => {
            "finish the interrupted control-plane upgrade so every API server runs the same minor"
        }
        _ => "upgrade the control-plane components to the API server's minor",
    }
}

impl SkewCheck {
    pub(crate) fn new(policy: SkewPolicy) -> Self {
        Self {
            policy,
            api_server: None,
            control_plane: Vec::new(),
            nodes: Vec::new(),
            unknown: Vec::new(),
        }
    }

    pub(crate) fn set_api_server(&mut self, version: KubeVersion) {
        self.api_server = Some(version);
    }

    pub(crate) fn observe_node(&mut self, node: &Node, pool: Option<&str>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let kubelet = info.map(|i| i.kubelet_version.as_str()).unwrap_or_default();
        let Ok(kubelet_version) = KubeVersion::parse(kubelet) else {
            self.unknown.push((name, kubelet.to_string()));
            return;
        };
        // kube-proxy stopped reporting a useful version in nodeInfo (deprecated in 1.31);
        // unparsable or empty values are skipped.
        let kube_proxy = info
            .map(|i| i.kube_proxy_version.as_str())
            .and_then(|v| KubeVersion::parse(v).ok())
            .filter(|v| v.major() > 0);
        self.nodes.push(NodeVersions {
            name,
            pool: pool.map(String::from),
            kubelet: kubelet_version,
            kube_proxy,
        });
    }

    /// Records control-plane static pods (kube-system, label `component`).
    pub(crate) fn observe_pod(&mut self, pod: &Pod) {
        if pod.metadata.namespace.as_deref() != Some("kube-system") {
            return;
        }
        let Some(label) = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("component"))
        else {
            return;
        };
        let Some((name, component)) = CONTROL_PLANE_COMPONENTS.iter().find(|(l, _)| l == label)
        else {
            return;
        };
        let spec = pod.spec.as_ref();
        let Some(version) = spec
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            .and_then(|image| image_version(image, name))
        else {
            return;
        };
        let node = spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
        self.control_plane
            .push(ComponentVersion::on_node(*component, node, version));
    }

    /// The API servers to measure against: the static pods when visible, else `/version`.
    fn api_servers(&self) -> Vec<ComponentVersion> {
        let pods: Vec<ComponentVersion> = self
            .control_plane
            .iter()
            .filter(|c| c.component == Component::ApiServer)
            .cloned()
            .collect();
        if !pods.is_empty() {
            return pods;
        }
        self.api_server
            .iter()
            .map(|v| ComponentVersion::new(Component::ApiServer, "kube-apiserver", v.clone()))
            .collect()
    }

    pub(crate) fn finish(self, plan: Option<&UpgradePlan>, source: &str) -> Vec<Finding> {
        let api_servers = self.api_servers();
        let mut violations: Vec<SkewViolation> = Vec::new();
        if !api_servers.is_empty() {
            let mut cp = api_servers.clone();
            cp.extend(
                self.control_plane
                    .iter()
                    .filter(|c| c.component != Component::ApiServer)
                    .cloned(),
            );
            violations.extend(self.policy.check(&cp));
            // Per node, so kube-proxy pairs with its own kubelet without a quadratic search.
            for n in &self.nodes {
                let mut components = api_servers.clone();
                components.push(ComponentVersion::on_node(
                    Component::Kubelet,
                    &n.name,
                    n.kubelet.clone(),
                ));
                if let Some(proxy) = &n.kube_proxy {
                    components.push(ComponentVersion::on_node(
                        Component::KubeProxy,
                        &n.name,
                        proxy.clone(),
                    ));
                }
                violations.extend(
                    self.policy
                        .check(&components)
                        .into_iter()
                        .filter(|v| v.component != Component::ApiServer),
                );
            }
        }
        let mut findings = group_now(&violations, source);
        if !self.unknown.is_empty() {
            let shown: Vec<String> = self
                .unknown
                .iter()
                .take(10)
                .map(|(n, v)| format!("{n} ({v:?})"))
                .collect();
            findings.push(
                Finding::new(
                    "skew.version-unknown",
                    Severity::Warning,
                    format!(
                        "{} node(s) report a kubelet version kup cannot read, so their skew is \
                         not checked: {}",
                        self.unknown.len(),
                        shown.join(", ")
                    ),
                )
                .remediation("check these nodes' status.nodeInfo.kubeletVersion")
                .objects(
                    self.unknown
                        .iter()
                        .map(|(n, _)| ObjectRef::cluster("Node", n)),
                )
                .source(source),
            );
        }
        if let Some(plan) = plan {
            findings.extend(self.plan_steps(plan, source));
        }
        findings
    }

    /// Walks the plan's steps, moving the control plane and pools as each step does, and
    /// reports the first step at which each node (or pool) falls out of skew.
    fn plan_steps(&self, plan: &UpgradePlan, source: &str) -> Vec<Finding> {
        let mut api = plan.from.clone();
        let mut pools: BTreeMap<String, KubeVersion> = plan.pools.clone();
        let node_level = self.nodes.iter().any(|n| n.pool.is_some());
        let mut node_versions: Vec<KubeVersion> =
            self.nodes.iter().map(|n| n.kubelet.clone()).collect();
        let mut reported: HashSet<String> = HashSet::new();
        // (step, description, version, rule) → instances
        let mut grouped: BTreeMap<(usize, String, String, String), Vec<ObjectRef>> =
            BTreeMap::new();
        for step in &plan.steps {
            match &step.action {
                StepAction::ControlPlane { to, .. } => api = to.clone(),
                StepAction::NodePool { pool, to, .. } => {
                    pools.insert(pool.clone(), to.clone());
                    for (i, n) in self.nodes.iter().enumerate() {
                        if n.pool.as_deref() == Some(pool.as_str()) {
                            node_versions[i] = to.clone();
                        }
                    }
                }
                _ => continue,
            }
            let server = ComponentVersion::new(Component::ApiServer, "kube-apiserver", api.clone());
            let mut check = |instance: String, object: ObjectRef, version: &KubeVersion| {
                let components = [
                    server.clone(),
                    ComponentVersion::new(Component::Kubelet, instance.clone(), version.clone()),
                ];
                for v in self.policy.check(&components) {
                    if reported.insert(format!("{instance}|{}", v.rule)) {
                        grouped
                            .entry((
                                step.index,
                                step.action.to_string(),
                                v.version.to_string(),
                                format!("{} (control plane at {})", v.rule, v.reference),
                            ))
                            .or_default()
                            .push(object.clone());
                    }
                }
            };
            if node_level {
                // Nodes outside the plan's pools keep their version through every step.
                for (i, n) in self.nodes.iter().enumerate() {
                    check(
                        format!("node {}", n.name),
                        ObjectRef::cluster("Node", &n.name),
                        &node_versions[i],
                    );
                }
            } else {
                for (pool, version) in &pools {
                    check(
                        format!("pool {pool}"),
                        ObjectRef::cluster("NodePool", pool),
                        version,
                    );
                }
            }
        }
        grouped
            .into_iter()
            .map(|((index, description, version, rule), objects)| {
                let names: Vec<&str> = objects.iter().take(10).map(|o| o.name.as_str()).collect();
                Finding::new(
                    "skew.plan-step",
                    Severity::Blocker,
                    format!(
                        "after step {index} ({description}), kubelets at {version} on {} {}({}) \
                         break the skew policy: {rule}",
                        objects.len(),
                        if objects[0].kind == "Node" {
                            "node(s) "
                        } else {
                            "pool(s) "
                        },
                        names.join(", ")
                    ),
                )
                .remediation(
                    "include these nodes' pools in the plan so they move before that step, or \
                     choose an older target",
                )
                .objects(objects)
                .source(source)
            })
            .collect()
    }
}

/// Groups violations by code, version and reference: one finding names every instance.
fn group_now(violations: &[SkewViolation], source: &str) -> Vec<Finding> {
    let mut grouped: BTreeMap<(&str, String, String, String), Vec<&SkewViolation>> =
        BTreeMap::new();
    for v in violations {
        grouped
            .entry((
                code(v),
                v.version.to_string(),
                v.reference.to_string(),
                v.rule.to_string(),
            ))
            .or_default()
            .push(v);
    }
    grouped
        .into_iter()
        .map(|((code, version, reference, rule), vs)| {
            let component = vs[0].component;
            let names: Vec<&str> = vs.iter().take(10).map(|v| v.instance.as_str()).collect();
            let more = vs.len().saturating_sub(10);
            let objects = vs.iter().map(|v| match v.component {
                Component::Kubelet | Component::KubeProxy => ObjectRef::cluster("Node", &v.instance),
                _ => ObjectRef::namespaced("Pod", "kube-system", format!("{}-{}", v.component, v.instance)),
            });
            Finding::new(
                code,
                Severity::Blocker,
                format!(
                    "{component} {version} on {} instance(s) ({}{}) is out of skew with {reference}: {component} {rule}",
                    vs.len(),
                    names.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
            )
            .remediation(remediation(code))
            .objects(objects)
            .source(source)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::api::core::v1::{NodeStatus, NodeSystemInfo};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kup_core::{PlanStep, PoolManagement, PoolMoveReason, ProviderKind};

    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn node(name: &str, kubelet: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                node_info: Some(NodeSystemInfo {
                    kubelet_version: kubelet.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn image_tags_give_versions() {
        assert_eq!(
            image_version("registry.k8s.io/kube-apiserver:v1.31.4", "kube-apiserver"),
            Some(v("1.31.4"))
        );
        assert_eq!(
            image_version(
                "localhost:5000/kube-scheduler:v1.30.2@sha256:abc",
                "kube-scheduler"
            ),
            Some(v("1.30.2"))
        );
        assert_eq!(
            image_version("localhost:5000/kube-scheduler", "kube-scheduler"),
            None
        );
        assert_eq!(
            image_version("registry.k8s.io/pause:3.10", "kube-apiserver"),
            None
        );
    }

    #[test]
    fn kubelets_too_old_and_too_new_are_grouped() {
        let mut check = SkewCheck::new(SkewPolicy::upstream());
        check.set_api_server(v("1.31.2"));
        check.observe_node(&node("a", "v1.27.1"), None);
        check.observe_node(&node("b", "v1.27.3"), None);
        check.observe_node(&node("c", "v1.32.0"), None);
        check.observe_node(&node("d", "v1.30.0"), None);
        check.observe_node(&node("e", "garbage"), None);
        let findings = check.finish(None, "skew");
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "skew.kubelet-too-new",
                "skew.kubelet-too-old",
                "skew.kubelet-too-old",
                "skew.version-unknown"
            ]
        );
        assert!(findings[1].message.contains("on 1 instance(s) (a)"));
    }

    fn plan() -> UpgradePlan {
        let step = |index, action| PlanStep { index, action };
        UpgradePlan {
            schema_version: 1,
            id: String::new(),
            kind: kup_core::PlanKind::Upgrade,
            not_rolled_back: Vec::new(),
            provider: ProviderKind::Kubeadm,
            cluster: "c".into(),
            from: v("1.30"),
            target: v("1.32"),
            control_plane_only: true,
            max_kubelet_skew: 3,
            pools: [("workers".to_string(), v("1.29"))].into(),
            steps: vec![
                step(
                    1,
                    StepAction::ControlPlane {
                        from: v("1.30"),
                        to: v("1.31"),
                    },
                ),
                step(
                    2,
                    StepAction::ControlPlane {
                        from: v("1.31"),
                        to: v("1.32"),
                    },
                ),
                step(
                    3,
                    StepAction::NodePool {
                        pool: "workers".into(),
                        from: v("1.29"),
                        to: v("1.32"),
                        management: PoolManagement::Kup,
                        reason: PoolMoveReason::Target,
                    },
                ),
            ],
        }
    }

    #[test]
    fn plan_steps_that_break_skew_name_the_step_and_the_nodes() {
        // Nodes in "workers" move at step 3; the "legacy" node at 1.28 is in no planned pool
        // and falls out of skew once the control plane reaches 1.32 at step 2.
        let mut check = SkewCheck::new(SkewPolicy::upstream());
        check.set_api_server(v("1.30.1"));
        check.observe_node(&node("w1", "v1.29.0"), Some("workers"));
        check.observe_node(&node("legacy", "v1.28.0"), Some("legacy"));
        let findings = check.finish(Some(&plan()), "skew");
        let steps: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.code == "skew.plan-step")
            .collect();
        assert_eq!(steps.len(), 1, "{findings:#?}");
        assert!(
            steps[0]
                .message
                .starts_with("after step 2 (control plane 1.31 → 1.32)"),
            "{}",
            steps[0].message
        );
        assert_eq!(steps[0].objects, [ObjectRef::cluster("Node", "legacy")]);
    }

    #[test]
    fn pool_level_plan_check_without_node_mapping() {
        let mut bad = plan();
        bad.pools.insert("old".into(), v("1.27"));
        let check = SkewCheck::new(SkewPolicy::upstream());
        let findings = check.finish(Some(&bad), "skew");
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("after step 1"));
        assert_eq!(findings[0].objects, [ObjectRef::cluster("NodePool", "old")]);
    }
}
