//! Blocking-task commands on the bus side: submit, resolve/extend, get, query, and the timers
//! (deadlines, renotify). The state machine itself is `extbus_callouts::Engine`; this file
//! turns its effects into notices, outcomes and `task.*` events.

use super::ctx::Ctx;
use super::{events, Batch, Coordinator};
use crate::config::Config;
use extbus_callouts::{Effects, Engine, EngineConfig, Store};
use extbus_schema::tasks::{
    ExtendRequest, ResolveRequest, SubmitRequest, Task, TaskAction, TaskQuery,
};
use extbus_schema::{topics, CommandError, Role};
use serde_json::Value;

/// Most timers handled per batch, so a backlog cannot stall commands.
const TIMER_CHUNK: usize = 512;
/// How often retention looks for finished tasks to remove, and how many one batch removes.
const PURGE_EVERY_MS: u64 = 1_000;
const PURGE_CHUNK: usize = 2_048;
/// A query page stops growing past this many bytes (it always holds at least one task).
const QUERY_MAX_BYTES: usize = 1 << 20;

pub(crate) fn engine(store: &Store, cfg: &Config) -> Result<Engine, extbus_callouts::CalloutError> {
    Engine::open(
        store,
        EngineConfig {
            renotify_ms: cfg.tasks.renotify_ms,
            // Extensions hear their waiting tasks when they come back (`reannounce`); the
            // periodic pass is a safety net and must not come in bursts.
            renotify_spread: true,
        },
        cfg.tasks.rules.clone(),
    )
}

fn to_value(t: &Task) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(crate) fn submit(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    mut req: SubmitRequest,
) -> Result<Task, CommandError> {
    if !ctx.principal.in_org(&req.org) {
        return Err(CommandError::forbidden(format!(
            "principal '{}' may not act for org '{}'",
            ctx.principal.name, req.org
        )));
    }
    super::metadata::check_task_entries(co, b, ctx, None, &req.metadata)?;
    let entries = std::mem::take(&mut req.metadata);
    let (task, fx) = co
        .engine
        .submit(&mut b.txn, &ctx.principal.name, req, b.now)?;
    // Only a new task takes them: a repeated request_id answers the task as it is.
    if task.created_at == b.now && task.history.len() == 1 {
        super::metadata::add_to_task(co, b, ctx, &task.id, &task.org, &entries)?;
    }
    effects(co, b, fx);
    Ok(task)
}

/// Another org's task does not exist for an org-limited principal, even an operator.
fn check_visible(b: &mut Batch, ctx: &Ctx, id: &str) -> Result<(), CommandError> {
    match b.txn.task(id)? {
        Some(t) if !visible(ctx, &t) => Err(CommandError::not_found(format!("no task '{id}'"))),
        _ => Ok(()),
    }
}

/// `tasks/<id>/extend`.
pub(crate) fn extend(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    r: ExtendRequest,
) -> Result<Task, CommandError> {
    check_visible(b, ctx, id)?;
    let privileged = ctx.principal.has(Role::Operator);
    let (task, fx) = co.engine.extend(
        &mut b.txn,
        &ctx.principal.name,
        privileged,
        id,
        r.extend_ms,
        r.message,
        b.now,
    )?;
    effects(co, b, fx);
    Ok(task)
}

/// `tasks/<id>/{resume,cancel,abort}`.
pub(crate) fn resolve(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    action: TaskAction,
    r: ResolveRequest,
) -> Result<Task, CommandError> {
    check_visible(b, ctx, id)?;
    let entries = if action == TaskAction::Resume {
        check_result(co, b, id, r.result.as_ref())?;
        r.metadata
    } else {
        Vec::new()
    };
    super::metadata::check_task_entries(co, b, ctx, Some(id), &entries)?;
    let privileged = ctx.principal.has(Role::Operator);
    let (message, result) = (r.message, r.result);
    let (task, fx) = co.engine.resolve(
        &mut b.txn,
        &ctx.principal.name,
        privileged,
        id,
        action,
        message,
        result,
        b.now,
    )?;
    super::metadata::add_to_task(co, b, ctx, &task.id, &task.org, &entries)?;
    effects(co, b, fx);
    Ok(task)
}

