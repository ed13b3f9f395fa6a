//! Blocking-task messages of SPEC.md: the task object, its states, history, callout rules,
//! the submit / resolve / extend / query command bodies, their command rows (`FAMILY`) and
//! the outcome notice.
//! Pure data: the state machine that moves tasks lives in `extbus-callouts`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

use crate::commands::Command;
use crate::roles::Role;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::time_fmt;
use crate::validate::schema;

/// Task states (SPEC.md state table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Blocked,
    Resumed,
    Cancelled,
    Aborted,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Blocked => "blocked",
            TaskState::Resumed => "resumed",
            TaskState::Cancelled => "cancelled",
            TaskState::Aborted => "aborted",
        }
    }

    pub fn is_final(self) -> bool {
        self != TaskState::Blocked
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a blocked task when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    Resume,
    Cancel,
    #[default]
    Abort,
}

impl DefaultAction {
    /// The final state this action leads to.
    pub fn final_state(self) -> TaskState {
        match self {
            DefaultAction::Resume => TaskState::Resumed,
            DefaultAction::Cancel => TaskState::Cancelled,
            DefaultAction::Abort => TaskState::Aborted,
        }
    }
}

/// One entry of a task's history: who did what, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time_fmt::ms")]
    pub at: u64,
    pub by: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Stage the action applied to, where it applied to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
}

/// A task as returned by `tasks/<id>/get` (SPEC.md). Times are epoch ms inside, RFC 3339 outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub request_id: String,
    pub operation: String,
    pub org: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub data: Value,
    pub state: TaskState,
    pub stage: usize,
    pub stages: Vec<Vec<String>>,
    #[serde(with = "time_fmt::ms")]
    pub created_at: u64,
    #[serde(with = "time_fmt::opt_ms", default)]
    pub deadline: Option<u64>,
    pub default_action: DefaultAction,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// The message of the resolution that ended the task.
    #[serde(default)]
    pub message: Option<String>,
    /// The platform principal that submitted the task; outcomes go to its outbox.
    pub submitted_by: String,
    /// When the current stage began; the stage's max timeout counts from here.
    #[serde(with = "time_fmt::ms")]
    pub stage_started_at: u64,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl Task {
    /// The payload of `extbus/tasks/blocked/...`: the task without its history.
    pub fn announcement(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("history");
        }
        v
    }

    /// The payload of `extbus/tasks/resolved/...` and of the submitter's outcomes topic.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            id: self.id.clone(),
            request_id: self.request_id.clone(),
            operation: self.operation.clone(),
            org: self.org.clone(),
            state: self.state,
            resolved_by: self.resolved_by.clone(),
            message: self.message.clone(),
            result: self.result.clone(),
        }
    }
}

/// SPEC.md outcome notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub request_id: String,
    pub operation: String,
    pub org: String,
    pub state: TaskState,
    pub resolved_by: Option<String>,
    pub message: Option<String>,
    pub result: Value,
}

fn default_orgs() -> Vec<String> {
    vec!["*".to_string()]
}
fn default_priority() -> i64 {
    50
}
fn default_timeout_ms() -> u64 {
    60_000
}
fn default_max_timeout_ms() -> u64 {
    3_600_000
}

/// A callout rule (SPEC.md). `extension` names the principal that answers the stage; it is
/// required in the config file and forced to the registering principal in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub operation: String,
    #[serde(default = "default_orgs")]
    pub orgs: Vec<String>,
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_timeout_ms")]
    pub max_timeout_ms: u64,
    #[serde(default)]
    pub default_action: DefaultAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// Body of `tasks/submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub request_id: String,
    pub operation: String,
    pub org: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub data: Value,
    /// Metadata entries the task carries from its submit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<crate::metadata::Entry>,
}

/// Body of `tasks/<id>/resume|cancel|abort`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResolveRequest {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub result: Option<Value>,
    /// On resume: metadata entries the resolving principal adds to the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<crate::metadata::Entry>,
}

/// Body of `tasks/<id>/extend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendRequest {
    pub extend_ms: u64,
    #[serde(default)]
    pub message: Option<String>,
}

/// Body of `tasks/query`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskQuery {
    #[serde(default)]
    pub state: Option<TaskState>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Paging cursor: the last task id of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// A metadata search (`query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// A resolution of a blocked task by a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskAction {
    Resume,
    Cancel,
    Abort,
    Extend,
}

impl TaskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskAction::Resume => "resume",
            TaskAction::Cancel => "cancel",
            TaskAction::Abort => "abort",
            TaskAction::Extend => "extend",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "resume" => Some(TaskAction::Resume),
            "cancel" => Some(TaskAction::Cancel),
            "abort" => Some(TaskAction::Abort),
            "extend" => Some(TaskAction::Extend),
            _ => None,
        }
    }
}

