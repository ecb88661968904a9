//! The upstream version-skew policy, narrowed by a provider's declared limits.
//!
//! Rules are minor-version rules (kubernetes/website `releases/version-skew-policy.md`); patch
//! differences never violate them. With several API servers (HA during an upgrade), "newer
//! than" is measured against the oldest and "older than" against the newest.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::Capabilities;
use crate::version::KubeVersion;

/// A Kubernetes component whose version the policy constrains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// cloud-controller-manager.
    CloudControllerManager,
    /// kubelet.
    Kubelet,
    /// kube-proxy.
    KubeProxy,
    /// kubectl.
    Kubectl,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApiServer => "kube-apiserver",
            Self::ControllerManager => "kube-controller-manager",
            Self::Scheduler => "kube-scheduler",
            Self::CloudControllerManager => "cloud-controller-manager",
            Self::Kubelet => "kubelet",
            Self::KubeProxy => "kube-proxy",
            Self::Kubectl => "kubectl",
        })
    }
}

/// One running instance of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVersion {
    /// The component.
    pub component: Component,
    /// Which instance (a node name, a pool name, `local` for kubectl).
    pub instance: String,
    /// The node it runs on, when it runs on one (pairs kube-proxy with its kubelet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its version.
    pub version: KubeVersion,
}

impl ComponentVersion {
    /// An instance not tied to a node.
    pub fn new(component: Component, instance: impl Into<String>, version: KubeVersion) -> Self {
        Self {
            component,
            instance: instance.into(),
            node: None,
            version,
        }
    }

    /// An instance running on `node` (its instance name is the node's).
    pub fn on_node(component: Component, node: impl Into<String>, version: KubeVersion) -> Self {
        let node = node.into();
        Self {
            component,
            instance: node.clone(),
            node: Some(node),
            version,
        }
    }
}

/// Which rule a violation breaks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum SkewRule {
    /// API server instances must be within `max` minors of each other.
    ApiServersApart {
        /// The limit.
        max: u32,
    },
    /// The component must not be newer than any API server.
    NewerThanApiServer,
    /// The component must be at most `max` minors older than the newest API server.
    TooOld {
        /// The limit.
        max: u32,
    },
    /// kubectl must be within `max` minors of every API server.
    KubectlOutOfRange {
        /// The limit.
        max: u32,
    },
    /// kube-proxy must be within `max` minors of the kubelet on its node.
    KubeProxyVsKubelet {
        /// The limit.
        max: u32,
    },
}

impl fmt::Display for SkewRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiServersApart { max } => {
                write!(f, "API servers must be within {max} minor of each other")
            }
            Self::NewerThanApiServer => f.write_str("must not be newer than the API server"),
            Self::TooOld { max } => {
                write!(f, "must be at most {max} minors older than the API server")
            }
            Self::KubectlOutOfRange { max } => {
                write!(f, "kubectl must be within {max} minor of the API server")
            }
            Self::KubeProxyVsKubelet { max } => {
                write!(
                    f,
                    "kube-proxy must be within {max} minors of its node's kubelet"
                )
            }
        }
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkewViolation {
    /// The component out of skew.
    pub component: Component,
    /// Which instance.
    pub instance: String,
    /// Its version.
    pub version: KubeVersion,
    /// The version it was compared with (an API server or a kubelet).
    pub reference: KubeVersion,
    /// The rule.
    pub rule: SkewRule,
}

impl fmt::Display for SkewViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at {} is out of skew with {}: {}",
            self.component, self.instance, self.version, self.reference, self.rule
        )
    }
}

/// The skew limits in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkewPolicy {
    /// How many minors a kubelet (and kube-proxy) may lag the API server.
    pub kubelet_max_minors: u32,
    /// The lag allowed for kubelets older than `legacy_kubelet_before`.
    pub legacy_kubelet_max_minors: u32,
    /// Kubelets older than this minor get the legacy limit (upstream: 1.25).
    pub legacy_kubelet_before: u32,
    /// How many minors controller-manager, scheduler and cloud-controller-manager may lag.
    pub controller_max_minors: u32,
    /// kubectl's window either side of the API server.
    pub kubectl_max_minors: u32,
    /// How far apart HA API servers may be.
    pub api_server_max_minors: u32,
    /// kube-proxy's window either side of its node's kubelet.
    pub kube_proxy_kubelet_max_minors: u32,
}

