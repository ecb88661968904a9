//! GKE's JSON wire format: enums as names or numbers, durations as `"600s"`, and errors as
//! `google.rpc.Status` bodies.

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

/// An error as GKE returns it: HTTP status, canonical code name and message, sent as a
/// `google.rpc.Status` body (`{"error":{"code","message","status","details"}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub http: u16,
    /// Canonical code name (`FAILED_PRECONDITION`); the client reads this, not the number.
    pub status: String,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// An error with this HTTP status, code name and message.
    pub fn new(http: u16, status: &str, message: impl Into<String>) -> Self {
        Self {
            http,
            status: status.into(),
            message: message.into(),
        }
    }
    /// `INVALID_ARGUMENT` (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }
    /// `FAILED_PRECONDITION` (400): GKE's answer while another operation runs.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(400, "FAILED_PRECONDITION", message)
    }
    /// `NOT_FOUND` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }
    /// `PERMISSION_DENIED` (403).
    pub fn permission_denied() -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            "Required \"container.clusters.update\" permission(s) for \"projects/demo-project\".",
        )
    }
    /// `UNAUTHENTICATED` (401).
    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        )
    }
    /// `UNAVAILABLE` (503).
    pub fn unavailable() -> Self {
        Self::new(503, "UNAVAILABLE", "The service is currently unavailable.")
    }
    /// `RESOURCE_EXHAUSTED` (429).
    pub fn exhausted() -> Self {
        Self::new(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests' of service 'container.googleapis.com'.",
        )
    }
    /// `INTERNAL` (500).
    pub fn internal() -> Self {
        Self::new(500, "INTERNAL", "Internal error encountered.")
    }

    /// The response GKE sends for this error.
    pub(crate) fn response(&self) -> ResponseTemplate {
        ResponseTemplate::new(self.http).set_body_raw(
            json!({
                "error": {
                    "code": self.http,
                    "message": self.message,
                    "status": self.status,
                    "details": [],
                }
            })
            .to_string(),
            "application/json; charset=UTF-8",
        )
    }
}

/// The number of a `google.rpc.Code` name.
pub fn code_number(name: &str) -> i64 {
    match name {
        "OK" => 0,
        "CANCELLED" => 1,
        "UNKNOWN" => 2,
        "INVALID_ARGUMENT" => 3,
        "DEADLINE_EXCEEDED" => 4,
        "NOT_FOUND" => 5,
        "ALREADY_EXISTS" => 6,
        "PERMISSION_DENIED" => 7,
        "RESOURCE_EXHAUSTED" => 8,
        "FAILED_PRECONDITION" => 9,
        "ABORTED" => 10,
        "OUT_OF_RANGE" => 11,
        "UNIMPLEMENTED" => 12,
        "INTERNAL" => 13,
        "UNAVAILABLE" => 14,
        "DATA_LOSS" => 15,
        "UNAUTHENTICATED" => 16,
        _ => 2,
    }
}

/// One enum of the API: its names in number order (gaps as "").
pub(crate) struct EnumDef(pub &'static [&'static str]);

pub(crate) const OPERATION_STATUS: EnumDef = EnumDef(&[
    "STATUS_UNSPECIFIED",
    "PENDING",
    "RUNNING",
    "DONE",
    "ABORTING",
]);
pub(crate) const OPERATION_TYPE: EnumDef = EnumDef(&[
    "TYPE_UNSPECIFIED",
    "CREATE_CLUSTER",
    "DELETE_CLUSTER",
    "UPGRADE_MASTER",
    "UPGRADE_NODES",
]);
pub(crate) const CLUSTER_STATUS: EnumDef = EnumDef(&[
    "STATUS_UNSPECIFIED",
    "PROVISIONING",
    "RUNNING",
    "RECONCILING",
    "STOPPING",
    "ERROR",
    "DEGRADED",
]);
pub(crate) const POOL_STATUS: EnumDef = EnumDef(&[
    "STATUS_UNSPECIFIED",
    "PROVISIONING",
    "RUNNING",
    "RUNNING_WITH_ERROR",
    "RECONCILING",
    "STOPPING",
    "ERROR",
]);
pub(crate) const CHANNEL: EnumDef =
    EnumDef(&["UNSPECIFIED", "RAPID", "REGULAR", "STABLE", "EXTENDED"]);
pub(crate) const STRATEGY: EnumDef = EnumDef(&[
    "NODE_POOL_UPDATE_STRATEGY_UNSPECIFIED",
    "",
    "BLUE_GREEN",
    "SURGE",
]);
pub(crate) const BLUE_GREEN_PHASE: EnumDef = EnumDef(&[
    "PHASE_UNSPECIFIED",
    "UPDATE_STARTED",
    "CREATING_GREEN_POOL",
    "CORDONING_BLUE_POOL",
    "DRAINING_BLUE_POOL",
    "NODE_POOL_SOAKING",
    "DELETING_BLUE_POOL",
    "ROLLBACK_STARTED",
]);
pub(crate) const AUTO_UPGRADE_STATUS: EnumDef = EnumDef(&[
    "UNKNOWN",
    "ACTIVE",
    "",
    "",
    "MINOR_UPGRADE_PAUSED",
    "UPGRADE_PAUSED",
]);
pub(crate) const PAUSED_REASON: EnumDef = EnumDef(&[
    "AUTO_UPGRADE_PAUSED_REASON_UNSPECIFIED",
    "MAINTENANCE_WINDOW",
    "",
    "",
    "CLUSTER_DISRUPTION_BUDGET",
    "MAINTENANCE_EXCLUSION_NO_UPGRADES",
    "MAINTENANCE_EXCLUSION_NO_MINOR_UPGRADES",
]);
pub(crate) const EXCLUSION_SCOPE: EnumDef = EnumDef(&[
    "NO_UPGRADES",
    "NO_MINOR_UPGRADES",
    "NO_MINOR_OR_NODE_UPGRADES",
]);

impl EnumDef {
    /// Reads an enum sent as a name or a number; `None` for an unknown value.
    pub(crate) fn read(&self, v: &Value) -> Option<&'static str> {
        match v {
            Value::String(s) => self.0.iter().find(|n| !n.is_empty() && *n == s).copied(),
            Value::Number(n) => {
                let i = usize::try_from(n.as_u64()?).ok()?;
                self.0.get(i).copied().filter(|n| !n.is_empty())
            }
            _ => None,
        }
    }

    /// Writes `name` the way the request asked for enums: a number under
    /// `enum-encoding=int`, the name otherwise.
    pub(crate) fn write(&self, name: &str, ints: bool) -> Value {
        if ints && let Some(i) = self.0.iter().position(|n| *n == name) {
            return json!(i);
        }
        json!(name)
    }
}

/// Parses a protobuf JSON duration (`"600s"`, `"1.5s"`) into seconds.
pub(crate) fn duration_secs(v: &Value) -> Option<f64> {
    v.as_str()?.strip_suffix('s')?.parse().ok()
}

/// An RFC 3339 timestamp for simulated seconds since the epoch.
pub(crate) fn timestamp(secs: f64) -> String {
    jiff::Timestamp::from_millisecond((secs * 1000.0) as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// An integer the JSON may carry as a number or (int64) a string.
pub(crate) fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}
