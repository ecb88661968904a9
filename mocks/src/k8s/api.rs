//! The REST layer: routes a request to discovery, health, metrics, the control endpoint or a
//! resource, negotiates JSON / Table / metadata-only output, and maps verbs to cluster
//! operations with upstream's status codes and bodies.

use std::sync::Arc;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, header};
use serde_json::{Value, json};

use super::auth::{self, Identity};
use super::cluster::{Cluster, DeleteOpts, Deleted, DeletedVia, DeprecatedUse, Part};
use super::convert;
use super::eviction::Evicted;
use super::http::{self as h, Req, Resp};
use super::objects::{self, s};
use super::patch::{self, PatchType};
use super::resources::{self, ResId, ServedVersion, def, ids};
use super::selector::{FieldSelector, LabelSelector};
use super::shared::{RequestKey, SharedRef};
use super::status::{ApiError, success};
use super::store::{ObjKey, Stored};
use super::table::{self, IncludeObject};
use super::{control, discovery, health, protobuf, watch};

/// A resource request, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub res: ResId,
    pub version: &'static ServedVersion,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    pub(crate) fn ns_key(&self) -> &str {
        if def(self.res).namespaced {
            self.ns.as_deref().unwrap_or("")
        } else {
            ""
        }
    }
}

/// How the client wants objects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Table(&'static str),
    Metadata,
}

/// Picks the first media range in `Accept` the server can produce.
pub(crate) fn negotiate(accept: &str) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        if !matches!(media, "application/json" | "*/*" | "application/*") {
            continue;
        }
        match (param("as"), param("g")) {
            (Some("Table"), Some("meta.k8s.io")) => {
                return Ok(Output::Table(if param("v") == Some("v1beta1") {
                    "meta.k8s.io/v1beta1"
                } else {
                    "meta.k8s.io/v1"
                }));
            }
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Ok(Output::Metadata);
            }
            (Some(_), _) => continue,
            (None, _) => return Ok(Output::Json),
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    ))
}