impl Default for SkewPolicy {
    fn default() -> Self {
        Self::upstream()
    }
}

impl SkewPolicy {
    /// Upstream's policy.
    pub fn upstream() -> Self {
        Self {
            kubelet_max_minors: 3,
            legacy_kubelet_max_minors: 2,
            legacy_kubelet_before: 25,
            controller_max_minors: 1,
            kubectl_max_minors: 1,
            api_server_max_minors: 1,
            kube_proxy_kubelet_max_minors: 3,
        }
    }

    /// Upstream's policy narrowed by a provider's declared limits (never widened).
    pub fn for_provider(capabilities: &Capabilities) -> Self {
        let mut policy = Self::upstream();
        policy.kubelet_max_minors = policy.kubelet_max_minors.min(capabilities.max_kubelet_skew);
        policy.legacy_kubelet_max_minors = policy
            .legacy_kubelet_max_minors
            .min(capabilities.max_kubelet_skew);
        policy
    }

    /// How many minors this kubelet may lag the API server.
    pub fn kubelet_lag_allowed(&self, kubelet: &KubeVersion) -> u32 {
        if kubelet.major() == 1 && kubelet.minor() < self.legacy_kubelet_before {
            self.legacy_kubelet_max_minors
        } else {
            self.kubelet_max_minors
        }
    }

    /// The rule a kubelet at `kubelet` breaks against an API server at `api_server`, if any.
    pub fn kubelet_rule_broken(
        &self,
        kubelet: &KubeVersion,
        api_server: &KubeVersion,
    ) -> Option<SkewRule> {
        let behind = kubelet.minor_distance(api_server);
        if behind < 0 {
            return Some(SkewRule::NewerThanApiServer);
        }
        let max = self.kubelet_lag_allowed(kubelet);
        (behind > i64::from(max)).then_some(SkewRule::TooOld { max })
    }

    /// True when a kubelet at `kubelet` may run against an API server at `api_server`.
    pub fn kubelet_fits(&self, kubelet: &KubeVersion, api_server: &KubeVersion) -> bool {
        self.kubelet_rule_broken(kubelet, api_server).is_none()
    }

