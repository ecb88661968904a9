//! Where a fleet run is kept: [`FileFleetJournal`] (`fleet-run.json` in a directory, replaced
//! atomically) or [`MemoryFleetJournal`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::run_state::FleetRun;

/// Loads and saves a fleet run.
#[async_trait]
pub trait FleetJournalStore: Send + Sync + std::fmt::Debug {
    /// The stored run, `None` when there is none.
    async fn load(&self) -> Result<Option<FleetRun>>;
    /// Replaces the stored run.
    async fn save(&self, run: &FleetRun) -> Result<()>;
    /// Removes the stored run.
    async fn clear(&self) -> Result<()>;
    /// Where it is kept, for messages.
    fn describe(&self) -> String;
}

/// A fleet run in memory.
#[derive(Debug, Default)]
pub struct MemoryFleetJournal {
    run: Mutex<Option<FleetRun>>,
    saves: Mutex<usize>,
}

impl MemoryFleetJournal {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Saves so far.
    pub fn saves(&self) -> usize {
        *self
            .saves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<FleetRun>> {
        self.run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl FleetJournalStore for MemoryFleetJournal {
    async fn load(&self) -> Result<Option<FleetRun>> {
        Ok(self.slot().clone())
    }

    async fn save(&self, run: &FleetRun) -> Result<()> {
        *self.slot() = Some(run.clone());
        *self
            .saves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        *self.slot() = None;
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// The file name of the fleet run in its directory.
pub const FLEET_RUN_FILE: &str = "fleet-run.json";

/// A fleet run as `fleet-run.json` in a directory (the controls' files sit beside it).
#[derive(Debug, Clone)]
pub struct FileFleetJournal {
    dir: PathBuf,
}

impl FileFleetJournal {
    /// The journal in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The journal file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FLEET_RUN_FILE)
    }
}

#[async_trait]
impl FleetJournalStore for FileFleetJournal {
    async fn load(&self) -> Result<Option<FleetRun>> {
        read_json(&self.path()).await
    }

    async fn save(&self, run: &FleetRun) -> Result<()> {
        write_json(&self.dir, FLEET_RUN_FILE, run).await
    }

    async fn clear(&self) -> Result<()> {
        remove(&self.path()).await
    }

    fn describe(&self) -> String {
        self.path().display().to_string()
    }
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub(crate) async fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Corrupt {
                path: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "reading",
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes `value` as `dir/name` atomically: a temporary file in the same directory, synced,
/// then renamed over the old one, so a reader sees the old or the new file, never half.
pub(crate) async fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let io = |action: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io("creating the directory", dir))?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Corrupt {
        path: dir.join(name).display().to_string(),
        source,
    })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = dir.join(name);
    {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(io("creating", &tmp))?;
        f.write_all(&bytes).await.map_err(io("writing", &tmp))?;
        f.sync_all().await.map_err(io("syncing", &tmp))?;
    }
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(io("replacing", &target))
}

/// Removes `path`; a missing file is fine.
pub(crate) async fn remove(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "removing",
            path: path.display().to_string(),
            source,
        }),
    }
}
