//! The resource registry: every kind the simulator stores, the group-versions that serve it,
//! and in which minors each group-version exists (deprecated and removed APIs included).

/// One group-version through which a resource is served.
#[derive(Debug)]
pub(crate) struct ServedVersion {
    pub version: &'static str,
    /// First minor that serves it (0 = every simulated minor).
    pub introduced: u32,
    /// Minor that deprecated it, if any: requests then carry a `Warning` header and show up in
    /// `apiserver_requested_deprecated_apis`.
    pub deprecated: Option<u32>,
    /// First minor that no longer serves it.
    pub removed: Option<u32>,
    /// `group/version Kind` to use instead, for the warning text.
    pub replacement: Option<&'static str>,
}

impl ServedVersion {
    pub(crate) fn served_in(&self, minor: u32) -> bool {
        minor >= self.introduced && self.removed.is_none_or(|r| minor < r)
    }

    pub(crate) fn deprecated_in(&self, minor: u32) -> bool {
        self.deprecated.is_some_and(|d| minor >= d)
    }
}

/// A stored resource (one storage per group and plural name).
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub group: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Preferred (and storage) version first.
    pub versions: &'static [ServedVersion],
    /// Has a `/status` subresource (spec and status are written separately).
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: bool,
    /// A review (`SelfSubjectAccessReview`…): only `create`, answered and never stored.
    pub review: bool,
    /// Schemas and printer columns, for a resource a CustomResourceDefinition defines.
    pub custom: Option<&'static super::custom::CustomSpec>,
}

/// A resource: a built-in one of [`RESOURCES`] (by index) or one a CustomResourceDefinition
/// defines (leaked once per definition change, so ids stay `Copy`). Custom ids are the same
/// resource when group and plural match, so objects stored under an older definition stay
/// reachable after the CRD changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ResId {
    Builtin(usize),
    Custom(&'static ResourceDef),
}

impl PartialEq for ResourceDef {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.plural) == (other.group, other.plural)
    }
}

impl Eq for ResourceDef {}

impl std::hash::Hash for ResourceDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.group, self.plural).hash(state);
    }
}

impl PartialOrd for ResourceDef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ResourceDef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.group, self.plural).cmp(&(other.group, other.plural))
    }
}

/// Every built-in resource's id, in [`RESOURCES`] order.
pub(crate) fn builtin_ids() -> impl Iterator<Item = ResId> {
    (0..RESOURCES.len()).map(ResId::Builtin)
}

impl ResourceDef {
    /// `v1` for core, `group/version` otherwise.
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The apiVersion objects are stored with.
    pub(crate) fn storage_api_version(&self) -> String {
        self.api_version(self.versions[0].version)
    }

    /// `pods` or `deployments.apps`, as upstream error messages spell it.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn version(&self, version: &str) -> Option<&'static ServedVersion> {
        self.versions.iter().find(|v| v.version == version)
    }
}

const GA: ServedVersion = ServedVersion {
    version: "v1",
    introduced: 0,
    deprecated: None,
    removed: None,
    replacement: None,
};

const fn since(version: &'static str, introduced: u32) -> ServedVersion {
    ServedVersion {
        version,
        introduced,
        deprecated: None,
        removed: None,
        replacement: None,
    }
}

const fn deprecated(
    version: &'static str,
    deprecated: u32,
    removed: u32,
    replacement: Option<&'static str>,
) -> ServedVersion {
    ServedVersion {
        version,
        introduced: 0,
        deprecated: Some(deprecated),
        removed: Some(removed),
        replacement,
    }
}

const ALL: &[&str] = &["all"];

const fn res(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    versions: &'static [ServedVersion],
) -> ResourceDef {
    ResourceDef {
        group,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        categories: &[],
        versions,
        status: false,
        scale: false,
        review: false,
        custom: None,
    }
}

const fn review(mut r: ResourceDef) -> ResourceDef {
    r.review = true;
    r
}

