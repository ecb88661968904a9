//! Prints the upgrade plan for a sample cluster: `cargo run -p kup-examples --example plan`.
//!
//! Optional arguments: a target version (default 1.34) and `--json` for the saved form.

use kup_core::{
    Addon, AddonUpgrade, AvailableVersion, Capabilities, ClusterInfo, KubeVersion, NodePool,
    PlanOptions, PlanRequest, ProviderKind, SupportStatus, plan,
};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), kup_core::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let target: KubeVersion = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("1.34", String::as_str)
        .parse()?;

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
        capabilities: Capabilities {
            node_pool_upgrade: true,
            control_plane_patch_selectable: false,
            provider_drains_nodes: true,
            managed_addons: true,
            ..Capabilities::default()
        },
        addon_upgrades,
        options: PlanOptions::default(),
    };
    let plan = plan(&request)?;
    if json {
        println!("{}", plan.to_json());
    } else {
        println!("{plan}");
    }
    Ok(())
}
