//! Server-side printing: `meta.k8s.io` Table responses with the columns upstream's printers
//! (`pkg/printers/internalversion/printers.go`) produce, which is what `kubectl get` shows.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::clock::parse_time;
use super::custom::columns;
use super::objects::{self, s};
use super::resources::{ResId, ResourceDef, def, ids};

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
}

const fn col(name: &'static str, ty: &'static str, priority: u8) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority,
    }
}

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
};
const AGE: Col = col("Age", "string", 0);

/// Columns of a custom resource: Name, then its printer columns (Age when it declares none).
fn custom_columns(d: &'static ResourceDef) -> Option<Vec<Col>> {
    let spec = d.custom?;
    let Some(cols) = columns::of(spec, d.versions[0].version) else {
        return Some(vec![NAME, col("Age", "date", 0)]);
    };
    let mut out = vec![NAME];
    out.extend(cols.iter().map(|c| Col {
        name: c.name.as_str(),
        ty: c.kind.as_str(),
        format: c.format.as_str(),
        priority: u8::try_from(c.priority).unwrap_or(0),
    }));
    Some(out)
}

fn custom_cells(d: &'static ResourceDef, v: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let spec = d.custom?;
    let mut out = vec![json!(s(v, "metadata.name"))];
    let Some(cols) = columns::of(spec, d.versions[0].version) else {
        out.push(age(v, now));
        return Some(out);
    };
    for c in cols {
        let value = columns::eval(v, &c.json_path);
        // Date columns print as an age, like kubectl's printer does for them.
        let cell = match (
            c.kind.as_str(),
            value.and_then(Value::as_str).and_then(parse_time),
        ) {
            ("date", Some(t)) => json!(human_duration(now.duration_since(t).as_secs())),
            _ => columns::cell(c, value),
        };
        out.push(cell);
    }
    Some(out)
}

fn columns(res: ResId) -> Vec<Col> {
    if let Some(cols) = custom_columns(def(res)) {
        return cols;
    }
    match res {
        ids::PODS => vec![
            NAME,
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            AGE,
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ],
        ids::NODES => vec![
            NAME,
            col("Status", "string", 0),
            col("Roles", "string", 0),
            AGE,
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
            col("External-IP", "string", 1),
            col("OS-Image", "string", 1),
            col("Kernel-Version", "string", 1),
            col("Container-Runtime", "string", 1),
        ],
        ids::PDBS => vec![
            NAME,
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            AGE,
        ],
        ids::DEPLOYMENTS => vec![
            NAME,
            col("Ready", "string", 0),
            col("Up-to-date", "string", 0),
            col("Available", "string", 0),
            AGE,
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ids::REPLICASETS => vec![
            NAME,
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            AGE,
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ids::STATEFULSETS => vec![
            NAME,
            col("Ready", "string", 0),
            AGE,
            col("Containers", "string", 1),
            col("Images", "string", 1),
        ],
        ids::DAEMONSETS => vec![
            NAME,
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Node Selector", "string", 0),
            AGE,
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ids::NAMESPACES => vec![NAME, col("Status", "string", 0), AGE],
        ids::PVCS => vec![
            NAME,
            col("Status", "string", 0),
            col("Volume", "string", 0),
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            AGE,
            col("VolumeMode", "string", 1),
        ],
        ids::LEASES => vec![NAME, col("Holder", "string", 0), AGE],
        ids::EVENTS => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Subobject", "string", 1),
            col("Source", "string", 1),
            col("Message", "string", 0),
            col("First Seen", "string", 1),
            col("Count", "string", 1),
            Col {
                priority: 1,
                ..NAME
            },
        ],
        ids::PRIORITYCLASSES => vec![
            NAME,
            col("Value", "integer", 0),
            col("Global-Default", "boolean", 0),
            AGE,
            col("Preemption-Policy", "string", 0),
        ],
        _ if def(res).plural == "configmaps" => vec![NAME, col("Data", "integer", 0), AGE],
        _ if def(res).plural == "apiservices" => vec![
            NAME,
            col("Service", "string", 0),
            col("Available", "string", 0),
            AGE,
        ],
        _ if def(res).plural == "storageclasses" => vec![
            NAME,
            col("Provisioner", "string", 0),
            col("ReclaimPolicy", "string", 0),
            col("VolumeBindingMode", "string", 0),
            col("AllowVolumeExpansion", "string", 0),
            AGE,
        ],
        _ if def(res).plural == "csinodes" => vec![NAME, col("Drivers", "integer", 0), AGE],
        _ if def(res).plural.ends_with("webhookconfigurations") => {
            vec![NAME, col("Webhooks", "integer", 0), AGE]
        }
        _ if def(res).plural == "cronjobs" => vec![
            NAME,
            col("Schedule", "string", 0),
            col("Timezone", "string", 0),
            col("Suspend", "boolean", 0),
            col("Active", "integer", 0),
            col("Last Schedule", "string", 0),
            AGE,
        ],
        _ => vec![
            NAME,
            Col {
                name: "Created At",
                ty: "date",
                format: "",
                priority: 0,
            },
        ],
    }
}

/// `duration.HumanDuration` from apimachinery.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(v: &Value, now: Timestamp) -> Value {
    match parse_time(s(v, "metadata.creationTimestamp")) {
        Some(t) => json!(human_duration(now.duration_since(t).as_secs())),
        None => json!("<unknown>"),
    }
}

fn or_none(x: &str) -> Value {
    if x.is_empty() {
        json!("<none>")
    } else {
        json!(x)
    }
}

fn int_or_na(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

fn containers(v: &Value) -> (String, String) {
    let cs = v
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "image")).collect();
    (names.join(","), images.join(","))
}

