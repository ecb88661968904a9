//! Whether a journal may be resumed with this plan in the cluster as it is now.

use kup_core::{ClusterInfo, PlanKind, StepAction, UpgradePlan};

use crate::error::{Error, Result};
use crate::journal::Journal;

fn refuse(reason: String) -> Error {
    Error::ResumeRefused { reason }
}

/// Refuses, saying why, when the journal belongs to another plan or cluster. All a resume
/// can check while the cluster cannot be read (a restore in flight has its API servers
/// stopped).
pub(crate) fn check_same_run(journal: &Journal, plan: &UpgradePlan) -> Result<()> {
    if journal.plan_id != plan.id {
        return Err(refuse(format!(
            "the journal belongs to plan {} (target {}, started {}), not to plan {} (target {}); \
             resume with the plan that started the run, or clear the journal after checking \
             the nodes it lists",
            journal.plan_id, journal.target, journal.started_at, plan.id, plan.target
        )));
    }
    if journal.cluster != plan.cluster {
        return Err(refuse(format!(
            "the journal is for cluster {}, the plan for {}",
            journal.cluster, plan.cluster
        )));
    }
    Ok(())
}

/// Refuses, saying why, when the journal belongs to another plan or cluster, or the cluster
/// moved in a way the journal cannot account for.
pub(crate) fn check_resume(
    journal: &Journal,
    plan: &UpgradePlan,
    live: &ClusterInfo,
) -> Result<()> {
    check_same_run(journal, plan)?;
    if live.name != plan.cluster {
        return Err(refuse(format!(
            "the journal and the plan are for cluster {}, but the provider reaches {}",
            plan.cluster, live.name
        )));
    }
    let (done, next) = journal.control_plane_window(plan);
    let cp = &live.control_plane;
    if plan.kind == PlanKind::Rollback {
        // A rollback moves the control plane back: it lies between the last version the
        // journal records as reached and the next one it goes back to.
        if cp.minor_distance(&done) < 0 {
            return Err(refuse(format!(
                "the control plane is at {cp}, newer than {done}, which the rollback's journal \
                 records as reached; it was upgraded since. Make a new rollback plan"
            )));
        }
        if cp.minor_distance(&next) > 0 {
            return Err(refuse(format!(
                "the control plane is at {cp}, before {next}, the furthest back the rollback \
                 goes; it was restored outside this run. Make a new rollback plan"
            )));
        }
    } else if cp.minor_distance(&done) > 0 {
        return Err(refuse(format!(
            "the control plane is at {cp}, behind {done}, which the journal records as reached; \
             it was rolled back or restored since, so the recorded steps no longer hold. Make \
             a new plan"
        )));
    }
    if plan.kind == PlanKind::Upgrade && cp.minor_distance(&next) < 0 {
        return Err(refuse(format!(
            "the control plane is at {cp}, past {next}, the furthest the journal expects; it \
             was upgraded outside this run. Make a new plan"
        )));
    }
    let mut missing: Vec<String> = Vec::new();
    for step in &plan.steps {
        let (StepAction::NodePool { pool, .. } | StepAction::PoolRollback { pool, .. }) =
            &step.action
        else {
            continue;
        };
        let finished = journal.step(step.index).is_some_and(|s| s.state.is_done());
        if !finished && live.pool(pool).is_none() && !missing.contains(pool) {
            missing.push(pool.clone());
        }
    }
    for record in &journal.nodes {
        if live.pool(&record.pool).is_none() && !missing.contains(&record.pool) {
            missing.push(record.pool.clone());
        }
    }
    if !missing.is_empty() {
        return Err(refuse(format!(
            "node pool(s) {} are gone, but the journal still has work or cordoned nodes in \
             them; the cluster has: {}. Make a new plan",
            missing.join(", "),
            live.node_pools
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kup_core::{NodePool, ProviderKind};

    use super::*;
    use crate::journal::StepState;
    use crate::journal::tests::{plan, v};

    fn live(cp: &str) -> ClusterInfo {
        ClusterInfo {
            provider: ProviderKind::Other("test".into()),
            name: "prod".into(),
            control_plane: v(cp),
            api_servers: vec![],
            node_pools: vec![NodePool::managed("a", v("1.31.4"))],
            addons: vec![],
            in_progress: vec![],
            status: None,
        }
    }

    #[test]
    fn same_plan_inside_the_window_resumes() {
        let p = plan();
        let mut j = Journal::new(&p, "h");
        assert!(check_resume(&j, &p, &live("1.31.4")).is_ok());
        // The hop to 1.32 is in flight: both ends are fine.
        assert!(check_resume(&j, &p, &live("1.32.3")).is_ok());
        j.step_mut(2).unwrap().state = StepState::Succeeded;
        assert!(check_resume(&j, &p, &live("1.33.2")).is_ok());
    }

    #[test]
    fn other_plans_and_moved_control_planes_are_refused_with_reasons() {
        let p = plan();
        let mut j = Journal::new(&p, "h");
        let mut other = p.clone();
        other.id = "ffffffffffffffff".into();
        let err = check_resume(&j, &other, &live("1.31.4"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to plan 0123456789abcdef"), "{err}");
        let err = check_resume(&j, &p, &live("1.33.2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("past 1.32.3"), "{err}");
        j.step_mut(2).unwrap().state = StepState::Succeeded;
        let err = check_resume(&j, &p, &live("1.31.4"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("behind 1.32.3"), "{err}");
        let mut wrong = live("1.32.3");
        wrong.name = "staging".into();
        assert!(check_resume(&j, &p, &wrong).is_err());
    }
}
