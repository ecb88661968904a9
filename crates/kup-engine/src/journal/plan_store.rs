//! Where the plan of a run is kept, next to its journal, so that `resume` finds the plan from
//! any machine.
//!
//! The engine saves the plan (see [`crate::EngineBuilder::plan_store`]) only once the run holds
//! the cluster's lock and the journal allows it to start, right before the run's first journal
//! write: a run that is refused (lock held, unfinished run of another plan, invalid plan) never
//! replaces the plan an earlier, unfinished run needs to resume.
//!
//! Stores: [`ConfigMapPlanStore`] (`kup-plan-<cluster>` beside the journal's ConfigMap, the
//! cluster's name sanitised the same way) and [`FilePlanStore`] (a local file, replaced
//! atomically).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, PostParams};
use kup_core::UpgradePlan;

use super::configmap::state_configmap;
use super::file::write_atomically;
use crate::error::{Error, Result};
use crate::names::object_name;

/// The ConfigMap key holding the plan's JSON.
pub const PLAN_CONFIGMAP_KEY: &str = "plan.json";

/// Where a run's plan is kept.
#[async_trait]
pub trait PlanStore: Send + Sync + std::fmt::Debug {
    /// The stored plan, `None` when there is none. A stored plan whose content does not match
    /// its id (edited by hand) is refused.
    async fn load(&self) -> Result<Option<UpgradePlan>>;

    /// Replaces the stored plan.
    async fn save(&self, plan: &UpgradePlan) -> Result<()>;

    /// Where it is kept, for messages (`configmap kube-system/kup-plan-prod`).
    fn describe(&self) -> String;
}

fn parse(store: &str, text: &str) -> Result<UpgradePlan> {
    UpgradePlan::from_json(text).map_err(|e| Error::journal(store, format!("stored plan: {e}")))
}

/// A plan kept in a ConfigMap (`kup-plan-<cluster>`), by default in `kube-system` beside the
/// journal.
#[derive(Debug)]
pub struct ConfigMapPlanStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    cluster: String,
}

impl ConfigMapPlanStore {
    /// The plan of `cluster` in `namespace`, named `kup-plan-<cluster>` (sanitised like the
    /// journal's and the lock's names).
    pub fn new(client: Client, namespace: &str, cluster: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: object_name("kup-plan", cluster),
            cluster: cluster.to_string(),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An API failure keeps the client's error, so that it is classified like every other
    /// (a 403 is a permission problem, a 503 a provider error).
    fn api_err(&self, action: &str, e: kube::Error) -> Error {
        Error::api(format!("{action} plan {}", self.describe()), e)
    }

    fn object(&self, text: String, resource_version: Option<String>) -> ConfigMap {
        state_configmap(
            &self.name,
            &self.namespace,
            &self.cluster,
            (PLAN_CONFIGMAP_KEY, text),
            resource_version,
        )
    }
}

#[async_trait]
impl PlanStore for ConfigMapPlanStore {
    async fn load(&self) -> Result<Option<UpgradePlan>> {
        let Some(cm) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_err("reading", e))?
        else {
            return Ok(None);
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(PLAN_CONFIGMAP_KEY))
            .ok_or_else(|| {
                Error::journal(
                    self.describe(),
                    format!("the ConfigMap has no {PLAN_CONFIGMAP_KEY} key; it is not a kup plan"),
                )
            })?;
        parse(&self.describe(), text).map(Some)
    }

    async fn save(&self, plan: &UpgradePlan) -> Result<()> {
        let text = plan.to_json();
        // Create, or replace what is there; only the lock holder writes, so one re-read after
        // a conflict settles a write that raced a stale read.
        for _ in 0..2 {
            let current = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(|e| self.api_err("reading", e))?;
            let sent = match current {
                None => {
                    self.api
                        .create(&PostParams::default(), &self.object(text.clone(), None))
                        .await
                }
                Some(cm) => {
                    let object = self.object(text.clone(), cm.metadata.resource_version);
                    self.api
                        .replace(&self.name, &PostParams::default(), &object)
                        .await
                }
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(self.api_err("writing", e)),
            }
        }
        Err(Error::journal(
            self.describe(),
            "writing: the ConfigMap kept changing (409 Conflict); another writer is active",
        ))
    }

    fn describe(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }
}

/// A plan kept in one local JSON file, replaced atomically.
#[derive(Clone, Debug)]
pub struct FilePlanStore {
    path: PathBuf,
}

impl FilePlanStore {
    /// Keeps the plan at `path` (its directory is created when needed).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The plan beside a journal file: `prod.json` → `prod.plan.json`.
    pub fn beside_journal(journal: &Path) -> Self {
        Self::new(journal.with_extension("plan.json"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::journal(self.describe(), format!("{what}: {e}"))
    }
}

#[async_trait]
impl PlanStore for FilePlanStore {
    async fn load(&self) -> Result<Option<UpgradePlan>> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => parse(&self.describe(), &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("reading", e)),
        }
    }

    async fn save(&self, plan: &UpgradePlan) -> Result<()> {
        let bytes = plan.to_json().into_bytes();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| self.err("writing", e))?
            .map_err(|e| self.err("writing", e))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::journal::tests::plan;

    /// The test plan with the id kup-core would give it (sha-256 of the plan without id).
    fn sealed() -> UpgradePlan {
        use sha2::Digest;
        let mut p = plan();
        p.id = String::new();
        let digest = sha2::Sha256::digest(serde_json::to_vec(&p).unwrap());
        p.id = hex::encode(&digest[..8]);
        p
    }

    #[tokio::test]
    async fn a_file_store_keeps_the_plan_beside_the_journal_and_refuses_edits() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilePlanStore::beside_journal(&dir.path().join("prod.json"));
        assert_eq!(store.path(), dir.path().join("prod.plan.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let p = sealed();
        store.save(&p).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(p.clone()));
        let edited = std::fs::read_to_string(store.path())
            .unwrap()
            .replace("\"prod\"", "\"other\"");
        std::fs::write(store.path(), edited).unwrap();
        let err = store.load().await.unwrap_err().to_string();
        assert!(err.contains("prod.plan.json"), "{err}");
    }
}
