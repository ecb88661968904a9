//! Control-plane health from `/readyz?verbose`: lines `[+]<check> ok` and
//! `[-]<check> failed: reason withheld`, then `readyz check passed` (HTTP 200) or
//! `readyz check failed` (HTTP 500). Each failing check becomes its own finding.

use kup_core::{Finding, Severity};
use serde::{Deserialize, Serialize};

use crate::listing::Reader;

/// One named check of a health endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The check's name (`etcd`, `poststarthook/start-apiextensions-controllers`…).
    pub name: String,
    /// Whether it passed (an excluded check counts as passed).
    pub ok: bool,
    /// The text after the name (`ok`, `failed: reason withheld`, `excluded: ok`).
    pub detail: String,
}

/// A parsed `/readyz?verbose` or `/livez?verbose` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The HTTP status.
    pub status: u16,
    /// Whether the endpoint reported success (HTTP 200).
    pub passed: bool,
    /// Every check listed.
    pub checks: Vec<HealthCheck>,
}

impl HealthReport {
    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &HealthCheck> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// Parses a verbose health answer. A body of just `ok` (non-verbose) has no checks.
pub fn parse_health(status: u16, body: &str) -> HealthReport {
    let checks = body
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (ok, rest) = if let Some(rest) = line.strip_prefix("[+]") {
                (true, rest)
            } else if let Some(rest) = line.strip_prefix("[-]") {
                (false, rest)
            } else {
                return None;
            };
            let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(HealthCheck {
                name: name.to_string(),
                ok,
                detail: detail.trim().to_string(),
            })
        })
        .collect();
    HealthReport {
        status,
        passed: status == 200,
        checks,
    }
}

/// Findings for a health report: one per failing check, or one for a failure without names.
pub(crate) fn health_findings(report: &HealthReport, body: &str, source: &str) -> Vec<Finding> {
    if report.passed && report.failed().next().is_none() {
        return Vec::new();
    }
    let fix = "look at the API server's logs and the named component (etcd, webhooks, \
               aggregated APIs); an upgrade must start and end on a ready control plane";
    let mut findings: Vec<Finding> = report
        .failed()
        .map(|c| {
            Finding::new(
                "control-plane.readyz-failed",
                Severity::Blocker,
                format!("/readyz check {} {}", c.name, c.detail),
            )
            .remediation(fix)
            .source(source)
        })
        .collect();
    if findings.is_empty() {
        let text: String = body.trim().chars().take(200).collect();
        findings.push(
            Finding::new(
                "control-plane.readyz-failed",
                Severity::Blocker,
                format!("/readyz answered HTTP {}: {text}", report.status),
            )
            .remediation(fix)
            .source(source),
        );
    }
    findings
}

/// Asks `/readyz?verbose` and turns the answer into findings.
pub(crate) async fn check(reader: &Reader, source: &str) -> Vec<Finding> {
    match reader.get_text("/readyz?verbose").await {
        Ok(answer) => {
            let report = parse_health(answer.status, &answer.body);
            health_findings(&report, &answer.body, source)
        }
        Err(e) => vec![
            Finding::new(
                "control-plane.unreachable",
                Severity::Blocker,
                format!("/readyz did not answer: {e}"),
            )
            .remediation("check that the API server is up and reachable from here")
            .source(source),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_checks_are_named() {
        let body = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n\
                    [+]poststarthook/start-apiextensions-controllers ok\n\
                    [+]informer-sync excluded: ok\n\
                    [-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n\
                    readyz check failed\n";
        let report = parse_health(500, body);
        assert!(!report.passed);
        assert_eq!(report.checks.len(), 6);
        let failed: Vec<&str> = report.failed().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["etcd", "poststarthook/rbac/bootstrap-roles"]);
        let findings = health_findings(&report, body, "readyz");
        assert_eq!(findings.len(), 2);
        assert_eq!(
            findings[0].message,
            "/readyz check etcd failed: reason withheld"
        );
    }

    #[test]
    fn passing_and_nameless_answers() {
        let ok = parse_health(200, "[+]ping ok\nreadyz check passed\n");
        assert!(health_findings(&ok, "", "readyz").is_empty());
        let plain = parse_health(200, "ok");
        assert!(plain.checks.is_empty() && plain.passed);
        let bare = parse_health(503, "service unavailable");
        let findings = health_findings(&bare, "service unavailable", "readyz");
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("HTTP 503"));
    }
}
