//! The run's journal: the in-memory copy and its store, written after every change.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::error::Result;
use crate::journal::{Journal, JournalStore};

/// The journal of the running run. Every change is saved before the caller goes on, and
/// saves happen one at a time, in the order of the changes.
pub(crate) struct JournalHandle {
    store: Arc<dyn JournalStore>,
    journal: Mutex<Journal>,
}

impl JournalHandle {
    pub(crate) fn new(store: Arc<dyn JournalStore>, journal: Journal) -> Self {
        Self {
            store,
            journal: Mutex::new(journal),
        }
    }

    /// Changes the journal and saves it; the change is durable when this returns `Ok`.
    pub(crate) async fn update<R>(&self, change: impl FnOnce(&mut Journal) -> R) -> Result<R> {
        let mut journal = self.journal.lock().await;
        let out = change(&mut journal);
        journal.updated_at = jiff::Timestamp::now();
        // The lock is held across the save so that saves land in the order of the changes.
        self.store.save(&journal).await?;
        Ok(out)
    }

    /// Reads the journal.
    pub(crate) async fn read<R>(&self, read: impl FnOnce(&Journal) -> R) -> R {
        read(&*self.journal.lock().await)
    }

    /// A copy of the journal.
    pub(crate) async fn snapshot(&self) -> Journal {
        self.journal.lock().await.clone()
    }
}
