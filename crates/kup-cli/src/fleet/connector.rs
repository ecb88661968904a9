//! How `kup fleet` reaches a member: its entry in the fleet file (the keys of a `kup.yaml`
//! entry), or, for a member with nothing but a name and labels, the `kup.yaml` entry of that
//! name. Each member gets the same journal and lock `kup upgrade` would use on it, so
//! `kup status` and `kup report` on one member show its part of the wave.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kup_core::{PlanOptions, StuckDrainPolicy};
use kup_engine::journal::ConfigMapJournalStore;
use kup_engine::lock::{LeaseLock, LeaseSettings};
use kup_engine::{EngineOptions, KubeCluster};
use kup_fleet::{Connector, Member, MemberCluster};
use kup_kube::drain::DrainOptions;

use crate::args::ClusterArgs;
use crate::commands::STATE_NAMESPACE;
use crate::config;
use crate::error::{CliError, Result};
use crate::target;

/// Members built through the provider registry.
pub struct CliConnector {
    /// The fleet file's directory (relative paths in member entries resolve against it).
    pub base: PathBuf,
    /// `--config`, for members that name a `kup.yaml` entry.
    pub kup_config: Option<PathBuf>,
    /// How nodes are drained.
    pub drain: DrainOptions,
    /// What providers that drain nodes themselves do with a node they cannot drain.
    pub on_stuck_drain: StuckDrainPolicy,
    /// The engine options every member runs with.
    pub options: EngineOptions,
    /// The identity on each member's lock: the same for every run of this fleet from this
    /// state, so a restarted run takes its own locks back before they expire.
    pub holder: String,
    /// Warnings already shown, by member (each is shown once).
    pub shown: std::sync::Mutex<BTreeSet<String>>,
}

impl CliConnector {
    /// The cluster flags `member` stands for.
    fn args(&self, member: &Member) -> Result<ClusterArgs> {
        if member.connection.is_empty() {
            return config::resolve(&ClusterArgs {
                name: Some(member.name.clone()),
                config: self.kup_config.clone(),
                ..ClusterArgs::default()
            });
        }
        let mut entry = member.connection.clone();
        entry.insert(
            "name".into(),
            serde_json::Value::String(member.name.clone()),
        );
        config::from_entry(
            &entry,
            &format!("member {}", member.name),
            &self.base,
            &ClusterArgs::default(),
        )
    }

    async fn build(&self, member: &Member) -> Result<MemberCluster> {
        let args = self.args(member)?;
        let t = target::resolve(&args, &self.drain, self.on_stuck_drain, None, false).await?;
        if let Ok(mut shown) = self.shown.lock()
            && shown.insert(member.name.clone())
        {
            for w in &t.warnings {
                eprintln!("warning: {}: {w}", member.name);
            }
        }
        let cluster = t.provider.cluster_name().to_string();
        let lock = LeaseLock::new(
            t.kube.clone(),
            &cluster,
            LeaseSettings {
                holder: Some(self.holder.clone()),
                ..LeaseSettings::default()
            },
        )?;
        Ok(MemberCluster {
            journal: Arc::new(ConfigMapJournalStore::new(
                t.kube.clone(),
                STATE_NAMESPACE,
                &cluster,
            )),
            lock: Arc::new(lock),
            kube: KubeCluster::from_config(t.kube_config.clone())?,
            node_ops: None,
            provider: t.provider,
            options: self.options.clone(),
            plan_options: PlanOptions::default(),
        })
    }
}

#[async_trait]
impl Connector for CliConnector {
    async fn connect(&self, member: &Member) -> kup_fleet::Result<MemberCluster> {
        self.build(member)
            .await
            .map_err(|e: CliError| kup_fleet::Error::Connect {
                cluster: member.name.clone(),
                message: e.to_string(),
            })
    }
}
