//! The runbook as Markdown: GitHub-style task lists a change board can read and tick.

use std::fmt::Write as _;

use super::{
    BACKUP_COLUMNS, CheckItem, NODE_COLUMNS, Runbook, backup_row, clock, finding_text, when,
};
use crate::journal::RunState;

impl Runbook {
    /// The document as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let title = if self.state.is_some() {
            "Upgrade report"
        } else {
            "Upgrade runbook"
        };
        let _ = writeln!(
            out,
            "# {title}: {} cluster {}, {} → {}\n",
            self.provider,
            md(&self.cluster),
            self.from,
            self.target
        );
        let _ = writeln!(out, "- Plan: `{}`", self.plan_id);
        if let (Some(state), Some(run)) = (&self.state, &self.run) {
            let _ = writeln!(out, "- Outcome: {}", md(&outcome(state)));
            let _ = writeln!(
                out,
                "- Started {}, last recorded {} ({} attempt{})",
                when(run.started_at),
                when(run.updated_at),
                run.attempts,
                if run.attempts == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(out, "- Approved by: ______  Date: ______\n");

        let _ = writeln!(out, "## Before the change\n");
        for item in &self.prerequisites {
            let _ = writeln!(out, "{}", check_line(item, 0));
        }

        let _ = writeln!(out, "\n## Steps\n");
        for step in &self.steps {
            let mut head = step.check.clone();
            head.text = format!("**{}.** {}", step.index, md(&step.description));
            let _ = writeln!(out, "{}", check_line_raw(&head, 0));
            for item in &step.items {
                let _ = writeln!(out, "{}", check_line(item, 1));
            }
        }

        if !self.nodes.is_empty() {
            let _ = writeln!(out, "\n## Nodes\n");
            table(&mut out, &NODE_COLUMNS, self.nodes.iter().map(|n| n.row()));
        }

        if !self.cordoned.is_empty() {
            let _ = writeln!(out, "\n## Still cordoned\n");
            for c in &self.cordoned {
                let _ = writeln!(out, "- {}", md(c));
            }
        }

        if !self.findings.is_empty() {
            let _ = writeln!(out, "\n## Pre-flight findings\n");
            for f in &self.findings {
                let _ = writeln!(out, "- **{}** {}", f.severity, md(&finding_text(f)));
            }
        }

        if !self.backups.is_empty() {
            let _ = writeln!(out, "\n## Backups\n");
            table(
                &mut out,
                &BACKUP_COLUMNS,
                self.backups.iter().map(backup_row),
            );
        }

        if !self.validations.is_empty() {
            let _ = writeln!(out, "\n## Validation rounds\n");
            for v in &self.validations {
                let _ = writeln!(out, "- {}", md(&v.line()));
            }
        }

        let _ = writeln!(out, "\n## Rollback\n");
        for (i, r) in self.rollback.iter().enumerate() {
            let _ = writeln!(out, "{}. {}", i + 1, md(r));
        }
        if self.history_dropped > 0 {
            let _ = writeln!(
                out,
                "\n_The journal dropped its {} oldest history entries to stay small._",
                self.history_dropped
            );
        }
        out
    }
}

pub(super) fn outcome(state: &RunState) -> String {
    match state {
        RunState::Running => "interrupted or still running (`kup resume` continues it)".into(),
        other => other.to_string(),
    }
}

/// A Markdown table of plain-text cells.
fn table<const N: usize>(
    out: &mut String,
    columns: &[&str; N],
    rows: impl Iterator<Item = [String; N]>,
) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(N));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn check_line(item: &CheckItem, depth: usize) -> String {
    let mut item = item.clone();
    item.text = md(&item.text);
    check_line_raw(&item, depth)
}

fn check_line_raw(item: &CheckItem, depth: usize) -> String {
    let mut line = format!(
        "{}- [{}] {}",
        "  ".repeat(depth),
        if item.done { "x" } else { " " },
        item.text
    );
    if let Some(at) = item.at {
        let _ = write!(line, " — {}", clock(at));
    }
    if let Some(note) = &item.note {
        let _ = write!(line, " ({})", md(note));
    }
    line
}

/// Text safe inside Markdown: characters that would start markup are escaped, newlines
/// become spaces (a message must not end a list item or a table row).
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '|' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
