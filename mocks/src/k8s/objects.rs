//! Small helpers to read and build Kubernetes objects as JSON.

use serde_json::{Map, Value, json};

/// The string at a dotted path (`spec.nodeName`), or `""`.
pub(crate) fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The value at a dotted path.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, p| cur.get(p))
}

/// The integer at a dotted path.
pub(crate) fn int(v: &Value, path: &str) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// A mutable object at a dotted path, created (as `{}`) along the way.
pub(crate) fn obj_mut<'a>(v: &'a mut Value, path: &str) -> &'a mut Map<String, Value> {
    let mut cur = v;
    for p in path.split('.') {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else {
            unreachable!("just made an object")
        };
        cur = m
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
    }
    match cur {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Sets a dotted path to `value`.
pub(crate) fn set(v: &mut Value, path: &str, value: Value) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let m = match parent {
        Some(p) => obj_mut(v, p),
        None => {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
            match v {
                Value::Object(m) => m,
                _ => return,
            }
        }
    };
    m.insert(last.to_string(), value);
}

/// The `status` of condition `ty` in `status.conditions`.
pub(crate) fn condition<'a>(v: &'a Value, ty: &str) -> Option<&'a str> {
    v.get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

/// `true` when condition `ty` is `"True"`.
pub(crate) fn condition_true(v: &Value, ty: &str) -> bool {
    condition(v, ty) == Some("True")
}

/// Upserts condition `ty`; `lastTransitionTime` changes only when the status does.
pub(crate) fn set_condition(
    v: &mut Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let st = obj_mut(v, "status");
    let conds = st.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Value::Array(list) = conds else { return };
    let is_node = list.iter().any(|c| c.get("lastHeartbeatTime").is_some());
    if let Some(c) = list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        if c.get("status").and_then(Value::as_str) != Some(status) {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        if is_node {
            c["lastHeartbeatTime"] = json!(now);
        }
        if !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        if !message.is_empty() {
            c["message"] = json!(message);
        }
    } else {
        let mut c = json!({"type": ty, "status": status, "lastTransitionTime": now});
        if is_node {
            c["lastHeartbeatTime"] = json!(now);
        }
        if !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        if !message.is_empty() {
            c["message"] = json!(message);
        }
        list.push(c);
    }
}

/// Labels as pairs.
pub(crate) fn labels(v: &Value) -> Vec<(String, String)> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves an int-or-percent against `total` like `intstr.GetScaledValueFromIntOrPercent`.
pub(crate) fn scaled_value(v: &Value, total: i64, round_up: bool) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Value::String(s) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"))?;
            let scaled = pct * total;
            Ok(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
        other => Err(format!("invalid value for IntOrString: {other}")),
    }
}

/// Is this pod finished (Succeeded or Failed)?
pub(crate) fn pod_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The `imageID` a container runtime reports for `image`: the repository fully qualified
/// (Docker Hub short names under `docker.io/library/`) at its content digest, which the
/// simulator derives from the reference when the spec names none.
pub(crate) fn image_id(image: &str) -> String {
    let (reference, digest) = match image.split_once('@') {
        Some((r, d)) => (r, d.to_string()),
        None => (image, format!("sha256:{}", sha256_hex(image))),
    };
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let repo = match reference.rfind(':') {
        Some(i) if i > reference.rfind('/').unwrap_or(0) => &reference[..i],
        _ => reference,
    };
    let first = repo.split('/').next().unwrap_or_default();
    let qualified = if repo.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{qualified}@{digest}")
}