/// SPEC.md's state table as data, answered to any client that asks for it.
pub fn state_table() -> Value {
    serde_json::json!([
        {"from": null, "to": "blocked", "by": "submit, a rule matched"},
        {"from": null, "to": "resumed", "by": "submit, no rule matched"},
        {"from": "blocked", "to": "blocked", "by": "resume of a stage that is not the last; extend"},
        {"from": "blocked", "to": "resumed", "by": "resume of the last stage; timeout with default resume"},
        {"from": "blocked", "to": "cancelled", "by": "cancel; timeout with default cancel"},
        {"from": "blocked", "to": "aborted", "by": "abort; timeout with default abort"}
    ])
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[SUBMIT, RESUME, CANCEL, ABORT, EXTEND, QUERY, GET];

pub const SUBMIT: Spec = Spec {
    suffix: "tasks/submit",
    kind: "tasks/submit",
    schema: schema!("tasks-submit", Inbound),
    channel: "cmdTasksSubmit",
    description: "platform: block the operation if a callout rule matches, else resume it at once.",
    roles: &[Role::Platform],
    read_only: false,
    example: r#"{"request_id": "idem-1", "operation": "vapp.instantiate", "org": "acme", "subject": "urn:acme:vapp:42", "data": {"cpu": 2}}"#,
    build: |_| Command::TasksSubmit,
};

pub const RESUME: Spec = Spec {
    suffix: "tasks/{task_id}/resume",
    kind: "tasks/resume",
    schema: schema!("task-resolve", Inbound),
    channel: "cmdTaskResume",
    description: "extension, operator: let the operation continue.",
    roles: &[Role::Extension, Role::Operator],
    read_only: false,
    example: r#"{"message": "approved", "result": {"host": "h1"}}"#,
    build: |p| Command::TaskAction {
        task_id: arg(p, 0),
        action: TaskAction::Resume,
    },
};

pub const CANCEL: Spec = Spec {
    suffix: "tasks/{task_id}/cancel",
    kind: "tasks/cancel",
    schema: schema!("task-resolve", Inbound),
    channel: "cmdTaskCancel",
    description: "extension, operator: stop the operation and roll it back.",
    roles: &[Role::Extension, Role::Operator],
    read_only: false,
    example: r#"{"message": "no"}"#,
    build: |p| Command::TaskAction {
        task_id: arg(p, 0),
        action: TaskAction::Cancel,
    },
};

pub const ABORT: Spec = Spec {
    suffix: "tasks/{task_id}/abort",
    kind: "tasks/abort",
    schema: schema!("task-resolve", Inbound),
    channel: "cmdTaskAbort",
    description: "extension, operator: stop the operation as failed.",
    roles: &[Role::Extension, Role::Operator],
    read_only: false,
    example: r#"{}"#,
    build: |p| Command::TaskAction {
        task_id: arg(p, 0),
        action: TaskAction::Abort,
    },
};

pub const EXTEND: Spec = Spec {
    suffix: "tasks/{task_id}/extend",
    kind: "tasks/extend",
    schema: schema!("task-extend", Inbound),
    channel: "cmdTaskExtend",
    description:
        "extension, operator: move the deadline to now + extend_ms, bounded by the rule's max.",
    roles: &[Role::Extension, Role::Operator],
    read_only: false,
    example: r#"{"extend_ms": 60000, "message": "need time"}"#,
    build: |p| Command::TaskAction {
        task_id: arg(p, 0),
        action: TaskAction::Extend,
    },
};

pub const QUERY: Spec = Spec {
    suffix: "tasks/query",
    kind: "tasks/query",
    schema: schema!("tasks-query", Inbound),
    channel: "cmdTasksQuery",
    description: "any role: list tasks.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{"state": "blocked", "operation": "vapp.instantiate", "org": "acme", "limit": 10, "after": "0193f6c2-aa"}"#,
    build: |_| Command::TasksQuery,
};

pub const GET: Spec = Spec {
    suffix: "tasks/{task_id}/get",
    kind: "tasks/get",
    schema: schema!("task-get", Inbound),
    channel: "cmdTaskGet",
    description: "any role: one task with its history.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |p| Command::TaskGet { task_id: arg(p, 0) },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_round_trips_and_announcement_drops_history() {
        let t = Task {
            id: "t1".into(),
            request_id: "r1".into(),
            operation: "vapp.instantiate".into(),
            org: "acme".into(),
            subject: Some("urn:acme:vapp:42".into()),
            data: serde_json::json!({"cpu": 2}),
            state: TaskState::Blocked,
            stage: 0,
            stages: vec![vec!["approver-1".into()], vec!["placer".into()]],
            created_at: 1_795_341_600_123,
            deadline: Some(1_795_341_660_123),
            default_action: DefaultAction::Abort,
            result: Value::Null,
            resolved_by: None,
            message: None,
            submitted_by: "platform-1".into(),
            stage_started_at: 1_795_341_600_123,
            history: vec![HistoryEntry {
                at: 1_795_341_600_123,
                by: "platform-1".into(),
                action: "submit".into(),
                message: None,
                stage: None,
            }],
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["state"], "blocked");
        assert_eq!(v["created_at"], "2026-11-22T10:00:00.123Z");
        let back: Task = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
        assert!(t.announcement().get("history").is_none());
        assert_eq!(t.outcome().state, TaskState::Blocked);
    }

    #[test]
    fn rule_defaults_follow_spec() {
        let r: RuleSpec = serde_json::from_str(r#"{"operation":"vapp.instantiate"}"#).unwrap();
        assert_eq!(r.orgs, vec!["*"]);
        assert_eq!(r.priority, 50);
        assert_eq!(r.timeout_ms, 60_000);
        assert_eq!(r.default_action, DefaultAction::Abort);
    }
}
