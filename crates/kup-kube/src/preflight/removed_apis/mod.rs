//! Removed APIs still in use, for every minor an upgrade passes through.
//!
//! The table of removals is `data/removed-apis.yaml` (one row per group/version/kind with its
//! replacement and a source), embedded at build time. Three sources of use, each seeing what
//! the others miss:
//!
//! - [`metric`]: the API server's `apiserver_requested_deprecated_apis` gauge, i.e. clients
//!   that still call a removed version (read first, so kup's own requests do not count);
//! - [`stored`]: objects in the cluster written through a removed version (their
//!   `managedFields` and `last-applied-configuration` name it) or only served by it;
//! - [`manifests`] and [`helm`]: manifests on disk, and the manifests of deployed Helm v3
//!   releases (which `helm upgrade` must still parse after the cluster moved).

pub mod helm;
pub mod manifests;
pub mod metric;
pub mod stored;

use std::sync::OnceLock;

use kup_core::{Finding, KubeVersion, ObjectRef, Severity};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The removal table as shipped.
const TABLE: &str = include_str!("../../../data/removed-apis.yaml");

/// One removal: a group/version/kind that stops being served in `removed_in`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedApi {
    /// The API group (empty for the core group).
    pub group: String,
    /// The version removed (`v1beta1`).
    pub version: String,
    /// The kind.
    pub kind: String,
    /// The plural resource name, as discovery and the deprecated-API metric name it.
    pub resource: String,
    /// The minor that deprecated it, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_in: Option<KubeVersion>,
    /// The first minor that no longer serves it.
    pub removed_in: KubeVersion,
    /// The group/version to use instead (`None` when nothing replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Where this row comes from.
    pub source: String,
}

impl RemovedApi {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `use policy/v1 PodDisruptionBudget` or `there is no replacement`.
    pub fn instead(&self) -> String {
        match &self.replacement {
            Some(r) => format!("use {r} {}", self.kind),
            None => "there is no replacement".to_string(),
        }
    }
}

static PARSED: OnceLock<std::result::Result<Vec<RemovedApi>, String>> = OnceLock::new();

/// Every row of the shipped removal table.
pub fn removed_apis() -> Result<&'static [RemovedApi]> {
    PARSED
        .get_or_init(|| serde_saphyr::from_str::<Vec<RemovedApi>>(TABLE).map_err(|e| e.to_string()))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(|e| Error::InvalidInput {
            field: "data/removed-apis.yaml".into(),
            message: e.clone(),
        })
}

/// The minors an upgrade passes through: after `from`, up to and including `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalWindow {
    /// The control plane's version now (its removals already happened).
    pub from: KubeVersion,
    /// The target.
    pub to: KubeVersion,
}

impl RemovalWindow {
    /// The window from `from` to `to`.
    pub fn new(from: KubeVersion, to: KubeVersion) -> Self {
        Self { from, to }
    }

    /// Whether a removal in `minor` happens during the upgrade.
    pub fn contains(&self, minor: &KubeVersion) -> bool {
        self.from.minor_distance(minor) > 0 && minor.minor_distance(&self.to) >= 0
    }

    /// The table's rows removed during the upgrade.
    pub fn removals(&self) -> Result<Vec<&'static RemovedApi>> {
        Ok(removed_apis()?
            .iter()
            .filter(|r| self.contains(&r.removed_in))
            .collect())
    }

    /// The row for `api_version` (`group/version`) and `kind`, if removed during the upgrade.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Result<Option<&'static RemovedApi>> {
        Ok(removed_apis()?.iter().find(|r| {
            r.kind == kind && r.api_version() == api_version && self.contains(&r.removed_in)
        }))
    }
}

/// A use of a removed API in a manifest (on disk or in a Helm release).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManifestUse {
    pub api: &'static RemovedApi,
    pub object: ObjectRef,
    /// 1-based line of the document's `apiVersion`, when known.
    pub line: Option<u64>,
}

