//! Removed APIs that clients still call, from the API server's own record: the STABLE gauge
//! `apiserver_requested_deprecated_apis{group,version,resource,subresource,removed_release}`
//! on `/metrics`, set to 1 once any request used that deprecated version since the API server
//! started. Only removals within the upgrade's minors count. The metric does not say who
//! called; the remediation points at the audit log, which does.

use std::collections::BTreeMap;

use kup_core::{Finding, KubeVersion, ObjectRef, Severity};

use super::{RemovalWindow, removed_apis};
use crate::error::Result;

/// The metric's name.
pub const METRIC: &str = "apiserver_requested_deprecated_apis";

/// One sample of the metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeprecatedRequest {
    /// API group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, if the requests went to one.
    pub subresource: String,
    /// `major.minor` that removes it, when the API server knows.
    pub removed_release: Option<KubeVersion>,
}

impl DeprecatedRequest {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Parses one Prometheus text-format sample line into its name, labels and value.
pub(crate) fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with \\, \" and \n escapes.
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key).trim().to_string(), value);
                }
                other => key.push(other),
            }
        }
        rest = &body[end? + 1..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// Every sample of the metric with a value above zero.
pub fn parse_metric(text: &str) -> Vec<DeprecatedRequest> {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(name, _, value)| *name == METRIC && *value > 0.0)
        .map(|(_, mut labels, _)| {
            let mut take = |k: &str| labels.remove(k).unwrap_or_default();
            let removed = take("removed_release");
            DeprecatedRequest {
                group: take("group"),
                version: take("version"),
                resource: take("resource"),
                subresource: take("subresource"),
                removed_release: KubeVersion::parse(&removed).ok(),
            }
        })
        .collect()
}

/// Findings for requests to versions removed during the upgrade, one per group/version and
/// resource (subresources folded in). When the API server leaves `removed_release` empty, the
/// removal table decides.
///
/// `self_listed` holds `(group, version, resource)` that kup's own stored-object scan lists
/// through the removed version (nothing else serves them): an earlier kup run sets the gauge
/// for those too, so they are reported as warnings saying so (their objects, if any, are
/// blockers of the stored-object scan).
pub(crate) fn findings(
    samples: &[DeprecatedRequest],
    window: &RemovalWindow,
    self_listed: &[(String, String, String)],
    source: &str,
) -> Result<Vec<Finding>> {
    let table = removed_apis()?;
    // (group, version, resource) → (position of first sample, removed in, subresources)
    type Key = (String, String, String);
    let mut grouped: BTreeMap<Key, (usize, KubeVersion, Vec<String>)> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        let row = table
            .iter()
            .find(|r| r.group == s.group && r.version == s.version && r.resource == s.resource);
        let removed = s
            .removed_release
            .clone()
            .or_else(|| row.map(|r| r.removed_in.clone()));
        let Some(removed) = removed.filter(|r| window.contains(r)) else {
            continue;
        };
        let entry = grouped
            .entry((s.group.clone(), s.version.clone(), s.resource.clone()))
            .or_insert((i, removed, Vec::new()));
        if !s.subresource.is_empty() && !entry.2.contains(&s.subresource) {
            entry.2.push(s.subresource.clone());
        }
    }
    let mut ordered: Vec<_> = grouped.into_iter().collect();
    ordered.sort_by_key(|(_, (first, _, _))| *first);
    Ok(ordered
        .into_iter()
        .map(
            |((group, version, resource), (first, removed, subresources))| {
                let api_version = samples[first].api_version();
                let row = table
                    .iter()
                    .find(|r| r.group == group && r.version == version && r.resource == resource);
                let instead = row
                    .map(|r| format!("; {}", r.instead()))
                    .unwrap_or_default();
                let what = if subresources.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource} (subresources: {})", subresources.join(", "))
                };
                let name = if group.is_empty() {
                    format!("{resource}.{version}")
                } else {
                    format!("{resource}.{version}.{group}")
                };
                let ours = self_listed
                    .iter()
                    .any(|(g, v, r)| *g == group && *v == version && *r == resource);
                let (severity, note) = if ours {
                    (
                        Severity::Warning,
                        format!(
                            " (nothing else serves {resource}, so kup's own pre-flight lists \
                             it through {api_version} and an earlier run also sets this gauge)"
                        ),
                    )
                } else {
                    (Severity::Blocker, String::new())
                };
                Finding::new(
                    "api.removed-requested",
                    severity,
                    format!(
                        "clients called {api_version} {what} since the API server started \
                         ({METRIC}); Kubernetes {removed} removes it{instead}{note}"
                    ),
                )
                .remediation(format!(
                    "find the callers in the API server's audit log (events annotated \
                     k8s.io/deprecated=true, with their user and userAgent) and move them off \
                     {api_version} before the upgrade; the gauge resets when the API server \
                     restarts"
                ))
                .object(ObjectRef::cluster("APIResource", name))
                .source(source)
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="poddisruptionbudgets",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="batch",removed_release="1.25",resource="cronjobs",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="",resource="flowschemas",subresource="status",version="v1beta2"} 1
apiserver_requested_deprecated_apis{group="coordination.k8s.io",removed_release="1.22",resource="leases",subresource="",version="v1beta1"} 1
apiserver_request_total{code="200",verb="GET"} 4.2e+06
"#;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_labels_with_escapes() {
        let (name, labels, value) =
            parse_sample(r#"m{a="x\"y",b="line\nnext",c="back\\slash"} 2 1700000000"#).unwrap();
        assert_eq!(name, "m");
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "line\nnext");
        assert_eq!(labels["c"], "back\\slash");
        assert_eq!(value, 2.0);
        assert_eq!(parse_sample("plain 3").unwrap().2, 3.0);
        assert!(parse_sample("# TYPE x gauge").is_none());
    }

    #[test]
    fn only_removals_within_the_upgrade_count() {
        let samples = parse_metric(SAMPLE);
        assert_eq!(samples.len(), 4);
        let window = RemovalWindow::new(v("1.24.3"), v("1.29"));
        let found = findings(&samples, &window, &[], "metric").unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.objects[0].name.as_str()).collect();
        // Leases (1.22) were removed before; the empty removed_release comes from the table (1.29).
        assert_eq!(
            names,
            [
                "poddisruptionbudgets.v1beta1.policy",
                "cronjobs.v1beta1.batch",
                "flowschemas.v1beta2.flowcontrol.apiserver.k8s.io"
            ]
        );
        assert!(
            found[0]
                .message
                .contains("use policy/v1 PodDisruptionBudget")
        );
        assert!(
            found[2]
                .message
                .contains("flowschemas (subresources: status)")
        );
        let narrow = RemovalWindow::new(v("1.25"), v("1.26"));
        assert!(
            findings(&samples, &narrow, &[], "metric")
                .unwrap()
                .is_empty()
        );
        let ours = [(
            "policy".to_string(),
            "v1beta1".to_string(),
            "poddisruptionbudgets".to_string(),
        )];
        let found = findings(&samples, &window, &ours, "metric").unwrap();
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("kup's own pre-flight"));
        assert_eq!(found[1].severity, Severity::Blocker);
    }
}
