//! `kup` built without the default `demo` feature links neither the simulator (kup-mocks) nor
//! wiremock: checked on cargo's resolved dependency graph (.ci/run also builds it that way).

use std::process::Command;

fn normal_dependencies(features: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "kup-cli",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(features)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_the_demo_feature_kup_links_neither_the_simulator_nor_wiremock() {
    let without = normal_dependencies(&["--no-default-features"]);
    for name in ["kup-mocks ", "wiremock "] {
        assert!(!without.contains(name), "{name}is linked:\n{without}");
    }
    assert!(without.contains("kup-eks "), "{without}");
    let with = normal_dependencies(&[]);
    assert!(
        with.contains("kup-mocks ") && with.contains("wiremock "),
        "{with}"
    );
}
