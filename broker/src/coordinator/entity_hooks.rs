//! Entity hooks and behaviors as blocking tasks: `start` submits one on operation
//! `<nss>.<hook-or-behavior>` assigned to the type's extension (durable, timed, renotified,
//! resolvable by hand like every task), and `finished` applies its outcome to the entity when
//! the task ends, in the same batch: `post_create` / `pre_update` may replace the content
//! (`result.entity`, validated), a refused `pre_*` hook leaves the entity as it was, a failed
//! `post_create` leaves `resolution_error`. Each outcome is a history entry naming who resolved
//! the task, what it changed and its message.

use super::ctx::Ctx;
use super::entities::{
    entity_event, finish_delete, open_entity, record, seal, settle, unseal, unseal_of,
};
use super::{tasks, Batch, Coordinator};
use crate::entities::hooks::{self, HookRecord, POST_CREATE, POST_DELETE, PRE_DELETE, PRE_UPDATE};
use crate::entities::{self, secure, Stored, TypeEntry};
use extbus_callouts::{Stage, StageRule};
use extbus_schema::entities::{Entity, EntityState, InvokeBehavior, PendingHook};
use extbus_schema::tasks::{DefaultAction, SubmitRequest, Task, TaskState};
use extbus_schema::{CommandError, ErrorCode, ErrorDetail};
use serde_json::{json, Value};

/// Refuses a change while a hook holds the entity.
pub(super) fn check_free(e: &Entity) -> Result<(), CommandError> {
    match &e.hook {
        Some(h) => Err(CommandError::conflict(format!(
            "entity {} waits for its {} hook (task {})",
            e.id, h.name, h.task
        ))),
        None => Ok(()),
    }
}

/// Submits the task of hook or behavior `rec.name` on `e` (its public form goes in `data`,
/// with `extra`), assigned to the type's extension, and keeps `rec` until it ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    co: &mut Coordinator,
    b: &mut Batch,
    ty: &TypeEntry,
    e: &Entity,
    rec: HookRecord,
    label: &str,
    timeout_ms: Option<u64>,
    extra: Value,
) -> Result<Task, CommandError> {
    let cfg = &co.config.entities;
    let timeout_ms = timeout_ms.unwrap_or(cfg.hook_timeout_ms);
    let stage = Stage {
        principals: vec![ty.record.owner.clone()],
        rule: StageRule {
            timeout_ms,
            max_timeout_ms: cfg.hook_max_timeout_ms.max(timeout_ms),
            default_action: DefaultAction::Abort,
        },
    };
    let mut data = json!({"entity": e.summary(), "hook": rec.name});
    if !ty.secure.is_empty() {
        // Marked, not carried: the values reach the type's extension by `entities/<id>/secrets`.
        data["secure_paths"] = json!(ty.secure);
    }
    if let (Some(d), Value::Object(x)) = (data.as_object_mut(), extra) {
        d.extend(x);
    }
    let req = SubmitRequest {
        request_id: format!("urn:extbus:hook:{}", uuid::Uuid::new_v4()),
        operation: hooks::operation(&ty.record.spec.nss, label),
        org: e.org.clone(),
        subject: Some(e.id.clone()),
        data,
        metadata: Vec::new(),
    };
    let by = rec.by.clone();
    let (task, fx) = co
        .engine
        .submit_assigned(&mut b.txn, &by, req, vec![stage], b.now)?;
    hooks::put(&mut b.txn, &task.id, &rec)?;
    tasks::effects(co, b, fx);
    Ok(task)
}

/// Starts `hook` on `e` and marks the entity as held by it.
pub(super) fn hold(
    co: &mut Coordinator,
    b: &mut Batch,
    ty: &TypeEntry,
    e: &mut Entity,
    rec: HookRecord,
    extra: Value,
) -> Result<(), CommandError> {
    let name = rec.name.clone();
    let task = start(co, b, ty, e, rec, &name, None, extra)?;
    e.hook = Some(PendingHook {
        name,
        task: task.id,
    });
    Ok(())
}