/// A resume's `result` must fit the `result_schema` of every rule of the current stage that
/// has one (`schema_violation` with the failing paths; the task stays blocked).
fn check_result(
    co: &Coordinator,
    b: &Batch,
    id: &str,
    result: Option<&Value>,
) -> Result<(), CommandError> {
    let Some(t) = b.txn.task(id)? else {
        return Ok(());
    };
    if t.state.is_final() {
        return Ok(());
    }
    let Some(stage) = t.stages.get(t.stage) else {
        return Ok(());
    };
    let result = result.unwrap_or(&Value::Null);
    for rule in co.engine.rules().matching(&t.operation, &t.org) {
        let (Some(schema), Some(ext)) = (&rule.result_schema, &rule.extension) else {
            continue;
        };
        if !stage.contains(ext) {
            continue;
        }
        let v = jsonschema::draft202012::options()
            .build(schema)
            .map_err(|e| {
                CommandError::internal(format!("result_schema of {}: {e}", rule.operation))
            })?;
        let details: Vec<extbus_schema::ErrorDetail> = v
            .iter_errors(result)
            .take(20)
            .map(|e| extbus_schema::ErrorDetail {
                path: format!("/result{}", e.instance_path()),
                message: e.to_string(),
            })
            .collect();
        if !details.is_empty() {
            return Err(CommandError::new(
                extbus_schema::ErrorCode::SchemaViolation,
                format!(
                    "the result does not fit the result_schema of {}'s rule for {}",
                    ext, t.operation
                ),
            )
            .with_details(details));
        }
    }
    Ok(())
}

/// Org-limited principals see only their orgs' tasks.
pub(super) fn visible(ctx: &Ctx, t: &Task) -> bool {
    ctx.principal.in_org(&t.org) || t.submitted_by == ctx.principal.name
}

pub(crate) fn get(co: &Coordinator, ctx: &Ctx, id: &str) -> Result<Task, CommandError> {
    match co.engine.get(&co.store, id)? {
        Some(t) if visible(ctx, &t) => Ok(t),
        _ => Err(CommandError::not_found(format!("no task '{id}'"))),
    }
}

/// `tasks/<id>/get`: the task with the metadata entries the sender may see, as an entity's
/// `get` has them.
pub(crate) fn get_with_metadata(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    id: &str,
) -> Result<Value, CommandError> {
    let t = get(co, ctx, id)?;
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    v["metadata"] = super::metadata::visible(b, ctx, id)?;
    Ok(v)
}

pub(crate) fn query(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    q: &TaskQuery,
) -> Result<Value, CommandError> {
    if let Some(text) = &q.metadata {
        return super::metadata_query::tasks(b, ctx, q, text);
    }
    let limit = q.limit.unwrap_or(100).min(1000);
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut full = false;
    let mut last: Option<String> = None;
    for t in co
        .engine
        .query(&co.store, q)?
        .into_iter()
        .filter(|t| visible(ctx, t))
    {
        let mut v = to_value(&t);
        if let Some(o) = v.as_object_mut() {
            o.remove("history");
        }
        bytes += v.to_string().len();
        if bytes > QUERY_MAX_BYTES && !items.is_empty() {
            full = true;
            break;
        }
        last = Some(t.id.clone());
        items.push(v);
    }
    // A page cut by the limit or by size continues after its last task.
    let next = if full || items.len() >= limit {
        last
    } else {
        None
    };
    Ok(
        serde_json::json!({"tasks": items, "next": next, "states": extbus_schema::tasks::state_table(),
                           "plan": {"served_by": "task-index"}}),
    )
}

/// Deadlines and renotify that are due now.
pub(crate) fn timers(co: &mut Coordinator, b: &mut Batch) {
    match co.engine.due(&mut b.txn, b.now, TIMER_CHUNK) {
        Ok(list) => {
            for fx in list {
                effects(co, b, fx);
            }
        }
        Err(e) => tracing::error!(error = %e, "applying deadlines failed"),
    }
    match co.engine.renotify_due(&mut b.txn, b.now, TIMER_CHUNK) {
        Ok(list) => {
            for t in list {
                announce_blocked(b, &t);
            }
        }
        Err(e) => tracing::error!(error = %e, "renotify failed"),
    }
    purge(co, b);
}

