//! The one classification of `kube::Error`: what kind of failure it is, which
//! [`ErrorCategory`] a caller acts on, whether repeating the same call may succeed, and how long
//! the server asked to wait. Every crate that talks to the Kubernetes API (drain, journal,
//! lock, node polling, the providers) asks here instead of matching status codes itself.
//!
//! | answer | kind | category | retryable |
//! |---|---|---|---|
//! | 400 BadRequest, 422 Invalid | `Invalid` | InvalidInput | no |
//! | 401 Unauthorized, client auth failure | `Unauthorized` | PermissionDenied | no |
//! | 403 Forbidden | `Forbidden` | PermissionDenied | no |
//! | 404 NotFound | `NotFound` | NotFound | no |
//! | 409 AlreadyExists | `AlreadyExists` | Conflict | no (re-read) |
//! | 409 Conflict | `Conflict` | Conflict | no (re-read) |
//! | 410 Gone, reason Expired | `Gone` | Conflict | no (re-list) |
//! | 429 TooManyRequests | `Throttled` | Provider | yes, after `Retry-After` |
//! | 500, 502, 503 | `ServerError` | Provider | yes |
//! | 504, reason Timeout/ServerTimeout | `ServerTimeout` | Provider | yes |
//! | any other status | `OtherStatus` | Provider | no |
//! | request timed out on the client | `Timeout` | Provider | yes |
//! | connection refused, reset, closed | `Connection` | Provider | yes |
//! | TLS handshake or certificate | `Certificate` | InvalidInput | no |
//! | kubeconfig, proxy or TLS set-up | `Config` | InvalidInput | no |
//! | an answer or request kup cannot encode or decode | `Client` | Provider | no |

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use kube::config::Kubeconfig;
use kube::core::Status;
use kup_core::{ErrorCategory, ProviderKind};

/// What kind of failure a `kube::Error` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KubeErrorKind {
    /// 400 BadRequest or 422 Invalid: the request itself is wrong.
    Invalid,
    /// 401, or the client could not authenticate (exec plugin, token file).
    Unauthorized,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 404.
    NotFound,
    /// 409 with reason AlreadyExists: a create found the object there.
    AlreadyExists,
    /// 409 Conflict: the object changed since it was read.
    Conflict,
    /// 410 Gone or reason Expired: the resourceVersion is too old; list again.
    Gone,
    /// 429: the API server asks the client to slow down.
    Throttled,
    /// 500, 502 or 503.
    ServerError,
    /// 504, or reason Timeout/ServerTimeout: the server gave up waiting.
    ServerTimeout,
    /// Any other status code.
    OtherStatus,
    /// The request timed out on the client's side before an answer arrived.
    Timeout,
    /// The connection could not be opened or broke before an answer arrived.
    Connection,
    /// The TLS handshake failed: the server's certificate is not trusted (or TLS is broken).
    Certificate,
    /// The client could not be set up: kubeconfig, proxy or TLS configuration.
    Config,
    /// A request or answer kup cannot encode or decode.
    Client,
}

/// The classification of one `kube::Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeErrorClass {
    /// What kind of failure.
    pub kind: KubeErrorKind,
    /// The category a caller acts on (exit codes, whether to resume).
    pub category: ErrorCategory,
    /// Whether repeating the same call unchanged may succeed.
    pub retryable: bool,
    /// The server's `retryAfterSeconds`, when it gave one.
    pub retry_after: Option<Duration>,
    /// The HTTP status, when the API server answered.
    pub code: Option<u16>,
}

impl KubeErrorKind {
    fn class(self, code: Option<u16>, retry_after: Option<Duration>) -> KubeErrorClass {
        use KubeErrorKind as K;
        let (category, retryable) = match self {
            K::Invalid | K::Certificate | K::Config => (ErrorCategory::InvalidInput, false),
            K::Unauthorized | K::Forbidden => (ErrorCategory::PermissionDenied, false),
            K::NotFound => (ErrorCategory::NotFound, false),
            // A 409 or 410 asks for a fresh read, not for the same request again.
            K::AlreadyExists | K::Conflict | K::Gone => (ErrorCategory::Conflict, false),
            K::Throttled | K::ServerError | K::ServerTimeout | K::Timeout | K::Connection => {
                (ErrorCategory::Provider, true)
            }
            K::OtherStatus | K::Client => (ErrorCategory::Provider, false),
        };
        KubeErrorClass {
            kind: self,
            category,
            retryable,
            retry_after: retry_after.filter(|_| retryable),
            code,
        }
    }
}

