//! Rollbacks: what EKS lets the control plane and a managed node group go back to, read from
//! their own update history.
//!
//! The control plane (EKS version rollback): UpdateClusterVersion with the previous minor and
//! a `rollbackConfig` takes it back one minor, only after an in-place upgrade and only within
//! 7 days of that upgrade; the update runs as a `VersionRollback`. DescribeUpdate gives an
//! update's start, not its end, so kup counts the 7 days from the start: the window it
//! reports ends no later than EKS's.
//!
//! EKS's rule (UpdateNodegroupVersion): "You cannot roll back a node group to an earlier
//! Kubernetes version or AMI version." What a group *can* go back to is an earlier version of
//! its launch template: any existing version of the template the group was created with is
//! accepted, and for a template that names its own AMI that brings the earlier AMI back too.
//!
//! EKS records in an update's `params` the values the update moved to (`Version`,
//! `ReleaseVersion`, `LaunchTemplateName`, `LaunchTemplateVersion`), not the ones it replaced;
//! so the version a group had before its last update is the one the update before it
//! recorded. A group whose history holds a single version update has no recorded earlier
//! launch template version.

use aws_sdk_eks::types::{Nodegroup, Update, UpdateParamType, UpdateStatus, UpdateType};
use kup_core::{KubeVersion, RollbackOption, RollbackPart};

/// EKS's words on managed node groups (UpdateNodegroupVersion).
pub const NODE_GROUP_ROLLBACK_REFUSAL: &str =
    "You cannot roll back a node group to an earlier Kubernetes version or AMI version";

/// EKS's limit on the control plane (version rollback).
pub const CONTROL_PLANE_ROLLBACK_REFUSAL: &str = "EKS rolls a control plane back only to the \
     previous minor version, and only within 7 days of an in-place upgrade; after 7 days \
     rollback is no longer available";

/// How long after an in-place upgrade EKS allows a version rollback.
pub(crate) const ROLLBACK_WINDOW_SECS: i64 = 7 * 86_400;

/// One successful control-plane version change (`VersionUpdate` or `VersionRollback`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterVersionRecord {
    /// The update's id.
    pub(crate) id: String,
    /// Seconds since the epoch it was created at (0 when EKS did not say).
    pub(crate) created_secs: i64,
    /// The minor it moved the control plane to (`Version`).
    pub(crate) version: Option<String>,
    /// Whether it was a rollback rather than an in-place upgrade.
    pub(crate) rollback: bool,
}

impl ClusterVersionRecord {
    /// The record of `u`, when it is a successful control-plane version change.
    pub(crate) fn of(u: &Update) -> Option<Self> {
        let rollback = match u.r#type() {
            Some(UpdateType::VersionUpdate) => false,
            Some(UpdateType::VersionRollback) => true,
            _ => return None,
        };
        if u.status() != Some(&UpdateStatus::Successful) {
            return None;
        }
        Some(Self {
            id: u.id()?.to_string(),
            created_secs: u.created_at().map(|t| t.secs()).unwrap_or(0),
            version: u
                .params()
                .iter()
                .find(|p| p.r#type() == Some(&UpdateParamType::Version))
                .and_then(|p| p.value())
                .map(String::from),
            rollback,
        })
    }
}

fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{secs}s after the epoch"))
}

/// The previous minor of `v` (`1.34` → `1.33`), when there is one.
pub(crate) fn previous_minor(v: &KubeVersion) -> Option<KubeVersion> {
    let minor = v.minor().checked_sub(1)?;
    KubeVersion::parse(&format!("{}.{minor}", v.major())).ok()
}