/// Marks a pod Running with every container started and ready (what the kubelet reports).
pub(crate) fn mark_running(pod: &mut Value, ip: &str, host_ip: &str, now: &str, ready: bool) {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let containers: Vec<(String, String)> = pod
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| (s(c, "name").to_string(), s(c, "image").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let r = if ready { "True" } else { "False" };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(name, image)| {
            let container_id = format!("containerd://{}", sha256_hex(&format!("{uid}/{name}")));
            let image_id = image_id(image);
            if ready {
                json!({"name": name, "state": {"running": {"startedAt": now}}, "ready": true,
                       "restartCount": 0, "image": image, "imageID": image_id,
                       "containerID": container_id, "started": true})
            } else {
                json!({"name": name, "state": {"waiting": {"reason": "CrashLoopBackOff",
                       "message": "back-off 5m0s restarting failed container"}},
                       "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                       "startedAt": now, "finishedAt": now, "containerID": container_id}},
                       "ready": false, "restartCount": 7, "image": image, "imageID": image_id,
                       "containerID": container_id, "started": false})
            }
        })
        .collect();
    let mut conds = vec![
        json!({"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Initialized", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Ready", "status": r, "lastTransitionTime": now}),
        json!({"type": "ContainersReady", "status": r, "lastTransitionTime": now}),
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now}),
    ];
    if !ready {
        for c in &mut conds[2..4] {
            c["reason"] = json!("ContainersNotReady");
        }
    }
    let st = obj_mut(pod, "status");
    st.insert("phase".into(), json!("Running"));
    st.insert("conditions".into(), Value::Array(conds));
    st.insert("hostIP".into(), json!(host_ip));
    st.insert("podIP".into(), json!(ip));
    st.insert("startTime".into(), json!(now));
    st.insert("containerStatuses".into(), Value::Array(statuses));
    st.entry("qosClass").or_insert_with(|| json!("BestEffort"));
}

/// Sets a pod's readiness (Ready and ContainersReady, plus container `ready` flags).
pub(crate) fn set_pod_ready(pod: &mut Value, ready: bool, now: &str) {
    let r = if ready { "True" } else { "False" };
    let reason = if ready { "" } else { "ContainersNotReady" };
    set_condition(pod, "Ready", r, reason, "", now);
    set_condition(pod, "ContainersReady", r, reason, "", now);
    if let Some(cs) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs {
            c["ready"] = json!(ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_qualified_repositories_at_a_digest() {
        let id = image_id("nginx:1.27");
        assert!(id.starts_with("docker.io/library/nginx@sha256:"), "{id}");
        assert_eq!(id.len(), "docker.io/library/nginx@sha256:".len() + 64);
        assert_eq!(
            image_id("nginx:1.27"),
            id,
            "the same image, the same digest"
        );
        assert_ne!(image_id("nginx:1.28"), id);
        assert!(image_id("bitnami/redis:7").starts_with("docker.io/bitnami/redis@sha256:"));
        assert!(
            image_id("registry.k8s.io/pause:3.10").starts_with("registry.k8s.io/pause@sha256:")
        );
        assert!(
            image_id("localhost:5000/app:v1").starts_with("localhost:5000/app@sha256:"),
            "{}",
            image_id("localhost:5000/app:v1")
        );
        assert_eq!(
            image_id("quay.io/x/y@sha256:abc"),
            "quay.io/x/y@sha256:abc",
            "a pinned digest is kept"
        );
        assert!(image_id("busybox").starts_with("docker.io/library/busybox@sha256:"));
    }

    #[test]
    fn scaled_values_round_like_upstream() {
        assert_eq!(scaled_value(&json!("50%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&json!("50%"), 3, false), Ok(1));
        assert_eq!(scaled_value(&json!("34%"), 10, true), Ok(4));
        assert_eq!(scaled_value(&json!(2), 10, true), Ok(2));
        assert!(scaled_value(&json!("abc"), 10, true).is_err());
    }

    #[test]
    fn conditions_keep_transition_times() {
        let mut n = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "lastHeartbeatTime": "a", "lastTransitionTime": "a"}]}});
        set_condition(&mut n, "Ready", "True", "", "", "b");
        assert_eq!(n["status"]["conditions"][0]["lastTransitionTime"], "a");
        set_condition(&mut n, "Ready", "False", "KubeletNotReady", "", "c");
        assert_eq!(n["status"]["conditions"][0]["lastTransitionTime"], "c");
        assert!(!condition_true(&n, "Ready"));
        set(&mut n, "spec.unschedulable", json!(true));
        assert_eq!(at(&n, "spec.unschedulable"), Some(&json!(true)));
    }
}