const fn with_status(mut r: ResourceDef) -> ResourceDef {
    r.status = true;
    r
}

const fn in_all(mut r: ResourceDef) -> ResourceDef {
    r.categories = ALL;
    r
}

const fn scalable(mut r: ResourceDef) -> ResourceDef {
    r.scale = true;
    r.status = true;
    r
}

/// Every resource the simulator knows, core group first, then groups in upstream's order.
pub(crate) static RESOURCES: &[ResourceDef] = &[
    with_status(res(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[GA],
    )),
    with_status(res("", "nodes", "node", "Node", false, &["no"], &[GA])),
    in_all(with_status(res(
        "",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &[GA],
    ))),
    with_status(res(
        "",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &[GA],
    )),
    with_status(res(
        "",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        &[GA],
    )),
    res(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[GA],
    ),
    res("", "secrets", "secret", "Secret", true, &[], &[GA]),
    in_all(with_status(res(
        "",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &[GA],
    ))),
    res(
        "",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        &[GA],
    ),
    res(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[GA],
    ),
    res("", "events", "event", "Event", true, &["ev"], &[GA]),
    in_all(scalable(res(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &[GA],
    ))),
    in_all(scalable(res(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        &[GA],
    ))),
    in_all(scalable(res(
        "apps",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        &[GA],
    ))),
    in_all(with_status(res(
        "apps",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        &[GA],
    ))),
    res(
        "apps",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        &[],
        &[GA],
    ),
    in_all(with_status(res(
        "autoscaling",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &[
            since("v2", 23),
            GA,
            deprecated(
                "v2beta2",
                23,
                26,
                Some("autoscaling/v2 HorizontalPodAutoscaler"),
            ),
            deprecated(
                "v2beta1",
                22,
                25,
                Some("autoscaling/v2 HorizontalPodAutoscaler"),
            ),
        ],
    ))),
    in_all(with_status(res(
        "batch",
        "jobs",
        "job",
        "Job",
        true,
        &[],
        &[GA],
    ))),
    in_all(with_status(res(
        "batch",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        &[
            since("v1", 21),
            deprecated("v1beta1", 21, 25, Some("batch/v1 CronJob")),
        ],
    ))),
    with_status(res(
        "networking.k8s.io",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        &[
            since("v1", 19),
            deprecated("v1beta1", 19, 22, Some("networking.k8s.io/v1 Ingress")),
        ],
    )),
    res(
        "networking.k8s.io",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        &[GA],
    ),
    with_status(res(
        "policy",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &[
            since("v1", 21),
            deprecated("v1beta1", 21, 25, Some("policy/v1 PodDisruptionBudget")),
        ],
    )),
    res(
        "policy",
        "podsecuritypolicies",
        "podsecuritypolicy",
        "PodSecurityPolicy",
        false,
        &["psp"],
        &[deprecated("v1beta1", 21, 25, None)],
    ),
    res(
        "storage.k8s.io",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        &[GA],
    ),
    res(
        "scheduling.k8s.io",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        &["pc"],
        &[
            GA,
            deprecated(
                "v1beta1",
                14,
                22,
                Some("scheduling.k8s.io/v1 PriorityClass"),
            ),
        ],
    ),
    res(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        &[
            GA,
            deprecated("v1beta1", 19, 22, Some("coordination.k8s.io/v1 Lease")),
        ],
    ),
    res(
        "node.k8s.io",
        "runtimeclasses",
        "runtimeclass",
        "RuntimeClass",
        false,
        &[],
        &[
            since("v1", 20),
            deprecated("v1beta1", 22, 25, Some("node.k8s.io/v1 RuntimeClass")),
        ],
    ),
    res(
        "discovery.k8s.io",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
        &[
            since("v1", 21),
            deprecated("v1beta1", 21, 25, Some("discovery.k8s.io/v1 EndpointSlice")),
        ],
    ),
    res(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        &[GA],
    ),
    res(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[GA],
    ),
    res(
        "rbac.authorization.k8s.io",
        "roles",
        "role",
        "Role",
        true,
        &[],
        &[GA],
    ),
    res(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        &[GA],
    ),
    review(res(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &[GA],
    )),
    review(res(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        &[],
        &[GA],
    )),
    review(res(
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        "LocalSubjectAccessReview",
        true,
        &[],
        &[GA],
    )),
    // What pre-flight reads besides workloads: extensions of the API and storage drivers.
    res(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        &[],
        &[GA],
    ),
    res(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        &[],
        &[GA],
    ),
    with_status(res(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &[GA],
    )),
    with_status(res(
        "apiregistration.k8s.io",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        &[],
        &[GA],
    )),
    res(
        "storage.k8s.io",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        &[],
        &[GA],
    ),
    res(
        "storage.k8s.io",
        "csinodes",
        "csinode",
        "CSINode",
        false,
        &[],
        &[GA],
    ),
    with_status(res(
        "storage.k8s.io",
        "volumeattachments",
        "volumeattachment",
        "VolumeAttachment",
        false,
        &[],
        &[GA],
    )),
];

