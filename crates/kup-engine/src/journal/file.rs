//! A journal in a local file, replaced atomically: written to a temporary file in the same
//! directory, flushed to disk, then renamed over the old one.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{JOURNAL_SCHEMA_VERSION, Journal, JournalStore};
use crate::error::{Error, Result};

/// A journal kept in one JSON file.
#[derive(Clone, Debug)]
pub struct FileJournalStore {
    path: PathBuf,
}

impl FileJournalStore {
    /// Keeps the journal at `path` (its directory is created when needed).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::journal(self.describe(), format!("{what}: {e}"))
    }
}

/// Parses a stored journal, refusing other schema versions.
pub(crate) fn parse(store: &str, text: &str) -> Result<Journal> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::journal(store, format!("not a kup journal: {e}")))?;
    let schema = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    if schema != Some(u64::from(JOURNAL_SCHEMA_VERSION)) {
        return Err(Error::journal(
            store,
            format!(
                "journal schema version {} is not supported; this kup reads version \
                 {JOURNAL_SCHEMA_VERSION}",
                schema.map_or_else(|| "missing".to_string(), |s| s.to_string())
            ),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Error::journal(store, format!("not a kup journal: {e}")))
}

#[async_trait]
impl JournalStore for FileJournalStore {
    async fn load(&self) -> Result<Option<Journal>> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
            .await
            .map_err(|e| self.err("reading", e))?;
        match read {
            Ok(text) => parse(&self.describe(), &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("reading", e)),
        }
    }

    async fn save(&self, journal: &Journal) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(journal).map_err(|e| self.err("encoding", e))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| self.err("writing", e))?
            .map_err(|e| self.err("writing", e))
    }

    async fn clear(&self) -> Result<()> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("removing", e)),
        }
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::journal::tests::plan;

    #[tokio::test]
    async fn saves_loads_replaces_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileJournalStore::new(dir.path().join("nested/prod.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let mut j = Journal::new(&plan(), "h1");
        store.save(&j).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(j.clone()));
        j.attempts = 2;
        store.save(&j).await.unwrap();
        assert_eq!(store.load().await.unwrap().unwrap().attempts, 2);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["prod.json".to_string()]);
        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
        store.clear().await.unwrap();
    }

    #[tokio::test]
    async fn garbage_and_other_schemas_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        let store = FileJournalStore::new(&path);
        std::fs::write(&path, "not json").unwrap();
        let err = store.load().await.unwrap_err().to_string();
        assert!(
            err.contains("j.json") && err.contains("not a kup journal"),
            "{err}"
        );
        std::fs::write(&path, r#"{"schema_version": 9}"#).unwrap();
        let err = store.load().await.unwrap_err().to_string();
        assert!(err.contains("schema version 9"), "{err}");
    }
}
