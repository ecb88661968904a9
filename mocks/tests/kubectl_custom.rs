//! Real kubectl with custom resources: apply a CRD and an object of its kind, get them by
//! plural and short name with the printer columns, patch and delete.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Kubectl, kubectl};
use kup_mocks::k8s::{Scenario, SimConfig, Simulator};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fleetupgrades.kup.dev
spec:
  group: kup.dev
  scope: Namespaced
  names:
    plural: fleetupgrades
    singular: fleetupgrade
    kind: FleetUpgrade
    shortNames: [fu]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Target
      type: string
      jsonPath: .spec.target
    - name: Batch
      type: integer
      jsonPath: .spec.batch
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [target]
            properties:
              target: {type: string}
              batch: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

const CR: &str = r#"
apiVersion: kup.dev/v1alpha1
kind: FleetUpgrade
metadata:
  name: spring
  namespace: default
spec:
  target: "1.34"
  batch: 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_patch_and_delete_custom_objects() {
    let Some(bin) = kubectl() else { return };
    let sim = Simulator::start(Scenario::small(), SimConfig::fast())
        .await
        .unwrap();
    let k = Kubectl::new(bin, &sim);
    let dir = tempfile::tempdir().unwrap();
    let crd = dir.path().join("crd.yaml");
    let cr = dir.path().join("cr.yaml");
    std::fs::write(&crd, CRD).unwrap();
    std::fs::write(&cr, CR).unwrap();

    // The simulator serves no OpenAPI documents, so client-side validation is off.
    let out = k
        .ok(&["apply", "--validate=false", "-f", crd.to_str().unwrap()])
        .await;
    assert!(out.contains("fleetupgrades.kup.dev created"), "{out}");
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/fleetupgrades.kup.dev",
        "--timeout=60s",
    ])
    .await;
    let out = k
        .ok(&["apply", "--validate=false", "-f", cr.to_str().unwrap()])
        .await;
    assert!(out.contains("fleetupgrade.kup.dev/spring created"), "{out}");
    // A second apply changes nothing.
    let out = k
        .ok(&["apply", "--validate=false", "-f", cr.to_str().unwrap()])
        .await;
    assert!(out.contains("unchanged"), "{out}");

    let got = k.ok(&["get", "fleetupgrades"]).await;
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        lines[0].split_whitespace().eq(["NAME", "TARGET", "BATCH"]),
        "{got}"
    );
    assert!(
        lines[1].split_whitespace().eq(["spring", "1.34", "2"]),
        "{got}"
    );
    let short = k
        .ok(&["get", "fu", "spring", "-o", "jsonpath={.spec.target}"])
        .await;
    assert_eq!(short, "1.34");

    let out = k
        .ok(&[
            "patch",
            "fleetupgrade",
            "spring",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"target":"1.35"}}"#,
        ])
        .await;
    assert!(out.contains("patched"), "{out}");
    let gen_ = k
        .ok(&[
            "get",
            "fu",
            "spring",
            "-o",
            "jsonpath={.spec.target} {.metadata.generation}",
        ])
        .await;
    assert_eq!(gen_, "1.35 2");

    // A schema violation is refused with the field named.
    let bad = k
        .run(&[
            "patch",
            "fu",
            "spring",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"batch":"two"}}"#,
        ])
        .await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.batch"), "{err}");

    let out = k.ok(&["delete", "fu", "spring"]).await;
    assert!(out.contains("deleted"), "{out}");
    let none = k.run(&["get", "fu", "spring"]).await;
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("NotFound"));
    let out = k.ok(&["delete", "-f", crd.to_str().unwrap()]).await;
    assert!(out.contains("deleted"), "{out}");
    sim.shutdown().await;
}
