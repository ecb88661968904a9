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
    fn kubelets_never_pass_the_api_server_minor() {
        assert!(kubelet_not_newer(&v("1.33.4"), &v("1.33.2")));
        assert!(kubelet_not_newer(&v("1.30.0"), &v("1.33.2")));
        assert!(!kubelet_not_newer(&v("1.34.0"), &v("1.33.2")));
    }
}
