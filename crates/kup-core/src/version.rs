//! Kubernetes versions as users and providers write them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Forms accepted by [`KubeVersion::parse`], quoted in every parse error.
pub const ACCEPTED_VERSION_FORMS: &str = "MAJOR.MINOR[.PATCH] with an optional `v` and build suffix, e.g. 1.29, v1.29.3, \
     1.29.3-eks-4d9e7a1, 1.29.1-gke.1589018, v1.29.0+k3s1, 1.29.0-1.1";

/// A Kubernetes version in any of the forms people and providers write.
///
/// The provider's build suffix (`-eks-4d9e7a1`, `-gke.1589018`, `+k3s1`, a package revision
/// such as `-1.1`) is kept for display and for telling builds apart, but equality, hashing and
/// ordering look at `(major, minor, patch)` only: `1.29.3-eks-4d9e7a1 == v1.29.3`. A version
/// without a patch (`1.29`, as EKS and AKS name their offers) orders before `1.29.0`; use
/// [`KubeVersion::same_minor`] to compare minors.
#[derive(Clone, Debug)]
pub struct KubeVersion {
    major: u32,
    minor: u32,
    patch: Option<u32>,
    suffix: Option<String>,
}

impl KubeVersion {
    /// A version without patch or suffix, such as `1.29`.
    pub const fn minor_version(major: u32, minor: u32) -> Self {
        Self {
            major,
            minor,
            patch: None,
            suffix: None,
        }
    }

    /// A version with a patch number and no suffix, such as `1.29.3`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch: Some(patch),
            suffix: None,
        }
    }

    /// Parses any accepted form (see [`ACCEPTED_VERSION_FORMS`]).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidVersion {
            input: input.to_string(),
            expected: ACCEPTED_VERSION_FORMS,
        };
        let trimmed = input.trim();
        let body = trimmed
            .strip_prefix('v')
            .or_else(|| trimmed.strip_prefix('V'))
            .unwrap_or(trimmed);
        // The numeric core ends at the first `-` or `+`; everything from there is the suffix.
        let (core, suffix) = match body.find(['-', '+']) {
            Some(at) => (&body[..at], Some(&body[at..])),
            None => (body, None),
        };
        let mut parts = core.split('.');
        let major = parse_number(parts.next()).ok_or_else(invalid)?;
        let minor = parse_number(parts.next()).ok_or_else(invalid)?;
        let patch = match parts.next() {
            None => None,
            Some(p) => Some(parse_number(Some(p)).ok_or_else(invalid)?),
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        let suffix = match suffix {
            None => None,
            // A suffix needs a patch (`1.29-eks` is not a form anyone writes) and must not be
            // empty or contain whitespace.
            Some(s) if patch.is_none() || s.len() < 2 || s.chars().any(char::is_whitespace) => {
                return Err(invalid());
            }
            Some(s) => Some(s.to_string()),
        };
        Ok(Self {
            major,
            minor,
            patch,
            suffix,
        })
    }

    /// The major version (1 for every Kubernetes release so far).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The minor version.
    pub fn minor(&self) -> u32 {
        self.minor
    }

    /// The patch version, if the input had one.
    pub fn patch(&self) -> Option<u32> {
        self.patch
    }

    /// The provider's build suffix including its leading `-` or `+`, if any.
    pub fn suffix(&self) -> Option<&str> {
        self.suffix.as_deref()
    }

    /// The same version without patch and suffix (`1.29.3-eks-1` → `1.29`).
    pub fn to_minor(&self) -> Self {
        Self::minor_version(self.major, self.minor)
    }

    /// The same version without its build suffix (`1.29.3-eks-1` → `1.29.3`).
    pub fn without_suffix(&self) -> Self {
        Self {
            suffix: None,
            ..self.clone()
        }
    }

    /// True when both name the same `major.minor`.
    pub fn same_minor(&self, other: &Self) -> bool {
        self.major == other.major && self.minor == other.minor
    }

    /// How many minors `to` is ahead of `self` (negative when behind).
    ///
    /// A different major counts as 1000 minors per major, so it never fits a skew window.
    pub fn minor_distance(&self, to: &Self) -> i64 {
        (i64::from(to.major) - i64::from(self.major)) * 1000 + i64::from(to.minor)
            - i64::from(self.minor)
    }

    /// The next minor (`1.29.3` → `1.30`).
    pub fn next_minor(&self) -> Self {
        Self::minor_version(self.major, self.minor + 1)
    }

    /// Orders by `(major, minor, patch)` and then by build suffix, comparing the digit runs
    /// of suffixes as numbers, so `1.29.1-gke.1602000` is newer than `1.29.1-gke.1589018`.
    pub fn cmp_build(&self, other: &Self) -> Ordering {
        self.cmp(other).then_with(|| {
            natural_cmp(
                self.suffix.as_deref().unwrap_or(""),
                other.suffix.as_deref().unwrap_or(""),
            )
        })
    }

    /// True when both have the same numbers and the same suffix.
    pub fn same_build(&self, other: &Self) -> bool {
        self == other && self.suffix == other.suffix
    }

    /// True when `self` matches a requested version: a request without patch matches every
    /// patch of its minor; a request without suffix matches every build of its patch.
    pub fn matches(&self, request: &Self) -> bool {
        self.same_minor(request)
            && request.patch.is_none_or(|p| self.patch == Some(p))
            && request
                .suffix
                .as_ref()
                .is_none_or(|s| self.suffix.as_ref() == Some(s))
    }
}