    /// Every violation among `components`. Without an API server in the list only the
    /// kube-proxy/kubelet pairing can be checked.
    pub fn check(&self, components: &[ComponentVersion]) -> Vec<SkewViolation> {
        let mut violations = Vec::new();
        let api_servers: Vec<&ComponentVersion> = components
            .iter()
            .filter(|c| c.component == Component::ApiServer)
            .collect();
        let oldest = api_servers.iter().min_by(|a, b| a.version.cmp(&b.version));
        let newest = api_servers.iter().max_by(|a, b| a.version.cmp(&b.version));

        if let (Some(oldest), Some(newest)) = (oldest, newest) {
            let spread = oldest.version.minor_distance(&newest.version);
            if spread > i64::from(self.api_server_max_minors) {
                violations.push(SkewViolation {
                    component: Component::ApiServer,
                    instance: oldest.instance.clone(),
                    version: oldest.version.clone(),
                    reference: newest.version.clone(),
                    rule: SkewRule::ApiServersApart {
                        max: self.api_server_max_minors,
                    },
                });
            }
            for c in components {
                let max_lag = match c.component {
                    Component::ApiServer => continue,
                    Component::Kubectl => {
                        let max = self.kubectl_max_minors;
                        for api in &api_servers {
                            if c.version.minor_distance(&api.version).abs() > i64::from(max) {
                                violations.push(SkewViolation {
                                    component: c.component,
                                    instance: c.instance.clone(),
                                    version: c.version.clone(),
                                    reference: api.version.clone(),
                                    rule: SkewRule::KubectlOutOfRange { max },
                                });
                                break;
                            }
                        }
                        continue;
                    }
                    Component::Kubelet | Component::KubeProxy => {
                        self.kubelet_lag_allowed(&c.version)
                    }
                    Component::ControllerManager
                    | Component::Scheduler
                    | Component::CloudControllerManager => self.controller_max_minors,
                };
                if c.version.minor_distance(&oldest.version) < 0 {
                    violations.push(SkewViolation {
                        component: c.component,
                        instance: c.instance.clone(),
                        version: c.version.clone(),
                        reference: oldest.version.clone(),
                        rule: SkewRule::NewerThanApiServer,
                    });
                } else if c.version.minor_distance(&newest.version) > i64::from(max_lag) {
                    violations.push(SkewViolation {
                        component: c.component,
                        instance: c.instance.clone(),
                        version: c.version.clone(),
                        reference: newest.version.clone(),
                        rule: SkewRule::TooOld { max: max_lag },
                    });
                }
            }
        }

        // kube-proxy against the kubelet on the same node.
        let max = self.kube_proxy_kubelet_max_minors;
        for proxy in components
            .iter()
            .filter(|c| c.component == Component::KubeProxy)
        {
            let Some(node) = &proxy.node else { continue };
            let kubelet = components
                .iter()
                .find(|c| c.component == Component::Kubelet && c.node.as_ref() == Some(node));
            if let Some(kubelet) = kubelet
                && proxy.version.minor_distance(&kubelet.version).abs() > i64::from(max)
            {
                violations.push(SkewViolation {
                    component: Component::KubeProxy,
                    instance: proxy.instance.clone(),
                    version: proxy.version.clone(),
                    reference: kubelet.version.clone(),
                    rule: SkewRule::KubeProxyVsKubelet { max },
                });
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn api(version: &str) -> ComponentVersion {
        ComponentVersion::on_node(Component::ApiServer, format!("cp-{version}"), v(version))
    }

    fn rules(policy: &SkewPolicy, components: &[ComponentVersion]) -> Vec<(Component, SkewRule)> {
        policy
            .check(components)
            .into_iter()
            .map(|x| (x.component, x.rule))
            .collect()
    }

    #[test]
    fn kubelet_boundaries() {
        let p = SkewPolicy::upstream();
        // (kubelet, api server, expected rule)
        let cases: &[(&str, &str, Option<SkewRule>)] = &[
            ("1.32.0", "1.32.5", None),
            ("1.32.9", "1.32.0", None), // patch differences never violate
            ("1.33.0", "1.32.0", Some(SkewRule::NewerThanApiServer)),
            ("1.29.0", "1.32.0", None), // exactly 3 behind
            ("1.28.0", "1.32.0", Some(SkewRule::TooOld { max: 3 })),
            // older than 1.25: 2 minors
            ("1.24.0", "1.26.0", None),
            ("1.24.0", "1.27.0", Some(SkewRule::TooOld { max: 2 })),
            ("1.25.0", "1.28.0", None), // 1.25 gets the new limit
        ];
        for (kubelet, server, expected) in cases {
            assert_eq!(
                p.kubelet_rule_broken(&v(kubelet), &v(server)),
                *expected,
                "kubelet {kubelet} vs apiserver {server}"
            );
            let found = rules(
                &p,
                &[
                    api(server),
                    ComponentVersion::on_node(Component::Kubelet, "n1", v(kubelet)),
                ],
            );
            assert_eq!(found.first().map(|r| r.1.clone()), expected.clone());
        }
    }

    #[test]
    fn kube_proxy_follows_kubelet_rules_and_pairs_with_its_kubelet() {
        let p = SkewPolicy::upstream();
        let found = rules(
            &p,
            &[
                api("1.32"),
                ComponentVersion::on_node(Component::KubeProxy, "n1", v("1.28")),
            ],
        );
        assert_eq!(
            found,
            vec![(Component::KubeProxy, SkewRule::TooOld { max: 3 })]
        );
        assert!(
            rules(
                &p,
                &[
                    api("1.32"),
                    ComponentVersion::on_node(Component::KubeProxy, "n1", v("1.29"))
                ]
            )
            .is_empty()
        );
        // Without an API server only the pairing is checked; 4 apart breaks it.
        let pair = rules(
            &p,
            &[
                ComponentVersion::on_node(Component::Kubelet, "n1", v("1.33")),
                ComponentVersion::on_node(Component::KubeProxy, "n1", v("1.29")),
            ],
        );
        assert_eq!(
            pair,
            vec![(
                Component::KubeProxy,
                SkewRule::KubeProxyVsKubelet { max: 3 }
            )]
        );
    }

    #[test]
    fn controllers_within_one_minor_below() {
        let p = SkewPolicy::upstream();
        for component in [
            Component::ControllerManager,
            Component::Scheduler,
            Component::CloudControllerManager,
        ] {
            let at = |ver: &str| {
                rules(
                    &p,
                    &[api("1.32"), ComponentVersion::new(component, "x", v(ver))],
                )
            };
            assert!(at("1.32").is_empty());
            assert!(at("1.31").is_empty());
            assert_eq!(at("1.30"), vec![(component, SkewRule::TooOld { max: 1 })]);
            assert_eq!(at("1.33"), vec![(component, SkewRule::NewerThanApiServer)]);
        }
    }

    #[test]
    fn kubectl_within_one_either_side() {
        let p = SkewPolicy::upstream();
        let at = |ver: &str| {
            rules(
                &p,
                &[
                    api("1.32"),
                    ComponentVersion::new(Component::Kubectl, "local", v(ver)),
                ],
            )
        };
        assert!(at("1.31").is_empty());
        assert!(at("1.33").is_empty());
        assert_eq!(
            at("1.34"),
            vec![(Component::Kubectl, SkewRule::KubectlOutOfRange { max: 1 })]
        );
        assert_eq!(
            at("1.30"),
            vec![(Component::Kubectl, SkewRule::KubectlOutOfRange { max: 1 })]
        );
        // HA servers 1.32 and 1.31: kubectl 1.33 is out of skew with the 1.31 one.
        let ha = rules(
            &p,
            &[
                api("1.32"),
                api("1.31"),
                ComponentVersion::new(Component::Kubectl, "local", v("1.33")),
            ],
        );
        assert_eq!(
            ha,
            vec![(Component::Kubectl, SkewRule::KubectlOutOfRange { max: 1 })]
        );
    }

    #[test]
    fn ha_api_servers_narrow_the_window() {
        let p = SkewPolicy::upstream();
        assert_eq!(
            rules(&p, &[api("1.32"), api("1.30")]),
            vec![(Component::ApiServer, SkewRule::ApiServersApart { max: 1 })]
        );
        assert!(rules(&p, &[api("1.32"), api("1.31")]).is_empty());
        // Upstream example: servers 1.32 and 1.31 allow kubelets 1.29..=1.31.
        let with_kubelet = |ver: &str| {
            rules(
                &p,
                &[
                    api("1.32"),
                    api("1.31"),
                    ComponentVersion::on_node(Component::Kubelet, "n", v(ver)),
                ],
            )
        };
        assert_eq!(
            with_kubelet("1.32"),
            vec![(Component::Kubelet, SkewRule::NewerThanApiServer)]
        );
        assert!(with_kubelet("1.31").is_empty());
        assert!(with_kubelet("1.29").is_empty());
        assert_eq!(
            with_kubelet("1.28"),
            vec![(Component::Kubelet, SkewRule::TooOld { max: 3 })]
        );
    }

    #[test]
    fn provider_limits_narrow_never_widen() {
        let tight = SkewPolicy::for_provider(&Capabilities {
            max_kubelet_skew: 2,
            ..Capabilities::default()
        });
        assert!(!tight.kubelet_fits(&v("1.29"), &v("1.32")));
        assert!(tight.kubelet_fits(&v("1.30"), &v("1.32")));
        let loose = SkewPolicy::for_provider(&Capabilities {
            max_kubelet_skew: 5,
            ..Capabilities::default()
        });
        assert!(!loose.kubelet_fits(&v("1.28"), &v("1.32")));
    }

    #[test]
    fn every_violation_is_reported_with_names() {
        let p = SkewPolicy::upstream();
        let found = p.check(&[
            api("1.32"),
            ComponentVersion::on_node(Component::Kubelet, "old-1", v("1.27")),
            ComponentVersion::on_node(Component::Kubelet, "new-1", v("1.33")),
            ComponentVersion::new(Component::Scheduler, "cp-1", v("1.30")),
        ]);
        assert_eq!(found.len(), 3);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(
                |t| t.contains("kubelet old-1 at 1.27") && t.contains("at most 3 minors older")
            )
        );
        assert!(
            text.iter()
                .any(|t| t.contains("kubelet new-1 at 1.33") && t.contains("newer"))
        );
        assert!(text.iter().any(|t| t.contains("kube-scheduler cp-1")));
    }
}
