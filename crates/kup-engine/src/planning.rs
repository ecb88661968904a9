//! Building a plan from what a provider reports: the cluster, the versions on offer, and the
//! add-on versions recommended at each control-plane hop.

use kup_core::{KubeVersion, PlanOptions, PlanRequest, UpgradePlan, UpgradeProvider};

use crate::error::Result;

/// Asks `provider` for the cluster, its offered versions and the add-on recommendations for
/// every control-plane version on the way to `target`, then plans. Nothing is changed.
pub async fn plan_for(
    provider: &dyn UpgradeProvider,
    target: &KubeVersion,
    options: PlanOptions,
) -> Result<UpgradePlan> {
    let request = plan_request(provider, target, options).await?;
    Ok(kup_core::plan(&request)?)
}

/// The [`PlanRequest`] [`plan_for`] plans from (for callers that show or store it).
pub async fn plan_request(
    provider: &dyn UpgradeProvider,
    target: &KubeVersion,
    options: PlanOptions,
) -> Result<PlanRequest> {
    let cluster = provider.cluster().await?;
    let offered = provider.available_versions().await?;
    let capabilities = provider.capabilities();
    let path =
        kup_core::control_plane_path(&cluster.control_plane, target, &offered, &capabilities)?;
    let mut addon_upgrades = Vec::new();
    for hop in &path {
        addon_upgrades.extend(provider.addon_upgrades(hop).await?);
    }
    Ok(PlanRequest {
        cluster,
        target: target.clone(),
        offered,
        capabilities,
        addon_upgrades,
        options,
    })
}
