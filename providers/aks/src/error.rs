//! The crate's error type, and the one place where ARM's answers become kup's errors.

use kup_core::{BoxError, ErrorCategory, ProviderErrorDetail, ProviderKind};
use serde_json::Value;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The AKS sub-code for the removed-API upgrade block.
pub const DEPRECATED_API_BLOCK: &str = "UpgradeBlockedOnDeprecatedAPIUsage";

/// What can go wrong talking to Azure Resource Manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or malformed.
    #[error("invalid {field}: {message}")]
    Config {
        /// The setting (`subscription`, `resource_group`, `cluster`, `endpoint`, `api_version`).
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// ARM answered with an error body.
    #[error("{}", api_text(.operation, *.status, .code, .subcode.as_deref(), .message))]
    Api {
        /// The call (`PUT managedCluster`).
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// ARM's `error.code` (`OperationNotAllowed`), or `HTTP {status}` without a body.
        code: String,
        /// AKS's `subcode` (`UpgradeBlockedOnDeprecatedAPIUsage`), read from the raw body.
        subcode: Option<String>,
        /// ARM's message.
        message: String,
        /// `error.details`, verbatim.
        details: Vec<ProviderErrorDetail>,
    },
    /// No answer: connection, timeout or dispatch failure.
    #[error("ARM {operation}: {message}")]
    Transport {
        /// The call.
        operation: &'static str,
        /// What happened.
        message: String,
        /// azure_core's error.
        #[source]
        source: BoxError,
    },
    /// No usable Azure credential. The message says where credentials come from and never
    /// includes one.
    #[error(
        "no usable Azure credential for ARM {operation}: {reason}; {}",
        HOW_TO_PROVIDE_CREDENTIALS
    )]
    Credentials {
        /// The call that needed one.
        operation: &'static str,
        /// Why the chain failed (its sources' own words, which carry no secrets).
        reason: String,
    },
    /// ARM answered without a field kup needs, or with a body that does not parse.
    #[error("ARM {operation}: {message}")]
    Response {
        /// The call.
        operation: &'static str,
        /// What is missing or malformed.
        message: String,
    },
}

fn api_text(
    operation: &str,
    status: u16,
    code: &str,
    subcode: Option<&str>,
    message: &str,
) -> String {
    match subcode {
        Some(s) => format!("ARM {operation}: HTTP {status} {code}/{s}: {message}"),
        None => format!("ARM {operation}: HTTP {status} {code}: {message}"),
    }
}

/// How to give kup Azure credentials, in one sentence (where they come from, no values).
const HOW_TO_PROVIDE_CREDENTIALS: &str = "sign in with `az login`, or set AZURE_TENANT_ID, \
    AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal), or AZURE_FEDERATED_TOKEN_FILE \
    with AZURE_TENANT_ID and AZURE_CLIENT_ID (workload identity), or run where a managed identity \
    is assigned";

/// ARM's error body, read from the raw bytes: the `{"error": {...}}` envelope or the bare
/// object AKS sometimes sends. `subcode` is AKS's own field, which azure_core does not keep.
pub(crate) fn from_response(operation: &'static str, status: u16, body: &[u8]) -> Error {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = if value.get("error").is_some_and(Value::is_object) {
        &value["error"]
    } else {
        &value
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let code = text(&e["code"]).unwrap_or_else(|| format!("HTTP {status}"));
    let message = text(&e["message"]).unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let raw = raw.trim();
        if raw.is_empty() {
            "no message".into()
        } else {
            raw.chars().take(300).collect()
        }
    });
    let details = e["details"]
        .as_array()
        .map(|ds| ds.iter().map(detail).collect())
        .unwrap_or_default();
    Error::Api {
        operation,
        status,
        code,
        subcode: text(&e["subcode"]).filter(|s| !s.is_empty()),
        message,
        details,
    }
}

/// One `{code, message, target}` of an ARM error, as kup keeps provider errors.
pub(crate) fn detail(v: &Value) -> ProviderErrorDetail {
    ProviderErrorDetail {
        code: v["code"].as_str().unwrap_or("Unknown").to_string(),
        message: v["message"].as_str().unwrap_or_default().to_string(),
        resource_ids: v["target"]
            .as_str()
            .map(|t| vec![t.to_string()])
            .unwrap_or_default(),
    }
}

