//! Workloads that lose availability while their node is replaced: Deployments and
//! StatefulSets running one replica that no PodDisruptionBudget covers. Nothing stops their
//! eviction, and there is no second pod to serve meanwhile.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kup_core::{Finding, ObjectRef, Severity};

use super::pdb::PdbCheck;

/// Aggregates single-replica workloads without a budget.
#[derive(Debug, Default)]
pub(crate) struct SingleReplicas {
    found: Vec<ObjectRef>,
}

impl SingleReplicas {
    fn observe(
        &mut self,
        kind: &str,
        namespace: Option<&String>,
        name: Option<&String>,
        replicas: Option<i32>,
        template: &PodTemplateSpec,
        pdbs: &PdbCheck,
    ) {
        // An unset replica count means 1.
        if replicas.unwrap_or(1) != 1 {
            return;
        }
        let namespace = namespace.cloned().unwrap_or_default();
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if !pdbs.covers(&namespace, &labels) {
            self.found.push(ObjectRef::namespaced(
                kind,
                namespace,
                name.cloned().unwrap_or_default(),
            ));
        }
    }

    pub(crate) fn observe_deployment(&mut self, d: &Deployment, pdbs: &PdbCheck) {
        self.observe(
            "Deployment",
            d.metadata.namespace.as_ref(),
            d.metadata.name.as_ref(),
            d.spec.replicas,
            &d.spec.template,
            pdbs,
        );
    }

    pub(crate) fn observe_statefulset(&mut self, s: &StatefulSet, pdbs: &PdbCheck) {
        self.observe(
            "StatefulSet",
            s.metadata.namespace.as_ref(),
            s.metadata.name.as_ref(),
            s.spec.replicas,
            &s.spec.template,
            pdbs,
        );
    }

    pub(crate) fn finish(self, source: &str) -> Vec<Finding> {
        if self.found.is_empty() {
            return Vec::new();
        }
        let shown: Vec<String> = self
            .found
            .iter()
            .take(10)
            .map(ToString::to_string)
            .collect();
        let more = self.found.len().saturating_sub(10);
        vec![
            Finding::new(
                "workload.single-replica-no-pdb",
                Severity::Warning,
                format!(
                    "{} workload(s) run a single replica with no PodDisruptionBudget and are \
                     unavailable while their node is drained: {}{}",
                    self.found.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
            .remediation(
                "run 2 or more replicas (with a PodDisruptionBudget allowing 1 disruption) where \
                 the outage matters; otherwise accept a short outage per node",
            )
            .objects(self.found)
            .source(source),
        ]
    }
}
