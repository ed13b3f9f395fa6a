//! Notices from the MQTT gate to the coordinator: refusals to record as `security.denied`
//! events, oversized commands that must still get their `payload_too_large` reply, and
//! extensions that began listening for blocked tasks (their waiting tasks are re-announced).

/// What the gate tells the coordinator. Sent with `try_send`: a flood is dropped, not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateNotice {
    /// A publish or subscribe outside the principal's rights was refused.
    Denied {
        principal: String,
        client_id: String,
        /// `publish` or `subscribe`.
        action: &'static str,
        /// The topic or filter that was refused.
        topic: String,
        reason: String,
    },
    /// An extension's subscription to blocked-task notices took effect (its SUBACK, or a
    /// CONNACK resuming a stored session): tasks waiting on it that `filters` match are due.
    Listening {
        principal: String,
        filters: Vec<String>,
    },
    /// A publish to `extbus/in/<principal>/<suffix>` was larger than the limit and not forwarded.
    Oversized {
        principal: String,
        /// The command suffix after `extbus/in/<principal>/`.
        suffix: String,
        size: usize,
        limit: usize,
        /// MQTT 5 Correlation Data of the refused publish, if any.
        correlation_data: Option<Vec<u8>>,
        /// The payload's top-level `correlation_id`, if found in its first `limit` bytes.
        correlation_id: Option<serde_json::Value>,
    },
}