/// An ARM `error` object (an operation's failure) as kup's error list: the error itself, then
/// its details, then the AKS sub-code when there is one.
pub(crate) fn error_list(e: &Value) -> Vec<ProviderErrorDetail> {
    let mut out = vec![detail(e)];
    if let Some(sub) = e["subcode"].as_str().filter(|s| !s.is_empty()) {
        out.push(ProviderErrorDetail {
            code: sub.to_string(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
            resource_ids: Vec::new(),
        });
    }
    if let Some(ds) = e["details"].as_array() {
        out.extend(ds.iter().map(detail));
    }
    out
}

impl Error {
    /// Maps azure_core's error for `operation` (no response came back, or the credential
    /// failed).
    pub(crate) fn core(operation: &'static str) -> impl FnOnce(azure_core::Error) -> Error {
        move |err| {
            use azure_core::error::ErrorKind;
            match err.kind() {
                ErrorKind::Credential => Error::Credentials {
                    operation,
                    reason: chain_text(&err),
                },
                _ => Error::Transport {
                    operation,
                    message: chain_text(&err),
                    source: Box::new(err),
                },
            }
        }
    }

    pub(crate) fn response(operation: &'static str, message: impl Into<String>) -> Error {
        Error::Response {
            operation,
            message: message.into(),
        }
    }

    /// ARM's error code, when ARM answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// AKS's sub-code, when ARM answered with one.
    pub fn subcode(&self) -> Option<&str> {
        match self {
            Error::Api { subcode, .. } => subcode.as_deref(),
            _ => None,
        }
    }
}

fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let t = e.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// How an ARM answer is acted on; the one decision behind [`Error::category`] and the
/// conversion into [`kup_core::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapped {
    Busy,
    Blocked,
    Invalid,
    NotFound,
    Denied,
    Conflict,
    Provider { retryable: bool },
}

fn map_api(status: u16, code: &str, subcode: Option<&str>) -> Mapped {
    match (status, code, subcode) {
        (_, _, Some(DEPRECATED_API_BLOCK)) => Mapped::Blocked,
        (409, "OperationNotAllowed", _) => Mapped::Busy,
        (409, _, _) => Mapped::Conflict,
        (400, _, _) => Mapped::Invalid,
        (401 | 403, _, _) => Mapped::Denied,
        (404, _, _) => Mapped::NotFound,
        (429, _, _) | (500..=599, _, _) => Mapped::Provider { retryable: true },
        _ => Mapped::Provider { retryable: false },
    }
}

impl Mapped {
    fn category(self) -> ErrorCategory {
        match self {
            Mapped::Busy => ErrorCategory::Busy,
            Mapped::Blocked => ErrorCategory::Precondition,
            Mapped::Invalid => ErrorCategory::InvalidInput,
            Mapped::NotFound => ErrorCategory::NotFound,
            Mapped::Denied => ErrorCategory::PermissionDenied,
            Mapped::Conflict => ErrorCategory::Conflict,
            Mapped::Provider { .. } => ErrorCategory::Provider,
        }
    }
}

impl Error {
    /// The category a caller can act on; the same as that of the [`kup_core::Error`] this
    /// converts into.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Config { .. } | Error::Credentials { .. } => ErrorCategory::InvalidInput,
            Error::Api {
                status,
                code,
                subcode,
                ..
            } => map_api(*status, code, subcode.as_deref()).category(),
            Error::Transport { .. } | Error::Response { .. } => ErrorCategory::Provider,
        }
    }
}

