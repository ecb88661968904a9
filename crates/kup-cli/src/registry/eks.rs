//! AWS EKS: control plane, managed node groups and add-ons through aws-sdk-eks, credentials
//! from AWS's default chain.

use std::sync::Arc;

use super::{BuildFuture, BuildInput, Built, ProviderEntry, Setting, SettingKind, required};
use crate::error::CliError;

/// The EKS entry.
pub const ENTRY: ProviderEntry = ProviderEntry {
    name: "eks",
    help: "AWS EKS: --cluster, --region; credentials from the AWS default chain",
    settings: &[
        Setting {
            key: "cluster",
            flag: "cluster",
            env: Some("KUP_EKS_CLUSTER"),
            help: "the EKS cluster's name",
            kind: SettingKind::Text,
        },
        Setting {
            key: "region",
            flag: "region",
            env: None,
            help: "the AWS region (default: the AWS environment's)",
            kind: SettingKind::Text,
        },
        Setting {
            key: "endpoint_url",
            flag: "endpoint-url",
            env: Some("KUP_EKS_ENDPOINT"),
            help: "an endpoint override (VPC endpoint, mock); http:// is refused unless it is \
                   loopback or --allow-insecure-endpoint is given",
            kind: SettingKind::Text,
        },
        Setting {
            key: "allow_insecure_endpoint",
            flag: "allow-insecure-endpoint",
            env: None,
            help: "allow an http:// --endpoint-url off loopback (signed requests, session token \
                   included, then travel in cleartext)",
            kind: SettingKind::Switch,
        },
    ],
    build,
};

fn build(input: BuildInput<'_>) -> BuildFuture<'_> {
    Box::pin(async move {
        let s = input.settings;
        let cluster = s
            .text("cluster")
            .ok_or_else(|| required(&ENTRY, "cluster", "the EKS cluster's name"))?;
        let mut b = kup_eks::EksBuilder::from_env()
            .cluster_name(cluster)
            .kube_client(input.kube.clone())
            .allow_insecure_endpoint(s.switch("allow_insecure_endpoint"));
        if let Some(r) = s.text("region") {
            b = b.region(r);
        }
        if let Some(u) = s.text("endpoint_url") {
            b = b.endpoint_url(u);
        }
        let warnings = b.cleartext_warning().into_iter().collect();
        let provider = b.build().await.map_err(CliError::from)?;
        Ok(Built {
            provider: Arc::new(provider),
            warnings,
        })
    })
}
