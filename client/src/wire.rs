//! The one place the client touches the wire contract crate: topic builders, the reply
//! format, error codes, and the typed payloads of notices, outcomes and events.

use serde_json::Value;

pub use extbus_schema::errors::{CommandError, ErrorCode};
pub use extbus_schema::events::CloudEvent;
pub use extbus_schema::tasks::{Outcome, Task, TaskState};
pub use extbus_schema::topics;

/// A reply's correlation id and outcome, or `None` when `payload` is not a reply.
pub(crate) fn parse_reply(payload: &[u8]) -> Option<(String, Result<Value, CommandError>)> {
    let reply: extbus_schema::Reply = serde_json::from_slice(payload).ok()?;
    let corr = reply.correlation_id.as_ref()?.as_str()?.to_string();
    Some((corr, reply.into_result()))
}

/// A message on a subscribed topic, decoded by what its topic says it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `extbus/tasks/blocked/...`: a task waits for an extension (no `history`).
    Blocked(Box<Task>),
    /// `extbus/tasks/resolved/...`: a task left the blocked state.
    Resolved(Box<Outcome>),
    /// `extbus/out/<principal>/outcomes`: the outcome of a task this principal submitted.
    Outcome(Box<Outcome>),
    /// `extbus/events/...`: an audit event.
    Event(Box<CloudEvent>),
    /// Anything else, or a payload that does not decode as its topic promises.
    Other,
}

pub(crate) fn classify(topic: &str, payload: &[u8]) -> Notice {
    let decoded = if topics::parse_tasks_blocked(topic).is_some() {
        serde_json::from_slice(payload).ok().map(Notice::Blocked)
    } else if topics::parse_tasks_resolved(topic).is_some() {
        serde_json::from_slice(payload).ok().map(Notice::Resolved)
    } else if topics::parse_outbox(topic).is_some_and(|(_, last)| last == topics::OUTCOMES) {
        serde_json::from_slice(payload).ok().map(Notice::Outcome)
    } else if topics::parse_events(topic).is_some() {
        serde_json::from_slice(payload).ok().map(Notice::Event)
    } else {
        None
    };
    decoded.unwrap_or(Notice::Other)
}

/// Is `task` blocked on a stage that names `principal`?
pub(crate) fn waits_on(task: &Task, principal: &str) -> bool {
    task.state == TaskState::Blocked
        && task
            .stages
            .get(task.stage)
            .is_some_and(|names| names.iter().any(|n| n == principal))
}

/// The tasks in a `tasks/query` result.
pub(crate) fn tasks_of(result: &Value) -> Vec<Task> {
    result["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| serde_json::from_value(t.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}
