//! GKE's own pre-flight: what GKE itself will change, its upgrade information (auto-upgrade
//! status, paused upgrades, end of support), maintenance windows and exclusions, and the
//! PodDisruptionBudgets GKE stops respecting after an hour.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kup_core::{Finding, KubeVersion, ObjectRef, Severity};

use crate::error::Error;
use crate::provider::GkeProvider;

const SOURCE: &str = "gke";

pub(crate) async fn findings(p: &GkeProvider, to: &KubeVersion) -> Result<Vec<Finding>, Error> {
    let cluster = p.get_cluster().await?;
    let mut out = vec![
        Finding::new(
            "gke.managed-addons",
            Severity::Info,
            format!(
                "GKE upgrades its managed add-ons (kube-dns, kube-proxy, the CNI, metrics and \
                 logging agents) with the control plane to the versions it ships for {to}; kup \
                 does not move them"
            ),
        )
        .source(SOURCE),
    ];
    if let Some(ch) = cluster
        .release_channel
        .as_ref()
        .and_then(|r| r.channel.name())
        .filter(|c| *c != "UNSPECIFIED")
    {
        out.push(
            Finding::new(
                "gke.release-channel",
                Severity::Info,
                format!(
                    "the cluster is enrolled in the {ch} release channel: GKE auto-upgrades it \
                     along that channel; a manual upgrade to {to} is allowed and pools follow \
                     the channel afterwards"
                ),
            )
            .source(SOURCE),
        );
    }
    let window = cluster
        .maintenance_policy
        .as_ref()
        .and_then(|m| m.window.as_ref());
    if let Some(w) = window {
        use google_cloud_container_v1::model::maintenance_window::Policy;
        let text = match &w.policy {
            Some(Policy::RecurringWindow(r)) => {
                let span = r
                    .window
                    .as_ref()
                    .map(|t| format!("{} to {}", ts(&t.start_time), ts(&t.end_time)))
                    .unwrap_or_default();
                Some(format!("recurring window {span}, {}", r.recurrence))
            }
            Some(Policy::DailyMaintenanceWindow(d)) => Some(format!(
                "daily window from {} for {}",
                d.start_time, d.duration
            )),
            _ => None,
        };
        if let Some(text) = text {
            out.push(
                Finding::new(
                    "gke.maintenance-window",
                    Severity::Info,
                    format!(
                        "GKE's automatic upgrades run in the maintenance window ({text}); \
                         kup's manual upgrade runs now, outside it"
                    ),
                )
                .source(SOURCE),
            );
        }
        let now = jiff::Timestamp::now();
        for (name, t) in &w.maintenance_exclusions {
            let start = t.start_time.as_ref().and_then(to_jiff);
            let end = t.end_time.as_ref().and_then(to_jiff);
            let active = start.is_none_or(|s| s <= now) && end.is_none_or(|e| now < e);
            if !active {
                continue;
            }
            use google_cloud_container_v1::model::time_window::Options;
            let scope = match &t.options {
                Some(Options::MaintenanceExclusionOptions(o)) => {
                    o.scope.name().unwrap_or("NO_UPGRADES").to_string()
                }
                _ => "NO_UPGRADES".into(),
            };
            out.push(
                Finding::new(
                    "gke.maintenance-exclusion",
                    Severity::Warning,
                    format!(
                        "maintenance exclusion {name} ({scope}) is in effect until {}: it stops \
                         GKE's automatic upgrades, not manual ones, so this upgrade is allowed \
                         but runs inside the exclusion",
                        Some(ts(&t.end_time))
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "its end".into())
                    ),
                )
                .object(ObjectRef::cluster("MaintenanceExclusion", name.clone()))
                .source(SOURCE),
            );
        }
    }
    if let Some(info) = p.upgrade_info().await? {
        let paused: Vec<&str> = info.paused_reason.iter().filter_map(|r| r.name()).collect();
        let status: Vec<&str> = info
            .auto_upgrade_status
            .iter()
            .filter_map(|s| s.name())
            .collect();
        if !status.is_empty() {
            out.push(
                Finding::new(
                    "gke.auto-upgrade",
                    Severity::Info,
                    format!(
                        "GKE auto-upgrade status: {}{}{}",
                        status.join(", "),
                        if paused.is_empty() {
                            ""
                        } else {
                            "; paused by "
                        },
                        paused.join(", ")
                    ),
                )
                .source(SOURCE),
            );
        }
        if let Some(eos) = &info.end_of_standard_support_timestamp {
            out.push(
                Finding::new(
                    "gke.end-of-support",
                    Severity::Info,
                    format!(
                        "the cluster's current minor leaves GKE standard support at {eos}{}",
                        info.end_of_extended_support_timestamp
                            .as_ref()
                            .map(|e| format!(" and extended support at {e}"))
                            .unwrap_or_default()
                    ),
                )
                .source(SOURCE),
            );
        }
    }
    out.extend(budgets(p).await?);
    Ok(out)
}

/// GKE respects a PodDisruptionBudget for at most an hour per node during node-pool upgrades
/// and then evicts anyway: budgets that allow no disruption now would be overridden.
async fn budgets(p: &GkeProvider) -> Result<Vec<Finding>, Error> {
    let limit = p.settings.pdb_timeout;
    let rule = format!(
        "GKE respects PodDisruptionBudgets for at most {} per node while it upgrades a node \
         pool, then deletes the pods anyway",
        human(limit)
    );
    let Some(kube) = &p.kube else {
        return Ok(vec![
            Finding::new("gke.pdb-limit", Severity::Info, rule.clone()).source(SOURCE),
        ]);
    };
    let pdbs: Api<PodDisruptionBudget> = Api::all(kube.clone());
    let blocked: Vec<ObjectRef> = pdbs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|b| {
            b.status
                .as_ref()
                .is_some_and(|s| s.disruptions_allowed == Some(0))
        })
        .map(|b| {
            ObjectRef::namespaced(
                "PodDisruptionBudget",
                b.metadata.namespace.unwrap_or_default(),
                b.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    if blocked.is_empty() {
        return Ok(vec![
            Finding::new("gke.pdb-limit", Severity::Info, rule).source(SOURCE),
        ]);
    }
    Ok(vec![
        Finding::new(
            "gke.pdb-limit",
            Severity::Warning,
            format!(
                "{rule}; {} budget(s) allow no disruption now, so their pods would be deleted \
                 past their budget if that does not change within {}",
                blocked.len(),
                human(limit)
            ),
        )
        .remediation(
            "scale the protected workloads up or relax the budgets before the pools move, or \
             roll the pool blue-green so the old nodes stay until the workloads have moved",
        )
        .objects(blocked)
        .source(SOURCE),
    ])
}

fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60) {
        (0, m) => format!("{m} minutes"),
        (1, 0) => "one hour".into(),
        (h, 0) => format!("{h} hours"),
        (h, m) => format!("{h}h{m}m"),
    }
}

fn to_jiff(t: &google_cloud_wkt::Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.seconds(), t.nanos()).ok()
}

fn ts(t: &Option<google_cloud_wkt::Timestamp>) -> String {
    t.as_ref()
        .and_then(to_jiff)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
