//! Version comparisons the engine makes when it re-reads the cluster.

use kup_core::KubeVersion;

/// Whether something at `have` is at `want` or past it: a newer minor, or the same minor at
/// the wanted patch or later (a minor-only `want`, as EKS names versions, accepts any patch).
pub(crate) fn reached(have: &KubeVersion, want: &KubeVersion) -> bool {
    match have.minor_distance(want) {
        d if d < 0 => true,
        0 => match (want.patch(), have.patch()) {
            (None, _) => true,
            (Some(w), Some(h)) => h >= w,
            (Some(_), None) => false,
        },
        _ => false,
    }
}

/// Whether something at `have` is back at `want` or before it: an older minor, or the same
/// minor at the wanted patch or earlier (a minor-only `want` accepts any patch).
pub(crate) fn back_at(have: &KubeVersion, want: &KubeVersion) -> bool {
    match have.minor_distance(want) {
        d if d > 0 => true,
        0 => match (want.patch(), have.patch()) {
            (None, _) => true,
            (Some(w), Some(h)) => h <= w,
            (Some(_), None) => false,
        },
        _ => false,
    }
}

/// Which way kup moves a pool's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// An upgrade.
    Forward,
    /// A rollback.
    Back,
}

impl Direction {
    /// Whether a node at `have` needs nothing more to be at `want`.
    pub(crate) fn arrived(self, have: &KubeVersion, want: &KubeVersion) -> bool {
        match self {
            Self::Forward => reached(have, want),
            Self::Back => back_at(have, want),
        }
    }

    /// The verb for messages.
    pub(crate) fn moved(self) -> &'static str {
        match self {
            Self::Forward => "upgraded",
            Self::Back => "rolled back",
        }
    }
}

/// Whether a kubelet at `kubelet` may run under an API server at `api_server`: never a newer
/// minor (the version-skew policy compares minors).
pub(crate) fn kubelet_not_newer(kubelet: &KubeVersion, api_server: &KubeVersion) -> bool {
    kubelet.minor_distance(api_server) >= 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn reached_compares_minors_then_patches() {
        assert!(reached(&v("1.33.2"), &v("1.33.2")));
        assert!(reached(&v("1.33.5-eks-1"), &v("1.33")));
        assert!(reached(&v("1.34.0"), &v("1.33.9")));
        assert!(!reached(&v("1.33.1"), &v("1.33.2")));
        assert!(!reached(&v("1.32.9"), &v("1.33")));
        assert!(!reached(&v("1.33"), &v("1.33.2")));
    }

    #[test]
    fn back_at_mirrors_reached() {
        assert!(back_at(&v("1.30.6"), &v("1.30.6")));
        assert!(back_at(&v("1.29.9"), &v("1.30.6")));
        assert!(back_at(&v("1.30.2"), &v("1.30")));
        assert!(!back_at(&v("1.30.7"), &v("1.30.6")));
        assert!(!back_at(&v("1.31.0"), &v("1.30.6")));
        assert!(Direction::Back.arrived(&v("1.30.6"), &v("1.30.6")));
        assert!(!Direction::Back.arrived(&v("1.32.3"), &v("1.30.6")));
        assert!(Direction::Forward.arrived(&v("1.32.3"), &v("1.30.6")));
    }

    #[test]
    fn kubelets_never_pass_the_api_server_minor() {
        assert!(kubelet_not_newer(&v("1.33.4"), &v("1.33.2")));
        assert!(kubelet_not_newer(&v("1.30.0"), &v("1.33.2")));
        assert!(!kubelet_not_newer(&v("1.34.0"), &v("1.33.2")));
    }
}
