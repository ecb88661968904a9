//! The runbook as one self-contained HTML file: the checklist, the tables, and a timeline of
//! steps and nodes against time (an inline SVG) where waits on PodDisruptionBudgets show.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::markdown::outcome;
use super::{
    BACKUP_COLUMNS, CheckItem, NODE_COLUMNS, Runbook, backup_row, clock, duration, finding_text,
    when,
};

const WIDTH: f64 = 960.0;
const LABEL: f64 = 220.0;
const ROW: f64 = 22.0;

impl Runbook {
    /// The document as one HTML file (no scripts, no external resources).
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let title = format!(
            "{} {} cluster {}, {} → {}",
            if self.state.is_some() {
                "Upgrade report:"
            } else {
                "Upgrade runbook:"
            },
            self.provider,
            self.cluster,
            self.from,
            self.target
        );
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<ul class=\"meta\">\
             <li>Plan <code>{}</code></li>",
            esc(&title),
            esc(&title),
            esc(&self.plan_id)
        );
        if let (Some(state), Some(run)) = (&self.state, &self.run) {
            let _ = write!(
                out,
                "<li>Outcome: <strong>{}</strong></li><li>Started {}, last recorded {} ({} attempt{})</li>",
                esc(&outcome(state)),
                when(run.started_at),
                when(run.updated_at),
                run.attempts,
                if run.attempts == 1 { "" } else { "s" }
            );
        }
        out.push_str("<li>Approved by: ______ Date: ______</li></ul>\n");

        out.push_str("<h2>Before the change</h2>\n<ul class=\"checks\">");
        for item in &self.prerequisites {
            check(&mut out, item);
        }
        out.push_str("</ul>\n<h2>Steps</h2>\n<ol class=\"steps\">");
        for step in &self.steps {
            let _ = write!(
                out,
                "<li id=\"step-{}\" class=\"step {}\"><span class=\"box\">{}</span> {}",
                step.index,
                step.state
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or_else(|| "planned".into()),
                if step.check.done { "☑" } else { "☐" },
                esc(&step.description)
            );
            detail(&mut out, &step.check);
            if !step.items.is_empty() {
                out.push_str("<ul class=\"checks\">");
                for item in &step.items {
                    check(&mut out, item);
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>\n");

        if let Some(svg) = self.timeline() {
            out.push_str("<h2>Timeline</h2>\n");
            out.push_str(&svg);
        }

        if !self.nodes.is_empty() {
            out.push_str("<h2>Nodes</h2>\n");
            table(&mut out, &NODE_COLUMNS, self.nodes.iter().map(|n| n.row()));
        }
        if !self.cordoned.is_empty() {
            out.push_str("<h2>Still cordoned</h2>\n<ul>");
            for c in &self.cordoned {
                let _ = write!(out, "<li>{}</li>", esc(c));
            }
            out.push_str("</ul>\n");
        }
        if !self.findings.is_empty() {
            out.push_str("<h2>Pre-flight findings</h2>\n<ul class=\"findings\">");
            for f in &self.findings {
                let _ = write!(
                    out,
                    "<li class=\"{}\"><strong>{}</strong> {}</li>",
                    f.severity,
                    f.severity,
                    esc(&finding_text(f))
                );
            }
            out.push_str("</ul>\n");
        }
        if !self.backups.is_empty() {
            out.push_str("<h2>Backups</h2>\n");
            table(
                &mut out,
                &BACKUP_COLUMNS,
                self.backups.iter().map(backup_row),
            );
        }
        if !self.validations.is_empty() {
            out.push_str("<h2>Validation rounds</h2>\n<ul class=\"validations\">");
            for v in &self.validations {
                let _ = write!(
                    out,
                    "<li class=\"{}\">{}</li>",
                    if v.passed { "passed" } else { "failed" },
                    esc(&v.line())
                );
            }
            out.push_str("</ul>\n");
        }
        out.push_str("<h2>Rollback</h2>\n<ol class=\"rollback\">");
        for r in &self.rollback {
            let _ = write!(out, "<li>{}</li>", esc(r));
        }
        out.push_str("</ol>\n</body>\n</html>\n");
        out
    }

    /// The timeline: a row per step and per node, bars from start to end, drains and PDB
    /// waits drawn over the node's bar. `None` before the run started.
    fn timeline(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        let start = run.started_at;
        let mut end = run.updated_at;
        for n in &self.nodes {
            end = end.max(n.end().unwrap_or(end));
        }
        let span = ((end.as_millisecond() - start.as_millisecond()).max(1000)) as f64;
        let x = |t: Timestamp| {
            LABEL + (t.as_millisecond() - start.as_millisecond()) as f64 / span * (WIDTH - LABEL)
        };
        let rows = self.steps.len() + self.nodes.len();
        let height = (rows as f64 + 2.0) * ROW;
        let mut svg = format!(
            "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
             height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
             aria-label=\"steps and nodes against time\">"
        );
        let _ = write!(
            svg,
            "<text x=\"{LABEL}\" y=\"14\" class=\"axis\">{}</text>\
             <text x=\"{WIDTH}\" y=\"14\" class=\"axis\" text-anchor=\"end\">{}</text>",
            clock(start),
            clock(end)
        );
        let mut y = ROW;
        for step in &self.steps {
            let _ = write!(
                svg,
                "<text x=\"4\" y=\"{}\" class=\"label\">{}. {}</text>",
                y + 15.0,
                step.index,
                esc(&truncate(&step.description, 30))
            );
            if let Some(from) = step.started_at {
                let to = step.check.at.unwrap_or(end);
                let _ = write!(
                    svg,
                    "<rect class=\"bar step {}\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\">\
                     <title>step {}: {} – {}</title></rect>",
                    step.state
                        .map(|s| format!("{s:?}").to_lowercase())
                        .unwrap_or_default(),
                    x(from),
                    y + 4.0,
                    (x(to) - x(from)).max(2.0),
                    step.index,
                    clock(from),
                    clock(to)
                );
            }
            y += ROW;
        }
        for n in &self.nodes {
            let _ = write!(
                svg,
                "<text x=\"4\" y=\"{}\" class=\"label\">{}</text>",
                y + 15.0,
                esc(&truncate(&n.node, 30))
            );
            if let Some(from) = n.start() {
                let to = n.end().unwrap_or(end);
                let _ = write!(
                    svg,
                    "<rect class=\"bar node\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\">\
                     <title>{}: {} – {}</title></rect>",
                    x(from),
                    y + 4.0,
                    (x(to) - x(from)).max(2.0),
                    esc(&n.node),
                    clock(from),
                    clock(to)
                );
            }
            if let (Some(d0), Some(d1)) = (n.drain_started_at, n.drained_at) {
                let _ = write!(
                    svg,
                    "<rect class=\"bar drain\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\">\
                     <title>drain of {}: {}</title></rect>",
                    x(d0),
                    y + 4.0,
                    (x(d1) - x(d0)).max(2.0),
                    esc(&n.node),
                    duration(n.drain_ms.unwrap_or(0))
                );
            }
            for b in &n.blocks {
                let _ = write!(
                    svg,
                    "<rect class=\"bar pdb\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"8\">\
                     <title>{} held by PDB {} for {}</title></rect>",
                    x(b.from),
                    y + 7.0,
                    (x(b.until) - x(b.from)).max(2.0),
                    esc(&b.pod),
                    esc(b.pdb.as_deref().unwrap_or("(unknown)")),
                    duration(b.millis())
                );
            }
            y += ROW;
        }
        let _ = write!(
            svg,
            "<g class=\"legend\" transform=\"translate({LABEL},{})\">\
             <rect class=\"bar step succeeded\" width=\"12\" height=\"10\"/><text x=\"16\" y=\"9\">step</text>\
             <rect class=\"bar node\" x=\"70\" width=\"12\" height=\"10\"/><text x=\"86\" y=\"9\">node</text>\
             <rect class=\"bar drain\" x=\"140\" width=\"12\" height=\"10\"/><text x=\"156\" y=\"9\">drain</text>\
             <rect class=\"bar pdb\" x=\"210\" width=\"12\" height=\"10\"/><text x=\"226\" y=\"9\">wait on a PodDisruptionBudget</text></g>",
            y + 4.0
        );
        svg.push_str("</svg>\n");
        Some(svg)
    }
}

/// A table of plain-text cells.
fn table<const N: usize>(
    out: &mut String,
    columns: &[&str; N],
    rows: impl Iterator<Item = [String; N]>,
) {
    out.push_str("<table><tr>");
    for c in columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in &row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
}

fn check(out: &mut String, item: &CheckItem) {
    let _ = write!(
        out,
        "<li class=\"{}\"><span class=\"box\">{}</span> {}",
        if item.done { "done" } else { "open" },
        if item.done { "☑" } else { "☐" },
        esc(&item.text)
    );
    detail(out, item);
    out.push_str("</li>");
}

fn detail(out: &mut String, item: &CheckItem) {
    if let Some(at) = item.at {
        let _ = write!(out, " <time datetime=\"{at}\">{}</time>", clock(at));
    }
    if let Some(note) = &item.note {
        let _ = write!(out, " <span class=\"note\">{}</span>", esc(note));
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Text safe in HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}\
ul.checks,ol.steps{padding-left:1.4em}.done .box,.succeeded>.box,.skipped>.box{color:#1a7f37}\
.note{color:#555}time{color:#0550ae;font-variant-numeric:tabular-nums}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}\
.findings .blocker{color:#b42318}.findings .warning{color:#9a6700}.validations .failed{color:#b42318}\
svg.timeline{border:1px solid #ddd;background:#fafafa}svg .label,svg .axis,svg .legend text{font-size:11px;fill:#333}\
.bar.step{fill:#8fb8de}.bar.step.failed{fill:#e5989b}.bar.step.running{fill:#f2cc8f}.bar.node{fill:#c7d9c1}\
.bar.drain{fill:#5b8e7d}.bar.pdb{fill:#d1495b}";
