//! The control endpoint under `/_sim/`: the cluster-side controls as JSON over HTTP, for
//! processes outside the test (shell shims on a test sshd, cloud mocks in another process).
//!
//! | method and path | body | effect |
//! |---|---|---|
//! | `GET /_sim/state` | | version, nodes (ready, kubelet version, cordoned), object counts |
//! | `POST /_sim/version` | `{"version":"v1.34.1"}` | sets the API server version |
//! | `POST /_sim/nodes` | a scenario [`super::Node`] | a node joins (NotReady, then Ready) |
//! | `DELETE /_sim/nodes/{name}` | | removes a node (its pods are force-deleted) |
//! | `POST /_sim/nodes/{name}/kubelet-version` | `{"version":"v1.34.1"}` | kubelet restart with that version |
//! | `POST /_sim/nodes/{name}/condition` | `{"type":"Ready","status":"False"}` | sets a node condition |
//! | `POST /_sim/nodes/{name}/never-ready` | `{"neverReady":true}` | the node never becomes Ready |
//! | `POST /_sim/pods/{ns}/{name}/stuck-terminating` | `{"stuck":true}` | the pod stays Terminating |
//! | `POST /_sim/pods/{ns}/{name}/ready` | `{"ready":false}` | sets the pod's readiness |
//! | `POST /_sim/clock/advance` | `{"seconds":120}` | moves simulated time forward |
//! | `POST /_sim/compact` | | drops watch history (old resourceVersions get 410) |
//! | `POST /_sim/health/{check}` | `{"healthy":false}` | fails (or heals) a `/readyz` `/livez` check |
//! | `GET`/`DELETE /_sim/requests` | | the request log / clears it |
//! | `GET /_sim/deletions` | | every pod deletion and how it happened |
//! | `GET /_sim/faults`, `POST /_sim/faults`, `DELETE /_sim/faults[/{id}]` | a [`super::Fault`] | fault injection |
//!
//! Answers are JSON: `{"ok":true}` (or a document), errors `{"error":"…"}` with 400 or 404.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::cluster::node_ready;
use super::faults::{Fault, FaultId};
use super::http::{self as h, Req, Resp};
use super::objects::s;
use super::resources::ids;
use super::scenario::Node;
use super::shared::SharedRef;
use crate::Error;

fn err(e: &Error) -> Resp {
    let code = match e {
        Error::NotFound { .. } => 404,
        _ => 400,
    };
    h::json(code, &json!({"error": e.to_string()}))
}

fn ok() -> Resp {
    h::json(200, &json!({"ok": true}))
}

fn body(req: &Req) -> Result<Value, Error> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| Error::invalid("body", format!("not JSON: {e}")))
}

fn field<'a>(b: &'a Value, key: &str) -> Result<&'a Value, Error> {
    b.get(key).ok_or_else(|| Error::invalid(key, "required"))
}

fn str_field<'a>(b: &'a Value, key: &str) -> Result<&'a str, Error> {
    field(b, key)?
        .as_str()
        .ok_or_else(|| Error::invalid(key, "must be a string"))
}

fn bool_field(b: &Value, key: &str) -> Result<bool, Error> {
    field(b, key)?
        .as_bool()
        .ok_or_else(|| Error::invalid(key, "must be true or false"))
}

pub(crate) fn handle(sh: &SharedRef, req: &Req) -> Resp {
    match run(sh, req) {
        Ok(r) => r,
        Err(e) => err(&e),
    }
}

