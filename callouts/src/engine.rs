//! The task state machine of docs/protocol.md "Blocking tasks": submit, resolve (resume / cancel /
//! abort) and extend, each applied to a `Txn` at an injected `now_ms` and answered with the
//! task and the `Effects` to announce. Synchronous and pure apart from the `Txn`.

use std::sync::Mutex;

use extbus_schema::tasks::{
    HistoryEntry, RuleSpec, SubmitRequest, Task, TaskAction, TaskQuery, TaskState,
};
use extbus_schema::{CommandError, ErrorCode};
use serde_json::Value;
use uuid::timestamp::context::ContextV7;
use uuid::{Timestamp, Uuid};

use crate::effects::{self, Effects};
use crate::error::CalloutError;
use crate::keys;
use crate::record::{cap, Stored};
use crate::rules::{Rules, Stage, StageRule};
use crate::store::Store;
use crate::trees::TreeId;
use crate::txn::Txn;

/// Settings of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// A blocked task is announced again this long after its last announcement; 0 turns it off.
    pub renotify_ms: u64,
    /// Spread re-announcements: a stage's first one comes between half a period and one and
    /// a half periods after it began, at a point fixed by the task id, so tasks that blocked
    /// together are re-announced spread over a whole period rather than in one burst.
    pub renotify_spread: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            renotify_ms: 30_000,
            renotify_spread: false,
        }
    }
}

/// Where in `period` the task `id` falls: FNV-1a of the id, so the same on every run.
fn offset_in(period: u64, id: &str) -> u64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    if period == 0 {
        0
    } else {
        h % period
    }
}

/// Principal name recorded as `resolved_by` (and in history) when a deadline passes.
pub const TIMEOUT_PRINCIPAL: &str = "timeout";
const CLAMP_NOTE: &str = "deadline clamped to the stage's max timeout";

/// The state machine: rules to build stages from, settings, and the task id generator.
pub struct Engine {
    rules: Rules,
    config: EngineConfig,
    ids: Mutex<ContextV7>,
}

impl Engine {
    pub fn new(rules: Rules, config: EngineConfig) -> Engine {
        Engine {
            rules,
            config,
            ids: Mutex::new(ContextV7::new()),
        }
    }

