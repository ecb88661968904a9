//! RBAC: Roles, ClusterRoles and their bindings, stored as ordinary objects, decide every
//! request (upstream's `plugin/pkg/auth/authorizer/rbac`, without aggregation).

use serde_json::Value;

use super::super::cluster::Cluster;
use super::super::objects::s;
use super::super::resources::ids;
use super::attributes::{Attributes, ResourceAttrs};
use super::identity::Identity;

/// An authorizer's answer, with upstream's reason for an allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Decides `a` for `who`: `system:masters` first (upstream's privileged-group authorizer),
/// then every ClusterRoleBinding, then the RoleBindings of the request's namespace.
pub(crate) fn authorize(c: &Cluster, who: &Identity, a: &Attributes) -> Decision {
    if who.is_privileged() {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    for b in c.store.list(ids::CLUSTERROLEBINDINGS, None) {
        let b = b.value();
        if let Some(reason) = binding_allows(c, &b, "", who, a) {
            return allow(reason);
        }
    }
    if let Some(r) = &a.resource
        && !r.namespace.is_empty()
    {
        for b in c.store.list(ids::ROLEBINDINGS, Some(&r.namespace)) {
            let b = b.value();
            if let Some(reason) = binding_allows(c, &b, &r.namespace, who, a) {
                return allow(reason);
            }
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

fn allow(reason: String) -> Decision {
    Decision {
        allowed: true,
        reason: format!("RBAC: allowed by {reason}"),
    }
}

/// The allow reason if binding `b` (in `ns`, empty for a ClusterRoleBinding) grants `a`.
fn binding_allows(
    c: &Cluster,
    b: &Value,
    ns: &str,
    who: &Identity,
    a: &Attributes,
) -> Option<String> {
    let subject = b
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find(|sub| subject_matches(sub, ns, who))?;
    let role_kind = s(b, "roleRef.kind");
    let role_name = s(b, "roleRef.name");
    let role = match role_kind {
        "ClusterRole" => c.get_value(ids::CLUSTERROLES, "", role_name)?,
        "Role" if !ns.is_empty() => c.get_value(ids::ROLES, ns, role_name)?,
        _ => return None,
    };
    // Rules bound in a namespace never grant non-resource URLs.
    if a.resource.is_none() && !ns.is_empty() {
        return None;
    }
    let rules = role.get("rules").and_then(Value::as_array)?;
    if !rules.iter().any(|r| rule_allows(r, a)) {
        return None;
    }
    let binding = if ns.is_empty() {
        format!("ClusterRoleBinding {:?}", s(b, "metadata.name"))
    } else {
        format!(
            "RoleBinding {:?}",
            format!("{}/{ns}", s(b, "metadata.name"))
        )
    };
    Some(format!(
        "{binding} of {role_kind} {role_name:?} to {}",
        describe(subject, ns)
    ))
}

fn describe(subject: &Value, ns: &str) -> String {
    let kind = s(subject, "kind");
    let name = s(subject, "name");
    if kind == "ServiceAccount" {
        let sns = match s(subject, "namespace") {
            "" => ns,
            n => n,
        };
        format!("{kind} {:?}", format!("{name}/{sns}"))
    } else {
        format!("{kind} {name:?}")
    }
}

fn subject_matches(sub: &Value, ns: &str, who: &Identity) -> bool {
    let name = s(sub, "name");
    match s(sub, "kind") {
        "User" => who.name == name,
        "Group" => who.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let sns = match s(sub, "namespace") {
                "" => ns,
                n => n,
            };
            who.name == format!("system:serviceaccount:{sns}:{name}")
        }
        _ => false,
    }
}

/// The strings of list `key` of `rule` (an absent or malformed list is empty).
pub(crate) fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// One PolicyRule against the request (upstream's `RuleAllows`).
pub(crate) fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !has(&strings(rule, "verbs"), &a.verb) {
        return false;
    }
    match &a.resource {
        Some(r) => resource_rule_allows(rule, r),
        None => strings(rule, "nonResourceURLs").iter().any(|u| {
            u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
        }),
    }
}

fn resource_rule_allows(rule: &Value, r: &ResourceAttrs) -> bool {
    if !has(&strings(rule, "apiGroups"), &r.group) {
        return false;
    }
    let combined = r.combined();
    let resource_ok = strings(rule, "resources").iter().any(|res| {
        res == "*"
            || *res == combined
            || (!r.subresource.is_empty() && res.strip_prefix("*/") == Some(r.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || (!r.name.is_empty() && names.contains(&r.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttrs {
                group: String::new(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: "kube-system".into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_verbs_subresources_names_and_urls() {
        let evict = json!({"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]});
        assert!(rule_allows(
            &evict,
            &attrs("create", "pods", "eviction", "p")
        ));
        assert!(!rule_allows(&evict, &attrs("create", "pods", "", "")));
        let any_status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(
            &any_status,
            &attrs("patch", "nodes", "status", "n")
        ));
        assert!(!rule_allows(&any_status, &attrs("patch", "nodes", "", "n")));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["kup-journal-prod"], "verbs": ["get", "update"]});
        assert!(rule_allows(
            &named,
            &attrs("get", "configmaps", "", "kup-journal-prod")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("get", "configmaps", "", "other")
        ));
        assert!(!rule_allows(&named, &attrs("list", "configmaps", "", "")));
        let urls = json!({"nonResourceURLs": ["/readyz", "/readyz/*"], "verbs": ["get"]});
        let path = |p: &str| Attributes {
            verb: "get".into(),
            resource: None,
            path: p.into(),
        };
        assert!(rule_allows(&urls, &path("/readyz")));
        assert!(rule_allows(&urls, &path("/readyz/etcd")));
        assert!(!rule_allows(&urls, &path("/metrics")));
    }
}
