//! What each provider allows to be undone, as the runbook's rollback section says it.

use kup_core::{PlanKind, PoolManagement, ProviderKind, StepAction, UpgradePlan};

/// The rollback steps that apply to `plan`, in the order an operator would take them.
pub(super) fn steps(plan: &UpgradePlan) -> Vec<String> {
    if plan.kind == PlanKind::Rollback {
        // A rollback's own way back is a new upgrade plan.
        let mut out = vec![format!(
            "To return to {} after this rollback, make a new upgrade plan (`kup plan --to {}`).",
            plan.from, plan.from
        )];
        out.extend(
            plan.not_rolled_back
                .iter()
                .map(|r| format!("Not rolled back: {}: {}", r.part, r.reason)),
        );
        return out;
    }
    let from = &plan.from;
    let mut out = Vec::new();
    let pools_move = plan.pool_upgrades().count() > 0;
    match &plan.provider {
        ProviderKind::Kubeadm => {
            out.push(format!(
                "Control plane (`kup rollback`, or `kup restore --backup ID` alone): restore \
                 the run's verified etcd snapshot on every control-plane \
                 node, one at a time (stop the kube-apiserver static pod, restore etcd into a new \
                 data directory and swap it in, install kubeadm, kubelet and kubectl {from} \
                 again, put back the {from} manifests, restart the kubelet), then check that the \
                 API server answers at {from}."
            ));
            if pools_move {
                out.push(format!(
                    "Workers: drain each node, install kubelet and kubeadm {from} again, run \
                     `kubeadm upgrade node`, restart the kubelet and uncordon; never below the \
                     kubelet skew limit of the control plane."
                ));
            }
        }
        ProviderKind::Eks => {
            out.push(
                "Control plane: EKS cannot downgrade a cluster's Kubernetes version; a failed \
                 upgrade is fixed forward."
                    .into(),
            );
            if pools_move {
                out.push(
                    "Managed node groups: update each back to its previous AMI release version or \
                     launch template version (UpdateNodegroupVersion), while the control plane \
                     allows the old kubelet."
                        .into(),
                );
            }
        }
        ProviderKind::Aks => {
            out.push(
                "Control plane: AKS does not downgrade a managed cluster's Kubernetes version."
                    .into(),
            );
            if pools_move {
                out.push(
                    "Agent pools: PUT one of the pool upgrade profile's recentlyUsedVersions back \
                     (orchestratorVersion and node image), api-version 2026-08-01 or later."
                        .into(),
                );
            }
        }
        ProviderKind::Gke => {
            out.push(
                "Control plane: GKE rolls a control plane back only during the soak of a \
                 rollback-safe upgrade (updateMaster to rollbackSafeUpgradeStatus.previousVersion, \
                 before completeControlPlaneUpgrade or the soak's end); otherwise it is fixed \
                 forward."
                    .into(),
            );
            if pools_move {
                out.push(
                    "Node pools: roll back a cancelled or failed upgrade, or a blue-green upgrade \
                     until its blue pool is deleted (rollbackNodePoolUpgrade, `gcloud container \
                     node-pools rollback`)."
                        .into(),
                );
            }
        }
        other => out.push(format!(
            "Follow the {other} provider's own rollback procedure; kup does not know what it \
             allows."
        )),
    }
    let external: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::NodePool {
                pool,
                management: PoolManagement::External,
                ..
            } => Some(pool.as_str()),
            _ => None,
        })
        .collect();
    if !external.is_empty() {
        out.push(format!(
            "Pools kup does not drive ({}): roll back with the tool that manages them.",
            external.join(", ")
        ));
    }
    // Each add-on back to the version it had before its first move.
    let mut seen = std::collections::BTreeSet::new();
    let addons: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::Addon { name, from, .. } if seen.insert(name.clone()) => {
                Some(format!("{name} {from}"))
            }
            _ => None,
        })
        .collect();
    if !addons.is_empty() {
        out.push(format!(
            "Add-ons: move back to {} once the control plane is back at {from}.",
            addons.join(", ")
        ));
    }
    out
}
