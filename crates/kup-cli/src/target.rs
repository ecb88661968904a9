//! Turning cluster flags into a provider and a Kubernetes client.

use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kup_core::UpgradeProvider;
use kup_kube::drain::{DrainOptions, Drainer};

use crate::args::ClusterArgs;
use crate::error::{CliError, Result};

/// The providers this build can drive.
pub const PROVIDERS: &str = "eks, kubeadm";

/// A resolved cluster.
pub struct Target {
    /// The provider bound to it.
    pub provider: Arc<dyn UpgradeProvider>,
    /// Its Kubernetes API configuration.
    pub kube_config: kube::Config,
    /// A client for it.
    pub kube: kube::Client,
}

/// The kubeconfig the flags select, like kubectl: `--kubeconfig`, then `$KUBECONFIG`, then
/// `~/.kube/config`; `--context` or the current context.
pub async fn kube_config(args: &ClusterArgs) -> Result<kube::Config> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let result = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| CliError::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    };
    result.map_err(|e| CliError::Kubeconfig(e.to_string()))
}

/// The provider and client the flags select.
pub async fn resolve(args: &ClusterArgs) -> Result<Target> {
    let args = crate::config::resolve(args)?;
    let name = args.provider.clone().ok_or_else(|| {
        CliError::usage(
            "--provider",
            format!("is required (one of: {PROVIDERS}), or --name with a kup.yaml entry"),
        )
    })?;
    let kube_config = kube_config(&args).await?;
    let kube = kube::Client::try_from(kube_config.clone())
        .map_err(|e| CliError::Kubeconfig(e.to_string()))?;
    let provider: Arc<dyn UpgradeProvider> = match name.as_str() {
        "eks" => {
            let cluster = args.cluster.clone().ok_or_else(|| {
                CliError::usage(
                    "--cluster",
                    "is required with --provider eks (the EKS cluster's name)",
                )
            })?;
            let mut b = kup_eks::EksBuilder::from_env()
                .cluster_name(cluster)
                .kube_client(kube.clone());
            if let Some(r) = &args.region {
                b = b.region(r.clone());
            }
            if let Some(u) = &args.endpoint_url {
                b = b.endpoint_url(u.clone());
            }
            Arc::new(b.build().await?)
        }
        "kubeadm" => {
            let path = args.inventory.clone().ok_or_else(|| {
                CliError::usage(
                    "--inventory",
                    "is required with --provider kubeadm (a YAML file listing the nodes and how to reach them)",
                )
            })?;
            let inventory = kup_kubeadm::inventory::Inventory::load(&path)?;
            let drain = kup_kubeadm::drain::KubeDrain::new(
                Drainer::new(kube.clone()),
                DrainOptions {
                    timeout: Some(Duration::from_secs(900)),
                    ignore_daemonsets: true,
                    ..DrainOptions::default()
                },
            );
            Arc::new(
                kup_kubeadm::KubeadmProvider::new(
                    inventory,
                    kube.clone(),
                    kup_kubeadm::KubeadmSettings::default(),
                )?
                .with_drain(Arc::new(drain)),
            )
        }
        "aks" | "gke" => {
            return Err(CliError::usage(
                "--provider",
                format!(
                    "{name} is not available in this release; available providers: {PROVIDERS}"
                ),
            ));
        }
        other => {
            return Err(CliError::usage(
                "--provider",
                format!("{other:?} is not a provider; accepted: {PROVIDERS}"),
            ));
        }
    };
    Ok(Target {
        provider,
        kube_config,
        kube,
    })
}
