//! A journal kept in memory, for embedders that persist state their own way, and for tests.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Journal, JournalStore};
use crate::error::Result;

/// A journal in memory. Clones share it, so a clone given to a second engine sees what the
/// first wrote (as a restarted process would read a file).
#[derive(Clone, Debug, Default)]
pub struct MemoryJournalStore {
    journal: Arc<Mutex<Option<Journal>>>,
    saves: Arc<Mutex<u64>>,
}

impl MemoryJournalStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The journal as last saved.
    pub fn get(&self) -> Option<Journal> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times it was saved.
    pub fn saves(&self) -> u64 {
        *self.saves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl JournalStore for MemoryJournalStore {
    async fn load(&self) -> Result<Option<Journal>> {
        Ok(self.get())
    }

    async fn save(&self, journal: &Journal) -> Result<()> {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = Some(journal.clone());
        *self.saves.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }

    async fn clear(&self) -> Result<()> {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
