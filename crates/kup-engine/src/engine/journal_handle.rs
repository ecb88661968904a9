//! The run's journal: the in-memory copy and its store, written after every change, and the
//! event sink that keeps the run's history in it.

use std::sync::{Arc, Mutex as StdMutex};

use kup_core::{Event, EventSink, TimedEvent};
use tokio::sync::Mutex;

use crate::error::Result;
use crate::journal::{Journal, JournalStore};

/// The journal of the running run. Every change is saved before the caller goes on, and
/// saves happen one at a time, in the order of the changes.
pub(crate) struct JournalHandle {
    store: Arc<dyn JournalStore>,
    journal: Mutex<Journal>,
    attempt: u32,
    /// Events since the last save; they join the history with the next save, so recording
    /// them costs no writes of its own (a crash loses only those since the last change).
    pending: Arc<StdMutex<Vec<TimedEvent>>>,
}

impl JournalHandle {
    pub(crate) fn new(store: Arc<dyn JournalStore>, journal: Journal) -> Self {
        Self {
            store,
            attempt: journal.attempts,
            journal: Mutex::new(journal),
            pending: Arc::default(),
        }
    }

    /// A sink that passes events on to `inner` and keeps them for the history.
    pub(crate) fn recording(&self, inner: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        Arc::new(HistorySink {
            inner,
            pending: self.pending.clone(),
        })
    }

    /// Changes the journal and saves it; the change is durable when this returns `Ok`.
    pub(crate) async fn update<R>(&self, change: impl FnOnce(&mut Journal) -> R) -> Result<R> {
        let mut journal = self.journal.lock().await;
        let events = std::mem::take(&mut *lock(&self.pending));
        for event in &events {
            journal.record(self.attempt, event);
        }
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

fn lock(pending: &StdMutex<Vec<TimedEvent>>) -> std::sync::MutexGuard<'_, Vec<TimedEvent>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

struct HistorySink {
    inner: Arc<dyn EventSink>,
    pending: Arc<StdMutex<Vec<TimedEvent>>>,
}

impl EventSink for HistorySink {
    fn emit(&self, event: Event) {
        lock(&self.pending).push(TimedEvent {
            at: jiff::Timestamp::now(),
            event: event.clone(),
        });
        self.inner.emit(event);
    }
}