/// A finding for uses of one removed API in one place (a file, a release).
pub(crate) fn use_finding(
    code: &str,
    api: &RemovedApi,
    place: &str,
    uses: &[ManifestUse],
    remediation: String,
    source: &str,
) -> Finding {
    let names: Vec<String> = uses
        .iter()
        .take(10)
        .map(|u| {
            let name = match &u.object.namespace {
                Some(ns) => format!("{ns}/{}", u.object.name),
                None => u.object.name.clone(),
            };
            match u.line {
                Some(l) => format!("{name} (line {l})"),
                None => name,
            }
        })
        .collect();
    let more = uses.len().saturating_sub(10);
    Finding::new(
        code,
        Severity::Blocker,
        format!(
            "{place} uses {} {} ({}{}), which Kubernetes {} removes; {}",
            api.api_version(),
            api.kind,
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            api.removed_in,
            api.instead()
        ),
    )
    .remediation(remediation)
    .objects(uses.iter().map(|u| u.object.clone()))
    .source(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn the_table_parses_and_every_row_is_complete() {
        let table = removed_apis().unwrap();
        let mut seen = BTreeSet::new();
        for row in table {
            assert!(
                seen.insert((row.api_version(), row.kind.clone())),
                "duplicate row {} {}",
                row.api_version(),
                row.kind
            );
            assert!(row.source.starts_with("https://"), "{row:?}");
            assert!(
                !row.resource.is_empty() && row.resource.ends_with('s'),
                "{row:?}"
            );
            if let Some(d) = &row.deprecated_in {
                assert!(d < &row.removed_in, "{row:?}");
            }
        }
    }

    #[test]
    fn the_table_covers_the_reference_removals() {
        // One (removed_in, group/version, kind) per row of the reference table.
        let expected: &[(&str, &str, &str)] = &[
            ("1.16", "extensions/v1beta1", "NetworkPolicy"),
            ("1.16", "extensions/v1beta1", "DaemonSet"),
            ("1.16", "apps/v1beta2", "DaemonSet"),
            ("1.16", "extensions/v1beta1", "Deployment"),
            ("1.16", "apps/v1beta1", "Deployment"),
            ("1.16", "apps/v1beta2", "Deployment"),
            ("1.16", "extensions/v1beta1", "ReplicaSet"),
            ("1.16", "apps/v1beta1", "ReplicaSet"),
            ("1.16", "apps/v1beta2", "ReplicaSet"),
            ("1.16", "apps/v1beta1", "StatefulSet"),
            ("1.16", "apps/v1beta2", "StatefulSet"),
            ("1.16", "extensions/v1beta1", "PodSecurityPolicy"),
            (
                "1.22",
                "admissionregistration.k8s.io/v1beta1",
                "MutatingWebhookConfiguration",
            ),
            (
                "1.22",
                "admissionregistration.k8s.io/v1beta1",
                "ValidatingWebhookConfiguration",
            ),
            (
                "1.22",
                "apiextensions.k8s.io/v1beta1",
                "CustomResourceDefinition",
            ),
            ("1.22", "apiregistration.k8s.io/v1beta1", "APIService"),
            ("1.22", "authentication.k8s.io/v1beta1", "TokenReview"),
            (
                "1.22",
                "authorization.k8s.io/v1beta1",
                "SubjectAccessReview",
            ),
            (
                "1.22",
                "authorization.k8s.io/v1beta1",
                "LocalSubjectAccessReview",
            ),
            (
                "1.22",
                "authorization.k8s.io/v1beta1",
                "SelfSubjectAccessReview",
            ),
            (
                "1.22",
                "certificates.k8s.io/v1beta1",
                "CertificateSigningRequest",
            ),
            ("1.22", "coordination.k8s.io/v1beta1", "Lease"),
            ("1.22", "extensions/v1beta1", "Ingress"),
            ("1.22", "networking.k8s.io/v1beta1", "Ingress"),
            ("1.22", "networking.k8s.io/v1beta1", "IngressClass"),
            ("1.22", "rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
            (
                "1.22",
                "rbac.authorization.k8s.io/v1beta1",
                "ClusterRoleBinding",
            ),
            ("1.22", "rbac.authorization.k8s.io/v1beta1", "Role"),
            ("1.22", "rbac.authorization.k8s.io/v1beta1", "RoleBinding"),
            ("1.22", "scheduling.k8s.io/v1beta1", "PriorityClass"),
            ("1.22", "storage.k8s.io/v1beta1", "CSIDriver"),
            ("1.22", "storage.k8s.io/v1beta1", "CSINode"),
            ("1.22", "storage.k8s.io/v1beta1", "StorageClass"),
            ("1.22", "storage.k8s.io/v1beta1", "VolumeAttachment"),
            ("1.25", "batch/v1beta1", "CronJob"),
            ("1.25", "discovery.k8s.io/v1beta1", "EndpointSlice"),
            ("1.25", "events.k8s.io/v1beta1", "Event"),
            ("1.25", "autoscaling/v2beta1", "HorizontalPodAutoscaler"),
            ("1.25", "policy/v1beta1", "PodDisruptionBudget"),
            ("1.25", "policy/v1beta1", "PodSecurityPolicy"),
            ("1.25", "node.k8s.io/v1beta1", "RuntimeClass"),
            ("1.26", "flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
            (
                "1.26",
                "flowcontrol.apiserver.k8s.io/v1beta1",
                "PriorityLevelConfiguration",
            ),
            ("1.26", "autoscaling/v2beta2", "HorizontalPodAutoscaler"),
            ("1.27", "storage.k8s.io/v1beta1", "CSIStorageCapacity"),
            ("1.29", "flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema"),
            (
                "1.29",
                "flowcontrol.apiserver.k8s.io/v1beta2",
                "PriorityLevelConfiguration",
            ),
            ("1.32", "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema"),
            (
                "1.32",
                "flowcontrol.apiserver.k8s.io/v1beta3",
                "PriorityLevelConfiguration",
            ),
            ("1.33", "authentication.k8s.io/v1beta1", "SelfSubjectReview"),
            (
                "1.34",
                "admissionregistration.k8s.io/v1beta1",
                "ValidatingAdmissionPolicy",
            ),
            (
                "1.34",
                "admissionregistration.k8s.io/v1beta1",
                "ValidatingAdmissionPolicyBinding",
            ),
            ("1.37", "networking.k8s.io/v1beta1", "IPAddress"),
            ("1.37", "networking.k8s.io/v1beta1", "ServiceCIDR"),
            ("1.37", "storage.k8s.io/v1beta1", "VolumeAttributesClass"),
            ("1.38", "resource.k8s.io/v1beta1", "DeviceClass"),
            ("1.38", "resource.k8s.io/v1beta1", "ResourceClaim"),
            ("1.38", "resource.k8s.io/v1beta1", "ResourceClaimTemplate"),
            ("1.38", "resource.k8s.io/v1beta1", "ResourceSlice"),
        ];
        let table = removed_apis().unwrap();
        for (removed, gv, kind) in expected {
            let row = table
                .iter()
                .find(|r| r.api_version() == *gv && r.kind == *kind)
                .unwrap_or_else(|| panic!("missing {gv} {kind}"));
            assert_eq!(row.removed_in, v(removed), "{gv} {kind}");
        }
        let psp = table
            .iter()
            .find(|r| r.api_version() == "policy/v1beta1" && r.kind == "PodSecurityPolicy")
            .unwrap();
        assert_eq!(psp.replacement, None);
    }

    #[test]
    fn the_window_holds_the_minors_passed_through() {
        let w = RemovalWindow::new(v("1.24.7"), v("1.26"));
        assert!(!w.contains(&v("1.24")));
        assert!(w.contains(&v("1.25")));
        assert!(w.contains(&v("1.26")));
        assert!(!w.contains(&v("1.27")));
        let kinds: BTreeSet<String> = w
            .removals()
            .unwrap()
            .iter()
            .map(|r| r.kind.clone())
            .collect();
        assert!(kinds.contains("PodDisruptionBudget"));
        assert!(kinds.contains("FlowSchema"));
        assert!(!kinds.contains("CSIStorageCapacity"));
        assert!(
            w.lookup("policy/v1beta1", "PodDisruptionBudget")
                .unwrap()
                .is_some()
        );
        assert!(
            w.lookup("policy/v1", "PodDisruptionBudget")
                .unwrap()
                .is_none()
        );
    }
}
