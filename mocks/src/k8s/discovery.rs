//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`), listing what
//! the simulated minor serves, subresources included (`pods/eviction` as policy Eviction).

use serde_json::{Value, json};

use super::custom::Customs;
use super::resources::{
    RESOURCES, ResourceDef, group_version_served, served_groups, version_priority,
};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn storage_hash(d: &ResourceDef) -> String {
    use base64::Engine;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in d
        .group
        .bytes()
        .chain(b"/".iter().copied())
        .chain(d.plural.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    base64::engine::general_purpose::STANDARD.encode(h.to_be_bytes())
}

/// `/api`.
pub(crate) fn core_versions(server: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]})
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(json!({}))})
}

/// Built-in groups, then the groups of custom resources, each with its versions preferred
/// first.
fn all_groups(minor: u32, customs: &Customs) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out = served_groups(minor);
    for (_, d) in customs.all() {
        let idx = match out.iter().position(|(g, _)| *g == d.group) {
            Some(i) => i,
            None => {
                out.push((d.group, Vec::new()));
                out.len() - 1
            }
        };
        for v in d.versions {
            if !out[idx].1.contains(&v.version) {
                out[idx].1.push(v.version);
            }
        }
        out[idx].1.sort_by_key(|v| version_priority(v));
    }
    out
}

/// `/apis`.
pub(crate) fn group_list(minor: u32, customs: &Customs) -> Value {
    let groups: Vec<Value> = all_groups(minor, customs)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub(crate) fn group(minor: u32, customs: &Customs, name: &str) -> Option<Value> {
    all_groups(minor, customs)
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, vs)| {
            let mut d = group_doc(g, &vs);
            if let Some(o) = d.as_object_mut() {
                o.insert("kind".into(), json!("APIGroup"));
                o.insert("apiVersion".into(), json!("v1"));
            }
            d
        })
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub(crate) fn resource_list(
    minor: u32,
    customs: &Customs,
    group: &str,
    version: &str,
) -> Option<Value> {
    let custom: Vec<&ResourceDef> = customs
        .all()
        .map(|(_, d)| d)
        .filter(|d| d.group == group && d.version(version).is_some())
        .collect();
    if !group_version_served(group, version, minor) && custom.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for d in RESOURCES.iter().filter(|d| d.group == group).chain(custom) {
        if !d.version(version).is_some_and(|v| v.served_in(minor)) {
            continue;
        }
        let verbs: Vec<&str> = if d.review {
            vec!["create"]
        } else if d.plural == "namespaces" {
            VERBS
                .iter()
                .copied()
                .filter(|v| *v != "deletecollection")
                .collect()
        } else {
            VERBS.to_vec()
        };
        let mut r = json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
            "kind": d.kind, "verbs": verbs, "storageVersionHash": storage_hash(d)});
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        out.push(r);
        if d.status {
            out.push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced,
                "kind": d.kind, "verbs": ["get", "patch", "update"]}));
        }
        if d.scale {
            out.push(json!({"name": format!("{}/scale", d.plural), "singularName": "", "namespaced": d.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if d.group.is_empty() && d.plural == "pods" {
            // policy/v1 Eviction from 1.22 on; policy/v1beta1 before.
            let ev = if minor >= 22 { "v1" } else { "v1beta1" };
            out.push(
                json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": ev, "kind": "Eviction", "verbs": ["create"]}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn eviction_is_listed_as_policy_v1() {
        let l = resource_list(33, &Customs::default(), "", "v1").unwrap();
        let ev = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(
            (
                ev["group"].as_str(),
                ev["version"].as_str(),
                ev["kind"].as_str()
            ),
            (Some("policy"), Some("v1"), Some("Eviction"))
        );
        assert!(resource_list(25, &Customs::default(), "policy", "v1beta1").is_none());
        assert!(resource_list(24, &Customs::default(), "policy", "v1beta1").is_some());
        let groups = group_list(24, &Customs::default());
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "policy" && g["preferredVersion"]["version"] == "v1")
        );
    }
}