/// Handles one request; returns the response and the labels for `apiserver_request_total`.
pub(crate) fn handle(sh: &SharedRef, req: &Req) -> Resp {
    let segs: Vec<&str> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if segs.first() == Some(&"_sim") {
        return control::handle(sh, req);
    }
    let who = match auth::admit(sh, req) {
        Ok(who) => who,
        Err(e) => return h::error(&e),
    };
    let minor = sh.lock().minor();
    match segs.as_slice() {
        ["version"] => h::json(200, &sh.lock().version.version_info()),
        [kind @ ("healthz" | "livez" | "readyz")] => health::health(&sh.lock(), kind, None, req),
        [kind @ ("healthz" | "livez" | "readyz"), check @ ..] => {
            health::health(&sh.lock(), kind, Some(&check.join("/")), req)
        }
        ["metrics"] => health::metrics(sh),
        ["api"] if req.method == Method::GET => {
            h::json(200, &discovery::core_versions(&sh.address.to_string()))
        }
        ["apis"] if req.method == Method::GET => {
            h::json(200, &discovery::group_list(minor, &sh.lock().customs))
        }
        ["api", "v1"] if req.method == Method::GET => ok_or_404(discovery::resource_list(
            minor,
            &sh.lock().customs,
            "",
            "v1",
        )),
        ["apis", g] if req.method == Method::GET => {
            ok_or_404(discovery::group(minor, &sh.lock().customs, g))
        }
        ["apis", g, v] if req.method == Method::GET => {
            ok_or_404(discovery::resource_list(minor, &sh.lock().customs, g, v))
        }
        ["api", "v1", rest @ ..] => resource(sh, req, &who, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(sh, req, &who, g, v, rest),
        [] => h::json(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/readyz", "/version"]}),
        ),
        _ => h::text(404, "404 page not found\n"),
    }
}

fn ok_or_404(v: Option<Value>) -> Resp {
    match v {
        Some(v) => h::json(200, &v),
        None => h::error(&ApiError::no_route()),
    }
}

fn parse_target(
    group: &str,
    version: &str,
    rest: &[&str],
    minor: u32,
    customs: &super::custom::Customs,
) -> Result<Target, ApiError> {
    let (ns, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if !matches!(*r, "status" | "finalize") => {
            (Some(ns.to_string()), [&[*r][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    if rest.is_empty() || rest.len() > 3 {
        return Err(ApiError::no_route());
    }
    let (res, sv) = resources::lookup(group, version, rest[0], minor)
        .or_else(|| customs.lookup(group, version, rest[0]))
        .ok_or_else(ApiError::no_route)?;
    let d = def(res);
    if ns.is_some() && !d.namespaced {
        return Err(ApiError::no_route());
    }
    let sub = rest.get(2).map(|s| s.to_string());
    if let Some(sb) = &sub {
        let ok = match sb.as_str() {
            "status" => d.status,
            "scale" => d.scale,
            "eviction" => res == ids::PODS,
            "finalize" => res == ids::NAMESPACES,
            _ => false,
        };
        if !ok {
            return Err(ApiError::no_route());
        }
    }
    Ok(Target {
        res,
        version: sv,
        ns,
        name: rest.get(1).map(|s| s.to_string()),
        sub,
    })
}

fn verb(req: &Req, t: &Target) -> &'static str {
    match (&req.method, t.name.is_some()) {
        (&Method::GET, _) if req.flag("watch") => "WATCH",
        (&Method::GET, true) => "GET",
        (&Method::GET, false) => "LIST",
        (&Method::POST, _) => "POST",
        (&Method::PUT, _) => "PUT",
        (&Method::PATCH, _) => "PATCH",
        (&Method::DELETE, true) => "DELETE",
        (&Method::DELETE, false) => "DELETECOLLECTION",
        _ => "UNKNOWN",
    }
}

fn resource(
    sh: &SharedRef,
    req: &Req,
    who: &Identity,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Resp {
    let (minor, parsed) = {
        let c = sh.lock();
        let minor = c.minor();
        (minor, parse_target(group, version, rest, minor, &c.customs))
    };
    let t = match parsed {
        Ok(t) => t,
        Err(e) => return h::error(&e),
    };
    let d = def(t.res);
    let mut warning = None;
    if t.version.deprecated_in(minor) {
        let removed = t
            .version
            .removed
            .map(|r| format!("1.{r}"))
            .unwrap_or_default();
        let mut msg = format!(
            "{} {} is deprecated in v1.{}+",
            d.api_version(t.version.version),
            d.kind,
            t.version.deprecated.unwrap_or(minor)
        );
        if let Some(r) = t.version.removed {
            msg.push_str(&format!(", unavailable in v1.{r}+"));
        }
        if let Some(rep) = t.version.replacement {
            msg.push_str(&format!("; use {rep}"));
        }
        warning = Some(format!("299 - \"{msg}\""));
        sh.lock().deprecated_used.insert(DeprecatedUse {
            group: d.group.to_string(),
            version: t.version.version.to_string(),
            resource: d.plural.to_string(),
            subresource: t.sub.clone().unwrap_or_default(),
            removed_release: removed,
        });
    }
    let verb = verb(req, &t);
    let answered = if d.review {
        review(sh, req, who, &t)
    } else {
        dispatch(sh, req, &t)
    };
    let mut resp = match answered {
        Ok(r) => r,
        Err(e) => h::error(&e),
    };
    if let Some(w) = warning
        && let Ok(v) = HeaderValue::from_str(&w)
    {
        resp.headers_mut().append(header::WARNING, v);
    }
    sh.count_request(RequestKey {
        verb,
        group: d.group.to_string(),
        version: t.version.version.to_string(),
        resource: d.plural.to_string(),
        subresource: t.sub.clone().unwrap_or_default(),
        scope: if t.name.is_some() {
            "resource"
        } else if t.ns.is_some() {
            "namespace"
        } else {
            "cluster"
        },
        code: resp.status().as_u16(),
    });
    resp
}

/// An access review: only POST to the collection, answered and never stored.
fn review(sh: &SharedRef, req: &Req, who: &Identity, t: &Target) -> Result<Resp, ApiError> {
    if req.method != Method::POST || t.name.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let body = if base_media_type(req) == protobuf::MEDIA_TYPE {
        protobuf::decode(&req.body, def(t.res).kind).map_err(ApiError::bad_request)?
    } else {
        parse_body(req)?
    };
    check_kind(t, &body)?;
    let answered = auth::review::answer(&sh.lock(), def(t.res), t.ns_key(), who, body)?;
    Ok(h::json(201, &answered))
}

fn dry_run(req: &Req) -> bool {
    req.q("dryRun").is_some_and(|v| !v.is_empty())
}

fn dispatch(sh: &SharedRef, req: &Req, t: &Target) -> Result<Resp, ApiError> {
    let out = || negotiate(req.header(header::ACCEPT));
    match (&req.method, &t.name, t.sub.as_deref()) {
        (&Method::GET, None, None) if req.flag("watch") => watch::start(sh, t, req, out()?),
        (&Method::GET, None, None) => list(&sh.lock(), t, req, out()?),
        (&Method::GET, Some(name), None | Some("status")) => {
            let c = sh.lock();
            let o = c
                .get(t.res, t.ns_key(), name)
                .ok_or_else(|| ApiError::not_found(def(t.res), name))?;
            one(&c, t, &o, out()?, 200)
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let c = sh.lock();
            let o = c
                .get(t.res, t.ns_key(), name)
                .ok_or_else(|| ApiError::not_found(def(t.res), name))?;
            Ok(h::json(200, &scale_of(&o.value())))
        }
        (&Method::POST, None, None) => {
            let mut body = parse_body(req)?;
            check_kind(t, &body)?;
            convert::to_storage(t.res, t.version.version, &mut body);
            let mut c = sh.lock();
            let created = c.create(t.res, body, t.ns.as_deref().unwrap_or(""), dry_run(req))?;
            one(&c, t, &created, out()?, 201)
        }
        (&Method::POST, Some(name), Some("eviction")) => {
            let body = parse_body(req)?;
            let mut c = sh.lock();
            match c.evict(t.ns_key(), name, &body, dry_run(req))? {
                Evicted::Done => Ok(h::json(201, &success(Some(201), None))),
                Evicted::MultiplePdbs => Ok(h::json(
                    500,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                        "code": 500}),
                )),
            }
        }
        (&Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let mut body = parse_body(req)?;
            check_kind(t, &body)?;
            convert::to_storage(t.res, t.version.version, &mut body);
            let part = if sub == Some("status") {
                Part::Status
            } else {
                Part::Main
            };
            let mut c = sh.lock();
            let updated = c.update(t.res, t.ns_key(), name, body, part, dry_run(req))?;
            one(&c, t, &updated, out()?, 200)
        }
        (&Method::PUT, Some(name), Some("scale")) => {
            let body = parse_body(req)?;
            let replicas = body.pointer("/spec/replicas").and_then(Value::as_i64);
            set_replicas(
                sh,
                t,
                name,
                replicas,
                s(&body, "metadata.resourceVersion"),
                dry_run(req),
            )
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status") | Some("scale"))) => {
            patch_object(sh, req, t, name, sub, out()?)
        }
        (&Method::DELETE, Some(name), None) => delete_object(sh, req, t, name, out()?),
        (&Method::DELETE, None, None) => delete_collection(sh, req, t),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn base_media_type(req: &Req) -> &str {
    let ct = req.header(header::CONTENT_TYPE);
    ct.split(';').next().unwrap_or("").trim()
}

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    match base_media_type(req) {
        "" | "application/json" | "*/*" => serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body could not be decoded as JSON: {e}"
            ))
        }),
        "application/yaml" => {
            let text = std::str::from_utf8(&req.body)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
            ),
        )),
    }
}

