//! Label selectors evaluated locally: PodDisruptionBudget selectors against pods while they
//! stream past, and node-pool selector strings against nodes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::error::{Error, Result};

/// Whether `selector` selects an object with `labels`. An empty selector selects everything
/// (policy/v1 semantics); callers treat an absent selector as selecting nothing.
pub(crate) fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(required) = &selector.match_labels
        && !required.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator the API server would have rejected: select nothing, like
            // LabelSelectorAsSelector's error path.
            _ => false,
        }
    })
}

/// One requirement of a selector string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed selector string such as `eks.amazonaws.com/nodegroup=ng-1,tier!=gpu`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SelectorString {
    requirements: Vec<Requirement>,
}

impl SelectorString {
    /// Parses the label-selector syntax `kubectl -l` accepts (`=`, `==`, `!=`, `in (…)`,
    /// `notin (…)`, `key`, `!key`, comma separated).
    pub(crate) fn parse(field: &str, text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidInput {
            field: field.to_string(),
            message: format!(
                "{text:?} is not a label selector ({why}); accepted: key=value, key!=value, \
                 key in (a,b), key notin (a,b), key, !key, joined by commas"
            ),
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(invalid("empty requirement"));
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(
                    checked_key(key.trim()).ok_or_else(|| invalid("bad key"))?,
                )
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(
                    checked_key(k.trim()).ok_or_else(|| invalid("bad key"))?,
                    v.trim().to_string(),
                )
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(
                    checked_key(k.trim()).ok_or_else(|| invalid("bad key"))?,
                    v.trim().to_string(),
                )
            } else if let Some((k, set)) = split_set(part, " notin ") {
                Requirement::NotIn(
                    checked_key(k).ok_or_else(|| invalid("bad key"))?,
                    parse_set(set).ok_or_else(|| invalid("bad value set"))?,
                )
            } else if let Some((k, set)) = split_set(part, " in ") {
                Requirement::In(
                    checked_key(k).ok_or_else(|| invalid("bad key"))?,
                    parse_set(set).ok_or_else(|| invalid("bad value set"))?,
                )
            } else {
                Requirement::Exists(checked_key(part).ok_or_else(|| invalid("bad key"))?)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether the selector selects an object with `labels`.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn split_set<'a>(part: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let at = part.find(op)?;
    Some((part[..at].trim(), part[at + op.len()..].trim()))
}

fn parse_set(set: &str) -> Option<Vec<String>> {
    let inner = set.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn checked_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    ok.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_upstream_semantics() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        assert!(matches(&LabelSelector::default(), &pod));
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into(), "back".into()]),
            }]),
        };
        assert!(matches(&sel, &pod));
        assert!(!matches(&sel, &labels(&[("app", "web")])));
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["front".into()]),
            }]),
            ..Default::default()
        };
        assert!(!matches(&not_in, &pod));
        assert!(matches(&not_in, &labels(&[("app", "db")])));
    }

    #[test]
    fn selector_strings_parse_and_match() {
        let s = SelectorString::parse(
            "pool.node_selector",
            "eks.amazonaws.com/nodegroup=ng-1,tier!=gpu,zone in (a, b),!spot",
        )
        .unwrap();
        assert!(s.matches(&labels(&[
            ("eks.amazonaws.com/nodegroup", "ng-1"),
            ("zone", "a")
        ])));
        assert!(!s.matches(&labels(&[
            ("eks.amazonaws.com/nodegroup", "ng-1"),
            ("zone", "a"),
            ("spot", "true")
        ])));
        assert!(!s.matches(&labels(&[
            ("eks.amazonaws.com/nodegroup", "ng-2"),
            ("zone", "a")
        ])));
        let err = SelectorString::parse("pool.node_selector", "a=b,,c").unwrap_err();
        assert!(err.to_string().contains("pool.node_selector"));
    }
}