fn selector_text(v: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = v
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, x) in m {
            parts.push(format!("{k}={}", x.as_str().unwrap_or_default()));
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn pod_status(v: &Value) -> String {
    let mut reason = s(v, "status.phase").to_string();
    if !s(v, "status.reason").is_empty() {
        reason = s(v, "status.reason").to_string();
    }
    if let Some(cs) = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
    {
        for c in cs.iter().rev() {
            if let Some(w) = c.pointer("/state/waiting") {
                if !s(w, "reason").is_empty() {
                    reason = s(w, "reason").to_string();
                }
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = if !s(t, "reason").is_empty() {
                    s(t, "reason").to_string()
                } else {
                    format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                };
            }
        }
    }
    if v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        reason = if s(v, "status.reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

fn cells(res: ResId, v: &Value, now: Timestamp) -> Vec<Value> {
    if let Some(cells) = custom_cells(def(res), v, now) {
        return cells;
    }
    let name = json!(s(v, "metadata.name"));
    let i = |p: &str| objects::int(v, p).unwrap_or(0);
    match res {
        ids::PODS => {
            let cs = v
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = v
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = cs
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = cs
                .iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(v)),
                json!(restarts.to_string()),
                age(v, now),
                or_none(s(v, "status.podIP")),
                or_none(s(v, "spec.nodeName")),
                or_none(s(v, "status.nominatedNodeName")),
                json!("<none>"),
            ]
        }
        ids::NODES => {
            let mut status = match objects::condition(v, "Ready") {
                Some("True") => vec!["Ready".to_string()],
                Some(_) => vec!["NotReady".to_string()],
                None => vec!["Unknown".to_string()],
            };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push("SchedulingDisabled".into());
            }
            let mut roles: Vec<String> = objects::labels(v)
                .into_iter()
                .filter_map(|(k, val)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!r.is_empty()).then(|| r.to_string())
                    } else if k == "kubernetes.io/role" {
                        (!val.is_empty()).then_some(val)
                    } else {
                        None
                    }
                })
                .collect();
            roles.sort();
            roles.dedup();
            let addr = |ty: &str| {
                v.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| s(x, "type") == ty))
                    .map(|x| s(x, "address").to_string())
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(status.join(",")),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age(v, now),
                json!(s(v, "status.nodeInfo.kubeletVersion")),
                or_none(&addr("InternalIP")),
                or_none(&addr("ExternalIP")),
                json!(s(v, "status.nodeInfo.osImage")),
                json!(s(v, "status.nodeInfo.kernelVersion")),
                json!(s(v, "status.nodeInfo.containerRuntimeVersion")),
            ]
        }
        ids::PDBS => vec![
            name,
            int_or_na(v.pointer("/spec/minAvailable")),
            int_or_na(v.pointer("/spec/maxUnavailable")),
            json!(i("status.disruptionsAllowed")),
            age(v, now),
        ],
        ids::DEPLOYMENTS => {
            let (c, im) = containers(v);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i("status.readyReplicas"),
                    objects::int(v, "spec.replicas").unwrap_or(1)
                )),
                json!(i("status.updatedReplicas").to_string()),
                json!(i("status.availableReplicas").to_string()),
                age(v, now),
                json!(c),
                json!(im),
                json!(selector_text(v)),
            ]
        }
        ids::REPLICASETS => {
            let (c, im) = containers(v);
            vec![
                name,
                json!(objects::int(v, "spec.replicas").unwrap_or(1)),
                json!(i("status.replicas")),
                json!(i("status.readyReplicas")),
                age(v, now),
                json!(c),
                json!(im),
                json!(selector_text(v)),
            ]
        }
        ids::STATEFULSETS => {
            let (c, im) = containers(v);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i("status.readyReplicas"),
                    objects::int(v, "spec.replicas").unwrap_or(1)
                )),
                age(v, now),
                json!(c),
                json!(im),
            ]
        }
        ids::DAEMONSETS => {
            let (c, im) = containers(v);
            let ns = v
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(i("status.desiredNumberScheduled")),
                json!(i("status.currentNumberScheduled")),
                json!(i("status.numberReady")),
                json!(i("status.updatedNumberScheduled")),
                json!(i("status.numberAvailable")),
                or_none(&ns),
                age(v, now),
                json!(c),
                json!(im),
                json!(selector_text(v)),
            ]
        }
        ids::NAMESPACES => vec![name, json!(s(v, "status.phase")), age(v, now)],
        ids::PVCS => {
            let modes: Vec<&str> = v
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO",
                            "ReadOnlyMany" => "ROX",
                            "ReadWriteMany" => "RWX",
                            "ReadWriteOncePod" => "RWOP",
                            other => other,
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(s(v, "status.phase")),
                json!(s(v, "spec.volumeName")),
                json!(
                    v.pointer("/status/capacity/storage")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                json!(modes.join(",")),
                json!(s(v, "spec.storageClassName")),
                json!("<unset>"),
                age(v, now),
                json!(s(v, "spec.volumeMode")),
            ]
        }
        ids::LEASES => vec![name, or_none(s(v, "spec.holderIdentity")), age(v, now)],
        ids::EVENTS => {
            let since = |field: &str| match parse_time(s(v, field)) {
                Some(t) => json!(human_duration(now.duration_since(t).as_secs())),
                None => json!("<unknown>"),
            };
            let source = [s(v, "source.component"), s(v, "source.host")]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                since("lastTimestamp"),
                json!(s(v, "type")),
                json!(s(v, "reason")),
                json!(format!(
                    "{}/{}",
                    s(v, "involvedObject.kind").to_ascii_lowercase(),
                    s(v, "involvedObject.name")
                )),
                json!(s(v, "involvedObject.fieldPath")),
                json!(source),
                json!(s(v, "message")),
                since("firstTimestamp"),
                json!(objects::int(v, "count").unwrap_or(1).to_string()),
                name,
            ]
        }
        ids::PRIORITYCLASSES => vec![
            name,
            json!(i("value")),
            json!(
                v.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(v, now),
            json!(s(v, "preemptionPolicy")),
        ],
        _ if def(res).plural == "apiservices" => {
            let service = match v.pointer("/spec/service") {
                Some(svc) if !svc.is_null() => {
                    format!("{}/{}", s(svc, "namespace"), s(svc, "name"))
                }
                _ => "Local".to_string(),
            };
            let available = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"))
                .map_or_else(
                    || "Unknown".to_string(),
                    |c| {
                        let status = s(c, "status");
                        if status == "True" {
                            status.to_string()
                        } else {
                            format!("{status} ({})", s(c, "reason"))
                        }
                    },
                );
            vec![name, json!(service), json!(available), age(v, now)]
        }
        _ if def(res).plural == "storageclasses" => {
            let default = v
                .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true");
            let or = |p: &str, d: &str| {
                let x = s(v, p);
                json!(if x.is_empty() { d } else { x })
            };
            vec![
                json!(if default {
                    format!("{} (default)", s(v, "metadata.name"))
                } else {
                    s(v, "metadata.name").to_string()
                }),
                json!(s(v, "provisioner")),
                or("reclaimPolicy", "Delete"),
                or("volumeBindingMode", "Immediate"),
                json!(
                    v.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                ),
                age(v, now),
            ]
        }
        _ if def(res).plural == "csinodes" => {
            let n = v
                .pointer("/spec/drivers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(n), age(v, now)]
        }
        _ if def(res).plural.ends_with("webhookconfigurations") => {
            let n = v
                .get("webhooks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(n), age(v, now)]
        }
        _ if def(res).plural == "configmaps" => {
            let n = v.get("data").and_then(Value::as_object).map_or(0, Map::len)
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
            vec![name, json!(n), age(v, now)]
        }
        _ if def(res).plural == "cronjobs" => vec![
            name,
            json!(s(v, "spec.schedule")),
            or_none(s(v, "spec.timeZone")),
            json!(
                v.pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(
                v.pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            or_none(s(v, "status.lastScheduleTime")),
            age(v, now),
        ],
        _ => vec![name, json!(s(v, "metadata.creationTimestamp"))],
    }
}

/// A Table of `rows` (objects already converted to the requested version).
pub(crate) fn table(
    res: ResId,
    rows: &[Value],
    include: IncludeObject,
    list_meta: Value,
    table_api_version: &str,
    now: Timestamp,
) -> Value {
    let cols: Vec<Value> = columns(res)
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format, "description": column_description(c.name), "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|v| {
            let mut row = json!({"cells": cells(res, v, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = v.clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": v.get("metadata").cloned().unwrap_or(json!({}))});
                }
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": table_api_version, "metadata": list_meta, "columnDefinitions": cols, "rows": rows})
}

fn column_description(name: &str) -> &'static str {
    match name {
        "Name" => {
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
        }
        "Age" => {
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC."
        }
        "Created At" => {
            "CreationTimestamp is a timestamp representing the server time when this object was created."
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (900, "15m"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (3 * 86400, "3d"),
            (3 * 86400 + 7200, "3d2h"),
            (30 * 86400, "30d"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn node_and_pod_cells() {
        let now = Timestamp::now();
        let node = json!({"metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.5"}}});
        let c = cells(ids::NODES, &node, now);
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.33.5");
        let pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"ready": true, "restartCount": 2, "state": {"running": {}}}]}});
        let c = cells(ids::PODS, &pod, now);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("1/1"), json!("Terminating"), json!("2"))
        );
    }
}