/// The way back EKS allows for a control plane running `live` at `now` (seconds since the
/// epoch), from its successful version changes (`history`, any order), or EKS's reason there
/// is none.
pub(crate) fn control_plane_offer(
    cluster: &str,
    live: &KubeVersion,
    history: &[ClusterVersionRecord],
    now: i64,
) -> Result<RollbackOption, String> {
    let Some(last) = history.iter().max_by_key(|r| r.created_secs) else {
        return Err(format!(
            "cluster {cluster}'s update history records no in-place upgrade of its control \
             plane (it runs {live} as created); {CONTROL_PLANE_ROLLBACK_REFUSAL}"
        ));
    };
    let when = rfc3339(last.created_secs);
    if last.rollback {
        return Err(format!(
            "cluster {cluster}'s last control-plane version change, update {} of {when}, was a \
             rollback to {}, not an in-place upgrade; {CONTROL_PLANE_ROLLBACK_REFUSAL}",
            last.id,
            last.version.as_deref().unwrap_or("?")
        ));
    }
    let recorded = last.version.as_deref().map(KubeVersion::parse);
    if !matches!(&recorded, Some(Ok(v)) if v.same_minor(live)) {
        return Err(format!(
            "cluster {cluster}'s last in-place upgrade, update {} of {when}, moved the control \
             plane to {}, but it runs {live}; {CONTROL_PLANE_ROLLBACK_REFUSAL}",
            last.id,
            last.version.as_deref().unwrap_or("?")
        ));
    }
    let Some(to) = previous_minor(live) else {
        return Err(format!(
            "the control plane runs {live}, which has no previous minor; \
             {CONTROL_PLANE_ROLLBACK_REFUSAL}"
        ));
    };
    let ends = last.created_secs.saturating_add(ROLLBACK_WINDOW_SECS);
    if now >= ends {
        return Err(format!(
            "cluster {cluster}'s last in-place upgrade, update {} of {when} to {live}, is more \
             than 7 days old (its rollback window closed by {}); \
             {CONTROL_PLANE_ROLLBACK_REFUSAL}",
            last.id,
            rfc3339(ends)
        ));
    }
    Ok(RollbackOption {
        part: RollbackPart::ControlPlane,
        to,
        release: None,
        basis: format!(
            "in-place upgrade {} of {when} to {live}; EKS version rollback is open until {} \
             (7 days)",
            last.id,
            rfc3339(ends)
        ),
    })
}

/// What one successful node-group version update moved the group to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionRecord {
    /// The update's id.
    pub(crate) id: String,
    /// When it was created (RFC 3339), when EKS said.
    pub(crate) created: Option<String>,
    /// Seconds since the epoch, for ordering.
    pub(crate) created_secs: i64,
    /// `Version`.
    pub(crate) version: Option<String>,
    /// `ReleaseVersion`.
    pub(crate) release: Option<String>,
    /// `LaunchTemplateVersion`.
    pub(crate) launch_template_version: Option<String>,
}

impl VersionRecord {
    /// The record of `u`, when it is a successful version update.
    pub(crate) fn of(u: &Update) -> Option<Self> {
        if u.status() != Some(&UpdateStatus::Successful)
            || u.r#type() != Some(&UpdateType::VersionUpdate)
        {
            return None;
        }
        let param = |t: UpdateParamType| {
            u.params()
                .iter()
                .find(|p| p.r#type() == Some(&t))
                .and_then(|p| p.value())
                .map(String::from)
        };
        let secs = u.created_at().map(|t| t.secs());
        Some(Self {
            id: u.id()?.to_string(),
            created: secs
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(|t| t.to_string()),
            created_secs: secs.unwrap_or(0),
            version: param(UpdateParamType::Version),
            release: param(UpdateParamType::ReleaseVersion),
            launch_template_version: param(UpdateParamType::LaunchTemplateVersion),
        })
    }

    fn when(&self) -> String {
        self.created
            .as_ref()
            .map(|c| format!(" of {c}"))
            .unwrap_or_default()
    }
}

/// The release text kup shows for a launch-template node group (the same in
/// [`kup_core::NodePool::release`] and [`RollbackOption::release`]).
pub(crate) fn launch_template_release(template: &str, version: &str) -> String {
    format!("launch template {template} version {version}")
}

/// The template's name, or its id when it has no name.
pub(crate) fn template_of(ng: &Nodegroup) -> Option<(&str, &str)> {
    let lt = ng.launch_template()?;
    Some((lt.name().or(lt.id())?, lt.version()?))
}

fn same_minor(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.map(KubeVersion::parse), b.map(KubeVersion::parse)) {
        (Some(Ok(a)), Some(Ok(b))) => a.same_minor(&b),
        _ => a == b,
    }
}

/// A way back for one node group: the option kup plans, and the launch template version
/// UpdateNodegroupVersion is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WayBack {
    pub(crate) option: RollbackOption,
    pub(crate) launch_template_version: String,
}

