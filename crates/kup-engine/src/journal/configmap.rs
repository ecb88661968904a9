//! A journal kept in the cluster, in a ConfigMap: every update carries the resourceVersion
//! last read or written, so a write by anyone else shows up as a 409 and stops the run
//! instead of being overwritten.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::sync::Mutex;

use super::file::parse;
use super::{Journal, JournalStore};
use kup_kube::kube_error::{self, KubeErrorKind};

use crate::backoff::{BackoffPolicy, retry};
use crate::error::{Error, Result};
use crate::names::{label_value, object_name};

/// The ConfigMap key holding the journal's JSON.
pub const CONFIGMAP_KEY: &str = "journal.json";

/// The largest journal the store writes. A ConfigMap holds at most 1 MiB (1,048,576 bytes)
/// including its metadata; the journal stays far below (finished nodes are dropped from it
/// and messages are cut), and a journal past this limit is refused with a clear error rather
/// than rejected by the API server halfway through a run.
pub const MAX_CONFIGMAP_JOURNAL_BYTES: usize = 1_000_000;

/// A journal kept in a ConfigMap (`kup-journal-<cluster>` in `kube-system` by default).
#[derive(Debug)]
pub struct ConfigMapJournalStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    cluster: String,
    retry: BackoffPolicy,
    /// The resourceVersion last read or written; `None` when the ConfigMap does not exist.
    resource_version: Mutex<Option<String>>,
}

impl ConfigMapJournalStore {
    /// The journal of `cluster` in `namespace`, named `kup-journal-<cluster>`.
    pub fn new(client: Client, namespace: &str, cluster: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: object_name("kup-journal", cluster),
            cluster: cluster.to_string(),
            retry: BackoffPolicy::default(),
            resource_version: Mutex::new(None),
        }
    }

    /// Retries transient API errors with `policy`.
    pub fn with_retry(mut self, policy: BackoffPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An API failure keeps the client's error, so that it is classified like every other
    /// (a 403 is a permission problem, a 503 a provider error).
    fn api_err(&self, action: &str, e: kube::Error) -> Error {
        Error::api(format!("{action} journal {}", self.describe()), e)
    }

    fn object(&self, text: String, resource_version: Option<String>) -> ConfigMap {
        state_configmap(
            &self.name,
            &self.namespace,
            &self.cluster,
            (CONFIGMAP_KEY, text),
            resource_version,
        )
    }

    /// After a 409: when the stored content is what we meant to write, an earlier attempt
    /// whose answer was lost did land; adopt it. Otherwise someone else wrote.
    async fn settle_conflict(&self, text: &str) -> Result<Option<String>> {
        let current = retry(&self.retry, || self.api.get_opt(&self.name))
            .await
            .map_err(|e| self.api_err("reading after a conflict", e))?;
        match current {
            Some(cm)
                if cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(CONFIGMAP_KEY))
                    .is_some_and(|stored| stored == text) =>
            {
                Ok(cm.metadata.resource_version)
            }
            _ => Err(Error::JournalConflict {
                store: self.describe(),
            }),
        }
    }
}

#[async_trait]
impl JournalStore for ConfigMapJournalStore {
    async fn load(&self) -> Result<Option<Journal>> {
        let mut rv = self.resource_version.lock().await;
        let found = retry(&self.retry, || self.api.get_opt(&self.name))
            .await
            .map_err(|e| self.api_err("reading", e))?;
        let Some(cm) = found else {
            *rv = None;
            return Ok(None);
        };
        *rv = cm.metadata.resource_version.clone();
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIGMAP_KEY))
            .ok_or_else(|| {
                Error::journal(
                    self.describe(),
                    format!("the ConfigMap has no {CONFIGMAP_KEY} key; it is not a kup journal"),
                )
            })?;
        parse(&self.describe(), text).map(Some)
    }

    async fn save(&self, journal: &Journal) -> Result<()> {
        let text = serde_json::to_string(journal)
            .map_err(|e| Error::journal(self.describe(), format!("encoding: {e}")))?;
        if text.len() > MAX_CONFIGMAP_JOURNAL_BYTES {
            return Err(Error::journal(
                self.describe(),
                format!(
                    "the journal is {} bytes, more than the {MAX_CONFIGMAP_JOURNAL_BYTES} a \
                     ConfigMap can hold (1 MiB with metadata); keep the journal in a file instead",
                    text.len()
                ),
            ));
        }
        let mut rv = self.resource_version.lock().await;
        // Transient failures are retried as they are; a 409 is never retried blindly: the
        // ConfigMap is read again, and unless it holds exactly our text (an earlier attempt
        // whose answer was lost), someone else wrote and the run stops.
        let sent = retry(&self.retry, || async {
            let object = self.object(text.clone(), rv.clone());
            match rv.as_ref() {
                Some(_) => {
                    self.api
                        .replace(&self.name, &PostParams::default(), &object)
                        .await
                }
                None => self.api.create(&PostParams::default(), &object).await,
            }
        })
        .await;
        match sent {
            Ok(cm) => {
                *rv = cm.metadata.resource_version;
                Ok(())
            }
            Err(e) => match kube_error::classify(&e).kind {
                KubeErrorKind::Conflict | KubeErrorKind::AlreadyExists => {
                    *rv = self.settle_conflict(&text).await?;
                    Ok(())
                }
                // Replaced while it was deleted: whoever deleted it is another writer.
                KubeErrorKind::NotFound => Err(Error::JournalConflict {
                    store: self.describe(),
                }),
                _ => Err(self.api_err("writing", e)),
            },
        }
    }

    async fn clear(&self) -> Result<()> {
        let mut rv = self.resource_version.lock().await;
        let params = DeleteParams::default();
        match retry(&self.retry, || self.api.delete(&self.name, &params)).await {
            Ok(_) => {}
            Err(e) if kube_error::classify(&e).kind == KubeErrorKind::NotFound => {}
            Err(e) => return Err(self.api_err("deleting", e)),
        }
        *rv = None;
        Ok(())
    }

    fn in_cluster(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }
}

/// One of kup's state ConfigMaps (journal, stored plan): named, labelled as kup's for the
/// cluster, holding `data` under its key.
pub(crate) fn state_configmap(
    name: &str,
    namespace: &str,
    cluster: &str,
    data: (&str, String),
    resource_version: Option<String>,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            resource_version,
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "kup".to_string(),
                ),
                ("kup.dev/cluster".to_string(), label_value(cluster)),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(data.0.to_string(), data.1)])),
        ..ConfigMap::default()
    }
}
