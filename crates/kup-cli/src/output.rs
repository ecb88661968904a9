//! Rendering results (tables, JSON, YAML) and events (progress on a terminal, JSON lines,
//! webhooks).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kup_core::{Event, EventSink, Outcome, TimedEvent};
use serde::Serialize;

use crate::args::Format;
use crate::error::{CliError, Result};

/// Prints `value` as JSON or YAML, or `table` for `-o table`.
pub fn emit<T: Serialize>(format: Format, value: &T, table: impl FnOnce() -> String) -> Result<()> {
    let text = match format {
        Format::Table => table(),
        Format::Json => serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Failed(format!("cannot render JSON: {e}")))?,
        Format::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| CliError::Failed(format!("cannot render YAML: {e}")))?,
        Format::Markdown | Format::Html => {
            return Err(CliError::usage(
                "--output",
                "markdown and html are the change-review document, offered by `kup plan` and \
                 `kup report`; this command accepts table, json or yaml",
            ));
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end());
    Ok(())
}

/// Prints `runbook` in the document formats (`-o markdown`, `-o html`), or as the other
/// formats would print `value`.
pub fn emit_document<T: Serialize>(
    format: Format,
    value: &T,
    runbook: impl FnOnce() -> kup_engine::Runbook,
    table: impl FnOnce() -> String,
) -> Result<()> {
    let text = match format {
        Format::Markdown => runbook().to_markdown(),
        Format::Html => runbook().to_html(),
        other => return emit(other, value, table),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end());
    Ok(())
}

/// Shows warnings about how kup reaches the cluster (a cleartext endpoint, a kubeconfig that
/// skips TLS verification) on stderr: as `warning` events with `--events json`, else as
/// `warning:` lines.
pub fn warn(cli: &crate::args::Cli, warnings: &[String]) {
    for message in warnings {
        if cli.events == Some(crate::args::EventsFormat::Json) {
            JsonLines.emit(Event::Warning {
                message: message.clone(),
            });
        } else {
            eprintln!("warning: {message}");
        }
    }
}

/// A simple aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

/// Parses `90s`, `10m`, `1h`, `500ms` or plain seconds; errors name `field`.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| (&t[..i], &t[i..]));
    let n: f64 = num.parse().map_err(|_| {
        CliError::usage(
            field,
            format!("{text:?} is not a duration; use e.g. 90s, 10m, 1h"),
        )
    })?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(CliError::usage(
                field,
                format!("{text:?} has unit {unit:?}; accepted units: ms, s, m, h"),
            ));
        }
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| CliError::usage(field, format!("{text:?} is out of range")))
}

/// Human progress on stderr: a line per step, node and finding; a spinner saying what is
/// being waited on (a cloud operation, a PDB blocking a pod, a validation round).
pub struct Progress {
    bar: Option<ProgressBar>,
    out: Mutex<()>,
}

