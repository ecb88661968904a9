//! Finding codes and the rendering shared by the pre-flight and validation reports.
//!
//! Every finding kup-kube produces carries one of the stable codes in [`CODES`]; users override a
//! blocker by naming its code. Provider findings (merged into the pre-flight report) keep the
//! provider's own codes, which use the provider's prefix (`eks.`, `aks.`, `gke.`, `kubeadm.`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kup_core::{Finding, Severity};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A documented finding code: what it means and its usual severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The code.
    pub code: &'static str,
    /// The severity it is reported with (some drop to `Info` when an option allows the case).
    pub severity: Severity,
    /// What it means.
    pub meaning: &'static str,
}

const fn code(code: &'static str, severity: Severity, meaning: &'static str) -> CodeInfo {
    CodeInfo {
        code,
        severity,
        meaning,
    }
}

/// Every finding code kup-kube reports, pre-flight and validation alike.
pub const CODES: &[CodeInfo] = &[
    code(
        "skew.kubelet-too-old",
        Severity::Blocker,
        "a kubelet lags the API server by more minors than the skew policy allows",
    ),
    code(
        "skew.kubelet-too-new",
        Severity::Blocker,
        "a kubelet is newer than an API server",
    ),
    code(
        "skew.kube-proxy-too-old",
        Severity::Blocker,
        "a kube-proxy lags the API server by more minors than the skew policy allows",
    ),
    code(
        "skew.kube-proxy-too-new",
        Severity::Blocker,
        "a kube-proxy is newer than an API server",
    ),
    code(
        "skew.kube-proxy-vs-kubelet",
        Severity::Blocker,
        "a kube-proxy is too far from the kubelet on its node",
    ),
    code(
        "skew.controller-too-old",
        Severity::Blocker,
        "kube-controller-manager, kube-scheduler or cloud-controller-manager lags the API server by more than one minor",
    ),
    code(
        "skew.controller-too-new",
        Severity::Blocker,
        "kube-controller-manager, kube-scheduler or cloud-controller-manager is newer than an API server",
    ),
    code(
        "skew.apiservers-apart",
        Severity::Blocker,
        "API server instances are more than one minor apart",
    ),
    code(
        "skew.plan-step",
        Severity::Blocker,
        "a step of the proposed plan would leave a component out of skew",
    ),
    code(
        "skew.version-unknown",
        Severity::Warning,
        "a node reports a kubelet version kup cannot parse, so its skew is not checked",
    ),
    code(
        "api.removed-in-use",
        Severity::Blocker,
        "objects in the cluster are written through, or only exist in, an API version a minor of the plan removes",
    ),
    code(
        "api.removed-requested",
        Severity::Blocker,
        "clients called an API version a minor of the plan removes (apiserver_requested_deprecated_apis)",
    ),
    code(
        "api.removed-in-manifest",
        Severity::Blocker,
        "a manifest on disk uses an API version a minor of the plan removes",
    ),
    code(
        "api.removed-in-helm-release",
        Severity::Blocker,
        "a deployed Helm release's manifest uses an API version a minor of the plan removes",
    ),
    code(
        "api.manifest-unreadable",
        Severity::Warning,
        "a manifest file or Helm release could not be parsed, so it was not scanned",
    ),
    code(
        "pdb.zero-disruptions",
        Severity::Blocker,
        "a PodDisruptionBudget allows no disruption now (its pods are not all healthy)",
    ),
    code(
        "pdb.min-available-equals-replicas",
        Severity::Blocker,
        "a PodDisruptionBudget's minAvailable equals its pods, so it never allows an eviction",
    ),
    code(
        "pdb.max-unavailable-zero",
        Severity::Blocker,
        "a PodDisruptionBudget has maxUnavailable 0, so it never allows an eviction",
    ),
    code(
        "pdb.single-replica",
        Severity::Blocker,
        "a PodDisruptionBudget protects a single pod that it never lets go",
    ),
    code(
        "pdb.selects-nothing",
        Severity::Warning,
        "a PodDisruptionBudget selects no pod",
    ),
    code(
        "pdb.overlapping",
        Severity::Blocker,
        "pods are selected by more than one PodDisruptionBudget; their eviction fails with HTTP 500",
    ),
    code("node.not-ready", Severity::Blocker, "a node is not Ready"),
    code(
        "node.pressure",
        Severity::Warning,
        "a node reports MemoryPressure, DiskPressure or PIDPressure",
    ),
    code(
        "node.network-unavailable",
        Severity::Blocker,
        "a node reports NetworkUnavailable",
    ),
    code(
        "node.cordoned",
        Severity::Warning,
        "a node is already cordoned; kup leaves it cordoned afterwards",
    ),
    code(
        "node.version-mismatch",
        Severity::Blocker,
        "a node's kubelet is not at the version its pool should have",
    ),
    code(
        "pool.no-nodes",
        Severity::Blocker,
        "no node matches a node pool that validation expects",
    ),
    code(
        "system-pod.unhealthy",
        Severity::Blocker,
        "a kube-system or system-critical pod is not Running with all containers ready",
    ),
    code(
        "pvc.pending",
        Severity::Blocker,
        "a PersistentVolumeClaim is Pending",
    ),
    code(
        "drain.unmanaged-pod",
        Severity::Blocker,
        "a pod without a controller: a drain refuses it unless forced, and nothing recreates it",
    ),
    code(
        "drain.emptydir-pod",
        Severity::Blocker,
        "a pod with emptyDir volumes: a drain refuses it unless emptyDir data may be deleted",
    ),
    code(
        "drain.orphaned-daemonset-pod",
        Severity::Blocker,
        "a DaemonSet pod whose DaemonSet is gone: a drain refuses it unless forced",
    ),
    code(
        "workload.single-replica-no-pdb",
        Severity::Warning,
        "a Deployment or StatefulSet with one replica and no PodDisruptionBudget goes down while its node is replaced",
    ),
    code(
        "workload.unavailable",
        Severity::Blocker,
        "a Deployment, StatefulSet or DaemonSet does not have its pods available",
    ),
    code(
        "pod.pending",
        Severity::Blocker,
        "pods are stuck Pending (created during the upgrade, or unschedulable)",
    ),
    code(
        "control-plane.readyz-failed",
        Severity::Blocker,
        "a /readyz check of the API server fails",
    ),
    code(
        "control-plane.unreachable",
        Severity::Blocker,
        "the API server did not answer a health request",
    ),
    code(
        "control-plane.version-mismatch",
        Severity::Blocker,
        "the API server does not report the expected version",
    ),
    code(
        "preflight.check-failed",
        Severity::Blocker,
        "a check could not run (an API call failed); its subject is unverified",
    ),
];