/// Classifies a `kube::Error`.
pub fn classify(err: &kube::Error) -> KubeErrorClass {
    use KubeErrorKind as K;
    match err {
        kube::Error::Api(status) => classify_status(status),
        kube::Error::HyperError(e) if e.is_timeout() => K::Timeout.class(None, None),
        kube::Error::RustlsTls(_) => K::Certificate.class(None, None),
        kube::Error::Auth(_) => K::Unauthorized.class(None, None),
        kube::Error::InferConfig(_)
        | kube::Error::InferKubeconfig(_)
        | kube::Error::ProxyProtocolUnsupported { .. }
        | kube::Error::ProxyProtocolDisabled { .. }
        | kube::Error::TlsRequired => K::Config.class(None, None),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            transport_kind(err).class(None, None)
        }
        _ => K::Client.class(None, None),
    }
}

/// Classifies an API server's `Status` answer (also what a watch's error event carries, and
/// what the eviction client reads from a raw response). The code decides; a reason refines
/// it (AlreadyExists vs Conflict, Expired, ServerTimeout), and stands in for a missing code.
pub fn classify_status(status: &Status) -> KubeErrorClass {
    use KubeErrorKind as K;
    let code = if status.code == 0 {
        code_of_reason(&status.reason)
    } else {
        status.code
    };
    let retry_after = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(u64::from(s)));
    let kind = match (code, status.reason.as_str()) {
        (_, "Expired") | (410, _) => K::Gone,
        (_, "Timeout" | "ServerTimeout") | (504, _) => K::ServerTimeout,
        (409, "AlreadyExists") => K::AlreadyExists,
        (409, _) => K::Conflict,
        (400 | 422, _) => K::Invalid,
        (401, _) => K::Unauthorized,
        (403, _) => K::Forbidden,
        (404, _) => K::NotFound,
        (429, _) => K::Throttled,
        (500 | 502 | 503, _) => K::ServerError,
        _ => K::OtherStatus,
    };
    kind.class((code != 0).then_some(code), retry_after)
}

/// Classifies a bare HTTP status code, as the eviction client records it; 0 means no answer
/// arrived (the connection failed).
pub fn classify_code(code: u16) -> KubeErrorClass {
    if code == 0 {
        return KubeErrorKind::Connection.class(None, None);
    }
    let mut status = Status::failure("", "");
    status.code = code;
    classify_status(&status)
}

/// The code that goes with a Kubernetes `StatusReason`, for answers that carry only a reason.
fn code_of_reason(reason: &str) -> u16 {
    match reason {
        "BadRequest" => 400,
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "NotFound" => 404,
        "MethodNotAllowed" => 405,
        "AlreadyExists" | "Conflict" => 409,
        "Gone" | "Expired" => 410,
        "RequestEntityTooLarge" => 413,
        "UnsupportedMediaType" => 415,
        "Invalid" => 422,
        "TooManyRequests" => 429,
        "InternalError" | "ServerTimeout" => 500,
        "ServiceUnavailable" => 503,
        "Timeout" => 504,
        _ => 0,
    }
}

/// A transport failure: TLS, a timeout, or a connection that did not carry an answer.
fn transport_kind(err: &kube::Error) -> KubeErrorKind {
    if tls_error(err).is_some() {
        return KubeErrorKind::Certificate;
    }
    let timed_out = chain(err).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.downcast_ref::<kube::Error>()
                .is_some_and(|k| matches!(k, kube::Error::HyperError(h) if h.is_timeout()))
            || e.is::<tokio::time::error::Elapsed>()
    });
    if timed_out {
        KubeErrorKind::Timeout
    } else {
        KubeErrorKind::Connection
    }
}