impl From<Error> for kup_core::Error {
    fn from(e: Error) -> Self {
        let text = e.to_string();
        match e {
            Error::Config { field, message } => kup_core::Error::invalid_input(field, message),
            Error::Credentials { operation, reason } => kup_core::Error::invalid_input(
                "Azure credentials",
                format!("none usable for ARM {operation} ({reason}): {HOW_TO_PROVIDE_CREDENTIALS}"),
            ),
            Error::Api {
                operation,
                status,
                code,
                subcode,
                message,
                details,
            } => match map_api(status, &code, subcode.as_deref()) {
                Mapped::Busy => kup_core::Error::Busy {
                    message: format!("{operation}: {message}"),
                    operation: None,
                },
                Mapped::Blocked => kup_core::Error::precondition(format!(
                    "{operation}: {message} (AKS blocks the upgrade while removed APIs are in use: \
                     move their clients to the replacement APIs and wait for the usage to age out, \
                     or force the control-plane upgrade)"
                )),
                Mapped::Invalid => kup_core::Error::invalid_input(operation, message),
                Mapped::NotFound => kup_core::Error::NotFound {
                    kind: "AKS resource".into(),
                    name: message,
                    scope: Some(operation.into()),
                },
                Mapped::Denied => kup_core::Error::PermissionDenied {
                    message: format!("{operation}: {code}: {message}"),
                },
                Mapped::Conflict => kup_core::Error::Conflict {
                    message: format!("{operation}: {code}: {message}"),
                },
                Mapped::Provider { retryable } => {
                    let extra: Vec<String> = details.iter().map(ToString::to_string).collect();
                    let message = if extra.is_empty() {
                        format!("{operation}: {message}")
                    } else {
                        format!("{operation}: {message} ({})", extra.join("; "))
                    };
                    kup_core::Error::provider(ProviderKind::Aks, Some(code), message, retryable)
                }
            },
            Error::Transport { source, .. } => {
                kup_core::Error::provider(ProviderKind::Aks, None, text, true).with_source(source)
            }
            e @ Error::Response { .. } => {
                kup_core::Error::provider(ProviderKind::Aks, None, text, false).with_source(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(status: u16, body: &str) -> Error {
        from_response("PUT managedCluster", status, body.as_bytes())
    }

    #[test]
    fn arm_answers_map_by_status_code_and_subcode() {
        let cases = [
            (
                409,
                r#"{"error":{"code":"OperationNotAllowed","message":"an operation is in progress"}}"#,
                ErrorCategory::Busy,
                true,
            ),
            (
                409,
                r#"{"error":{"code":"Conflict","message":"etag"}}"#,
                ErrorCategory::Conflict,
                true,
            ),
            (
                400,
                r#"{"error":{"code":"InvalidParameter","message":"bad"}}"#,
                ErrorCategory::InvalidInput,
                false,
            ),
            (
                400,
                r#"{"code":"ValidationError","message":"removed APIs in use","subcode":"UpgradeBlockedOnDeprecatedAPIUsage"}"#,
                ErrorCategory::Precondition,
                false,
            ),
            (
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"no"}}"#,
                ErrorCategory::PermissionDenied,
                false,
            ),
            (
                403,
                r#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#,
                ErrorCategory::PermissionDenied,
                false,
            ),
            (
                404,
                r#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#,
                ErrorCategory::NotFound,
                false,
            ),
            (429, "", ErrorCategory::Provider, true),
            (
                503,
                r#"{"error":{"code":"ServiceUnavailable","message":"later"}}"#,
                ErrorCategory::Provider,
                true,
            ),
            (
                418,
                r#"{"error":{"code":"Teapot","message":"?"}}"#,
                ErrorCategory::Provider,
                false,
            ),
        ];
        for (status, body, category, retryable) in cases {
            let err = answer(status, body);
            assert_eq!(err.category(), category, "{status} {body}");
            let core = kup_core::Error::from(err);
            assert_eq!(core.category(), category, "{status} {body}");
            assert_eq!(core.is_retryable(), retryable, "{status} {body}");
        }
    }

    #[test]
    fn the_subcode_is_read_from_the_raw_body_in_either_envelope() {
        for body in [
            r#"{"code":"ValidationError","message":"m","subcode":"UpgradeBlockedOnDeprecatedAPIUsage"}"#,
            r#"{"error":{"code":"ValidationError","message":"m","subcode":"UpgradeBlockedOnDeprecatedAPIUsage"}}"#,
        ] {
            let err = answer(400, body);
            assert_eq!(err.code(), Some("ValidationError"));
            assert_eq!(err.subcode(), Some(DEPRECATED_API_BLOCK));
            assert!(err.to_string().contains(DEPRECATED_API_BLOCK), "{err}");
        }
        let bare = answer(502, "bad gateway");
        assert_eq!(bare.code(), Some("HTTP 502"));
        assert!(bare.to_string().contains("bad gateway"), "{bare}");
    }

    #[test]
    fn failures_keep_every_detail() {
        let e: Value = serde_json::from_str(
            r#"{"code":"UpgradeFailed","message":"drain failed","details":[{"code":"PodDrainFailure","message":"shop/web","target":"aks-apps-1"}]}"#,
        )
        .unwrap();
        let list = error_list(&e);
        let codes: Vec<&str> = list.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["UpgradeFailed", "PodDrainFailure"]);
        assert_eq!(list[1].resource_ids, ["aks-apps-1"]);
    }

    #[test]
    fn config_and_response_errors_keep_their_category() {
        for err in [
            Error::Config {
                field: "subscription",
                message: "empty".into(),
            },
            Error::response("GET managedCluster", "no properties"),
            Error::Credentials {
                operation: "GET managedCluster",
                reason: "none found".into(),
            },
        ] {
            let category = err.category();
            assert_eq!(kup_core::Error::from(err).category(), category);
        }
    }
}
