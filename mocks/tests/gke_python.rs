//! Python's `google-cloud-container` (Google's own client, an independent implementation of
//! GKE's REST/JSON wire format) against the GKE mock: server config, the cluster and its node
//! pools, an upgrade and its operation polled to DONE, a node-pool update with blue-green
//! settings, and errors as the client raises them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kup_mocks::gke::{GkeConfig, GkeMock};
use serde_json::Value;

/// `KUP_GKE_PYTHON` (a Python with `google-cloud-container`), else `python3` if it has the
/// package. Missing: panics under CI, else `None`.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUP_GKE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", "import google.cloud.container_v1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!(
                "google-cloud-container not found: set KUP_GKE_PYTHON (scripts/test installs it)"
            );
        }
        eprintln!(
            "skipping: google-cloud-container not found (set KUP_GKE_PYTHON or run scripts/test)"
        );
        return None;
    }
    Some(candidate)
}

const SCRIPT: &str = r#"
import json, sys, time
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1

endpoint = sys.argv[1]
client = container_v1.ClusterManagerClient(
    credentials=AnonymousCredentials(),
    transport="rest",
    client_options=ClientOptions(api_endpoint=endpoint),
)
parent = "projects/demo-project/locations/us-central1"
cluster = parent + "/clusters/demo"
out = {}
cfg = client.get_server_config(name=parent)
out["masters"] = list(cfg.valid_master_versions)
out["channels"] = [container_v1.ReleaseChannel.Channel(c.channel).name for c in cfg.channels]
c = client.get_cluster(name=cluster)
out["master"] = c.current_master_version
out["status"] = container_v1.Cluster.Status(c.status).name
out["channel"] = container_v1.ReleaseChannel.Channel(c.release_channel.channel).name
out["pools"] = sorted((p.name, p.version) for p in c.node_pools)
op = client.update_master(name=cluster, master_version="1.34")
out["op_type"] = container_v1.Operation.Type(op.operation_type).name
out["op_first"] = container_v1.Operation.Status(op.status).name
def failure(call):
    # The REST transport raises by HTTP status; the google.rpc.Status body says the rest.
    try:
        call()
    except exceptions.GoogleAPICallError as e:
        body = e.response.json()["error"]
        return [type(e).__name__, e.code, body["status"], body["message"]]
    return None

out["busy"] = failure(lambda: client.update_master(name=cluster, master_version="1.34"))
for _ in range(500):
    got = client.get_operation(name=parent + "/operations/" + op.name)
    if got.status == container_v1.Operation.Status.DONE:
        break
    time.sleep(0.02)
out["op_done"] = container_v1.Operation.Status(got.status).name
out["op_error"] = got.error.code
out["master_after"] = client.get_cluster(name=cluster).current_master_version
settings = container_v1.NodePool.UpgradeSettings(
    strategy=container_v1.NodePoolUpdateStrategy.BLUE_GREEN,
    blue_green_settings=container_v1.BlueGreenSettings(
        standard_rollout_policy=container_v1.BlueGreenSettings.StandardRolloutPolicy(
            batch_node_count=1, batch_soak_duration={"seconds": 60}),
        node_pool_soak_duration={"seconds": 600},
    ),
)
pool_op = client.update_node_pool(request={
    "name": cluster + "/nodePools/apps", "node_version": "1.34.1-gke.1829001",
    "image_type": "COS_CONTAINERD", "upgrade_settings": settings})
out["pool_op"] = container_v1.Operation.Type(pool_op.operation_type).name
pool = client.get_node_pool(name=cluster + "/nodePools/apps")
out["pool_strategy"] = container_v1.NodePoolUpdateStrategy(pool.upgrade_settings.strategy).name
out["pool_soak"] = pool.upgrade_settings.blue_green_settings.node_pool_soak_duration.total_seconds()
out["not_found"] = failure(lambda: client.get_node_pool(name=cluster + "/nodePools/nope"))
out["skip"] = failure(lambda: client.update_master(name=cluster, master_version="1.36"))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cloud_container_reads_and_drives_the_mock() {
    let Some(py) = python() else { return };
    let mock = GkeMock::start(GkeConfig::demo().time_scale(3000.0), None)
        .await
        .unwrap();
    let out = tokio::process::Command::new(&py)
        .args(["-c", SCRIPT, &mock.endpoint()])
        .env("GOOGLE_CLOUD_DISABLE_DIRECT_PATH", "true")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["master"], "1.33.5-gke.1080000");
    assert!(
        v["masters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "1.34.1-gke.1829001")
    );
    assert!(
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "REGULAR")
    );
    assert_eq!(v["status"], "RUNNING");
    assert_eq!(v["channel"], "REGULAR");
    assert_eq!(v["pools"][0][0], "apps");
    assert_eq!(v["op_type"], "UPGRADE_MASTER");
    assert_eq!(v["op_first"], "PENDING");
    // GKE answers FAILED_PRECONDITION as HTTP 400 while another operation runs.
    assert_eq!(v["busy"][0], "BadRequest", "{v}");
    assert_eq!(v["busy"][1], 400);
    assert_eq!(v["busy"][2], "FAILED_PRECONDITION");
    assert!(
        v["busy"][3]
            .as_str()
            .unwrap()
            .contains("incompatible operation"),
        "{v}"
    );
    assert_eq!(v["op_done"], "DONE");
    assert_eq!(v["op_error"], 0);
    assert_eq!(v["master_after"], "1.34.1-gke.1829001");
    assert_eq!(v["pool_op"], "UPGRADE_NODES");
    assert_eq!(v["pool_strategy"], "BLUE_GREEN");
    assert_eq!(v["pool_soak"], 600.0);
    assert_eq!(v["not_found"][0], "NotFound", "{v}");
    assert_eq!(v["not_found"][2], "NOT_FOUND");
    assert!(v["not_found"][3].as_str().unwrap().contains("nope"), "{v}");
    // A skip is bad input, refused before the busy check.
    assert_eq!(v["skip"][2], "INVALID_ARGUMENT", "{v}");
    assert!(v["skip"][3].as_str().unwrap().contains("one minor"), "{v}");
    let calls = mock.calls();
    assert_eq!(calls["updateMaster"], 3, "{calls:?}");
    assert_eq!(calls["updateNodePool"], 1, "{calls:?}");
}

