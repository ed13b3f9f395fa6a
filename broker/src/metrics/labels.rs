//! The label sets of the metric families, and the closed sets of label values that
//! `Metrics::new` creates at zero.

use prometheus_client::encoding::EncodeLabelSet;

/// Why a connection was refused or closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// What the gate refused (`publish`, `subscribe`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Action {
    pub action: &'static str,
}

/// Which subscription cap was reached (`connection`, `principal`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Cap {
    pub cap: &'static str,
}

/// A command's kind (`Command::kind`) and its reply: `ok` or the error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandResult {
    pub command: &'static str,
    pub result: &'static str,
}

/// A task state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    pub state: &'static str,
}

/// A credential check's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckResult {
    pub result: &'static str,
}

/// A configuration reload's outcome (`ok`, `partial`, `refused`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

/// The HTTP status a service request was answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    pub status: u16,
}

/// An executable extension entry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecName {
    pub name: String,
}

/// One run of an executable extension.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecRun {
    pub name: String,
    pub action: &'static str,
    pub outcome: &'static str,
}

/// Reasons the gate refuses a CONNECT with (`mqtt/gate/handshake.rs`).
pub(super) const CONNECT_REFUSED: [&str; 14] = [
    "not_connect",
    "malformed",
    "connect_timeout",
    "unsupported_protocol",
    "abandoned",
    "bad_credentials",
    "no_credentials",
    "reserved_client_id",
    "invalid_client_id",
    "will_denied",
    "will_too_large",
    "broker_unavailable",
    "auth_busy",
    "throttled",
];
pub(super) const AUTH_RESULTS: [&str; 7] = [
    "cached",
    "ok",
    "bad",
    "busy",
    "stopped",
    "throttled",
    "abandoned",
];
pub(super) const HTTP_REFUSED: [&str; 2] = ["connection_limit", "address_limit"];
pub(super) const HTTP_CLOSED: [&str; 4] =
    ["header_timeout", "body_timeout", "idle_timeout", "shutdown"];