/// Resource ids used by typed logic.
pub(crate) mod ids {
    use super::ResId;
    pub const NAMESPACES: ResId = ResId::Builtin(0);
    pub const NODES: ResId = ResId::Builtin(1);
    pub const PODS: ResId = ResId::Builtin(2);
    pub const PVCS: ResId = ResId::Builtin(3);
    pub const EVENTS: ResId = ResId::Builtin(10);
    pub const DEPLOYMENTS: ResId = ResId::Builtin(11);
    pub const REPLICASETS: ResId = ResId::Builtin(12);
    pub const STATEFULSETS: ResId = ResId::Builtin(13);
    pub const DAEMONSETS: ResId = ResId::Builtin(14);
    pub const PDBS: ResId = ResId::Builtin(21);
    pub const PRIORITYCLASSES: ResId = ResId::Builtin(24);
    pub const LEASES: ResId = ResId::Builtin(25);
    pub const CLUSTERROLES: ResId = ResId::Builtin(28);
    pub const CLUSTERROLEBINDINGS: ResId = ResId::Builtin(29);
    pub const ROLES: ResId = ResId::Builtin(30);
    pub const ROLEBINDINGS: ResId = ResId::Builtin(31);
}

pub(crate) fn def(id: ResId) -> &'static ResourceDef {
    match id {
        ResId::Builtin(i) => &RESOURCES[i],
        ResId::Custom(d) => d,
    }
}

/// The resource served at `group`/`version`/`plural` on `minor`.
pub(crate) fn lookup(
    group: &str,
    version: &str,
    plural: &str,
    minor: u32,
) -> Option<(ResId, &'static ServedVersion)> {
    RESOURCES.iter().enumerate().find_map(|(id, d)| {
        if d.group != group || d.plural != plural {
            return None;
        }
        d.version(version)
            .filter(|v| v.served_in(minor))
            .map(|v| (ResId::Builtin(id), v))
    })
}

/// The resource for `group` and `kind` (any version).
pub(crate) fn by_kind(group: &str, kind: &str) -> Option<ResId> {
    RESOURCES
        .iter()
        .position(|d| d.group == group && d.kind == kind)
        .map(ResId::Builtin)
}

/// Finds a resource by any name a user would type: plural, singular, kind or short name,
/// optionally qualified with its group (`deployments.apps`), case-insensitively.
pub(crate) fn find(name: &str) -> Option<ResId> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    let found = RESOURCES.iter().position(|d| {
        group.as_deref().is_none_or(|g| g == d.group)
            && (d.plural == base
                || d.singular == base
                || d.kind.eq_ignore_ascii_case(&base)
                || d.short_names.contains(&base.as_str()))
    });
    found.map(ResId::Builtin)
}

