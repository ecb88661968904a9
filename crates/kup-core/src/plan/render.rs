//! The human rendering of a plan: a header and a numbered table of steps.

use std::fmt;

use super::{PlanKind, PoolMoveReason, StepAction, UpgradePlan};
use crate::cluster::PoolManagement;

impl fmt::Display for UpgradePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} for {} cluster {}: control plane {} → {}{}",
            if self.kind == PlanKind::Rollback {
                "Rollback plan"
            } else {
                "Plan"
            },
            self.id,
            self.provider,
            self.cluster,
            self.from,
            self.target,
            if self.control_plane_only {
                " (control plane only)"
            } else {
                ""
            }
        )?;
        let rows: Vec<[String; 5]> = self.steps.iter().map(|s| row(s.index, &s.action)).collect();
        let header = [
            "#".to_string(),
            "STEP".into(),
            "WHAT".into(),
            "CHANGE".into(),
            "WHY".into(),
        ];
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for r in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
                if i == 0 {
                    line.push_str(&format!("{cell:>w$}"));
                } else {
                    line.push_str("  ");
                    line.push_str(&format!("{cell:<w$}"));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        if self.kind == PlanKind::Rollback {
            for refusal in &self.not_rolled_back {
                writeln!(f, "not rolled back: {}: {}", refusal.part, refusal.reason)?;
            }
            let back = self
                .steps
                .iter()
                .filter(|s| s.action.changes_cluster())
                .count();
            return write!(
                f,
                "{back} rollback step{}, kubelet skew limit {}",
                if back == 1 { "" } else { "s" },
                self.max_kubelet_skew
            );
        }
        let pool_moves = self.pool_upgrades().count();
        let hops = self.control_plane_hops().count();
        write!(
            f,
            "{hops} control-plane hop{}, {pool_moves} node-pool upgrade{}, kubelet skew limit {}",
            if hops == 1 { "" } else { "s" },
            if pool_moves == 1 { "" } else { "s" },
            self.max_kubelet_skew
        )
    }
}

fn row(index: usize, action: &StepAction) -> [String; 5] {
    let (what, change, why) = match action {
        StepAction::Preflight { target } => (
            "cluster".to_string(),
            String::new(),
            format!("checks before moving to {target}"),
        ),
        StepAction::Backup { control_plane } => (
            "etcd".into(),
            format!("snapshot at {control_plane}"),
            "restore point before the control plane moves".into(),
        ),
        StepAction::ControlPlane { from, to } => (
            "control plane".into(),
            format!("{from} → {to}"),
            "one minor per hop".into(),
        ),
        StepAction::NodePool {
            pool,
            from,
            to,
            management,
            reason,
        } => {
            let who = match management {
                PoolManagement::Provider => "provider rolls nodes",
                PoolManagement::Kup => "kup drains and upgrades nodes",
                PoolManagement::External => "external",
            };
            let why = match reason {
                PoolMoveReason::Skew {
                    before_control_plane,
                } => format!("stays in skew for control plane {before_control_plane}; {who}"),
                PoolMoveReason::AlreadyOutOfSkew => format!("already out of skew; {who}"),
                PoolMoveReason::Target => format!("target; {who}"),
            };
            (format!("pool {pool}"), format!("{from} → {to}"), why)
        }
        StepAction::Addon {
            name,
            from,
            to,
            control_plane,
        } => (
            format!("add-on {name}"),
            format!("{from} → {to}"),
            format!("compatible with {control_plane}"),
        ),
        StepAction::PoolRollback {
            pool,
            from,
            to,
            management,
            release,
            basis,
        } => {
            let who = match management {
                PoolManagement::Kup => "kup drains each node and moves it back",
                _ => "the provider rolls the nodes back",
            };
            let change = match release {
                Some(r) => format!("{from} → {to} ({r})"),
                None => format!("{from} → {to}"),
            };
            (format!("pool {pool}"), change, format!("{basis}; {who}"))
        }
        StepAction::Restore {
            from, to, backup, ..
        } => (
            "control plane".into(),
            format!("{from} → {to}"),
            format!(
                "restore backup {} (sha256 {}…); changes since it are lost",
                backup.id,
                backup.sha256.get(..12).unwrap_or(&backup.sha256)
            ),
        ),
        StepAction::ControlPlaneRollback { from, to, basis } => (
            "control plane".into(),
            format!("{from} → {to}"),
            basis.clone(),
        ),
        StepAction::Validate {
            control_plane,
            pools,
        } => (
            "cluster".into(),
            String::new(),
            format!(
                "validate: control plane {control_plane}, {} pool{} Ready",
                pools.len(),
                if pools.len() == 1 { "" } else { "s" }
            ),
        ),
    };
    [
        index.to_string(),
        action.kind().to_string(),
        what,
        change,
        why,
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::cluster::{AvailableVersion, ClusterInfo, NodePool, SupportStatus};
    use crate::plan::{PlanOptions, PlanRequest, plan};
    use crate::provider::{Capabilities, ProviderKind};
    use crate::version::KubeVersion;

    #[test]
    fn renders_a_numbered_table() {
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        let request = PlanRequest {
            cluster: ClusterInfo {
                provider: ProviderKind::Eks,
                name: "demo".into(),
                control_plane: v("1.30"),
                api_servers: vec![],
                node_pools: vec![NodePool::managed("workers", v("1.30"))],
                addons: vec![],
                in_progress: vec![],
                status: None,
            },
            target: v("1.31"),
            offered: vec![AvailableVersion::new(v("1.31"), SupportStatus::Standard)],
            capabilities: Capabilities {
                node_pool_upgrade: true,
                control_plane_patch_selectable: false,
                ..Capabilities::default()
            },
            addon_upgrades: vec![],
            options: PlanOptions::default(),
        };
        let text = plan(&request).unwrap().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("Plan ")
                && lines[0].ends_with("EKS cluster demo: control plane 1.30 → 1.31")
        );
        assert!(lines[1].starts_with("#  STEP"), "{text}");
        assert!(lines[2].starts_with("1  preflight"), "{text}");
        assert!(
            lines[3].starts_with("2  control-plane  control plane  1.30 → 1.31"),
            "{text}"
        );
        assert!(
            lines[4].contains("pool workers") && lines[4].contains("target; provider rolls nodes")
        );
        assert_eq!(
            *lines.last().unwrap(),
            "1 control-plane hop, 1 node-pool upgrade, kubelet skew limit 3"
        );
    }
}