/// Prefixes reserved for kup-kube's own codes; an override with one of these prefixes must name
/// a code in [`CODES`].
const KUP_PREFIXES: &[&str] = &[
    "skew",
    "api",
    "pdb",
    "node",
    "pool",
    "system-pod",
    "pvc",
    "drain",
    "workload",
    "pod",
    "control-plane",
    "preflight",
];

/// The documented entry for `code`, if it is one of kup-kube's.
pub fn code_info(code: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.code == code)
}

/// Checks override codes before anything runs: a code with one of kup-kube's prefixes must be
/// documented; other codes must look like `prefix.name` (provider codes).
pub fn validate_overrides<'a>(codes: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for code in codes {
        let well_formed = code.split_once('.').is_some_and(|(p, n)| {
            !p.is_empty()
                && !n.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
        });
        let prefix = code.split('.').next().unwrap_or_default();
        if !well_formed || (KUP_PREFIXES.contains(&prefix) && code_info(code).is_none()) {
            let accepted: Vec<&str> = CODES.iter().map(|c| c.code).collect();
            return Err(Error::InvalidInput {
                field: "overrides".into(),
                message: format!(
                    "unknown finding code {code:?}; accepted: {}, or a provider's code \
                     (prefix.name, e.g. eks.insight-deprecated-apis)",
                    accepted.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Counts of what a report looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Requests sent to the API server.
    pub api_requests: u64,
    /// Nodes seen.
    pub nodes: u64,
    /// Pods seen.
    pub pods: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

/// Findings plus the codes the user overrides: the common core of every report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// The findings, most severe first, then by code.
    pub findings: Vec<Finding>,
    /// Codes whose blockers the user chose to proceed past.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub overridden: BTreeSet<String>,
}

impl Findings {
    /// Wraps findings, sorting them.
    pub fn new(mut findings: Vec<Finding>) -> Self {
        sort(&mut findings);
        Self {
            findings,
            overridden: BTreeSet::new(),
        }
    }

    /// Marks these codes as overridden (validated first, see [`validate_overrides`]).
    pub fn override_codes<'a>(&mut self, codes: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let codes: Vec<&str> = codes.into_iter().collect();
        validate_overrides(codes.iter().copied())?;
        self.overridden.extend(codes.into_iter().map(String::from));
        Ok(())
    }

    /// Whether the finding's code is overridden.
    pub fn is_overridden(&self, finding: &Finding) -> bool {
        self.overridden.contains(&finding.code)
    }

    /// Blockers the user did not override.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.is_blocker() && !self.is_overridden(f))
    }

    /// True when a blocker remains after overrides.
    pub fn has_blockers(&self) -> bool {
        self.blockers().next().is_some()
    }

    /// Findings with this code.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.code == code)
    }

    /// `3 blockers (1 overridden), 2 warnings, 0 info`.
    pub fn summary(&self) -> String {
        let count = |s: Severity| self.findings.iter().filter(|f| f.severity == s).count();
        let overridden = self
            .findings
            .iter()
            .filter(|f| f.is_blocker() && self.is_overridden(f))
            .count();
        let mut out = format!("{} blocker(s)", count(Severity::Blocker));
        if overridden > 0 {
            let _ = write!(out, " ({overridden} overridden)");
        }
        let _ = write!(
            out,
            ", {} warning(s), {} info",
            count(Severity::Warning),
            count(Severity::Info)
        );
        out
    }

    /// The findings as a plain-text table, one row per finding with its objects and
    /// remediation underneath.
    pub fn to_table(&self) -> String {
        const MAX_OBJECTS: usize = 10;
        let code_width = self
            .findings
            .iter()
            .map(|f| f.code.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = String::new();
        let _ = writeln!(out, "{:<10} {:<code_width$} MESSAGE", "SEVERITY", "CODE");
        for f in &self.findings {
            let severity = if f.is_blocker() && self.is_overridden(f) {
                "overridden".to_string()
            } else {
                f.severity.to_string()
            };
            let _ = writeln!(out, "{severity:<10} {:<code_width$} {}", f.code, f.message);
            let indent = " ".repeat(11 + code_width + 1);
            if !f.objects.is_empty() {
                let shown: Vec<String> = f
                    .objects
                    .iter()
                    .take(MAX_OBJECTS)
                    .map(ToString::to_string)
                    .collect();
                let more = f.objects.len().saturating_sub(MAX_OBJECTS);
                let tail = if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "{indent}objects: {}{tail}", shown.join(", "));
            }
            if let Some(fix) = &f.remediation {
                let _ = writeln!(out, "{indent}fix: {fix}");
            }
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

/// Most severe first, then by code, then by message (stable output for reviews and tests).
pub(crate) fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.message.cmp(&b.message))
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kup_core::ObjectRef;

    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            validate_overrides([c.code]).unwrap();
        }
    }

    #[test]
    fn overrides_reject_unknown_kup_codes_and_accept_provider_codes() {
        let err = validate_overrides(["pdb.does-not-exist"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("overrides"), "{text}");
        assert!(text.contains("pdb.max-unavailable-zero"), "{text}");
        assert!(validate_overrides(["PDB"]).is_err());
        validate_overrides(["eks.insight-deprecated-apis"]).unwrap();
    }

    #[test]
    fn overridden_blockers_no_longer_block_and_the_table_says_so() {
        let mut report = Findings::new(vec![
            Finding::new("node.cordoned", Severity::Warning, "1 node is cordoned")
                .object(ObjectRef::cluster("Node", "n1")),
            Finding::new(
                "pdb.max-unavailable-zero",
                Severity::Blocker,
                "PodDisruptionBudget default/web never allows an eviction",
            )
            .remediation("raise maxUnavailable")
            .object(ObjectRef::namespaced(
                "PodDisruptionBudget",
                "default",
                "web",
            )),
        ]);
        assert_eq!(report.findings[0].code, "pdb.max-unavailable-zero");
        assert!(report.has_blockers());
        report.override_codes(["pdb.max-unavailable-zero"]).unwrap();
        assert!(!report.has_blockers());
        let table = report.to_table();
        assert!(
            table.contains("overridden pdb.max-unavailable-zero"),
            "{table}"
        );
        assert!(
            table.contains("objects: PodDisruptionBudget/default/web"),
            "{table}"
        );
        assert!(table.contains("fix: raise maxUnavailable"), "{table}");
        assert!(
            table.contains("1 blocker(s) (1 overridden), 1 warning(s)"),
            "{table}"
        );
    }
}
