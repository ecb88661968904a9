//! The fleet plan: every member connected, planned and dry-run (at most `limit` at once), so
//! a person sees side by side what each cluster would do and what blocks it. One cluster
//! that cannot be reached or planned is reported on its row; it does not fail the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kup_core::{KubeVersion, NoEvents, ProviderKind, StepAction, UpgradePlan};
use serde::{Deserialize, Serialize};

use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::spec::{Fleet, FleetSpec};

/// One member's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    /// The member.
    pub cluster: String,
    /// Its stage.
    pub stage: String,
    /// Its group.
    pub group: String,
    /// Its provider, when it could be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    /// Its control plane's version, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<KubeVersion>,
    /// The plan, when planning succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<UpgradePlan>,
    /// What prevented connecting or planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the dry run found in the way (pre-flight blockers and other problems).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<String>,
}

impl ClusterPlan {
    /// Whether it can run as planned: planned, and nothing in the way.
    pub fn ready(&self) -> bool {
        self.plan.is_some() && self.error.is_none() && self.blockers.is_empty()
    }
}

/// Every member's plan, in upgrade order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetPlan {
    /// The target.
    pub target: KubeVersion,
    /// The members in stage and group order.
    pub clusters: Vec<ClusterPlan>,
}

/// Whether `plan` changes anything (not only pre-flight, backup and validation).
pub fn plan_changes_something(plan: &UpgradePlan) -> bool {
    plan.steps.iter().any(|s| {
        !matches!(
            s.action,
            StepAction::Preflight { .. } | StepAction::Backup { .. } | StepAction::Validate { .. }
        )
    })
}

impl FleetPlan {
    /// Whether every member was planned and nothing blocks any.
    pub fn ready(&self) -> bool {
        self.clusters.iter().all(ClusterPlan::ready)
    }

    /// The members that cannot run as planned, each with why.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.clusters {
            if let Some(e) = &c.error {
                out.push(format!("{}: {e}", c.cluster));
            }
            for b in &c.blockers {
                out.push(format!("{}: {b}", c.cluster));
            }
        }
        out
    }

    /// Side by side: stage, group, cluster, provider, from → to, hops, pools, blockers.
    pub fn to_table(&self) -> String {
        let mut rows = vec![[
            "STAGE".to_string(),
            "GROUP".into(),
            "CLUSTER".into(),
            "PROVIDER".into(),
            "VERSION".into(),
            "HOPS".into(),
            "POOLS".into(),
            "BLOCKERS".into(),
        ]];
        for c in &self.clusters {
            let provider = c
                .provider
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "?".into());
            let from = c
                .current
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "?".into());
            let (hops, pools) = match &c.plan {
                Some(p) => {
                    let hops = p
                        .steps
                        .iter()
                        .filter(|s| matches!(s.action, StepAction::ControlPlane { .. }))
                        .count();
                    let pools = p
                        .steps
                        .iter()
                        .filter_map(|s| match &s.action {
                            StepAction::NodePool { pool, .. } => Some(pool.as_str()),
                            _ => None,
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                        .len();
                    (hops.to_string(), pools.to_string())
                }
                None => ("-".into(), "-".into()),
            };
            let blockers = match &c.error {
                Some(e) => format!("not planned: {e}"),
                None if c.blockers.is_empty() => "none".into(),
                None => c.blockers.join("; "),
            };
            rows.push([
                c.stage.clone(),
                c.group.clone(),
                c.cluster.clone(),
                provider,
                format!("{from} → {}", self.target),
                hops,
                pools,
                blockers,
            ]);
        }
        table(&rows)
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Columns padded to their widest cell.
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths.iter()).enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                line.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Validates `spec`, then connects, plans and dry-runs every member to `target`, at most
/// `limit` (at least 1) at once. Nothing is changed.
pub async fn plan_fleet(
    spec: &FleetSpec,
    target: &KubeVersion,
    connector: &dyn Connector,
    limit: usize,
) -> Result<FleetPlan> {
    let fleet = spec.validate()?;
    Ok(plan_validated(&fleet, target, connector, limit).await)
}

/// [`plan_fleet`] for a fleet already validated.
pub async fn plan_validated(
    fleet: &Fleet,
    target: &KubeVersion,
    connector: &dyn Connector,
    limit: usize,
) -> FleetPlan {
    let order: Vec<(String, String, String)> = fleet
        .stages
        .iter()
        .flat_map(|s| {
            s.clusters
                .iter()
                .map(|(c, g)| (s.name.clone(), g.clone(), c.clone()))
        })
        .collect();
    // `buffer_unordered` keeps at most `limit` members in flight, like a semaphore, without
    // spawning 200 tasks at once.
    let mut planned: BTreeMap<String, ClusterPlan> = futures::stream::iter(order.iter().cloned())
        .map(|(stage, group, cluster)| async move {
            let plan = plan_member(fleet, target, connector, &stage, &group, &cluster).await;
            (cluster, plan)
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    FleetPlan {
        target: target.clone(),
        clusters: order
            .iter()
            .filter_map(|(_, _, c)| planned.remove(c))
            .collect(),
    }
}

async fn plan_member(
    fleet: &Fleet,
    target: &KubeVersion,
    connector: &dyn Connector,
    stage: &str,
    group: &str,
    cluster: &str,
) -> ClusterPlan {
    let mut row = ClusterPlan {
        cluster: cluster.to_string(),
        stage: stage.to_string(),
        group: group.to_string(),
        provider: None,
        current: None,
        plan: None,
        error: None,
        blockers: Vec::new(),
    };
    let Some(member) = fleet.member(cluster) else {
        row.error = Some("not a member of the fleet".into());
        return row;
    };
    let mc = match connector.connect(member).await {
        Ok(mc) => mc,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    row.provider = Some(mc.provider.kind());
    match mc.provider.cluster().await {
        Ok(info) => row.current = Some(info.control_plane.clone()),
        Err(e) => {
            row.error = Some(format!("cannot read the cluster: {e}"));
            return row;
        }
    }
    let plan =
        match kup_engine::planning::plan_for(mc.provider.as_ref(), target, mc.plan_options.clone())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                row.error = Some(format!("cannot plan: {e}"));
                return row;
            }
        };
    match mc.engine(cluster, Arc::new(NoEvents)) {
        Ok(engine) => match engine.dry_run(&plan).await {
            Ok(report) => row.blockers = report.all_problems(),
            Err(e) => row.blockers.push(format!("dry run failed: {e}")),
        },
        Err(Error::Engine { source, .. }) => row.error = Some(source.to_string()),
        Err(e) => row.error = Some(e.to_string()),
    }
    row.plan = Some(plan);
    row
}
