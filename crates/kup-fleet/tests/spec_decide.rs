//! Validation errors name the field; the wave decision respects concurrency, budgets,
//! approvals and soak.

#![allow(clippy::unwrap_used)]

use jiff::Timestamp;
use kup_core::KubeVersion;
use kup_fleet::{ClusterOutcome, ControlState, Decision, FleetRun, FleetSpec, decide};

fn spec(yaml: &str) -> FleetSpec {
    serde_saphyr::from_str(yaml).unwrap()
}

const BASE: &str = r#"
members:
  - { name: a, labels: { env: dev } }
  - { name: b, labels: { env: dev } }
  - { name: c, labels: { env: prod } }
strategy:
  stages:
    - name: dev
      maxConcurrency: "50%"
      soak: 1h
      groups: [{ name: dev, selector: { matchLabels: { env: dev } } }]
    - name: prod
      approval: true
      groups: [{ name: prod, clusters: [c] }]
"#;

#[test]
fn validation_errors_name_the_field() {
    let bad = BASE
        .replace("\"50%\"", "\"150%\"")
        .replace("soak: 1h", "soak: 31d")
        .replace(
            "clusters: [c]",
            "clusters: [c, zz], selector: { matchExpressions: [{ key: env, operator: Maybe }] }",
        );
    let err = spec(&bad).validate().unwrap_err();
    let paths: Vec<&str> = err
        .spec_problems()
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    assert!(
        paths.contains(&"strategy.stages[0].maxConcurrency"),
        "{err}"
    );
    assert!(paths.contains(&"strategy.stages[0].soak"), "{err}");
    assert!(
        paths.contains(&"strategy.stages[1].groups[0].clusters[1]"),
        "{err}"
    );
    assert!(
        paths.contains(&"strategy.stages[1].groups[0].selector.matchExpressions[0].operator"),
        "{err}"
    );
    assert!(
        err.to_string().contains("In, NotIn, Exists, DoesNotExist"),
        "{err}"
    );
}

#[test]
fn a_member_in_two_groups_or_none_is_an_error() {
    let two = BASE.replace("clusters: [c]", "clusters: [c, a]");
    let err = spec(&two).validate().unwrap_err();
    assert!(
        err.to_string().contains("\"a\" is in more than one group"),
        "{err}"
    );
    let none = BASE.replace("clusters: [c]", "clusters: [b]");
    let err = spec(&none).validate().unwrap_err();
    assert!(err.to_string().contains("members in no group: c"), "{err}");
}

#[test]
fn decide_walks_the_stages_through_their_gates() {
    let fleet = spec(BASE).validate().unwrap();
    assert_eq!(fleet.stages[0].max_concurrency, 1);
    let t0 = Timestamp::now();
    let mut run = FleetRun::new(&fleet, &KubeVersion::parse("1.33").unwrap(), t0);
    let mut controls = ControlState::default();
    let d = decide(&fleet, &run, &controls, t0);
    assert_eq!(
        d,
        Decision::Start {
            stage: "dev".into(),
            clusters: vec!["a".into()]
        }
    );
    run.apply(&d, t0);
    assert_eq!(decide(&fleet, &run, &controls, t0), Decision::Wait);
    run.record_outcome("a", &ClusterOutcome::Succeeded, t0);
    let d = decide(&fleet, &run, &controls, t0);
    assert_eq!(
        d,
        Decision::Start {
            stage: "dev".into(),
            clusters: vec!["b".into()]
        }
    );
    run.apply(&d, t0);
    run.record_outcome("b", &ClusterOutcome::Succeeded, t0);
    let d = decide(&fleet, &run, &controls, t0);
    let Decision::FinishStage {
        soak_until: Some(until),
        ..
    } = d.clone()
    else {
        panic!("{d:?}")
    };
    run.apply(&d, t0);
    assert_eq!(
        decide(&fleet, &run, &controls, t0),
        Decision::Soak {
            stage: "dev".into(),
            until
        }
    );
    let later = until
        .checked_add(jiff::SignedDuration::from_secs(1))
        .unwrap();
    assert_eq!(
        decide(&fleet, &run, &controls, later),
        Decision::AwaitApproval {
            stage: "prod".into()
        }
    );
    controls.approvals.insert(
        "prod".into(),
        kup_fleet::Approval {
            stage: "prod".into(),
            by: "x".into(),
            at: later,
        },
    );
    let d = decide(&fleet, &run, &controls, later);
    assert_eq!(
        d,
        Decision::Start {
            stage: "prod".into(),
            clusters: vec!["c".into()]
        }
    );
    run.apply(&d, later);
    run.record_outcome(
        "c",
        &ClusterOutcome::Failed {
            message: "boom".into(),
        },
        later,
    );
    let d = decide(&fleet, &run, &controls, later);
    assert!(
        matches!(&d, Decision::Halt { reason, failed_stage: Some(s) } if reason.contains("c") && s == "prod"),
        "{d:?}"
    );
}