fn check_kind(t: &Target, body: &Value) -> Result<(), ApiError> {
    let d = def(t.res);
    let kind = s(body, "kind");
    if !kind.is_empty() && kind != d.kind {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {kind:?} does not match",
            d.kind
        )));
    }
    let api = s(body, "apiVersion");
    if !api.is_empty() && api != d.api_version(t.version.version) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api}) does not match the expected API version ({})",
            d.api_version(t.version.version)
        )));
    }
    Ok(())
}

/// The object as the client asked for it.
pub(crate) fn out_value(t: &Target, stored: &Stored) -> Value {
    let mut v = stored.value();
    convert::from_storage(t.res, t.version.version, &mut v);
    v
}

fn out_bytes(t: &Target, stored: &Stored) -> Bytes {
    if convert::needs_conversion(t.res, t.version.version) {
        Bytes::from(serde_json::to_vec(&out_value(t, stored)).unwrap_or_default())
    } else {
        stored.json.clone()
    }
}

fn one(c: &Cluster, t: &Target, o: &Stored, out: Output, code: u16) -> Result<Resp, ApiError> {
    Ok(match out {
        Output::Json => h::respond(code, "application/json", out_bytes(t, o)),
        Output::Metadata => h::json(
            code,
            &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.value().get("metadata").cloned().unwrap_or(json!({}))}),
        ),
        Output::Table(api) => {
            let meta = json!({"resourceVersion": o.meta.rv.to_string()});
            let inc = IncludeObject::Metadata;
            h::json(
                code,
                &table::table(t.res, &[out_value(t, o)], inc, meta, api, c.now()),
            )
        }
    })
}