impl Progress {
    /// A spinner on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self {
            bar,
            out: Mutex::new(()),
        }
    }

    /// Prints a line above the spinner.
    pub fn line(&self, text: impl AsRef<str>) {
        let _guard = self.out.lock();
        match &self.bar {
            Some(b) => b.println(text.as_ref()),
            None => eprintln!("{}", text.as_ref()),
        }
    }

    fn waiting(&self, text: String) {
        if let Some(b) = &self.bar {
            b.set_message(text);
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "✓",
        Outcome::Skipped => "–",
        Outcome::Failed => "✗",
        Outcome::Cancelled => "⊘",
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        match event {
            Event::RunStarted {
                plan_id,
                cluster,
                dry_run,
            } => self.line(format!(
                "{} plan {plan_id} on {cluster}",
                if dry_run { "dry run of" } else { "running" }
            )),
            Event::StepStarted { step, description } => {
                self.line(format!("  [{step}] {description}"));
                self.waiting(description);
            }
            Event::StepProgress { message, .. } => self.waiting(message),
            Event::StepFinished {
                step,
                outcome,
                message,
            } => self.line(format!("  [{step}] {} {message}", mark(outcome))),
            Event::Finding { finding } => self.line(format!(
                "      {} {}: {}",
                finding.severity, finding.code, finding.message
            )),
            Event::OperationStarted {
                operation,
                reattached,
            } => self.line(format!(
                "      {} {} operation {}",
                if reattached {
                    "re-attached to"
                } else {
                    "started"
                },
                operation.target,
                operation.id
            )),
            Event::OperationProgress {
                operation_id,
                status,
            } => self.waiting(format!(
                "waiting for provider operation {operation_id}: {status:?}"
            )),
            Event::BackupVerified { backup } => self.line(format!(
                "      backup {} verified at {}",
                backup.id, backup.location
            )),
            Event::NodeCordoned { node, was_cordoned } if !was_cordoned => {
                self.line(format!("      cordoned {node}"))
            }
            Event::DrainStarted { node, pods } => {
                self.waiting(format!("draining {node}: {pods} pod(s)"))
            }
            Event::PodBlocked {
                namespace,
                name,
                pdb,
                message,
                ..
            } => self.waiting(format!(
                "eviction of {namespace}/{name} blocked by PDB {}: {message}",
                pdb.unwrap_or_else(|| "?".into())
            )),
            Event::NodeDrained {
                node,
                evicted,
                elapsed_ms,
                ..
            } => self.line(format!(
                "      drained {node}: {evicted} evicted in {:.1}s",
                elapsed_ms as f64 / 1000.0
            )),
            Event::DrainTimedOut { node, remaining } => self.line(format!(
                "      drain of {node} timed out; still there: {}",
                remaining.join(", ")
            )),
            Event::NodeUpgraded { node, version } => {
                self.line(format!("      {node} is at {version}"))
            }
            Event::NodeUncordoned { node } => self.line(format!("      uncordoned {node}")),
            Event::NodeLeftCordoned { node, reason } => {
                self.line(format!("      {node} left cordoned: {reason}"))
            }
            Event::ValidationRound {
                round,
                passed,
                consecutive,
                required,
                failures,
            } => self.waiting(format!(
                "validation round {round}: {} ({consecutive}/{required} consecutive){}",
                if passed { "passed" } else { "failed" },
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(": {}", failures.join("; "))
                }
            )),
            Event::Warning { message } => self.line(format!("      warning: {message}")),
            Event::RunFinished { outcome, message } => {
                self.finish();
                self.line(format!("{} {message}", mark(outcome)));
            }
            _ => {}
        }
    }
}

/// JSON lines on stderr, one per event, with its time.
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: Event) {
        let timed = kup_engine::events::timed(event);
        if let Ok(line) = serde_json::to_string(&timed) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// Posts each event as JSON to a URL, in order, from a background task; a webhook that fails
/// is reported once and never stops the run.
pub struct Webhook {
    tx: tokio::sync::mpsc::UnboundedSender<TimedEvent>,
}

impl Webhook {
    /// Starts posting to `url`.
    pub fn start(url: &str) -> Result<(Self, tokio::task::JoinHandle<()>)> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| CliError::usage("--notify-url", format!("{url:?} is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(CliError::usage(
                "--notify-url",
                "must be an http:// or https:// URL",
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| CliError::Failed(format!("cannot set up TLS for --notify-url: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TimedEvent>();
        let task = tokio::spawn(async move {
            let mut warned = false;
            while let Some(event) = rx.recv().await {
                let Ok(body) = serde_json::to_vec(&event) else {
                    continue;
                };
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)));
                let Ok(request) = request else { continue };
                let sent =
                    tokio::time::timeout(Duration::from_secs(10), client.request(request)).await;
                let ok = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
                if !ok && !warned {
                    warned = true;
                    tracing::warn!("--notify-url: an event could not be delivered; continuing");
                }
            }
        });
        Ok((Self { tx }, task))
    }
}

impl EventSink for Webhook {
    fn emit(&self, event: Event) {
        let _ = self.tx.send(kup_engine::events::timed(event));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_name_the_flag() {
        assert_eq!(
            parse_duration("--timeout", "90s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("--timeout", "10m").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            parse_duration("--timeout", "45").unwrap(),
            Duration::from_secs(45)
        );
        assert_eq!(
            parse_duration("--timeout", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        let e = parse_duration("--drain-timeout", "10 minutes").unwrap_err();
        assert!(
            e.to_string().contains("--drain-timeout") && e.to_string().contains("ms, s, m, h"),
            "{e}"
        );
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y");
    }
}