/// The error and its sources, outermost first. `std::io::Error` hides the error it wraps from
/// `source()` (it returns the inner error's source), so the wrapped error is visited too.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// The TLS library's own error somewhere in the chain.
fn tls_error(err: &kube::Error) -> Option<&rustls::Error> {
    chain(err).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// Whether repeating the same call unchanged may succeed.
pub fn is_retryable(err: &kube::Error) -> bool {
    classify(err).retryable
}

/// The server's `Retry-After`, when the error carries one and is retryable.
pub fn retry_after(err: &kube::Error) -> Option<Duration> {
    classify(err).retry_after
}

/// The error's text for messages: a TLS failure reads as the certificate problem it is (the
/// CA bundle is not known here; see [`to_core_error_with_ca`]), everything else as kube
/// words it.
pub fn describe(err: &kube::Error) -> String {
    match classify(err).kind {
        KubeErrorKind::Certificate => certificate_message(err, None),
        _ => err.to_string(),
    }
}

/// The category of a `kube::Error`.
pub fn category(err: &kube::Error) -> ErrorCategory {
    classify(err).category
}

/// Which CA bundle the client trusts, named for messages about certificate problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle(String);

impl CaBundle {
    /// A bundle described in the caller's words (`file /etc/kubernetes/pki/ca.crt`).
    pub fn new(description: impl Into<String>) -> Self {
        Self(description.into())
    }

    /// The bundle the kubeconfig's cluster for `context` (or the current context) names.
    pub fn from_kubeconfig(kubeconfig: &Kubeconfig, context: Option<&str>) -> Self {
        let context_name = context.or(kubeconfig.current_context.as_deref());
        let cluster_name = kubeconfig
            .contexts
            .iter()
            .find(|c| Some(c.name.as_str()) == context_name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone());
        let Some(cluster_name) = cluster_name else {
            return Self("not known (the kubeconfig has no such context)".into());
        };
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.as_ref());
        Self(match cluster {
            Some(c) if c.insecure_skip_tls_verify == Some(true) => {
                format!("none: cluster {cluster_name} sets insecure-skip-tls-verify")
            }
            Some(c) if c.certificate_authority.is_some() => format!(
                "file {} (certificate-authority of cluster {cluster_name} in the kubeconfig)",
                c.certificate_authority.as_deref().unwrap_or_default()
            ),
            Some(c) if c.certificate_authority_data.is_some() => {
                format!("certificate-authority-data of cluster {cluster_name} in the kubeconfig")
            }
            _ => format!(
                "the system trust store (cluster {cluster_name} in the kubeconfig names no \
                 certificate-authority)"
            ),
        })
    }

    /// The bundle a client configuration carries (less precise than
    /// [`CaBundle::from_kubeconfig`]: the configuration no longer knows the file's name).
    pub fn from_config(config: &kube::Config) -> Self {
        Self(match &config.root_cert {
            _ if config.accept_invalid_certs => "none: certificate verification is off".into(),
            _ if config.root_cert_file.is_some() => format!(
                "file {}",
                config
                    .root_cert_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            ),
            Some(certs) => format!(
                "the certificate authority from the kubeconfig ({} certificate(s))",
                certs.len()
            ),
            None => "the system trust store (the kubeconfig names no certificate-authority)".into(),
        })
    }
}

impl fmt::Display for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The provider kind kup reports Kubernetes API failures under.
pub fn kubernetes_provider() -> ProviderKind {
    ProviderKind::Other("kubernetes".into())
}

/// Converts a `kube::Error` into kup's domain error by its classification, keeping the
/// client's error as the source of provider errors. A certificate problem says that the CA
/// bundle in use is not known here; use [`to_core_error_with_ca`] where it is.
pub fn to_core_error(err: kube::Error) -> kup_core::Error {
    convert(err, None)
}

/// [`to_core_error`], naming `ca` in certificate problems.
pub fn to_core_error_with_ca(err: kube::Error, ca: &CaBundle) -> kup_core::Error {
    convert(err, Some(ca))
}

