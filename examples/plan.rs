//! Prints the upgrade plan kup-core's planner makes for a sample EKS cluster (control plane at
//! 1.30, a pool a minor behind, kube-proxy that must follow the control plane). Pure: nothing
//! is contacted, so there is no real-cluster mode; `kup plan` does this for a live cluster.
//!
//! ```text
//! cargo run -p kup-examples --example plan [-- 1.33] [--json]
//! ```
//!
//! Arguments: a target version (default 1.34) and `--json` for the sealed, saved form.

use kup_core::{
    Addon, AddonUpgrade, AvailableVersion, Capabilities, ClusterInfo, KubeVersion, NodePool,
    PlanOptions, PlanRequest, ProviderKind, SupportStatus, UpgradePlan, plan,
};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let target = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("1.34", String::as_str);
    match target.parse().and_then(sample_plan) {
        Ok(plan) if json => {
            println!("{}", plan.to_json());
            std::process::ExitCode::SUCCESS
        }
        Ok(plan) => {
            println!("{plan}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The plan from the sample cluster to `target`.
fn sample_plan(target: KubeVersion) -> Result<UpgradePlan, kup_core::Error> {
    let v = KubeVersion::parse;
    let cluster = ClusterInfo {
        provider: ProviderKind::Eks,
        name: "payments-prod".into(),
        control_plane: v("1.30")?,
        api_servers: vec![],
        node_pools: vec![
            NodePool::managed("general", v("1.30.11-eks-473151a")?),
            NodePool::managed("batch", v("1.29.15-eks-473151a")?),
        ],
        addons: vec![Addon {
            name: "kube-proxy".into(),
            version: "v1.30.0-eksbuild.3".into(),
            managed: true,
        }],
        in_progress: vec![],
        status: Some("ACTIVE".into()),
    };
    let offered = (29..=35)
        .map(|minor| {
            AvailableVersion::new(
                KubeVersion::minor_version(1, minor),
                SupportStatus::Standard,
            )
        })
        .collect();
    // kube-proxy must match the control plane's minor within the skew policy; EKS recommends
    // the build for each minor.
    let addon_upgrades = (31..=35)
        .map(|minor| AddonUpgrade {
            name: "kube-proxy".into(),
            from: "v1.30.0-eksbuild.3".into(),
            to: format!("v1.{minor}.0-eksbuild.1"),
            control_plane: KubeVersion::minor_version(1, minor),
            current_compatible: minor <= 32,
        })
        .collect();
    let request = PlanRequest {
        cluster,
        target,
        offered,
        capabilities: eks_like(),
        addon_upgrades,
        options: PlanOptions::default(),
    };
    plan(&request)
}

/// What an EKS-like provider declares.
fn eks_like() -> Capabilities {
    Capabilities::new().with(|c| {
        c.node_pool_upgrade = true;
        c.control_plane_patch_selectable = false;
        c.provider_drains_nodes = true;
        c.managed_addons = true;
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_the_sample_cluster_hop_by_hop_and_round_trips() {
        let plan = sample_plan("1.34".parse().unwrap()).unwrap();
        let hops: Vec<String> = plan
            .control_plane_hops()
            .map(|s| s.action.to_string())
            .collect();
        assert_eq!(hops.len(), 4, "1.30 → 1.34 is four hops: {hops:?}");
        let json = plan.to_json();
        let back = UpgradePlan::from_json(&json).unwrap();
        assert_eq!(back, plan);
        println!("{plan}");
        let err = sample_plan("1.29".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("downgrade"), "{err}");
    }
}
