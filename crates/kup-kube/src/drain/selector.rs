//! Label selectors: checking a `--pod-selector` string before anything is sent (so a typo is an
//! input error, not a drain of every pod), and matching PodDisruptionBudget selectors against a
//! pod's labels.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{Selector, SelectorExt};

/// Checks a label selector in the syntax of `kubectl --selector` / `labelSelector=`:
/// comma-separated requirements `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`. Returns why it is not valid.
pub(crate) fn check_label_selector(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    for requirement in split_requirements(text)? {
        check_requirement(requirement.trim())?;
    }
    Ok(())
}

/// Splits on commas that are not inside a value set's parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ')' at position {i}"))?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '(': a value set is not closed".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn check_requirement(req: &str) -> Result<(), String> {
    if req.is_empty() {
        return Err("empty requirement (two commas in a row, or a trailing comma)".into());
    }
    if let Some(key) = req.strip_prefix('!') {
        return check_key(key.trim());
    }
    // Set-based: `key in (...)` / `key notin (...)`.
    if let Some(open) = req.find('(') {
        let head = req[..open].trim();
        let (key, op) = head.rsplit_once(char::is_whitespace).ok_or_else(|| {
            format!("{req:?}: expected `key in (values)` or `key notin (values)`")
        })?;
        if op != "in" && op != "notin" {
            return Err(format!(
                "{req:?}: unknown set operator {op:?}; accepted: in, notin"
            ));
        }
        check_key(key.trim())?;
        let rest = req[open + 1..].trim_end();
        let inner = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("{req:?}: text after the closing ')'"))?;
        for value in inner.split(',') {
            check_value(value.trim())?;
        }
        return Ok(());
    }
    for op in ["==", "!=", "=", ">", "<"] {
        if let Some((key, value)) = req.split_once(op) {
            check_key(key.trim())?;
            let value = value.trim();
            if op == ">" || op == "<" {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("{req:?}: {op} needs an integer value"))?;
                return Ok(());
            }
            return check_value(value);
        }
    }
    check_key(req)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// A label name part: at most 63 characters, alphanumeric at both ends, `-_.` inside.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{what} {name:?} must be 1 to 63 characters"));
    }
    let first_last_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !first_last_ok || !name.chars().all(is_name_char) {
        return Err(format!(
            "{what} {name:?} must consist of alphanumeric characters, '-', '_' or '.', and \
             start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !prefix_ok {
                return Err(format!(
                    "label key prefix {prefix:?} must be a DNS subdomain (lowercase, dots)"
                ));
            }
            check_name(name, "label key")
        }
        None => check_name(key, "label key"),
    }
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value, "label value")
}

/// Whether a PodDisruptionBudget selects a pod with these labels, as the eviction subresource
/// decides it: a missing selector selects nothing; in policy/v1 an empty selector selects every
/// pod of the namespace.
pub(crate) fn pdb_selects(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return false;
    };
    match Selector::try_from(selector) {
        Ok(selector) => selector.matches(labels),
        // An invalid selector matches nothing (upstream skips such budgets).
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;

    #[test]
    fn accepts_kubectl_selector_syntax() {
        for ok in [
            "",
            "app=web",
            "app==web,tier!=db",
            "app in (web, api),!legacy",
            "env notin (prod)",
            "example.com/team=payments",
            "gpu",
            "rank>3",
            "empty=",
        ] {
            assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_selectors_with_a_reason() {
        for bad in [
            "app=web,",
            "app in (web",
            "app is (web)",
            "-app=web",
            "app=we b",
            "Example.com/app=x",
            "rank>three",
            "a)b",
        ] {
            let err = check_label_selector(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
    }

    fn pdb(selector: Option<LabelSelector>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pdb_selectors_match_like_the_eviction_subresource() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert!(!pdb_selects(&pdb(None), &labels), "nil selects nothing");
        assert!(
            pdb_selects(&pdb(Some(LabelSelector::default())), &labels),
            "empty selects all"
        );
        let by_label = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        };
        assert!(pdb_selects(&pdb(Some(by_label)), &labels));
        let by_expression = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "NotIn".into(),
                values: Some(vec!["web".into()]),
            }]),
            ..Default::default()
        };
        assert!(!pdb_selects(&pdb(Some(by_expression)), &labels));
    }
}