/// Field labels each resource supports in `fieldSelector` (upstream's field label conversions).
pub(crate) fn field_supported(res: ResId, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let plural = def(res).plural;
    match res {
        ids::PODS => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.podIPs"
                | "status.nominatedNodeName"
        ),
        ids::NODES => field == "spec.unschedulable",
        ids::NAMESPACES => field == "status.phase",
        ids::EVENTS => matches!(
            field,
            "involvedObject.kind"
                | "involvedObject.namespace"
                | "involvedObject.name"
                | "involvedObject.uid"
                | "involvedObject.apiVersion"
                | "involvedObject.resourceVersion"
                | "involvedObject.fieldPath"
                | "reason"
                | "reportingComponent"
                | "source"
                | "type"
        ),
        ids::REPLICASETS => field == "status.replicas",
        _ => {
            (plural == "secrets" && field == "type")
                || (plural == "jobs" && field == "status.successful")
        }
    }
}

/// The value of a field label on a stored object.
pub(crate) fn field_value(res: ResId, o: &Stored, field: &str) -> String {
    match field {
        "metadata.name" => return o.meta.name.clone(),
        "metadata.namespace" => return o.meta.namespace.clone(),
        _ => {}
    }
    if let Some(p) = &o.meta.pod {
        match field {
            "spec.nodeName" => return p.node.clone(),
            "status.phase" => return p.phase.clone(),
            _ => {}
        }
    }
    let v = o.value();
    match objects::at(&v, field) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if field == "status.podIPs" => a
            .first()
            .map(|x| s(x, "ip").to_string())
            .unwrap_or_default(),
        _ if res == ids::NODES && field == "spec.unschedulable" => "false".into(),
        _ if res == ids::PODS && field == "spec.hostNetwork" => "false".into(),
        _ => String::new(),
    }
}

/// Parsed `labelSelector` and `fieldSelector`.
pub(crate) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn parse(res: ResId, req: &Req) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        for t in &fields.terms {
            if !field_supported(res, &t.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    pub(crate) fn matches(&self, res: ResId, o: &Stored) -> bool {
        self.labels.matches(&o.meta.labels)
            && (self.fields.is_empty() || self.fields.matches(|f| field_value(res, o, f)))
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let start = if key.0.is_empty() {
        format!("{}\u{0}", key.1)
    } else {
        format!("{}/{}\u{0}", key.0, key.1)
    };
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::STANDARD.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tok)
        .map_err(|_| bad("illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not a JSON continue token"))?;
    if s(&v, "v") != "meta.k8s.io/v1" {
        return Err(bad("server does not recognize this encoded version"));
    }
    let rv = v
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let start = s(&v, "start").trim_end_matches('\u{0}');
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (String::new(), start.to_string()),
    };
    Ok((rv, key))
}

/// One page of a list: the items, the list's resourceVersion, the continue token and the
/// remaining count.
pub(crate) struct Page {
    pub items: Vec<Arc<Stored>>,
    pub rv: u64,
    pub cont: Option<String>,
    pub remaining: Option<usize>,
}

