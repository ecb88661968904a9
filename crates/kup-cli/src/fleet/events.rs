//! What `kup fleet run` shows while the wave moves: one line per fleet event and per member
//! step boundary on stderr (several members run at once, so there are no progress bars), or
//! every event as a JSON line with `--events json`.

use std::io::Write;

use kup_core::Event;
use kup_fleet::{ClusterOutcome, FleetEvent, FleetEventSink};

use crate::args::{Cli, EventsFormat};

/// The fleet's events on stderr.
pub struct FleetOutput {
    json: bool,
}

impl FleetOutput {
    /// As the flags ask.
    pub fn new(cli: &Cli) -> Self {
        Self {
            json: cli.events == Some(EventsFormat::Json),
        }
    }
}

/// The line a person watching sees for `event`, if any.
fn line(event: &FleetEvent) -> Option<String> {
    Some(match event {
        FleetEvent::RunStarted { target, resumed } => {
            let verb = if *resumed { "resuming" } else { "starting" };
            format!("fleet: {verb} the upgrade to {target}")
        }
        FleetEvent::StageStarted { stage } => format!("stage {stage}: started"),
        FleetEvent::StageCompleted { stage } => format!("stage {stage}: completed"),
        FleetEvent::ClusterStarted {
            stage,
            cluster,
            attempt,
        } => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt}, resuming its journal)")
            } else {
                String::new()
            };
            format!("[{cluster}] upgrade started in stage {stage}{again}")
        }
        FleetEvent::ClusterFinished { cluster, outcome } => match outcome {
            ClusterOutcome::Succeeded => format!("[{cluster}] upgraded"),
            ClusterOutcome::Failed { message } => format!("[{cluster}] failed: {message}"),
            ClusterOutcome::Skipped { reason } => format!("[{cluster}] skipped: {reason}"),
            ClusterOutcome::Interrupted => {
                format!("[{cluster}] stopped at a safe point; the next run resumes it")
            }
        },
        FleetEvent::Cluster { cluster, engine } => match engine {
            Event::StepStarted { step, description } => {
                format!("[{cluster}] {step}: {description}")
            }
            Event::StepFinished {
                step,
                outcome,
                message,
            } => format!("[{cluster}] {step}: {outcome:?} {message}"),
            Event::Warning { message } => format!("[{cluster}] warning: {message}"),
            _ => return None,
        },
        FleetEvent::WaitingForApproval { stage } => format!(
            "stage {stage}: waiting for approval (`kup fleet approve {stage} --fleet FILE`)"
        ),
        FleetEvent::Soaking { stage, until } => format!("stage {stage}: soaking until {until}"),
        FleetEvent::Halted { reason } => format!("fleet: halted: {reason}"),
        FleetEvent::Interrupted => "fleet: interrupted at a safe point".into(),
        FleetEvent::Completed => "fleet: every stage completed".into(),
        _ => return None,
    })
}

impl FleetEventSink for FleetOutput {
    fn emit(&self, event: FleetEvent) {
        let text = if self.json {
            serde_json::to_string(&event).ok()
        } else {
            line(&event)
        };
        if let Some(text) = text {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}
