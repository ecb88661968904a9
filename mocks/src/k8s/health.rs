//! `/healthz`, `/livez`, `/readyz` (with `?verbose`, `?exclude=` and per-check paths) and
//! `/metrics` in the Prometheus text format.

use std::fmt::Write;

use super::cluster::Cluster;
use super::http::{self as h, Req, Resp};
use super::shared::SharedRef;

/// The checks each endpoint runs, in upstream's order.
pub(crate) fn checks(kind: &str) -> &'static [&'static str] {
    const LIVE: &[&str] = &[
        "ping",
        "log",
        "etcd",
        "poststarthook/start-apiserver-admission-initializer",
        "poststarthook/generic-apiserver-start-informers",
        "poststarthook/start-apiextensions-controllers",
        "poststarthook/crd-informer-synced",
        "poststarthook/bootstrap-controller",
        "poststarthook/scheduling/bootstrap-system-priority-classes",
    ];
    const READY: &[&str] = &[
        "ping",
        "log",
        "etcd",
        "etcd-readiness",
        "informer-sync",
        "poststarthook/start-apiserver-admission-initializer",
        "poststarthook/generic-apiserver-start-informers",
        "poststarthook/start-apiextensions-controllers",
        "poststarthook/crd-informer-synced",
        "poststarthook/bootstrap-controller",
        "poststarthook/scheduling/bootstrap-system-priority-classes",
        "shutdown",
    ];
    if kind == "readyz" { READY } else { LIVE }
}

pub(crate) fn health(c: &Cluster, kind: &str, check: Option<&str>, req: &Req) -> Resp {
    let all = checks(kind);
    if let Some(name) = check {
        if !all.contains(&name) {
            return h::text(404, "404 page not found\n");
        }
        return if c.failing_checks.contains(name) {
            h::text(500, format!("internal server error: {name} check failed\n"))
        } else {
            h::text(200, "ok")
        };
    }
    let excluded: Vec<&str> = req
        .query
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = String::new();
    let mut failed = false;
    for name in all {
        if excluded.contains(name) {
            let _ = writeln!(body, "[+]{name} excluded: ok");
        } else if c.failing_checks.contains(*name) {
            failed = true;
            let _ = writeln!(body, "[-]{name} failed: reason withheld");
        } else {
            let _ = writeln!(body, "[+]{name} ok");
        }
    }
    if failed {
        let _ = writeln!(body, "{kind} check failed");
        return h::text(500, body);
    }
    if req.q("verbose").is_some() {
        let _ = writeln!(body, "{kind} check passed");
        return h::text(200, body);
    }
    h::text(200, "ok")
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn metrics(sh: &SharedRef) -> Resp {
    let mut out = String::new();
    out.push_str("# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.\n");
    out.push_str("# TYPE apiserver_requested_deprecated_apis gauge\n");
    for d in sh.lock().deprecated_used.iter() {
        let _ = writeln!(
            out,
            "apiserver_requested_deprecated_apis{{group=\"{}\",removed_release=\"{}\",resource=\"{}\",subresource=\"{}\",version=\"{}\"}} 1",
            esc(&d.group),
            esc(&d.removed_release),
            esc(&d.resource),
            esc(&d.subresource),
            esc(&d.version)
        );
    }
    out.push_str("# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
    out.push_str("# TYPE apiserver_request_total counter\n");
    let totals = sh
        .request_totals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (k, n) in totals {
        let _ = writeln!(
            out,
            "apiserver_request_total{{code=\"{}\",component=\"apiserver\",dry_run=\"\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
            k.code,
            esc(&k.group),
            esc(&k.resource),
            k.scope,
            esc(&k.subresource),
            k.verb,
            esc(&k.version)
        );
    }
    h::respond(200, "text/plain; version=0.0.4; charset=utf-8", out)
}
