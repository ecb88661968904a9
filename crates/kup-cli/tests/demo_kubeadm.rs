//! `kup demo --provider kubeadm` to completion: the kubeadm provider on the simulator with its
//! nodes played in process, with a real etcd when installed and the simulator's store when not.

#![allow(clippy::unwrap_used)]

use std::process::Output;

async fn demo(envs: &[(&str, &str)], kubeconfig: &std::path::Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kup"))
        .args([
            "--provider",
            "kubeadm",
            "demo",
            "--speed",
            "40",
            "--kubeconfig-out",
        ])
        .arg(kubeconfig)
        .envs(envs.iter().copied())
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_upgraded(out: &Output) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    for needle in [
        "== 1. versions",
        "== 2. pre-flight for 1.35",
        "== 3. plan to 1.35",
        "== 5. validation",
        // Control-plane nodes one at a time, each cordoned, upgraded, uncordoned.
        "cordoned cp-1\n      cp-1: kubeadm upgrade done, kubelet 1.34.2\n      uncordoned cp-1\n      cordoned cp-2",
        "cordoned w-1",
        "drained w-1",
        "uncordoned w-3",
        "control plane 1.35.1, pools control-plane=1.35.1 workers=1.35.1",
        "0 app pods deleted any other way",
        "2 etcd snapshot(s) verified",
    ] {
        assert!(all.contains(needle), "{needle:?} missing:\n{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubeadm_demo_upgrades_with_a_real_etcd_snapshot() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let (etcd, etcdctl) = (std::env::var("KUP_ETCD"), std::env::var("KUP_ETCDCTL"));
    let (Ok(etcd), Ok(etcdctl)) = (etcd, etcdctl) else {
        assert!(
            !ci,
            "KUP_ETCD and KUP_ETCDCTL are required under CI (scripts/test sets them)"
        );
        eprintln!("skipping: KUP_ETCD/KUP_ETCDCTL not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let out = demo(
        &[("KUP_ETCD", &etcd), ("KUP_ETCDCTL", &etcdctl)],
        &kubeconfig,
    )
    .await;
    assert_upgraded(&out);
    let all = text(&out);
    assert!(
        all.contains("a real etcd") && all.contains("(real etcd)"),
        "{all}"
    );
    assert!(all.contains(&kubeconfig.display().to_string()), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_the_kubeadm_demo_says_so_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(
        &[
            ("KUP_ETCD", "/nonexistent/etcd"),
            ("KUP_ETCDCTL", "/nonexistent/etcdctl"),
        ],
        &dir.path().join("kubeconfig"),
    )
    .await;
    assert_upgraded(&out);
    let all = text(&out);
    assert!(
        all.contains("etcd and etcdctl not installed") && all.contains("(the simulator's store)"),
        "{all}"
    );
}
