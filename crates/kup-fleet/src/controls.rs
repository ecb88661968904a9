//! Controls a person (or another process) gives a fleet run: stage approvals and halt
//! requests. The file implementation writes one small file per request next to the fleet
//! journal (`approve-<stage>.json`, `halt.json`), so `kup fleet approve` and `kup fleet halt`
//! never race the runner's journal writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stage's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The stage.
    pub stage: String,
    /// Who approved.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// A request to halt the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HaltRequest {
    /// Who asked.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

impl Approval {
    /// `stage` approved by `by` now; the stage name must be usable as a file name.
    pub fn now(stage: &str, by: &str) -> Result<Self> {
        check_stage_name(stage)?;
        Ok(Self {
            stage: stage.into(),
            by: by.into(),
            at: Timestamp::now(),
        })
    }
}

impl HaltRequest {
    /// A halt asked for by `by` now, for `reason`.
    pub fn now(by: &str, reason: &str) -> Self {
        Self {
            by: by.into(),
            reason: reason.into(),
            at: Timestamp::now(),
        }
    }

    /// The request in words.
    pub fn describe(&self) -> String {
        format!(
            "halt requested by {} at {}: {}",
            self.by, self.at, self.reason
        )
    }
}

/// The controls as they stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlState {
    /// Approved stages, by name.
    pub approvals: BTreeMap<String, Approval>,
    /// The halt request, if any.
    pub halt: Option<HaltRequest>,
}

/// Where approvals and halt requests are kept.
#[async_trait]
pub trait FleetControls: Send + Sync + std::fmt::Debug {
    /// The controls now.
    async fn state(&self) -> Result<ControlState>;
    /// Approves `stage`.
    async fn approve(&self, stage: &str, by: &str) -> Result<Approval>;
    /// Asks the run to halt.
    async fn request_halt(&self, by: &str, reason: &str) -> Result<HaltRequest>;
    /// Withdraws the halt request (part of a resume).
    async fn clear_halt(&self) -> Result<()>;
}

/// Controls in memory (tests, embedders keeping state themselves).
#[derive(Debug, Default)]
pub struct MemoryFleetControls {
    state: Mutex<ControlState>,
}

impl MemoryFleetControls {
    /// No approvals, no halt.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut ControlState) -> T) -> T {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl FleetControls for MemoryFleetControls {
    async fn state(&self) -> Result<ControlState> {
        Ok(self.with(|s| s.clone()))
    }

    async fn approve(&self, stage: &str, by: &str) -> Result<Approval> {
        let a = Approval::now(stage, by)?;
        self.with(|s| s.approvals.insert(stage.into(), a.clone()));
        Ok(a)
    }

    async fn request_halt(&self, by: &str, reason: &str) -> Result<HaltRequest> {
        let h = HaltRequest::now(by, reason);
        self.with(|s| s.halt = Some(h.clone()));
        Ok(h)
    }

    async fn clear_halt(&self) -> Result<()> {
        self.with(|s| s.halt = None);
        Ok(())
    }
}

fn check_stage_name(stage: &str) -> Result<()> {
    let ok = !stage.is_empty()
        && !stage.starts_with('.')
        && stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest {
            what: "stage".into(),
            message: format!(
                "{stage:?} is not a stage name; accepted: the name of a stage of the fleet spec"
            ),
        })
    }
}

/// Controls as files in a directory: `approve-<stage>.json` per approved stage and
/// `halt.json`, each written atomically (temporary file, then rename).
#[derive(Debug, Clone)]
pub struct FileFleetControls {
    dir: PathBuf,
}

const APPROVE_PREFIX: &str = "approve-";
const HALT_FILE: &str = "halt.json";

impl FileFleetControls {
    /// Controls kept in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl FleetControls for FileFleetControls {
    async fn state(&self) -> Result<ControlState> {
        let mut state = ControlState::default();
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(source) => {
                return Err(Error::Io {
                    action: "reading the directory",
                    path: self.dir.display().to_string(),
                    source,
                });
            }
        };
        loop {
            let entry = entries.next_entry().await.map_err(|source| Error::Io {
                action: "reading the directory",
                path: self.dir.display().to_string(),
                source,
            })?;
            let Some(entry) = entry else { break };
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name == HALT_FILE {
                state.halt = crate::journal::read_json(&path).await?;
            } else if let Some(stage) = name
                .strip_prefix(APPROVE_PREFIX)
                .and_then(|s| s.strip_suffix(".json"))
                && let Some(a) = crate::journal::read_json::<Approval>(&path).await?
            {
                state.approvals.insert(stage.to_string(), a);
            }
        }
        Ok(state)
    }

    async fn approve(&self, stage: &str, by: &str) -> Result<Approval> {
        let a = Approval::now(stage, by)?;
        crate::journal::write_json(&self.dir, &format!("{APPROVE_PREFIX}{stage}.json"), &a).await?;
        Ok(a)
    }

    async fn request_halt(&self, by: &str, reason: &str) -> Result<HaltRequest> {
        let h = HaltRequest::now(by, reason);
        crate::journal::write_json(&self.dir, HALT_FILE, &h).await?;
        Ok(h)
    }

    async fn clear_halt(&self) -> Result<()> {
        crate::journal::remove(&self.dir.join(HALT_FILE)).await
    }
}