/// `resourceVersion` and `resourceVersionMatch` of a list, validated as upstream's
/// `ValidateListOptions` does: `Some((rv, exact))` when a version is asked for.
fn check_rv_match(req: &Req) -> Result<Option<(u64, bool)>, ApiError> {
    let rv = req.q("resourceVersion").filter(|v| !v.is_empty());
    let matching = req.q("resourceVersionMatch").filter(|v| !v.is_empty());
    let mut errs: Vec<(&str, &str, String)> = Vec::new();
    if let Some(m) = matching {
        let forbidden = |why: &str| {
            (
                "resourceVersionMatch",
                "FieldValueForbidden",
                format!("Forbidden: {why}"),
            )
        };
        if rv.is_none() {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if req.q("continue").is_some_and(|c| !c.is_empty()) {
            errs.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            errs.push((
                "resourceVersionMatch",
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                ),
            ));
        }
        if m == "Exact" && rv == Some("0") {
            errs.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid_kind(
            "ListOptions",
            "meta.k8s.io",
            "",
            &errs,
        ));
    }
    match rv.filter(|v| *v != "0") {
        None => Ok(None),
        Some(v) => {
            let n = v
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))?;
            Ok(Some((n, matching == Some("Exact"))))
        }
    }
}

/// 504 for a version the server has not reached, as the watch cache answers it.
fn too_large(asked: u64, current: u64) -> ApiError {
    let mut e = ApiError::new(
        504,
        "Timeout",
        format!("Too large resource version: {asked}, current: {current}"),
    )
    .with_details(
        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    e.retry_after = Some(1);
    e
}

/// Lists with selectors, `limit` and `continue` (pages are cut by key, so they are stable;
/// a continued page reads the state at the first page's resourceVersion).
pub(crate) fn page(c: &Cluster, t: &Target, req: &Req) -> Result<Page, ApiError> {
    let sel = Selectors::parse(t.res, req)?;
    let limit = match req.q("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        _ => 0,
    };
    let current = c.store.rv();
    let (rv, after, at) = match req.q("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            check_rv_match(req)?;
            let (rv, key) = decode_continue(tok)?;
            if rv < c.store.oldest_rv() {
                let mut e = ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                );
                e.details = None;
                return Err(e);
            }
            (rv, Some(key), Some(rv))
        }
        None => {
            let wanted = check_rv_match(req)?;
            match wanted {
                Some((n, _)) if n > current => return Err(too_large(n, current)),
                Some((n, true)) => (n, None, Some(n)),
                _ => (current, None, None),
            }
        }
    };
    let ns = t.ns.as_deref();
    // A continued list, or one at an exact resourceVersion, reads the state at that version.
    let snapshot = match at.filter(|a| *a < current) {
        Some(a) => Some(c.store.snapshot(t.res, ns, a).map_err(|_| {
            let mut e = ApiError::gone("The resourceVersion for the provided list is too old.");
            e.details = None;
            e
        })?),
        None => None,
    };
    let node_index = if t.res == ids::PODS && snapshot.is_none() {
        sel.fields.required("spec.nodeName")
    } else {
        None
    };
    let candidates: Box<dyn Iterator<Item = Arc<Stored>>> = match (&snapshot, node_index) {
        (Some(objects), _) => Box::new(objects.values().cloned()),
        (None, Some(node)) => Box::new(
            c.store
                .pods_on_node(node)
                .into_iter()
                .filter(move |(pns, _)| ns.is_none_or(|n| n == pns))
                .filter_map(|(pns, pname)| c.store.get(ids::PODS, &pns, &pname).cloned()),
        ),
        (None, None) => Box::new(c.store.list(t.res, ns).cloned()),
    };
    let mut items = Vec::new();
    let mut cont = None;
    let mut remaining = None;
    let mut it = candidates
        .filter(|o| after.as_ref().is_none_or(|a| o.key() > *a))
        .filter(|o| sel.matches(t.res, o));
    for o in it.by_ref() {
        items.push(o);
        if limit > 0 && items.len() == limit {
            break;
        }
    }
    if limit > 0 && items.len() == limit {
        let rest = it.count();
        if rest > 0 {
            if let Some(last) = items.last() {
                cont = Some(encode_continue(rv, &last.key()));
            }
            if sel.is_empty() {
                remaining = Some(rest);
            }
        }
    }
    Ok(Page {
        items,
        rv,
        cont,
        remaining,
    })
}