/// The way back EKS allows for node group `ng` (running `current`) from its successful
/// version updates (`history`, any order), or EKS's reason there is none.
pub(crate) fn offer_for(
    ng: &Nodegroup,
    current: &KubeVersion,
    history: &[VersionRecord],
) -> Result<WayBack, String> {
    let name = ng.nodegroup_name().unwrap_or("(unnamed)");
    let mut history = history.to_vec();
    history.sort_by_key(|r| r.created_secs);
    let Some((template, running)) = template_of(ng) else {
        let last = history
            .last()
            .map(|l| {
                format!(
                    " (its last update, {}{}, set Kubernetes {} with AMI release {})",
                    l.id,
                    l.when(),
                    l.version.as_deref().unwrap_or("?"),
                    l.release.as_deref().unwrap_or("?"),
                )
            })
            .unwrap_or_default();
        return Err(format!(
            "node group {name} has no launch template, so only its Kubernetes version and AMI \
             release can change{last}; {NODE_GROUP_ROLLBACK_REFUSAL}"
        ));
    };
    let Some(last) = history.last() else {
        return Err(format!(
            "node group {name}'s update history holds no successful version update to go back \
             from; {NODE_GROUP_ROLLBACK_REFUSAL}"
        ));
    };
    let Some(before) = history.iter().rev().nth(1) else {
        return Err(format!(
            "node group {name}'s history holds one version update ({}{}), and EKS records only \
             the values an update moved to, so the launch template version before it is not \
             known; {NODE_GROUP_ROLLBACK_REFUSAL}",
            last.id,
            last.when()
        ));
    };
    if !same_minor(before.version.as_deref(), last.version.as_deref()) {
        return Err(format!(
            "node group {name}'s last update ({}{}) moved it from Kubernetes {} to {}; \
             {NODE_GROUP_ROLLBACK_REFUSAL}",
            last.id,
            last.when(),
            before.version.as_deref().unwrap_or("?"),
            last.version.as_deref().unwrap_or("?"),
        ));
    }
    let Some(previous) = before.launch_template_version.as_deref() else {
        return Err(format!(
            "node group {name}'s update {} recorded no launch template version to return to; \
             {NODE_GROUP_ROLLBACK_REFUSAL}",
            before.id
        ));
    };
    if previous == running {
        return Err(format!(
            "node group {name}'s last update ({}{}) kept launch template {template} at version \
             {running} and changed only the AMI release ({} → {}); \
             {NODE_GROUP_ROLLBACK_REFUSAL}",
            last.id,
            last.when(),
            before.release.as_deref().unwrap_or("?"),
            last.release.as_deref().unwrap_or("?"),
        ));
    }
    Ok(WayBack {
        option: RollbackOption {
            part: RollbackPart::pool(name),
            to: current.clone(),
            release: Some(launch_template_release(template, previous)),
            basis: format!(
                "launch template version {previous} recorded by update {}{}, before update {} \
                 moved node group {name} to version {running}",
                before.id,
                before.when(),
                last.id
            ),
        },
        launch_template_version: previous.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_eks::types::{LaunchTemplateSpecification, UpdateParam};

    fn update(id: &str, at: i64, params: &[(&str, &str)]) -> Update {
        let mut b = Update::builder()
            .id(id)
            .status(UpdateStatus::Successful)
            .r#type(UpdateType::VersionUpdate)
            .created_at(aws_smithy_types::DateTime::from_secs(at));
        for (t, v) in params {
            b = b.params(
                UpdateParam::builder()
                    .r#type(UpdateParamType::from(*t))
                    .value(*v)
                    .build(),
            );
        }
        b.build()
    }

    fn group(lt: Option<(&str, &str)>) -> Nodegroup {
        let mut b = Nodegroup::builder().nodegroup_name("apps").version("1.33");
        if let Some((name, version)) = lt {
            b = b.launch_template(
                LaunchTemplateSpecification::builder()
                    .name(name)
                    .version(version)
                    .build(),
            );
        }
        b.build()
    }

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn lt(id: &str, at: i64, version: &str, release: &str, ltv: &str) -> VersionRecord {
        VersionRecord::of(&update(
            id,
            at,
            &[
                ("Version", version),
                ("ReleaseVersion", release),
                ("LaunchTemplateName", "apps-lt"),
                ("LaunchTemplateVersion", ltv),
            ],
        ))
        .unwrap()
    }

    #[test]
    fn the_previous_launch_template_version_is_offered() {
        let history = [
            lt("u2", 200, "1.33", "1.33.5-20251120", "5"),
            lt("u1", 100, "1.33", "1.33.5-20251120", "4"),
        ];
        let way = offer_for(&group(Some(("apps-lt", "5"))), &v("1.33"), &history).unwrap();
        assert_eq!(way.launch_template_version, "4");
        let o = way.option;
        assert_eq!(o.to, v("1.33"));
        assert_eq!(
            o.release.as_deref(),
            Some("launch template apps-lt version 4")
        );
        assert!(o.basis.contains("update u1") && o.basis.contains("update u2"));
    }

    #[test]
    fn a_kubernetes_version_change_is_refused_in_eks_words() {
        let history = [
            lt("u1", 100, "1.33", "1.33.5-20251120", "4"),
            lt("u2", 200, "1.34", "1.34.2-20251120", "5"),
        ];
        let why = offer_for(&group(Some(("apps-lt", "5"))), &v("1.34"), &history).unwrap_err();
        assert!(why.contains("from Kubernetes 1.33 to 1.34"), "{why}");
        assert!(why.ends_with(NODE_GROUP_ROLLBACK_REFUSAL), "{why}");
    }

    #[test]
    fn ami_release_only_changes_and_short_histories_are_refused() {
        let history = [
            lt("u1", 100, "1.33", "1.33.5-20251112", "4"),
            lt("u2", 200, "1.33", "1.33.5-20251120", "4"),
        ];
        let why = offer_for(&group(Some(("apps-lt", "4"))), &v("1.33"), &history).unwrap_err();
        assert!(why.contains("changed only the AMI release"), "{why}");
        let why = offer_for(&group(Some(("apps-lt", "4"))), &v("1.33"), &history[1..]).unwrap_err();
        assert!(why.contains("holds one version update (u2"), "{why}");
        let why = offer_for(&group(None), &v("1.33"), &history).unwrap_err();
        assert!(why.contains("has no launch template"), "{why}");
        let why = offer_for(&group(Some(("apps-lt", "4"))), &v("1.33"), &[]).unwrap_err();
        assert!(why.contains("no successful version update"), "{why}");
    }

    fn cp(id: &str, at: i64, version: &str, rollback: bool) -> ClusterVersionRecord {
        ClusterVersionRecord {
            id: id.into(),
            created_secs: at,
            version: Some(version.into()),
            rollback,
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn the_control_plane_goes_back_one_minor_within_seven_days_of_an_upgrade() {
        let history = [
            cp("u1", 10 * DAY, "1.34", false),
            cp("u0", DAY, "1.33", false),
        ];
        let o = control_plane_offer("c", &v("1.34.2"), &history, 16 * DAY).unwrap();
        assert_eq!(o.part, RollbackPart::ControlPlane);
        assert_eq!(o.to, v("1.33"));
        assert!(
            o.basis.contains("upgrade u1 of 1970-01-11T00:00:00Z"),
            "{}",
            o.basis
        );
        assert!(
            o.basis.contains("until 1970-01-18T00:00:00Z"),
            "{}",
            o.basis
        );
        let why = control_plane_offer("c", &v("1.34"), &history, 17 * DAY).unwrap_err();
        assert!(why.contains("more than 7 days old"), "{why}");
        assert!(why.ends_with(CONTROL_PLANE_ROLLBACK_REFUSAL), "{why}");
    }

    #[test]
    fn no_upgrade_a_rollback_last_or_a_stale_history_is_refused() {
        let why = control_plane_offer("c", &v("1.34"), &[], 0).unwrap_err();
        assert!(why.contains("records no in-place upgrade"), "{why}");
        let history = [
            cp("u1", DAY, "1.34", false),
            cp("u2", 2 * DAY, "1.33", true),
        ];
        let why = control_plane_offer("c", &v("1.33"), &history, 3 * DAY).unwrap_err();
        assert!(why.contains("was a rollback to 1.33"), "{why}");
        let why = control_plane_offer("c", &v("1.35"), &history[..1], 2 * DAY).unwrap_err();
        assert!(why.contains("but it runs 1.35"), "{why}");
        let rollback = Update::builder()
            .id("u3")
            .status(UpdateStatus::Successful)
            .r#type(UpdateType::VersionRollback)
            .params(
                UpdateParam::builder()
                    .r#type(UpdateParamType::Version)
                    .value("1.33")
                    .build(),
            )
            .build();
        assert!(ClusterVersionRecord::of(&rollback).unwrap().rollback);
    }

    #[test]
    fn only_successful_version_updates_count() {
        let u = update("u3", 300, &[("Version", "1.33")]);
        let failed = Update::builder()
            .id("u4")
            .status(UpdateStatus::Failed)
            .r#type(UpdateType::VersionUpdate)
            .build();
        assert!(VersionRecord::of(&failed).is_none());
        let addon = Update::builder()
            .id("u5")
            .status(UpdateStatus::Successful)
            .r#type(UpdateType::AddonUpdate)
            .build();
        assert!(VersionRecord::of(&addon).is_none());
        assert_eq!(
            VersionRecord::of(&u).unwrap().version.as_deref(),
            Some("1.33")
        );
    }
}
