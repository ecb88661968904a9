//! Azure AKS: control plane and agent pools through Azure Resource Manager, credentials from
//! Azure's default chain (environment service principal, workload identity, managed identity,
//! `az login`).

use std::sync::Arc;

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind, required};
use crate::error::CliError;

/// The AKS entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "aks",
    help: "Azure AKS: --subscription, --resource-group, --cluster; credentials from Azure's \
           default chain",
    settings: &[
        Setting {
            key: "subscription",
            flag: "subscription",
            env: Some("AZURE_SUBSCRIPTION_ID"),
            help: "the Azure subscription id (a GUID)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "resource_group",
            flag: "resource-group",
            env: Some("KUP_AKS_RESOURCE_GROUP"),
            help: "the resource group holding the managed cluster",
            kind: SettingKind::Text,
        },
        Setting {
            key: "cluster",
            flag: "cluster",
            env: None,
            help: "the managed cluster's name",
            kind: SettingKind::Text,
        },
        Setting {
            key: "arm_endpoint",
            flag: "arm-endpoint",
            env: Some("KUP_AKS_ARM_ENDPOINT"),
            help: "Resource Manager's endpoint (a sovereign cloud, a mock); https:// only \
                   (default https://management.azure.com)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "api_version",
            flag: "api-version",
            env: None,
            help: "the Microsoft.ContainerService api-version (default 2026-08-01; stable only)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "arm_ca_file",
            flag: "arm-ca-file",
            env: Some("KUP_AKS_ARM_CA_FILE"),
            help: "a PEM CA to trust for --arm-endpoint besides the system's (a mock, a \
                   TLS-inspecting proxy)",
            kind: SettingKind::Path,
        },
    ],
    build,
};

fn build(input: BuildInput<'_>) -> BuildFuture<'_> {
    Box::pin(async move {
        let s = input.settings;
        let subscription = s
            .text("subscription")
            .ok_or_else(|| required(&ENTRY, "subscription", "the Azure subscription id"))?;
        let resource_group = s
            .text("resource_group")
            .ok_or_else(|| required(&ENTRY, "resource_group", "the cluster's resource group"))?;
        let cluster = s
            .text("cluster")
            .ok_or_else(|| required(&ENTRY, "cluster", "the managed cluster's name"))?;
        let mut b = kup_aks::AksBuilder::from_env()
            .subscription(subscription)
            .resource_group(resource_group)
            .cluster(cluster)
            .kube_client(input.kube.clone())
            .settings(kup_aks::AksSettings {
                drain_timeout: input.drain.timeout,
                on_stuck_drain: input.on_stuck_drain,
                ..kup_aks::AksSettings::default()
            });
        if let Some(u) = s.text("arm_endpoint") {
            b = b.endpoint(u);
        }
        if let Some(v) = s.text("api_version") {
            b = b.api_version(v);
        }
        if let Some(path) = s.path("arm_ca_file") {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(
                    "--arm-ca-file",
                    format!("{} cannot be read: {e}", path.display()),
                )
            })?;
            b = b.ca_certificate_pem(pem);
        }
        let provider = b.build().map_err(CliError::from)?;
        Ok(Built {
            provider: Arc::new(provider),
            warnings: Vec::new(),
        })
    })
}