fn list_meta(p: &Page) -> Value {
    let mut m = json!({"resourceVersion": p.rv.to_string()});
    if let Some(cn) = &p.cont {
        m["continue"] = json!(cn);
    }
    if let Some(r) = p.remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

fn list(c: &Cluster, t: &Target, req: &Req, out: Output) -> Result<Resp, ApiError> {
    let p = page(c, t, req)?;
    let d = def(t.res);
    match out {
        Output::Table(api) => {
            let rows: Vec<Value> = p.items.iter().map(|o| out_value(t, o)).collect();
            let include = IncludeObject::parse(req.q("includeObject"));
            Ok(h::json(
                200,
                &table::table(t.res, &rows, include, list_meta(&p), api, c.now()),
            ))
        }
        Output::Metadata => {
            let items: Vec<Value> = p
                .items
                .iter()
                .map(|o| {
                    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.value().get("metadata").cloned().unwrap_or(json!({}))})
                })
                .collect();
            Ok(h::json(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta(&p), "items": items}),
            ))
        }
        Output::Json => {
            // Stitch the stored bytes together: lists of 150k pods stay cheap.
            let head = json!({"kind": format!("{}List", d.kind), "apiVersion": d.api_version(t.version.version),
                "metadata": list_meta(&p)});
            let head = serde_json::to_vec(&head).unwrap_or_default();
            let mut buf = BytesMut::with_capacity(
                head.len() + p.items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16,
            );
            buf.put_slice(&head[..head.len() - 1]);
            buf.put_slice(b",\"items\":[");
            for (i, o) in p.items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                buf.put_slice(&out_bytes(t, o));
            }
            buf.put_slice(b"]}");
            Ok(h::respond(200, "application/json", buf.freeze()))
        }
    }
}

fn scale_of(v: &Value) -> Value {
    let sel = v
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let md = v.get("metadata").cloned().unwrap_or(json!({}));
    let keep: serde_json::Map<String, Value> = md
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "name" | "namespace" | "uid" | "resourceVersion" | "creationTimestamp"
                    )
                })
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": keep,
        "spec": {"replicas": objects::int(v, "spec.replicas").unwrap_or(1)},
        "status": {"replicas": objects::int(v, "status.replicas").unwrap_or(0), "selector": sel}})
}

fn set_replicas(
    sh: &SharedRef,
    t: &Target,
    name: &str,
    replicas: Option<i64>,
    rv: &str,
    dry: bool,
) -> Result<Resp, ApiError> {
    let d = def(t.res);
    let Some(n) = replicas.filter(|n| *n >= 0) else {
        return Err(ApiError::invalid(
            d,
            name,
            &[(
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: must be greater than or equal to 0".into(),
            )],
        ));
    };
    let mut c = sh.lock();
    let o = c
        .get(t.res, t.ns_key(), name)
        .ok_or_else(|| ApiError::not_found(d, name))?;
    if !rv.is_empty() && rv != o.meta.rv.to_string() {
        return Err(ApiError::stale(d, name));
    }
    let mut v = o.value();
    objects::set(&mut v, "spec.replicas", json!(n));
    let updated = c.update(t.res, t.ns_key(), name, v, Part::Main, dry)?;
    Ok(h::json(200, &scale_of(&updated.value())))
}