fn parse_number(part: Option<&str>) -> Option<u32> {
    let part = part?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Reject leading zeros like semver does ("01" is not a version anyone publishes).
    if part.len() > 1 && part.starts_with('0') {
        return None;
    }
    part.parse().ok()
}

/// Compares strings treating runs of ASCII digits as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = trim_zeros(&a[..la]);
                let nb = trim_zeros(&b[..lb]);
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[la..];
                b = &b[lb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

impl PartialEq for KubeVersion {
    fn eq(&self, other: &Self) -> bool {
        (self.major, self.minor, self.patch) == (other.major, other.minor, other.patch)
    }
}

impl Eq for KubeVersion {}

impl Hash for KubeVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.major, self.minor, self.patch).hash(state);
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KubeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch))
    }
}

impl fmt::Display for KubeVersion {
    /// Writes `1.29`, `1.29.3` or `1.29.3-eks-4d9e7a1`, without a `v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        if let Some(suffix) = &self.suffix {
            f.write_str(suffix)?;
        }
        Ok(())
    }
}

impl FromStr for KubeVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubeVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_every_provider_form() {
        // (input, major, minor, patch, suffix, display)
        type Case<'a> = (&'a str, u32, u32, Option<u32>, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            ("1.29", 1, 29, None, None, "1.29"),
            ("v1.29.3", 1, 29, Some(3), None, "1.29.3"),
            ("V1.30.0", 1, 30, Some(0), None, "1.30.0"),
            // EKS kubelet versions and platform builds
            (
                "v1.29.3-eks-4d9e7a1",
                1,
                29,
                Some(3),
                Some("-eks-4d9e7a1"),
                "1.29.3-eks-4d9e7a1",
            ),
            (
                "1.29.3-eks-4d9e7a1",
                1,
                29,
                Some(3),
                Some("-eks-4d9e7a1"),
                "1.29.3-eks-4d9e7a1",
            ),
            // GKE master and node versions
            (
                "1.29.1-gke.1589018",
                1,
                29,
                Some(1),
                Some("-gke.1589018"),
                "1.29.1-gke.1589018",
            ),
            // k3s / rke2
            ("v1.29.0+k3s1", 1, 29, Some(0), Some("+k3s1"), "1.29.0+k3s1"),
            (
                "v1.30.2+rke2r1",
                1,
                30,
                Some(2),
                Some("+rke2r1"),
                "1.30.2+rke2r1",
            ),
            // pkgs.k8s.io deb/rpm package versions
            ("1.29.0-1.1", 1, 29, Some(0), Some("-1.1"), "1.29.0-1.1"),
            (
                "1.31.2-150500.1.1",
                1,
                31,
                Some(2),
                Some("-150500.1.1"),
                "1.31.2-150500.1.1",
            ),
            // AKS
            ("1.30.4", 1, 30, Some(4), None, "1.30.4"),
            ("  1.33.1 ", 1, 33, Some(1), None, "1.33.1"),
        ];
        for &(input, major, minor, patch, suffix, display) in cases {
            let parsed = v(input);
            assert_eq!(parsed.major(), major, "{input}");
            assert_eq!(parsed.minor(), minor, "{input}");
            assert_eq!(parsed.patch(), patch, "{input}");
            assert_eq!(parsed.suffix(), suffix, "{input}");
            assert_eq!(parsed.to_string(), display, "{input}");
            // Display output parses back to the same build.
            assert!(v(&parsed.to_string()).same_build(&parsed), "{input}");
        }
    }

    #[test]
    fn rejects_malformed_input_quoting_it() {
        for bad in [
            "",
            "1",
            "v",
            "1.",
            "1.x",
            "1.29.",
            "1.29.3.4",
            "one.two",
            "1.29-eks",
            "1.29.3-",
            "1.29.3+",
            "-1.29",
            "1.029",
            "1.29.3 -eks",
            "latest",
        ] {
            let err = KubeVersion::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("\"{bad}\"")), "{msg}");
            assert!(msg.contains("1.29.3-eks-4d9e7a1"), "{msg}");
            assert!(matches!(err, Error::InvalidVersion { .. }));
        }
    }

    #[test]
    fn orders_by_numbers_ignoring_suffix() {
        assert!(v("1.29.10") > v("1.29.9"));
        assert!(v("1.30.0") > v("1.29.99"));
        assert!(v("2.0.0") > v("1.99.0"));
        assert_eq!(v("1.29.3-eks-4d9e7a1"), v("v1.29.3"));
        assert_eq!(v("v1.29.0+k3s1").cmp(&v("1.29.0-1.1")), Ordering::Equal);
        assert!(v("1.29") < v("1.29.0"));
        let mut sorted = [v("1.31.0"), v("1.29.3"), v("1.30"), v("1.29.10")];
        sorted.sort();
        let shown: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["1.29.3", "1.29.10", "1.30", "1.31.0"]);
    }

    #[test]
    fn build_order_compares_suffix_numbers() {
        assert_eq!(
            v("1.29.1-gke.1602000").cmp_build(&v("1.29.1-gke.1589018")),
            Ordering::Greater
        );
        assert_eq!(
            v("1.29.1-gke.999").cmp_build(&v("1.29.1-gke.1000")),
            Ordering::Less
        );
        assert_eq!(
            v("1.29.2-gke.1").cmp_build(&v("1.29.1-gke.9")),
            Ordering::Greater
        );
        assert_eq!(v("1.29.1").cmp_build(&v("1.29.1-gke.1")), Ordering::Less);
        assert!(!v("1.29.1-gke.1").same_build(&v("1.29.1-gke.2")));
    }

    #[test]
    fn minor_distance_and_helpers() {
        assert_eq!(v("1.29.3").minor_distance(&v("1.32")), 3);
        assert_eq!(v("1.32").minor_distance(&v("1.29.3")), -3);
        assert_eq!(v("1.29").minor_distance(&v("1.29.7")), 0);
        assert!(v("1.29").minor_distance(&v("2.0")) > 900);
        assert_eq!(v("1.29.3-eks-1").to_minor().to_string(), "1.29");
        assert_eq!(v("1.29.3-eks-1").without_suffix().to_string(), "1.29.3");
        assert_eq!(v("1.29.3").next_minor().to_string(), "1.30");
        assert!(v("1.29.3-gke.1").matches(&v("1.29")));
        assert!(v("1.29.3-gke.1").matches(&v("1.29.3")));
        assert!(!v("1.29.3-gke.1").matches(&v("1.29.3-gke.2")));
        assert!(!v("1.29.4").matches(&v("1.29.3")));
    }

    #[test]
    fn serde_round_trips_as_string() {
        let parsed: KubeVersion = serde_json::from_str("\"v1.29.3-eks-4d9e7a1\"").unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            "\"1.29.3-eks-4d9e7a1\""
        );
        let err = serde_json::from_str::<KubeVersion>("\"1.x\"").unwrap_err();
        assert!(err.to_string().contains("1.x"));
    }
}