fn convert(err: kube::Error, ca: Option<&CaBundle>) -> kup_core::Error {
    use KubeErrorKind as K;
    let class = classify(&err);
    let status = match &err {
        kube::Error::Api(s) => Some(s.as_ref()),
        _ => None,
    };
    let message = status
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| err.to_string());
    match class.kind {
        K::Certificate => kup_core::Error::InvalidInput {
            field: "certificate-authority".into(),
            message: certificate_message(&err, ca),
        },
        K::Config => kup_core::Error::InvalidInput {
            field: "kubeconfig".into(),
            message,
        },
        K::Invalid => kup_core::Error::InvalidInput {
            field: status
                .map(invalid_field)
                .unwrap_or_else(|| "request".into()),
            message,
        },
        K::Unauthorized | K::Forbidden => kup_core::Error::PermissionDenied {
            message: format!("Kubernetes API: {message}"),
        },
        K::NotFound => {
            let details = status.and_then(|s| s.details.as_ref());
            let kind = details
                .map(|d| d.kind.clone())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "Kubernetes object".into());
            let name = details
                .map(|d| d.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or(message);
            kup_core::Error::NotFound {
                kind,
                name,
                scope: None,
            }
        }
        K::AlreadyExists | K::Conflict | K::Gone => kup_core::Error::Conflict {
            message: format!("Kubernetes API: {message}"),
        },
        K::Throttled
        | K::ServerError
        | K::ServerTimeout
        | K::OtherStatus
        | K::Timeout
        | K::Connection
        | K::Client => {
            let code = match (status, class.code) {
                (Some(s), _) if !s.reason.is_empty() => Some(s.reason.clone()),
                (_, Some(c)) => Some(format!("HTTP {c}")),
                _ => Some(format!("{:?}", class.kind)),
            };
            kup_core::Error::provider(kubernetes_provider(), code, message, class.retryable)
                .with_source(err)
        }
    }
}

/// The field a 400/422 names: the first cause's field, else the object's kind and name.
fn invalid_field(status: &Status) -> String {
    let Some(details) = status.details.as_ref() else {
        return "request".into();
    };
    if let Some(field) = details
        .causes
        .iter()
        .map(|c| &c.field)
        .find(|f| !f.is_empty())
    {
        return field.clone();
    }
    match (details.kind.as_str(), details.name.as_str()) {
        ("", _) => "request".into(),
        (kind, "") => kind.to_string(),
        (kind, name) => format!("{kind} {name}"),
    }
}

fn certificate_message(err: &kube::Error, ca: Option<&CaBundle>) -> String {
    let what = match tls_error(err) {
        Some(tls) => tls.to_string(),
        None => err.to_string(),
    };
    let bundle = ca.map_or_else(
        || {
            "not known here (the kubeconfig's certificate-authority, or the system trust store \
             when it names none)"
                .to_string()
        },
        ToString::to_string,
    );
    format!(
        "TLS certificate problem talking to the Kubernetes API: {what}. CA bundle used: \
         {bundle}. Check that it is the cluster's CA and that the server's certificate is valid \
         for its address; kup does not retry this"
    )
}

#[cfg(test)]
mod tests {
    use kube::core::response::{StatusCause, StatusDetails};

    use super::*;