    /// An engine over the config rules plus every registration committed to `store`.
    pub fn open(
        store: &Store,
        config: EngineConfig,
        config_rules: Vec<RuleSpec>,
    ) -> Result<Engine, CalloutError> {
        Ok(Engine::new(Rules::load(store, config_rules)?, config))
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A reloaded configuration: new config rules and settings; registrations and the tasks
    /// already blocked stay as they are.
    pub fn reconfigure(
        &mut self,
        config: EngineConfig,
        config_rules: Vec<RuleSpec>,
    ) -> Result<(), CalloutError> {
        self.rules.set_config(config_rules)?;
        self.config = config;
        Ok(())
    }

    /// Replaces the rules `owner` registered and returns them as stored (see
    /// `Rules::register`). Tasks already blocked keep the stages they were given.
    pub fn register(
        &mut self,
        txn: &mut Txn,
        owner: &str,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<RuleSpec>, CommandError> {
        self.rules.register(txn, owner, specs)
    }

    /// Replaces the rules `owner` registered in `component` (see
    /// `Rules::register_component`); its other components keep theirs.
    pub fn register_component(
        &mut self,
        txn: &mut Txn,
        owner: &str,
        component: &str,
        specs: Vec<RuleSpec>,
    ) -> Result<crate::rules::Registered, CommandError> {
        self.rules.register_component(txn, owner, component, specs)
    }

    /// Switches a principal or one of its components off or on (see `Rules::set_disabled`).
    pub fn set_disabled(&mut self, owner: &str, component: Option<&str>, disabled: bool) {
        self.rules.set_disabled(owner, component, disabled);
    }

    /// A committed task (same as `Store::get`).
    pub fn get(&self, store: &Store, id: &str) -> Result<Option<Task>, CalloutError> {
        store.get(id)
    }

    /// Committed tasks (same as `Store::query`).
    pub fn query(&self, store: &Store, q: &TaskQuery) -> Result<Vec<Task>, CalloutError> {
        store.query(q)
    }

    /// When the loop should next call `due` / `renotify_due` (`Store::next_wakeup`). A store
    /// that cannot be read answers `None`; the failure then surfaces from `due`.
    pub fn next_wakeup(&self, store: &Store) -> Option<u64> {
        store.next_wakeup().ok().flatten()
    }

    /// `tasks/submit` from `submitter`. A repeated `(submitter, request_id)` returns the task
    /// as it is now with no effects. With no matching rule the task is `resumed` and not stored.
    pub fn submit(
        &self,
        txn: &mut Txn,
        submitter: &str,
        req: SubmitRequest,
        now_ms: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let now = cap(now_ms);
        if submitter.is_empty() || submitter.contains('\0') {
            return Err(CommandError::new(
                ErrorCode::InvalidName,
                "invalid principal name",
            ));
        }
        let qkey = keys::request(submitter, &req.request_id);
        if let Some(id) = txn.get(TreeId::Callouts, &qkey)? {
            let id = String::from_utf8(id).map_err(|e| CalloutError::corrupt(&qkey, e))?;
            let s = txn
                .stored(&id)?
                .ok_or_else(|| CalloutError::corrupt(&qkey, format!("task {id} is missing")))?;
            return Ok((s.task, Effects::default()));
        }
        let stages = self.rules.stages(&req.operation, &req.org);
        self.create(txn, submitter, req, stages, qkey, now)
    }

    /// A task on `stages` given by the caller rather than by the rules (entity hooks and
    /// behaviors, assigned to the type's extension). Durable and timed like any other task.
    pub fn submit_assigned(
        &self,
        txn: &mut Txn,
        submitter: &str,
        req: SubmitRequest,
        stages: Vec<Stage>,
        now_ms: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let qkey = keys::request(submitter, &req.request_id);
        if txn.get(TreeId::Callouts, &qkey)?.is_some() {
            return Err(CommandError::conflict(format!(
                "request_id '{}' is already used",
                req.request_id
            )));
        }
        self.create(txn, submitter, req, stages, qkey, cap(now_ms))
    }

    fn create(
        &self,
        txn: &mut Txn,
        submitter: &str,
        req: SubmitRequest,
        stages: Vec<Stage>,
        qkey: Vec<u8>,
        now: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let mut task = Task {
            id: self.new_id(txn, now)?,
            request_id: req.request_id,
            operation: req.operation,
            org: req.org,
            subject: req.subject,
            data: req.data,
            state: TaskState::Blocked,
            stage: 0,
            stages: stages.iter().map(|s| s.principals.clone()).collect(),
            created_at: now,
            deadline: None,
            default_action: stages
                .first()
                .map(|s| s.rule.default_action)
                .unwrap_or_default(),
            result: Value::Null,
            resolved_by: None,
            message: None,
            submitted_by: submitter.to_string(),
            stage_started_at: now,
            history: vec![entry(now, submitter, "submit", None, None)],
        };
        if stages.is_empty() {
            task.state = TaskState::Resumed;
            return Ok((task, Effects::default()));
        }
        let mut s = Stored {
            task,
            stage_rules: stages.iter().map(|s| s.rule).collect(),
            renotify_at: None,
            finished_at: None,
        };
        self.start_stage(&mut s, now);
        index(txn, &s);
        txn.put_stored(&s)?;
        txn.insert(TreeId::Callouts, qkey, s.task.id.clone().into_bytes());
        let mut fx = Effects::default();
        fx.blocked.push(s.task.clone());
        fx.event(effects::TASK_BLOCKED, &s.task);
        Ok((s.task, fx))
    }

    /// `tasks/<id>/resume|cancel|abort` from `principal`; `privileged` is true for operators
    /// and admins. Repeating an applied resolution answers the task with no effects.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        &self,
        txn: &mut Txn,
        principal: &str,
        privileged: bool,
        task_id: &str,
        action: TaskAction,
        message: Option<String>,
        result: Option<Value>,
        now_ms: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let now = cap(now_ms);
        let target = match action {
            TaskAction::Resume => TaskState::Resumed,
            TaskAction::Cancel => TaskState::Cancelled,
            TaskAction::Abort => TaskState::Aborted,
            TaskAction::Extend => {
                return Err(CommandError::new(
                    ErrorCode::SchemaViolation,
                    "extend needs extend_ms; use the extend command",
                ))
            }
        };
        let mut s = load(txn, task_id)?;
        let earlier_resumed = action == TaskAction::Resume && in_earlier_stage(&s.task, principal);
        if s.task.state.is_final() {
            if !privileged && !in_any_stage(&s.task, principal) {
                return Err(not_yours(&s.task));
            }
            if s.task.state == target || earlier_resumed {
                return Ok((s.task, Effects::default()));
            }
            return Err(already(&s.task, action));
        }
        if !privileged && !in_current_stage(&s.task, principal) {
            if earlier_resumed {
                return Ok((s.task, Effects::default()));
            }
            return Err(not_yours(&s.task));
        }
        unindex(txn, &s);
        let stage = s.task.stage;
        let mut fx = Effects::default();
        s.task.history.push(entry(
            now,
            principal,
            action.as_str(),
            message.clone(),
            Some(stage),
        ));
        if action == TaskAction::Resume {
            // Each stage's contribution stays visible in history, beside the merged result.
            if let Some(h) = s.task.history.last_mut() {
                h.result = result.clone().filter(|r| !r.is_null());
            }
            merge_result(&mut s.task.result, result);
            self.pass_stage(&mut s, principal, message, now, &mut fx);
        } else {
            finish(&mut s, target, principal, message, &mut fx);
        }
        if !s.task.state.is_final() {
            index(txn, &s);
        }
        txn.put_stored(&s)?;
        Ok((s.task, fx))
    }

    /// `tasks/<id>/extend`: deadline = now + extend_ms, clamped to the stage's start plus its
    /// max timeout (the clamp is noted in history). Extending a final task is a conflict.
    #[allow(clippy::too_many_arguments)]
    pub fn extend(
        &self,
        txn: &mut Txn,
        principal: &str,
        privileged: bool,
        task_id: &str,
        extend_ms: u64,
        message: Option<String>,
        now_ms: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let now = cap(now_ms);
        let mut s = load(txn, task_id)?;
        if s.task.state.is_final() {
            if !privileged && !in_any_stage(&s.task, principal) {
                return Err(not_yours(&s.task));
            }
            return Err(already(&s.task, TaskAction::Extend));
        }
        if !privileged && !in_current_stage(&s.task, principal) {
            return Err(not_yours(&s.task));
        }
        let rule = *s
            .current_rule()
            .ok_or_else(|| CalloutError::corrupt(task_id.as_bytes(), "blocked without stages"))?;
        let requested = cap(now.saturating_add(extend_ms));
        let max = cap(s.task.stage_started_at.saturating_add(rule.max_timeout_ms));
        let deadline = requested.min(max);
        if let Some(old) = s.task.deadline {
            txn.remove(TreeId::Callouts, keys::deadline(old, &s.task.id));
        }
        txn.insert(
            TreeId::Callouts,
            keys::deadline(deadline, &s.task.id),
            Vec::new(),
        );
        s.task.deadline = Some(deadline);
        let note = match (message, requested > max) {
            (m, false) => m,
            (None, true) => Some(CLAMP_NOTE.to_string()),
            (Some(m), true) => Some(format!("{m} ({CLAMP_NOTE})")),
        };
        let stage = s.task.stage;
        s.task
            .history
            .push(entry(now, principal, "extend", note, Some(stage)));
        txn.put_stored(&s)?;
        let mut fx = Effects::default();
        fx.event(effects::TASK_EXTENDED, &s.task);
        Ok((s.task, fx))
    }

    /// The current stage resumed (by `by`, a principal or `timeout`): start the next stage,
    /// or end the task `resumed` after the last one.
    pub(crate) fn pass_stage(
        &self,
        s: &mut Stored,
        by: &str,
        message: Option<String>,
        now: u64,
        fx: &mut Effects,
    ) {
        if s.task.stage + 1 < s.task.stages.len() {
            s.task.stage += 1;
            self.start_stage(s, now);
            fx.blocked.push(s.task.clone());
            fx.event(effects::TASK_STAGE_ADVANCED, &s.task);
        } else {
            finish(s, TaskState::Resumed, by, message, fx);
        }
    }

    /// Sets the timing of the current stage beginning at `now`.
    fn start_stage(&self, s: &mut Stored, now: u64) {
        let rule = s.current_rule().copied().unwrap_or(StageRule {
            timeout_ms: 0,
            max_timeout_ms: 0,
            default_action: s.task.default_action,
        });
        s.task.stage_started_at = now;
        s.task.default_action = rule.default_action;
        s.task.deadline = Some(cap(
            now.saturating_add(rule.timeout_ms.min(rule.max_timeout_ms))
        ));
        let period = self.config.renotify_ms;
        let first = if self.config.renotify_spread {
            (period / 2).saturating_add(offset_in(period, &s.task.id))
        } else {
            period
        };
        s.renotify_at = (period > 0).then(|| cap(now.saturating_add(first.max(1))));
    }

    /// A new task id: a UUID v7 of `now`, monotonic within this engine.
    fn new_id(&self, txn: &Txn, now: u64) -> Result<String, CommandError> {
        for _ in 0..8 {
            let ts = Timestamp::from_unix(&self.ids, now / 1000, ((now % 1000) * 1_000_000) as u32);
            let id = Uuid::new_v7(ts).to_string();
            if txn.get(TreeId::Callouts, &keys::task(&id))?.is_none() {
                return Ok(id);
            }
        }
        Err(CommandError::internal("could not allocate a task id"))
    }
}

/// Ends the task in `state`.
pub(crate) fn finish(
    s: &mut Stored,
    state: TaskState,
    by: &str,
    message: Option<String>,
    fx: &mut Effects,
) {
    s.task.state = state;
    s.task.resolved_by = Some(by.to_string());
    s.task.message = message;
    s.task.deadline = None;
    s.renotify_at = None;
    // Every path that ends a task has just recorded why, at the current time.
    s.finished_at = s.task.history.last().map(|h| h.at);
    fx.resolved.push(s.task.clone());
    fx.event(effects::state_event(state), &s.task);
}

/// Writes the index entries of a blocked task.
pub(crate) fn index(txn: &mut Txn, s: &Stored) {
    let id = &s.task.id;
    if let Some(d) = s.task.deadline {
        txn.insert(TreeId::Callouts, keys::deadline(d, id), Vec::new());
    }
    if let Some(n) = s.renotify_at {
        txn.insert(TreeId::Callouts, keys::renotify(n, id), Vec::new());
    }
    txn.insert(TreeId::Callouts, keys::blocked(id), Vec::new());
}

/// Removes the index entries of a task (before it changes stage or ends).
pub(crate) fn unindex(txn: &mut Txn, s: &Stored) {
    let id = &s.task.id;
    if let Some(d) = s.task.deadline {
        txn.remove(TreeId::Callouts, keys::deadline(d, id));
    }
    if let Some(n) = s.renotify_at {
        txn.remove(TreeId::Callouts, keys::renotify(n, id));
    }
    txn.remove(TreeId::Callouts, keys::blocked(id));
}

pub(crate) fn entry(
    at: u64,
    by: &str,
    action: &str,
    message: Option<String>,
    stage: Option<usize>,
) -> HistoryEntry {
    HistoryEntry {
        at,
        by: by.to_string(),
        action: action.to_string(),
        message,
        stage,
        result: None,
    }
}

fn load(txn: &Txn, task_id: &str) -> Result<Stored, CommandError> {
    txn.stored(task_id)?
        .ok_or_else(|| CommandError::not_found(format!("no task '{task_id}'")))
}

fn in_current_stage(t: &Task, principal: &str) -> bool {
    t.stages
        .get(t.stage)
        .is_some_and(|p| p.iter().any(|x| x == principal))
}

fn in_earlier_stage(t: &Task, principal: &str) -> bool {
    t.stages
        .iter()
        .take(t.stage)
        .any(|p| p.iter().any(|x| x == principal))
}

fn in_any_stage(t: &Task, principal: &str) -> bool {
    t.stages.iter().any(|p| p.iter().any(|x| x == principal))
}

fn not_yours(t: &Task) -> CommandError {
    CommandError::forbidden(format!(
        "only a principal of stage {} of task {}, an operator or an admin may resolve it",
        t.stage, t.id
    ))
}

fn already(t: &Task, action: TaskAction) -> CommandError {
    CommandError::conflict(format!(
        "task {} was already {} by {}; cannot {}",
        t.id,
        t.state,
        t.resolved_by.as_deref().unwrap_or("unknown"),
        action.as_str()
    ))
}

/// Later results override: object keys merge, anything else replaces; null or none keeps.
fn merge_result(into: &mut Value, new: Option<Value>) {
    match new {
        None | Some(Value::Null) => {}
        Some(Value::Object(new)) => match into {
            Value::Object(old) => old.extend(new),
            _ => *into = Value::Object(new),
        },
        Some(v) => *into = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_merge_by_key() {
        let mut r = Value::Null;
        merge_result(&mut r, Some(json!({"a": 1, "b": 1})));
        merge_result(&mut r, Some(json!({"b": 2})));
        merge_result(&mut r, None);
        assert_eq!(r, json!({"a": 1, "b": 2}));
        merge_result(&mut r, Some(json!("x")));
        assert_eq!(r, json!("x"));
        merge_result(&mut r, Some(json!({"c": 3})));
        assert_eq!(r, json!({"c": 3}));
    }
}