/// Retention: removes tasks that ended `tasks.retention_ms` ago, a chunk at a time, at most
/// once a second unless a full chunk shows more are waiting.
fn purge(co: &mut Coordinator, b: &mut Batch) {
    let keep = co.config.tasks.retention_ms;
    if keep == 0 || b.now < co.next_task_purge {
        return;
    }
    match co
        .engine
        .purge_finished(&mut b.txn, b.now.saturating_sub(keep), PURGE_CHUNK)
    {
        Ok(ids) => {
            co.next_task_purge = if ids.len() < PURGE_CHUNK {
                b.now + PURGE_EVERY_MS
            } else {
                b.now
            };
            for id in &ids {
                // The task is gone: so are its metadata entries and their index keys.
                if let Err(e) = crate::metadata::remove_all(&mut b.txn, id) {
                    tracing::error!(task = %id, error = %e, "metadata of a purged task unreadable");
                }
            }
            if !ids.is_empty() {
                co.metrics.tasks_purged.inc_by(ids.len() as u64);
                tracing::debug!(count = ids.len(), "finished tasks past retention removed");
            }
        }
        Err(e) => tracing::error!(error = %e, "task retention failed"),
    }
}

pub(crate) fn announce_blocked(b: &mut Batch, t: &Task) {
    b.outbox
        .json(topics::tasks_blocked(&t.operation), &t.announcement());
}

/// Turns engine effects into publishes and events (sent after the flush). A task snapshot is
/// turned into JSON once: its announcement or outcome serves the publishes and the event data.
pub(super) fn effects(co: &mut Coordinator, b: &mut Batch, fx: Effects) {
    let mut announced: Vec<(&Task, Option<Value>)> = Vec::with_capacity(fx.blocked.len());
    for t in &fx.blocked {
        let ann = t.announcement();
        b.outbox.json(topics::tasks_blocked(&t.operation), &ann);
        announced.push((t, Some(ann)));
    }
    let mut outcomes: Vec<(&Task, Option<Value>)> = Vec::with_capacity(fx.resolved.len());
    for t in &fx.resolved {
        let outcome = serde_json::to_value(t.outcome()).unwrap_or(Value::Null);
        // One encoding for both topics: the payloads are the same bytes.
        let payload = bytes::Bytes::from(serde_json::to_vec(&outcome).unwrap_or_default());
        b.outbox.push(
            topics::outcomes(&t.submitted_by),
            payload.clone(),
            Default::default(),
        );
        b.outbox.push(
            topics::tasks_resolved(&t.operation),
            payload,
            Default::default(),
        );
        let state = crate::metrics::State {
            state: t.state.as_str(),
        };
        co.metrics.tasks_resolved.get_or_create(&state).inc();
        outcomes.push((t, Some(outcome)));
    }
    for (kind, t) in &fx.events {
        if kind == extbus_callouts::TASK_BLOCKED {
            co.metrics.tasks_blocked.inc();
        }
        // Effects hold the same snapshot several times (notice, outcome, event): reuse its JSON.
        let known = if t.state.is_final() {
            &mut outcomes
        } else {
            &mut announced
        };
        let reuse = known
            .iter_mut()
            .find(|(k, v)| v.is_some() && *k == t)
            .and_then(|(_, v)| v.take());
        let data = match reuse {
            Some(v) => v,
            None if t.state.is_final() => serde_json::to_value(t.outcome()).unwrap_or(Value::Null),
            None => t.announcement(),
        };
        events::system_in_org(
            co,
            b,
            kind,
            &t.org,
            Some(format!("urn:extbus:task:{}", t.id)),
            data,
        );
    }
    // A hook's or behavior's task ended: its entity takes the outcome in this batch.
    for t in &fx.resolved {
        super::entity_hooks::finished(co, b, t);
    }
}
