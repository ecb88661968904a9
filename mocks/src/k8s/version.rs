//! The simulated API server's version (`/version`) and which minors serve which APIs.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, Result};

/// A Kubernetes version as the simulator reports it.
///
/// Parsed from `v1.31.4`, `1.31`, or a provider build such as `v1.31.4-eks-2d5f260`; the text
/// after the patch number is kept in `gitVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KubeVersion {
    /// Major version (always 1 today).
    pub major: u32,
    /// Minor version; decides which group-versions are served.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
    /// Build suffix after the patch number, including its leading `-` or `+` (may be empty).
    pub suffix: String,
}

impl KubeVersion {
    /// Parses `v1.31.4`, `1.31.4`, `1.31` or `v1.31.4-eks-abc`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "version",
                format!("{text:?} is not a Kubernetes version; expected e.g. v1.31.4 or 1.31"),
            )
        };
        let t = text.trim().strip_prefix('v').unwrap_or(text.trim());
        let cut = t.find(['-', '+']).unwrap_or(t.len());
        let (nums, suffix) = t.split_at(cut);
        let mut parts = nums.split('.');
        let mut next = |required: bool| -> Result<u32> {
            match parts.next() {
                Some(p) => p.parse::<u32>().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let major = next(true)?;
        let minor = next(true)?;
        let patch = next(false)?;
        if parts.next().is_some() || major != 1 {
            return Err(bad());
        }
        Ok(KubeVersion {
            major,
            minor,
            patch,
            suffix: suffix.to_string(),
        })
    }

    /// `v1.31.4` plus any build suffix.
    pub fn git_version(&self) -> String {
        format!(
            "v{}.{}.{}{}",
            self.major, self.minor, self.patch, self.suffix
        )
    }

    /// The `/version` document.
    pub(crate) fn version_info(&self) -> Value {
        // Managed builds (EKS) report the minor with a trailing `+`.
        let plus = if self.suffix.contains("-eks-") {
            "+"
        } else {
            ""
        };
        json!({
            "major": self.major.to_string(),
            "minor": format!("{}{plus}", self.minor),
            "emulationMajor": self.major.to_string(),
            "emulationMinor": self.minor.to_string(),
            "minCompatibilityMajor": self.major.to_string(),
            "minCompatibilityMinor": self.minor.saturating_sub(1).to_string(),
            "gitVersion": self.git_version(),
            "gitCommit": "3c1c2b5a1bd8a9d7f1e4a3f0c0b6d1e2f3a4b5c6",
            "gitTreeState": "clean",
            "buildDate": "2026-01-15T10:00:00Z",
            "goVersion": "go1.25.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.git_version())
    }
}

impl std::str::FromStr for KubeVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KubeVersion::parse(s)
    }
}

impl TryFrom<String> for KubeVersion {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        KubeVersion::parse(&s)
    }
}

impl From<KubeVersion> for String {
    fn from(v: KubeVersion) -> String {
        v.git_version()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_common_forms() {
        let v = KubeVersion::parse("v1.31.4-eks-2d5f260").unwrap();
        assert_eq!(
            (v.minor, v.patch, v.suffix.as_str()),
            (31, 4, "-eks-2d5f260")
        );
        assert_eq!(v.version_info()["minor"], "31+");
        assert_eq!(KubeVersion::parse("1.24").unwrap().git_version(), "v1.24.0");
        assert!(KubeVersion::parse("2.1.0").is_err());
        assert!(KubeVersion::parse("v1.x").is_err());
    }
}
