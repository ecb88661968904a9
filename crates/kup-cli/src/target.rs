//! Turning cluster flags into a provider (through the registry) and a Kubernetes client.

use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kup_core::UpgradeProvider;

use crate::args::ClusterArgs;
use kup_kube::drain::DrainOptions;

use crate::error::{CliError, Result};
use crate::registry::{self, BuildInput};

/// A resolved cluster.
pub struct Target {
    /// The provider bound to it.
    pub provider: Arc<dyn UpgradeProvider>,
    /// Its Kubernetes API configuration.
    pub kube_config: kube::Config,
    /// A client for it.
    pub kube: kube::Client,
    /// What kup must tell the user about how it reaches the cluster (shown on stderr and sent
    /// as `warning` events).
    pub warnings: Vec<String>,
}

/// A Kubernetes API the flags select, checked once.
pub struct KubeTarget {
    /// Its configuration.
    pub config: kube::Config,
    /// A client for it.
    pub client: kube::Client,
    /// Warnings about how it is reached.
    pub warnings: Vec<String>,
}

/// The kubeconfig the flags select, like kubectl: `--kubeconfig`, then `$KUBECONFIG`, then
/// `~/.kube/config`; `--context` or the current context. The API server is asked for its
/// version once, so that a certificate the kubeconfig's CA does not trust is reported at
/// once, as such, instead of being retried as a connection failure.
pub async fn kube(args: &ClusterArgs) -> Result<KubeTarget> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| CliError::Kubeconfig(format!("{}: {e}", path.display())))?,
        None => Kubeconfig::read().map_err(|e| CliError::Kubeconfig(e.to_string()))?,
    };
    let context = args
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| CliError::Kubeconfig(e.to_string()))?;
    let mut warnings = Vec::new();
    if config.accept_invalid_certs {
        warnings.push(format!(
            "kubeconfig context {context:?} sets insecure-skip-tls-verify: true: kup does not \
             verify the API server's certificate at {}, so anyone on the network path can \
             impersonate the cluster and read kup's credentials",
            config.cluster_url
        ));
    }
    let client =
        kube::Client::try_from(config.clone()).map_err(|e| CliError::Kubeconfig(e.to_string()))?;
    if let Err(e) = client.apiserver_version().await
        && let Some(reason) = certificate_failure(&e)
    {
        return Err(CliError::Certificate {
            server: config.cluster_url.to_string(),
            ca: if config.root_cert.is_some() {
                format!("the kubeconfig's CA (certificate-authority of context {context:?})")
            } else {
                format!(
                    "the system's root certificates (context {context:?} names no \
                     certificate-authority)"
                )
            },
            reason,
        });
    }
    Ok(KubeTarget {
        config,
        client,
        warnings,
    })
}

/// What rustls said when the server's certificate was refused, found in `e`'s causes.
fn certificate_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("{c:?}"));
        }
        // An io::Error's `source()` skips the error it wraps (rustls's sits two io::Errors
        // deep); step into it instead.
        cause = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The provider and client the flags select; `drain` is how the provider drains nodes itself,
/// from the command's flags, and `on_stuck_drain` what it does with a node it cannot drain;
/// `default` is the provider when neither the flags nor the config name one (the commands
/// that need only a kubeconfig).
pub async fn resolve(
    args: &ClusterArgs,
    drain: &DrainOptions,
    on_stuck_drain: kup_core::StuckDrainPolicy,
    default: Option<&str>,
    restore_confirmed: bool,
) -> Result<Target> {
    let mut args = crate::config::resolve(args)?;
    if args.provider.is_none() {
        args.provider = default.map(String::from);
    }
    let name = args.provider.clone().ok_or_else(|| {
        CliError::usage(
            "--provider",
            format!(
                "is required (one of: {}), or --name with a kup.yaml entry",
                registry::accepted()
            ),
        )
    })?;
    let entry = registry::find(&name)?;
    let kube = kube(&args).await?;
    let built = (entry.build)(BuildInput {
        settings: &args.settings,
        kube: &kube.client,
        kube_config: &kube.config,
        drain,
        on_stuck_drain,
        restore_confirmed,
    })
    .await?;
    let mut warnings = kube.warnings;
    warnings.extend(built.warnings);
    Ok(Target {
        provider: built.provider,
        kube_config: kube.config,
        kube: kube.client,
        warnings,
    })
}
