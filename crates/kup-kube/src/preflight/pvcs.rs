//! PersistentVolumeClaims stuck Pending: pods using them cannot start, and an upgrade that
//! moves those pods makes that visible at the worst time.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kup_core::{Finding, ObjectRef, Severity};

/// Aggregates Pending claims while they stream past.
#[derive(Debug, Default)]
pub(crate) struct PendingClaims {
    pending: Vec<ObjectRef>,
}

impl PendingClaims {
    pub(crate) fn observe(&mut self, pvc: &PersistentVolumeClaim) {
        let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Pending") {
            self.pending.push(ObjectRef::namespaced(
                "PersistentVolumeClaim",
                pvc.metadata.namespace.clone().unwrap_or_default(),
                pvc.metadata.name.clone().unwrap_or_default(),
            ));
        }
    }

    pub(crate) fn finish(self, source: &str) -> Vec<Finding> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let shown: Vec<String> = self
            .pending
            .iter()
            .take(10)
            .map(|p| format!("{}/{}", p.namespace.as_deref().unwrap_or_default(), p.name))
            .collect();
        let more = self.pending.len().saturating_sub(10);
        vec![
            Finding::new(
                "pvc.pending",
                Severity::Blocker,
                format!(
                    "{} PersistentVolumeClaim(s) Pending: {}{}",
                    self.pending.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
            .remediation(
                "bind or delete them first (`kubectl describe pvc` names the provisioning \
                 problem); pods that need them cannot start once moved",
            )
            .objects(self.pending)
            .source(source),
        ]
    }
}