    fn no_details() -> StatusDetails {
        StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        }
    }

    fn status(code: u16, reason: &str) -> Status {
        let mut s = Status::failure("the server says no", reason);
        s.code = code;
        s
    }

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(status(code, reason).boxed())
    }

    fn with_retry_after(code: u16, reason: &str, secs: u32) -> kube::Error {
        let mut s = status(code, reason);
        s.details = Some(StatusDetails {
            retry_after_seconds: secs,
            ..no_details()
        });
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn every_status_code_has_its_kind_category_and_retryability() {
        use ErrorCategory as C;
        use KubeErrorKind as K;
        let table: &[(u16, &str, K, C, bool)] = &[
            (400, "BadRequest", K::Invalid, C::InvalidInput, false),
            (422, "Invalid", K::Invalid, C::InvalidInput, false),
            (
                401,
                "Unauthorized",
                K::Unauthorized,
                C::PermissionDenied,
                false,
            ),
            (403, "Forbidden", K::Forbidden, C::PermissionDenied, false),
            (404, "NotFound", K::NotFound, C::NotFound, false),
            (409, "AlreadyExists", K::AlreadyExists, C::Conflict, false),
            (409, "Conflict", K::Conflict, C::Conflict, false),
            (410, "Gone", K::Gone, C::Conflict, false),
            (410, "Expired", K::Gone, C::Conflict, false),
            (429, "TooManyRequests", K::Throttled, C::Provider, true),
            (500, "InternalError", K::ServerError, C::Provider, true),
            (500, "ServerTimeout", K::ServerTimeout, C::Provider, true),
            (502, "", K::ServerError, C::Provider, true),
            (503, "ServiceUnavailable", K::ServerError, C::Provider, true),
            (504, "Timeout", K::ServerTimeout, C::Provider, true),
            (405, "MethodNotAllowed", K::OtherStatus, C::Provider, false),
            (
                413,
                "RequestEntityTooLarge",
                K::OtherStatus,
                C::Provider,
                false,
            ),
            (501, "", K::OtherStatus, C::Provider, false),
        ];
        for (code, reason, kind, category, retryable) in table {
            let class = classify(&api(*code, reason));
            assert_eq!(class.kind, *kind, "{code} {reason}");
            assert_eq!(class.category, *category, "{code} {reason}");
            assert_eq!(class.retryable, *retryable, "{code} {reason}");
            assert_eq!(class.code, Some(*code));
            let core = to_core_error(api(*code, reason));
            assert_eq!(core.category(), *category, "{code} {reason}: {core}");
        }
    }

    #[test]
    fn a_reason_stands_in_for_a_missing_code() {
        // Watch error events sometimes carry only the reason.
        assert_eq!(classify(&api(0, "Expired")).kind, KubeErrorKind::Gone);
        assert_eq!(classify(&api(0, "NotFound")).code, Some(404));
        assert_eq!(
            classify(&api(0, "AlreadyExists")).kind,
            KubeErrorKind::AlreadyExists
        );
        assert_eq!(classify(&api(0, "")).kind, KubeErrorKind::OtherStatus);
        assert_eq!(classify(&api(0, "")).code, None);
    }

    #[test]
    fn retry_after_is_kept_for_retryable_answers_only() {
        let throttled = with_retry_after(429, "TooManyRequests", 7);
        assert_eq!(retry_after(&throttled), Some(Duration::from_secs(7)));
        assert!(is_retryable(&throttled));
        let unavailable = with_retry_after(503, "ServiceUnavailable", 2);
        assert_eq!(retry_after(&unavailable), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&with_retry_after(429, "", 0)), None);
        assert_eq!(retry_after(&with_retry_after(404, "NotFound", 5)), None);
    }

    #[test]
    fn invalid_input_names_the_field_and_not_found_the_object() {
        let mut s = status(422, "Invalid");
        s.details = Some(StatusDetails {
            kind: "configmaps".into(),
            name: "kup-journal-prod".into(),
            causes: vec![StatusCause {
                reason: "FieldValueTooLong".into(),
                message: "too long".into(),
                field: "data".into(),
            }],
            ..no_details()
        });
        let core = to_core_error(kube::Error::Api(s.boxed()));
        assert!(
            matches!(&core, kup_core::Error::InvalidInput { field, .. } if field == "data"),
            "{core:?}"
        );
        let mut s = status(404, "NotFound");
        s.message = "nodes \"kw-1\" not found".into();
        s.details = Some(StatusDetails {
            kind: "nodes".into(),
            name: "kw-1".into(),
            ..no_details()
        });
        let core = to_core_error(kube::Error::Api(s.boxed()));
        assert_eq!(core.to_string(), "nodes \"kw-1\" not found");
    }

    #[test]
    fn provider_errors_keep_the_client_error_as_source() {
        let core = to_core_error(api(503, "ServiceUnavailable"));
        let kup_core::Error::Provider {
            code, retryable, ..
        } = &core
        else {
            panic!("{core:?}");
        };
        assert_eq!(code.as_deref(), Some("ServiceUnavailable"));
        assert!(*retryable);
        let source = core.source().map(ToString::to_string).unwrap_or_default();
        assert!(source.contains("the server says no"), "{source}");
        assert!(core.is_retryable());
    }

    fn transport(err: std::io::Error) -> kube::Error {
        kube::Error::Service(Box::new(err))
    }

    #[test]
    fn transport_failures_are_retryable_and_told_apart() {
        use std::io::{Error as Io, ErrorKind};
        let refused = transport(Io::new(ErrorKind::ConnectionRefused, "connection refused"));
        assert_eq!(classify(&refused).kind, KubeErrorKind::Connection);
        assert!(classify(&refused).retryable);
        let reset = kube::Error::ReadEvents(Io::new(ErrorKind::ConnectionReset, "reset"));
        assert_eq!(classify(&reset).kind, KubeErrorKind::Connection);
        let timed_out = transport(Io::new(ErrorKind::TimedOut, "operation timed out"));
        assert_eq!(classify(&timed_out).kind, KubeErrorKind::Timeout);
        assert!(classify(&timed_out).retryable);
        // A timeout wrapped twice is still found.
        let nested = transport(Io::other(Io::new(ErrorKind::TimedOut, "read timed out")));
        assert_eq!(classify(&nested).kind, KubeErrorKind::Timeout);
        let elapsed = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await
            })
            .expect_err("times out");
        assert_eq!(
            classify(&kube::Error::Service(Box::new(elapsed))).kind,
            KubeErrorKind::Timeout
        );
        assert_eq!(to_core_error(refused).category(), ErrorCategory::Provider);
    }

    #[test]
    fn tls_failures_are_certificate_problems_naming_the_bundle() {
        use std::io::{Error as Io, ErrorKind};
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // tokio-rustls hands the handshake's error up inside an io::Error.
        let err = transport(Io::new(ErrorKind::InvalidData, tls));
        let class = classify(&err);
        assert_eq!(class.kind, KubeErrorKind::Certificate);
        assert!(!class.retryable);
        assert_eq!(class.category, ErrorCategory::InvalidInput);
        let ca = CaBundle::new("file /etc/kubernetes/pki/ca.crt");
        let core = to_core_error_with_ca(err, &ca);
        let text = core.to_string();
        assert!(text.contains("certificate"), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert!(text.contains("/etc/kubernetes/pki/ca.crt"), "{text}");
        assert!(
            describe(&transport(Io::new(
                ErrorKind::InvalidData,
                rustls::Error::DecryptError
            )))
            .contains("TLS certificate problem")
        );
        let unknown = to_core_error(transport(Io::new(
            ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        )));
        assert!(unknown.to_string().contains("not known here"), "{unknown}");
    }

    #[test]
    fn set_up_and_decoding_failures_are_not_retried() {
        let decode =
            kube::Error::SerdeError(serde_json::from_str::<u8>("x").expect_err("not a number"));
        assert_eq!(classify(&decode).kind, KubeErrorKind::Client);
        assert!(!classify(&decode).retryable);
        assert_eq!(
            classify(&kube::Error::TlsRequired).kind,
            KubeErrorKind::Config
        );
        assert_eq!(
            to_core_error(kube::Error::TlsRequired).category(),
            ErrorCategory::InvalidInput
        );
    }

    #[test]
    fn the_bundle_is_named_from_the_kubeconfig() {
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://a\n    certificate-authority: /pki/a.crt\n- name: b\n  cluster:\n    server: https://b\n    certificate-authority-data: Zm9v\n- name: c\n  cluster:\n    server: https://c\ncontexts:\n- name: ca\n  context: {cluster: a, user: u}\n- name: cb\n  context: {cluster: b, user: u}\n- name: cc\n  context: {cluster: c, user: u}\ncurrent-context: cb\nusers:\n- name: u\n  user: {token: t}\n";
        let kc = Kubeconfig::from_yaml(yaml).expect("kubeconfig");
        assert!(
            CaBundle::from_kubeconfig(&kc, Some("ca"))
                .to_string()
                .contains("/pki/a.crt")
        );
        assert!(
            CaBundle::from_kubeconfig(&kc, None)
                .to_string()
                .contains("certificate-authority-data of cluster b")
        );
        assert!(
            CaBundle::from_kubeconfig(&kc, Some("cc"))
                .to_string()
                .contains("system trust store")
        );
        let mut config = kube::Config::new("https://a".parse().expect("uri"));
        assert!(
            CaBundle::from_config(&config)
                .to_string()
                .contains("system trust store")
        );
        config.root_cert = Some(vec![vec![1]]);
        assert!(
            CaBundle::from_config(&config)
                .to_string()
                .contains("1 certificate")
        );
    }
}