/// `true` if `group/version` serves anything on `minor`.
pub(crate) fn group_version_served(group: &str, version: &str, minor: u32) -> bool {
    RESOURCES
        .iter()
        .any(|d| d.group == group && d.version(version).is_some_and(|v| v.served_in(minor)))
}

/// Groups (core excluded) with their served versions, preferred first, on `minor`.
pub(crate) fn served_groups(minor: u32) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for d in RESOURCES.iter().filter(|d| !d.group.is_empty()) {
        let idx = match out.iter().position(|(g, _)| *g == d.group) {
            Some(i) => i,
            None => {
                out.push((d.group, Vec::new()));
                out.len() - 1
            }
        };
        for v in d.versions.iter().filter(|v| v.served_in(minor)) {
            if !out[idx].1.contains(&v.version) {
                out[idx].1.push(v.version);
            }
        }
    }
    // A group's preferred version is its most stable one: v1 > v2 > v1beta… (upstream ordering).
    for (_, versions) in &mut out {
        versions.sort_by_key(|v| version_priority(v));
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

/// Upstream's version ordering: GA (highest major first), then beta, then alpha.
pub(crate) fn version_priority(v: &str) -> (u8, i64, i64) {
    let rest = v.trim_start_matches('v');
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: i64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (0, -major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (1, -major, -b.parse::<i64>().unwrap_or(0))
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (2, -major, -a.parse::<i64>().unwrap_or(0))
    } else {
        (3, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_point_at_the_right_resources() {
        assert_eq!(def(ids::PODS).plural, "pods");
        assert_eq!(def(ids::NODES).plural, "nodes");
        assert_eq!(def(ids::NAMESPACES).plural, "namespaces");
        assert_eq!(def(ids::PVCS).plural, "persistentvolumeclaims");
        assert_eq!(def(ids::EVENTS).plural, "events");
        assert_eq!(def(ids::DEPLOYMENTS).plural, "deployments");
        assert_eq!(def(ids::REPLICASETS).plural, "replicasets");
        assert_eq!(def(ids::STATEFULSETS).plural, "statefulsets");
        assert_eq!(def(ids::DAEMONSETS).plural, "daemonsets");
        assert_eq!(def(ids::PDBS).plural, "poddisruptionbudgets");
        assert_eq!(def(ids::PRIORITYCLASSES).plural, "priorityclasses");
        assert_eq!(def(ids::LEASES).plural, "leases");
        assert_eq!(def(ids::CLUSTERROLES).plural, "clusterroles");
        assert_eq!(def(ids::CLUSTERROLEBINDINGS).plural, "clusterrolebindings");
        assert_eq!(def(ids::ROLES).plural, "roles");
        assert_eq!(def(ids::ROLEBINDINGS).plural, "rolebindings");
    }

    #[test]
    fn removed_versions_follow_the_minor() {
        assert!(lookup("policy", "v1beta1", "poddisruptionbudgets", 24).is_some());
        assert!(lookup("policy", "v1beta1", "poddisruptionbudgets", 25).is_none());
        assert!(lookup("batch", "v1beta1", "cronjobs", 24).is_some());
        assert!(lookup("batch", "v1beta1", "cronjobs", 25).is_none());
        assert!(lookup("policy", "v1", "poddisruptionbudgets", 20).is_none());
        let groups = served_groups(24);
        let policy = groups.iter().find(|(g, _)| *g == "policy").unwrap();
        assert_eq!(policy.1, vec!["v1", "v1beta1"]);
        let autoscaling = served_groups(24)
            .into_iter()
            .find(|(g, _)| *g == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling.1, vec!["v2", "v1", "v2beta2", "v2beta1"]);
    }

    #[test]
    fn finds_by_any_name() {
        assert_eq!(find("po"), Some(ids::PODS));
        assert_eq!(find("Pod"), Some(ids::PODS));
        assert_eq!(find("deployments.apps"), Some(ids::DEPLOYMENTS));
        assert_eq!(find("pdb"), Some(ids::PDBS));
        assert_eq!(find("nope"), None);
    }
}
