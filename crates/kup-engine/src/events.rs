//! Observers of a run: a channel for async consumers (progress bars, webhooks), JSON lines
//! for logs, fan-out to several sinks, and a recorder for embedders and tests.
//!
//! Every sink receives [`kup_core::Event`]s; the ones that keep or send events stamp them as
//! [`TimedEvent`]s, whose JSON form is one line per event:
//! `{"at":"2026-…Z","event":"node_cordoned","node":"w1","was_cordoned":false}`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kup_core::{Event, EventSink, TimedEvent};
use tokio::sync::mpsc;

/// Stamps an event with the current time.
pub fn timed(event: Event) -> TimedEvent {
    TimedEvent {
        at: jiff::Timestamp::now(),
        event,
    }
}

/// Sends every event, stamped, into a tokio channel. Never blocks the run: the channel is
/// unbounded and a closed receiver is ignored.
#[derive(Clone, Debug)]
pub struct ChannelSink {
    tx: mpsc::UnboundedSender<TimedEvent>,
}

/// A sink and the receiver its events arrive on.
pub fn channel() -> (ChannelSink, mpsc::UnboundedReceiver<TimedEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ChannelSink { tx }, rx)
}

impl EventSink for ChannelSink {
    fn emit(&self, event: Event) {
        // A receiver that went away (a closed progress display) must not stop the upgrade.
        let _ = self.tx.send(timed(event));
    }
}

/// Writes each event as one JSON line (a [`TimedEvent`]) to a writer, flushing after each.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send> std::fmt::Debug for JsonLines<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines").finish_non_exhaustive()
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn emit(&self, event: Event) {
        let Ok(line) = serde_json::to_string(&timed(event)) else {
            return;
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk or closed pipe must not stop the upgrade; the journal is the record.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

/// Sends every event to each of several sinks, in order.
#[derive(Clone, Default)]
pub struct Fanout {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Fanout {
    /// No sinks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }
}

impl EventSink for Fanout {
    fn emit(&self, event: Event) {
        if let Some((last, rest)) = self.sinks.split_last() {
            for sink in rest {
                sink.emit(event.clone());
            }
            last.emit(event);
        }
    }
}

/// Keeps every event, stamped, in memory.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<TimedEvent>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.lock().iter().map(|t| t.event.clone()).collect()
    }

    /// Every event so far with its time.
    pub fn timed_events(&self) -> Vec<TimedEvent> {
        self.lock().clone()
    }

    /// How many events `pred` accepts.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.lock().iter().filter(|t| pred(&t.event)).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TimedEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.lock().push(timed(event));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cordoned(node: &str) -> Event {
        Event::NodeCordoned {
            node: node.into(),
            was_cordoned: false,
        }
    }

    #[tokio::test]
    async fn channel_delivers_stamped_events_and_survives_a_closed_receiver() {
        let (sink, mut rx) = channel();
        sink.emit(cordoned("w1"));
        let got = rx.recv().await.unwrap();
        assert_eq!(got.event, cordoned("w1"));
        drop(rx);
        sink.emit(cordoned("w2"));
    }

    #[test]
    fn json_lines_are_one_timed_event_per_line() {
        let sink = JsonLines::new(Vec::new());
        sink.emit(cordoned("w1"));
        sink.emit(Event::NodeUncordoned { node: "w1".into() });
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: TimedEvent = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first.event, cordoned("w1"));
        assert!(
            lines[1].contains("\"event\":\"node_uncordoned\""),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("\"at\":"), "{}", lines[1]);
    }

    #[test]
    fn fanout_reaches_every_sink() {
        let a = Arc::new(Recorder::new());
        let b = Arc::new(Recorder::new());
        let fan = Fanout::new().with(a.clone()).with(b.clone());
        fan.emit(cordoned("w1"));
        assert_eq!(a.events(), vec![cordoned("w1")]);
        assert_eq!(b.events(), vec![cordoned("w1")]);
    }
}