const ROLLBACK_SAFE: &str = r#"
import json, sys, time
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1

endpoint = sys.argv[1]
client = container_v1.ClusterManagerClient(
    credentials=AnonymousCredentials(),
    transport="rest",
    client_options=ClientOptions(api_endpoint=endpoint),
)
parent = "projects/demo-project/locations/us-central1"
cluster = parent + "/clusters/demo"
out = {}
def failure(call):
    try:
        call()
    except exceptions.GoogleAPICallError as e:
        body = e.response.json()["error"]
        return [e.code, body["status"], body["message"]]
    return None
def done(op):
    for _ in range(1000):
        got = client.get_operation(name=parent + "/operations/" + op.name)
        if got.status == container_v1.Operation.Status.DONE:
            return got.error.code
        time.sleep(0.02)
    return "never"

out["short_soak"] = failure(lambda: client.update_cluster(name=cluster, update={
    "desired_master_version": "1.34",
    "desired_rollback_safe_upgrade": {"control_plane_soak_duration": {"seconds": 60}}}))
op = client.update_cluster(name=cluster, update={
    "desired_master_version": "1.34",
    "desired_rollback_safe_upgrade": {"control_plane_soak_duration": {"seconds": 604800}}})
out["upgrade"] = done(op)
s = client.fetch_cluster_upgrade_info(name=cluster).rollback_safe_upgrade_status
out["mode"] = container_v1.RollbackSafeUpgradeStatus.Mode(s.mode).name
out["previous"] = s.previous_version
out["has_end"] = s.control_plane_upgrade_rollback_end_time is not None
out["forward"] = failure(lambda: client.update_master(name=cluster, master_version="1.35"))
back = client.update_master(name=cluster, master_version=s.previous_version)
out["rollback"] = done(back)
out["after_rollback"] = client.get_cluster(name=cluster).current_master_version
out["complete_none"] = failure(lambda: client.complete_control_plane_upgrade(request={"name": cluster}))
op = client.update_cluster(name=cluster, update={
    "desired_master_version": "1.34",
    "desired_rollback_safe_upgrade": {"control_plane_soak_duration": {"seconds": 604800}}})
out["again"] = done(op)
out["complete"] = done(client.complete_control_plane_upgrade(request={"name": cluster}))
out["refused"] = failure(lambda: client.update_master(name=cluster, master_version=s.previous_version))
out["mode_after"] = container_v1.RollbackSafeUpgradeStatus.Mode(
    client.fetch_cluster_upgrade_info(name=cluster).rollback_safe_upgrade_status.mode).name
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cloud_container_drives_a_rollback_safe_upgrade_its_rollback_and_refusals() {
    let Some(py) = python() else { return };
    let mock = GkeMock::start(GkeConfig::demo().time_scale(3000.0), None)
        .await
        .unwrap();
    let out = tokio::process::Command::new(&py)
        .args(["-c", ROLLBACK_SAFE, &mock.endpoint()])
        .env("GOOGLE_CLOUD_DISABLE_DIRECT_PATH", "true")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["short_soak"][1], "INVALID_ARGUMENT", "{v}");
    assert!(
        v["short_soak"][2]
            .as_str()
            .unwrap()
            .contains("controlPlaneSoakDuration"),
        "{v}"
    );
    assert_eq!(v["upgrade"], 0, "{v}");
    assert_eq!(v["mode"], "KCP_MINOR_UPGRADE_ROLLBACK_SAFE_MODE");
    assert_eq!(v["previous"], "1.33.5-gke.1080000");
    assert_eq!(v["has_end"], true);
    assert_eq!(v["forward"][0], 400);
    assert_eq!(v["forward"][1], "FAILED_PRECONDITION", "{v}");
    assert_eq!(v["rollback"], 0, "{v}");
    assert_eq!(v["after_rollback"], "1.33.5-gke.1080000");
    assert_eq!(v["complete_none"][1], "FAILED_PRECONDITION", "{v}");
    assert_eq!(v["again"], 0, "{v}");
    assert_eq!(v["complete"], 0, "{v}");
    assert_eq!(v["refused"][0], 400);
    assert_eq!(v["refused"][1], "FAILED_PRECONDITION", "{v}");
    assert!(
        v["refused"][2]
            .as_str()
            .unwrap()
            .contains("not in rollback-safe mode"),
        "{v}"
    );
    assert_eq!(v["mode_after"], "MODE_UNSPECIFIED");
    assert_eq!(
        mock.master_version("demo").as_deref(),
        Some("1.34.1-gke.1829001")
    );
}
