//! Google GKE: control plane and node pools (surge or blue-green) through
//! google-cloud-container-v1, credentials from Application Default Credentials.

use std::sync::Arc;
use std::time::Duration;

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind, required};
use crate::error::CliError;

/// The GKE entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "gke",
    help: "Google GKE: --project, --location, --cluster; Application Default Credentials",
    settings: &[
        Setting {
            key: "project",
            flag: "project",
            env: Some("KUP_GKE_PROJECT"),
            help: "the Google Cloud project id (default: GOOGLE_CLOUD_PROJECT)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "location",
            flag: "location",
            env: Some("KUP_GKE_LOCATION"),
            help: "the cluster's region (us-central1) or zone (us-central1-a)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "cluster",
            flag: "cluster",
            env: Some("KUP_EKS_CLUSTER"),
            // Shared with eks (one --cluster flag); declared alike.
            help: "the cluster's name",
            kind: SettingKind::Text,
        },
        Setting {
            key: "endpoint_url",
            flag: "endpoint-url",
            env: Some("KUP_EKS_ENDPOINT"),
            help: "an endpoint override (private endpoint, mock); http:// is refused unless it \
                   is loopback or --allow-insecure-endpoint is given",
            kind: SettingKind::Text,
        },
        Setting {
            key: "allow_insecure_endpoint",
            flag: "allow-insecure-endpoint",
            env: None,
            help: "allow an http:// --endpoint-url off loopback (requests and their \
                   credentials then travel in cleartext)",
            kind: SettingKind::Switch,
        },
        Setting {
            key: "anonymous_credentials",
            flag: "anonymous-credentials",
            env: None,
            help: "send no Google credentials (a mock or local emulator at --endpoint-url)",
            kind: SettingKind::Switch,
        },
        Setting {
            key: "blue_green_batch_soak",
            flag: "blue-green-batch-soak",
            env: None,
            help: "blue-green pool upgrades: seconds to soak after each drained batch",
            kind: SettingKind::Text,
        },
        Setting {
            key: "blue_green_node_pool_soak",
            flag: "blue-green-node-pool-soak",
            env: None,
            help: "blue-green pool upgrades: seconds the drained old pool is kept (rollback \
                   stays possible until then)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "control_plane_soak",
            flag: "control-plane-soak",
            env: None,
            help: "minor control-plane upgrades become rollback-safe: seconds they soak \
                   (21600 to 604800), during which `kup rollback` can move the control plane \
                   back",
            kind: SettingKind::Text,
        },
    ],
    build,
};

fn seconds(key: &str, flag: &str, text: Option<&str>) -> Result<Option<Duration>, CliError> {
    text.map(|t| {
        t.trim()
            .trim_end_matches('s')
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| {
                CliError::usage(
                    format!("--{flag}"),
                    format!("{t:?} is not a number of seconds (e.g. 600); kup.yaml key {key}"),
                )
            })
    })
    .transpose()
}

fn build(input: BuildInput<'_>) -> BuildFuture<'_> {
    Box::pin(async move {
        let s = input.settings;
        let location = s
            .text("location")
            .ok_or_else(|| required(&ENTRY, "location", "a region or zone, e.g. us-central1"))?;
        let cluster = s
            .text("cluster")
            .ok_or_else(|| required(&ENTRY, "cluster", "the GKE cluster's name"))?;
        let settings = kup_gke::GkeSettings {
            batch_soak: seconds(
                "blue_green_batch_soak",
                "blue-green-batch-soak",
                s.text("blue_green_batch_soak"),
            )?,
            node_pool_soak: seconds(
                "blue_green_node_pool_soak",
                "blue-green-node-pool-soak",
                s.text("blue_green_node_pool_soak"),
            )?,
            control_plane_soak: seconds(
                "control_plane_soak",
                "control-plane-soak",
                s.text("control_plane_soak"),
            )?,
            ..kup_gke::GkeSettings::default()
        };
        let anonymous = s.switch("anonymous_credentials");
        if anonymous && s.text("endpoint_url").is_none() {
            return Err(CliError::usage(
                "--anonymous-credentials",
                "is only for a mock or emulator: give its --endpoint-url too (GKE itself \
                 refuses unauthenticated calls)",
            ));
        }
        let mut b = if anonymous {
            kup_gke::GkeBuilder::new().anonymous_credentials()
        } else {
            kup_gke::GkeBuilder::from_env()
        }
        .location(location)
        .cluster(cluster)
        .kube_client(input.kube.clone())
        .settings(settings)
        .allow_insecure_endpoint(s.switch("allow_insecure_endpoint"));
        if let Some(p) = s
            .text("project")
            .map(String::from)
            .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
        {
            b = b.project(p);
        }
        if let Some(u) = s.text("endpoint_url") {
            b = b.endpoint(u);
        }
        let warnings = b.cleartext_warning().into_iter().collect();
        let provider = b.build().await.map_err(|e| {
            let message = e.to_string();
            let category = kup_core::Error::from(e).category();
            CliError::Provider { category, message }
        })?;
        Ok(Built {
            provider: Arc::new(provider),
            warnings,
        })
    })
}