/// `entities/<id>/behaviors/<name>`: the reply is the behavior's task.
pub(crate) fn behavior(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    name: &str,
    req: InvokeBehavior,
) -> Result<Task, CommandError> {
    let (ty, s) = open_entity(co, b, ctx, id, true)?;
    let decl = ty
        .record
        .spec
        .behaviors
        .iter()
        .find(|x| x.name == name)
        .cloned()
        .ok_or_else(|| {
            CommandError::not_found(format!(
                "type {} declares no behavior '{name}'",
                ty.record.spec.id()
            ))
        })?;
    if let Some(v) = ty.parameters.get(name) {
        let details: Vec<ErrorDetail> = v
            .iter_errors(&req.arguments)
            .take(20)
            .map(|err| ErrorDetail {
                path: format!("/arguments{}", err.instance_path()),
                message: err.to_string(),
            })
            .collect();
        if !details.is_empty() {
            return Err(CommandError::new(
                ErrorCode::SchemaViolation,
                format!("arguments do not fit the parameters of behavior '{name}'"),
            )
            .with_details(details));
        }
    }
    if s.entity.state == EntityState::InDeletion {
        return Err(CommandError::conflict(format!(
            "entity {id} is being deleted"
        )));
    }
    let rec = HookRecord {
        entity: id.to_string(),
        name: format!("behavior:{name}"),
        by: ctx.principal.name.clone(),
        content: None,
        sealed: None,
        prior: None,
    };
    let extra = json!({"behavior": name, "arguments": req.arguments});
    let task = start(co, b, &ty, &s.entity, rec, name, decl.timeout_ms, extra)?;
    let old = s.entity.clone();
    let mut e = s.entity;
    record(
        &mut e,
        &ctx.principal.name,
        b.now,
        &format!("behavior:{name}"),
        Vec::new(),
    );
    if let Some(h) = e.history.last_mut() {
        h.task = Some(task.id.clone());
    }
    entities::put(
        &mut b.txn,
        Some(&old),
        &Stored {
            entity: e,
            sealed: s.sealed,
        },
    )?;
    Ok(task)
}

/// `t` ended: if it is a hook or behavior task, applies its outcome to its entity.
pub(super) fn finished(co: &mut Coordinator, b: &mut Batch, t: &Task) {
    let rec = match hooks::take(&mut b.txn, &t.id) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(task = %t.id, error = %e, "reading a hook record failed");
            return;
        }
    };
    if let Err(e) = apply(co, b, t, &rec) {
        tracing::error!(task = %t.id, entity = %rec.entity, error = %e.message,
                        "applying a hook outcome failed");
    }
}