fn run(sh: &SharedRef, req: &Req) -> Result<Resp, Error> {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').skip(1).collect();
    let m = &req.method;
    let r = match (m, segs.as_slice()) {
        (&Method::GET, ["state"]) => {
            let c = sh.lock();
            let nodes: Vec<Value> = c
                .store
                .table(ids::NODES)
                .values()
                .map(|n| {
                    let v = n.value();
                    json!({"name": n.meta.name, "ready": node_ready(&v),
                        "kubeletVersion": s(&v, "status.nodeInfo.kubeletVersion"),
                        "unschedulable": v.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false)})
                })
                .collect();
            let counts: serde_json::Map<String, Value> = c
                .store
                .resources()
                .into_iter()
                .filter(|r| c.store.count(*r) > 0)
                .map(|r| {
                    (
                        super::resources::def(r).qualified(),
                        json!(c.store.count(r)),
                    )
                })
                .collect();
            h::json(
                200,
                &json!({"version": c.version.git_version(), "resourceVersion": c.store.rv().to_string(),
                "now": super::clock::rfc3339(c.now()), "nodes": nodes, "counts": counts}),
            )
        }
        (&Method::POST, ["version"]) => {
            let b = body(req)?;
            sh.lock().ctl_set_version(str_field(&b, "version")?)?;
            ok()
        }
        (&Method::POST, ["nodes"]) => {
            let node: Node = serde_json::from_slice(&req.body)
                .map_err(|e| Error::invalid("body", format!("not a node: {e}")))?;
            sh.lock().ctl_add_node(&node)?;
            ok()
        }
        (&Method::DELETE, ["nodes", name]) => {
            sh.lock().ctl_remove_node(name)?;
            ok()
        }
        (&Method::POST, ["nodes", name, "kubelet-version"]) => {
            let b = body(req)?;
            sh.lock()
                .ctl_set_kubelet_version(name, str_field(&b, "version")?)?;
            ok()
        }
        (&Method::POST, ["nodes", name, "condition"]) => {
            let b = body(req)?;
            sh.lock().ctl_set_node_condition(
                name,
                str_field(&b, "type")?,
                str_field(&b, "status")?,
            )?;
            ok()
        }
        (&Method::POST, ["nodes", name, "never-ready"]) => {
            let b = body(req)?;
            sh.lock()
                .ctl_set_never_ready(name, bool_field(&b, "neverReady")?)?;
            ok()
        }
        (&Method::POST, ["pods", ns, name, "stuck-terminating"]) => {
            let b = body(req)?;
            sh.lock()
                .ctl_set_pod_stuck(ns, name, bool_field(&b, "stuck")?)?;
            ok()
        }
        (&Method::POST, ["pods", ns, name, "ready"]) => {
            let b = body(req)?;
            sh.lock()
                .ctl_set_pod_ready(ns, name, bool_field(&b, "ready")?)?;
            ok()
        }
        (&Method::POST, ["clock", "advance"]) => {
            let b = body(req)?;
            let secs = field(&b, "seconds")?
                .as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| Error::invalid("seconds", "must be a non-negative number"))?;
            sh.clock.advance(Duration::from_secs_f64(secs));
            sh.wake.notify_one();
            ok()
        }
        (&Method::POST, ["compact"]) => {
            sh.lock().store.compact();
            ok()
        }
        (&Method::POST, ["health", check @ ..]) => {
            let b = body(req)?;
            let name = check.join("/");
            let healthy = bool_field(&b, "healthy")?;
            let mut c = sh.lock();
            if healthy {
                c.failing_checks.remove(&name);
            } else {
                c.failing_checks.insert(name);
            }
            ok()
        }
        (&Method::GET, ["requests"]) => h::json(
            200,
            &serde_json::to_value(sh.requests.entries()).unwrap_or(Value::Null),
        ),
        (&Method::DELETE, ["requests"]) => {
            sh.requests.clear();
            ok()
        }
        (&Method::GET, ["deletions"]) => h::json(
            200,
            &serde_json::to_value(&sh.lock().deletions).unwrap_or(Value::Null),
        ),
        (&Method::GET, ["faults"]) => {
            let list: Vec<Value> = sh
                .faults
                .list()
                .into_iter()
                .map(|(id, f, fired)| json!({"id": id.0, "fault": f, "fired": fired}))
                .collect();
            h::json(200, &json!(list))
        }
        (&Method::POST, ["faults"]) => {
            let f: Fault = serde_json::from_slice(&req.body)
                .map_err(|e| Error::invalid("body", format!("not a fault: {e}")))?;
            let id = sh.faults.add(f);
            h::json(200, &json!({"id": id.0}))
        }
        (&Method::DELETE, ["faults"]) => {
            sh.faults.clear();
            ok()
        }
        (&Method::DELETE, ["faults", id]) => {
            let id: u64 = id
                .parse()
                .map_err(|_| Error::invalid("fault id", "must be a number"))?;
            if !sh.faults.remove(FaultId(id)) {
                return Err(Error::not_found("fault", id.to_string()));
            }
            ok()
        }
        _ => h::json(
            404,
            &json!({"error": format!("no control endpoint {} {}", req.method, req.path)}),
        ),
    };
    sh.wake.notify_one();
    Ok(r)
}