fn patch_object(
    sh: &SharedRef,
    req: &Req,
    t: &Target,
    name: &str,
    sub: Option<&str>,
    out: Output,
) -> Result<Resp, ApiError> {
    let ct = req.header(header::CONTENT_TYPE);
    let kind =
        PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let d = def(t.res);
    if d.custom.is_some() && kind == PatchType::Strategic {
        // Custom resources have no patch strategies: upstream refuses the content type.
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
        ));
    }
    let body = patch::parse_body(kind, &req.body)?;
    let mut c = sh.lock();
    let Some(cur) = c.get(t.res, t.ns_key(), name) else {
        if kind == PatchType::Apply && sub.is_none() {
            // Server-side apply creates what does not exist.
            let mut v = body;
            check_kind(t, &v)?;
            convert::to_storage(t.res, t.version.version, &mut v);
            objects::set(&mut v, "metadata.name", json!(name));
            let created = c.create(t.res, v, t.ns.as_deref().unwrap_or(""), dry_run(req))?;
            return one(&c, t, &created, out, 201);
        }
        return Err(ApiError::not_found(d, name));
    };
    if sub == Some("scale") {
        let patched = patch::apply(kind, &scale_of(&cur.value()), &body)?;
        let replicas = patched.pointer("/spec/replicas").and_then(Value::as_i64);
        drop(c);
        return set_replicas(
            sh,
            t,
            name,
            replicas,
            s(&body, "metadata.resourceVersion"),
            dry_run(req),
        );
    }
    let current = out_value(t, &cur);
    // Custom kinds have no merge keys: an applied configuration merges maps and replaces
    // lists (atomic lists, the schema default), which is what a merge patch does.
    let how = if d.custom.is_some() && kind == PatchType::Apply {
        PatchType::Merge
    } else {
        kind
    };
    let mut patched = patch::apply(how, &current, &body)?;
    // A resourceVersion in the patch is a precondition; otherwise the patch applies to the latest.
    let explicit_rv = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    objects::set(
        &mut patched,
        "metadata.resourceVersion",
        json!(explicit_rv.unwrap_or_else(|| cur.meta.rv.to_string())),
    );
    convert::to_storage(t.res, t.version.version, &mut patched);
    let part = if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    let updated = c.update(t.res, t.ns_key(), name, patched, part, dry_run(req))?;
    one(&c, t, &updated, out, 200)
}

fn delete_opts(req: &Req) -> Result<DeleteOpts, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let grace = match req.q("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        ),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let propagation = req.q("propagationPolicy").map(str::to_string).or_else(|| {
        body.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let orphan = propagation.as_deref() == Some("Orphan")
        || body.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let uid = body
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let rv = body
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let dry = dry_run(req)
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    Ok(DeleteOpts {
        grace,
        uid,
        rv,
        orphan,
        dry_run: dry,
    })
}

fn delete_object(
    sh: &SharedRef,
    req: &Req,
    t: &Target,
    name: &str,
    out: Output,
) -> Result<Resp, ApiError> {
    let opts = delete_opts(req)?;
    let mut c = sh.lock();
    let d = def(t.res);
    let result = c.delete(t.res, t.ns_key(), name, &opts, DeletedVia::Delete)?;
    let returns_object = t.res == ids::PODS || t.res == ids::NAMESPACES;
    match result {
        Deleted::Pending(o) => one(&c, t, &o, out, 200),
        Deleted::Gone(o) if returns_object => one(&c, t, &o, out, 200),
        Deleted::Gone(o) => {
            let mut details = json!({"name": name, "kind": d.plural, "uid": o.meta.uid});
            if !d.group.is_empty() {
                details["group"] = json!(d.group);
            }
            Ok(h::json(200, &success(None, Some(details))))
        }
    }
}

fn delete_collection(sh: &SharedRef, req: &Req, t: &Target) -> Result<Resp, ApiError> {
    let opts = delete_opts(req)?;
    let mut c = sh.lock();
    let sel = Selectors::parse(t.res, req)?;
    let victims: Vec<ObjKey> = c
        .store
        .list(t.res, t.ns.as_deref())
        .filter(|o| sel.matches(t.res, o))
        .map(|o| o.key())
        .collect();
    for (ns, name) in victims {
        let _ = c.delete(t.res, &ns, &name, &opts, DeletedVia::DeleteCollection);
    }
    Ok(h::json(200, &success(None, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(kubectl).ok(),
            Some(Output::Table("meta.k8s.io/v1"))
        );
        assert_eq!(negotiate("application/json").ok(), Some(Output::Json));
        assert_eq!(negotiate("").ok(), Some(Output::Json));
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf, */*").ok(),
            Some(Output::Json)
        );
        let disco =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(disco).ok(), Some(Output::Json));
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").ok(),
            Some(Output::Metadata)
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf")
                .map_err(|e| e.code)
                .err(),
            Some(406)
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let tok = encode_continue(42, &("shop".into(), "web-1".into()));
        let (rv, key) = decode_continue(&tok).expect("token");
        assert_eq!((rv, key.0.as_str(), key.1.as_str()), (42, "shop", "web-1"));
        assert_eq!(decode_continue("!!").map_err(|e| e.code).err(), Some(400));
    }
}