fn apply(
    co: &mut Coordinator,
    b: &mut Batch,
    t: &Task,
    rec: &HookRecord,
) -> Result<(), CommandError> {
    if rec.name == POST_DELETE {
        return Ok(());
    }
    let Some(s) = entities::load(&b.txn, &rec.entity)? else {
        return Ok(());
    };
    let Some(ty) = co.types.get(&s.entity.type_id).cloned() else {
        return Err(CommandError::internal(format!(
            "type {} is not loaded",
            s.entity.type_id
        )));
    };
    let old = s.entity.clone();
    let mut e = s.entity.clone();
    if e.hook.as_ref().is_some_and(|h| h.task == t.id) {
        e.hook = None;
    }
    let by = t.resolved_by.clone().unwrap_or_else(|| "unknown".into());
    let resumed = t.state == TaskState::Resumed;
    let outcome = format!("{}.{}", rec.name, t.state.as_str());
    let replacement = resumed.then(|| t.result.get("entity").cloned()).flatten();
    let mut sealed = s.sealed.clone();
    match rec.name.as_str() {
        POST_CREATE => {
            let secrets = unseal(co, &s)?;
            let (paths, full) = replace(co, &ty, &mut e, replacement, secrets, &mut sealed)?;
            record(&mut e, &by, b.now, &outcome, paths);
            note(&mut e, t);
            if resumed {
                settle(co, b, &ty, &mut e, &full);
            } else {
                e.state = EntityState::ResolutionError;
                e.errors = vec![ErrorDetail {
                    path: String::new(),
                    message: refusal(t, &rec.name),
                }];
                entity_event(co, b, "entity.resolution-failed", &e);
            }
        }
        PRE_UPDATE if resumed => {
            let proposed = rec.content.clone().unwrap_or(Value::Null);
            let secrets = match &rec.sealed {
                Some(x) => unseal_of(co, &e.id, x)?,
                None => Vec::new(),
            };
            let update_paths = entities::changed_paths(&old.entity, &proposed);
            e.entity = proposed;
            e.revision += 1;
            record(&mut e, &rec.by, b.now, "update", update_paths);
            let (paths, full) = replace(co, &ty, &mut e, replacement, secrets, &mut sealed)?;
            record(&mut e, &by, b.now, &outcome, paths);
            note(&mut e, t);
            entity_event(co, b, "entity.updated", &e);
            settle(co, b, &ty, &mut e, &full);
        }
        PRE_DELETE if resumed => {
            record(&mut e, &by, b.now, &outcome, Vec::new());
            note(&mut e, t);
            finish_delete(co, b, &e);
            if ty.record.spec.hooks.post_delete {
                let rec = HookRecord {
                    entity: e.id.clone(),
                    name: POST_DELETE.into(),
                    by: rec.by.clone(),
                    content: None,
                    sealed: None,
                    prior: None,
                };
                start(co, b, &ty, &e, rec, POST_DELETE, None, json!({}))?;
            }
            return Ok(());
        }
        PRE_UPDATE | PRE_DELETE => {
            if let Some(p) = rec.prior {
                e.state = p;
            }
            record(&mut e, &by, b.now, &outcome, Vec::new());
            note(&mut e, t);
            if let Some(h) = e.history.last_mut() {
                h.message = Some(format!("{} (asked by {})", refusal(t, &rec.name), rec.by));
            }
            entity_event(co, b, "entity.updated", &e);
        }
        _ => {
            // A behavior: its result is the task's outcome; the entity keeps who ran it.
            record(&mut e, &by, b.now, &outcome, Vec::new());
            note(&mut e, t);
        }
    }
    entities::put(&mut b.txn, Some(&old), &Stored { entity: e, sealed })?;
    Ok(())
}

/// Puts `replacement` (a hook's `result.entity`) in place of the content, if given: its secure
/// values replace those kept. Answers the changed paths and the full content to validate.
fn replace(
    co: &mut Coordinator,
    ty: &TypeEntry,
    e: &mut Entity,
    replacement: Option<Value>,
    mut secrets: secure::Secrets,
    sealed: &mut Option<String>,
) -> Result<(Vec<String>, Value), CommandError> {
    let mut paths = Vec::new();
    if let Some(mut content) = replacement {
        let given = secure::split(&mut content, &ty.secure);
        secrets.retain(|(p, _)| !given.iter().any(|(g, _)| g == p));
        secrets.extend(given.iter().cloned());
        paths = entities::changed_paths(&e.entity, &content);
        paths.extend(given.iter().map(|(p, _)| p.clone()));
        e.entity = content;
    }
    *sealed = seal(co, &e.id, &secrets)?;
    let mut full = e.entity.clone();
    secure::merge(&mut full, &secrets);
    Ok((paths, full))
}

/// The last history entry names the task and its message.
fn note(e: &mut Entity, t: &Task) {
    if let Some(h) = e.history.last_mut() {
        h.task = Some(t.id.clone());
        h.message = t.message.clone();
    }
}

fn refusal(t: &Task, hook: &str) -> String {
    format!(
        "the {hook} hook was {} by {}{}",
        t.state.as_str(),
        t.resolved_by.as_deref().unwrap_or("unknown"),
        t.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}
