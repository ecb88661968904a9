//! Names of the objects kup keeps in a cluster (lock lease, journal ConfigMap), derived from
//! the cluster's name.

use sha2::{Digest, Sha256};

/// `prefix-<cluster>` as a valid object name: lowercase letters, digits and `-`, at most 63
/// characters. When the cluster's name had to be changed to fit (other characters, length),
/// a short hash of the original is appended so that two clusters never share a name.
pub fn object_name(prefix: &str, cluster: &str) -> String {
    format!("{prefix}-{}", clean(cluster, 63 - prefix.len() - 1))
}

/// The cluster's name as a label value (same rules as [`object_name`], no prefix).
pub fn label_value(cluster: &str) -> String {
    clean(cluster, 63)
}

fn clean(cluster: &str, max: usize) -> String {
    let mapped: String = cluster
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut cleaned = mapped.trim_matches('-').to_string();
    while cleaned.contains("--") {
        cleaned = cleaned.replace("--", "-");
    }
    if cleaned == cluster && !cleaned.is_empty() && cleaned.len() <= max {
        return cleaned;
    }
    let hash = hex::encode(&Sha256::digest(cluster.as_bytes())[..4]);
    cleaned.truncate(max.saturating_sub(hash.len() + 1));
    let cleaned = cleaned.trim_end_matches('-');
    if cleaned.is_empty() {
        hash
    } else {
        format!("{cleaned}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_names_are_kept() {
        assert_eq!(object_name("kup-upgrade", "prod"), "kup-upgrade-prod");
        assert_eq!(
            object_name("kup-journal", "eu-west-1"),
            "kup-journal-eu-west-1"
        );
    }

    #[test]
    fn other_names_are_cleaned_and_told_apart() {
        let a = object_name("kup-upgrade", "Prod_EU");
        let b = object_name("kup-upgrade", "prod-eu");
        assert!(a.starts_with("kup-upgrade-prod-eu-"), "{a}");
        assert_ne!(a, b);
        let long = object_name("kup-upgrade", &"x".repeat(200));
        assert!(long.len() <= 63, "{long}");
        let arn = object_name(
            "kup-upgrade",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
        );
        assert!(arn.len() <= 63, "{arn}");
        assert!(
            arn.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{arn}"
        );
        assert!(!object_name("kup-upgrade", "...").contains("--"));
        assert_eq!(label_value("prod"), "prod");
        assert!(label_value(&"y".repeat(100)).len() <= 63);
    }
}
