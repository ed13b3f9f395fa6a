//! Entity commands that act on one entity: create, get, update, resolve, delete (queries and
//! the types list are `entity_query`). Access is decided per type
//! (`access.read` / `access.write`, admin always, the owner may read) within the principal's
//! orgs; a refusal is `forbidden` and a `security.denied` event. Each change is written in
//! the batch's `Txn` with its `entity.*` events, so nothing is answered before it is durable.
//! Secure fields are split off before anything is stored, answered or announced.
//!
//! Lifecycle steps are separate functions (`settle`, `finish_delete`) so that hooks
//! (`entity_hooks`) hold an entity in `pre_created` or `in_deletion` while their task runs.

use super::ctx::Ctx;
use super::{entity_hooks, events, Batch, Coordinator};
use crate::entities::hooks::{HookRecord, POST_CREATE, POST_DELETE, PRE_DELETE, PRE_UPDATE};
use crate::entities::{self, secure, Stored, TypeEntry, MAX_HISTORY};
use extbus_schema::entities::{
    entity_id, CreateEntity, DeleteEntity, Entity, EntityChange, EntityState, UpdateEntity,
};
use extbus_schema::{CommandError, Role};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn has_any(ctx: &Ctx, roles: &[Role]) -> bool {
    ctx.principal.is_admin() || ctx.principal.roles.iter().any(|r| roles.contains(r))
}

/// Refuses with `forbidden` and records a `security.denied` event.
fn deny(co: &mut Coordinator, b: &mut Batch, ctx: &Ctx, reason: String) -> CommandError {
    let name = &ctx.principal.name;
    let data = json!({"principal": name, "action": ctx.kind,
                      "topic": format!("extbus/in/{name}/{}", ctx.suffix), "reason": reason});
    events::system(
        co,
        b,
        extbus_schema::events::SECURITY_DENIED,
        Some(format!("urn:extbus:principal:{name}")),
        data,
    );
    CommandError::forbidden(reason)
}

fn type_of(co: &Coordinator, id: &str) -> Result<Arc<TypeEntry>, CommandError> {
    co.types
        .get(id)
        .cloned()
        .ok_or_else(|| CommandError::not_found(format!("no entity type '{id}'")))
}

/// Why `ctx` may not write entities of `ty`, if it may not.
fn write_refusal(ctx: &Ctx, ty: &TypeEntry) -> Option<String> {
    (!has_any(ctx, &ty.record.spec.access.write)).then(|| {
        format!(
            "principal '{}' has no role in the write access of type {}",
            ctx.principal.name,
            ty.record.spec.id()
        )
    })
}

/// The entity `id` for a principal that wants to read it (or write it, `write`): not there
/// or outside its orgs is `not_found`; no role for it is `forbidden`.
pub(super) fn open_entity(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    write: bool,
) -> Result<(Arc<TypeEntry>, Stored), CommandError> {
    let missing = || CommandError::not_found(format!("no entity '{id}'"));
    let s = entities::load(&b.txn, id)?.ok_or_else(missing)?;
    let owner = s.entity.owner == ctx.principal.name;
    let in_org = ctx.principal.in_org(&s.entity.org);
    // The owner may read its entity from outside the entity's orgs, not write it.
    let owner_reads = owner && !write;
    if !in_org && !owner_reads {
        return Err(missing());
    }
    let ty = co.types.get(&s.entity.type_id).cloned().ok_or_else(|| {
        CommandError::internal(format!(
            "type {} of entity {id} is not loaded",
            s.entity.type_id
        ))
    })?;
    let refusal = if write {
        write_refusal(ctx, &ty)
    } else {
        (!owner && !has_any(ctx, &ty.record.spec.access.read)).then(|| {
            format!(
                "principal '{}' has no role in the read access of type {}",
                ctx.principal.name, s.entity.type_id
            )
        })
    };
    if let Some(why) = refusal {
        return Err(deny(co, b, ctx, why));
    }
    Ok((ty, s))
}

pub(super) fn entity_event(co: &mut Coordinator, b: &mut Batch, kind: &str, e: &Entity) {
    events::system_in_org(co, b, kind, &e.org, Some(e.id.clone()), e.event_data());
}

pub(super) fn record(e: &mut Entity, by: &str, now: u64, action: &str, paths: Vec<String>) {
    e.updated_at = now;
    e.history.push(EntityChange {
        at: now,
        by: by.to_string(),
        action: action.to_string(),
        revision: e.revision,
        paths,
        message: None,
        task: None,
    });
    if e.history.len() > MAX_HISTORY {
        let extra = e.history.len() - MAX_HISTORY;
        e.history.drain(..extra);
    }
}

/// Validates the full content (secure fields included) and moves the entity to `resolved` or
/// `resolution_error`, with its event.
pub(super) fn settle(
    co: &mut Coordinator,
    b: &mut Batch,
    ty: &TypeEntry,
    e: &mut Entity,
    full: &Value,
) {
    e.errors = ty.check(full);
    let kind = if e.errors.is_empty() {
        e.state = EntityState::Resolved;
        "entity.resolved"
    } else {
        e.state = EntityState::ResolutionError;
        "entity.resolution-failed"
    };
    entity_event(co, b, kind, e);
}

pub(super) fn seal(
    co: &mut Coordinator,
    id: &str,
    secrets: &secure::Secrets,
) -> Result<Option<String>, CommandError> {
    co.sealer
        .seal(id, secrets)
        .map_err(|e| CommandError::internal(format!("sealing secure fields: {e}")))
}

pub(super) fn unseal(co: &Coordinator, s: &Stored) -> Result<secure::Secrets, CommandError> {
    match &s.sealed {
        None => Ok(Vec::new()),
        Some(sealed) => unseal_of(co, &s.entity.id, sealed),
    }
}

/// Opens secure values sealed for entity `id` (stored, or proposed by a held update).
pub(super) fn unseal_of(
    co: &Coordinator,
    id: &str,
    sealed: &str,
) -> Result<secure::Secrets, CommandError> {
    co.sealer
        .unseal(id, sealed)
        .map_err(|e| CommandError::internal(format!("secure fields of {id}: {e}")))
}

pub(super) fn answer(e: &Entity) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// Writes the entity and its content index entries in the batch; the reply is its new form.
fn store(
    b: &mut Batch,
    ty: &TypeEntry,
    old: Option<&Entity>,
    e: Entity,
    sealed: Option<String>,
) -> Result<Value, CommandError> {
    let s = Stored { entity: e, sealed };
    entities::put(&mut b.txn, old, &s)?;
    crate::metadata::content::reindex(&mut b.txn, &ty.record.spec.schema, old, Some(&s.entity));
    Ok(answer(&s.entity))
}

/// `entities/create`.
pub(crate) fn create(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    req: CreateEntity,
) -> Result<Value, CommandError> {
    let ty = type_of(co, &req.type_id)?;
    if !ctx.principal.in_org(&req.org) {
        let why = format!(
            "principal '{}' may not act for org '{}'",
            ctx.principal.name, req.org
        );
        return Err(deny(co, b, ctx, why));
    }
    if let Some(why) = write_refusal(ctx, &ty) {
        return Err(deny(co, b, ctx, why));
    }
    let id = entity_id(&uuid::Uuid::now_v7().to_string());
    let full = req.entity;
    let mut content = full.clone();
    let secrets = secure::split(&mut content, &ty.secure);
    let sealed = seal(co, &id, &secrets)?;
    let mut paths = entities::changed_paths(&json!({}), &content);
    paths.extend(secrets.iter().map(|(p, _)| p.clone()));
    let mut e = Entity {
        id,
        type_id: req.type_id,
        org: req.org,
        name: req.name,
        state: EntityState::PreCreated,
        revision: 1,
        owner: ctx.principal.name.clone(),
        created_at: b.now,
        updated_at: b.now,
        entity: content,
        errors: Vec::new(),
        hook: None,
        history: Vec::new(),
    };
    record(&mut e, &ctx.principal.name, b.now, "create", paths);
    entity_event(co, b, "entity.created", &e);
    if ty.record.spec.hooks.post_create {
        let rec = hook_record(&e, POST_CREATE, ctx);
        entity_hooks::hold(co, b, &ty, &mut e, rec, json!({}))?;
    } else {
        settle(co, b, &ty, &mut e, &full);
    }
    store(b, &ty, None, e, sealed)
}

/// `entities/<id>/get`.
pub(crate) fn get(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
) -> Result<Value, CommandError> {
    let (_, s) = open_entity(co, b, ctx, id, false)?;
    let mut v = answer(&s.entity);
    v["metadata"] = super::metadata::visible(b, ctx, id)?;
    Ok(v)
}

/// `entities/<id>/secrets`: the secure values, for the type's own extension only (nobody
/// else, admins included, ever reads them back). While a `pre_update` hook runs, the values
/// the update proposes come beside the stored ones.
pub(crate) fn secrets(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
) -> Result<Value, CommandError> {
    let missing = || CommandError::not_found(format!("no entity '{id}'"));
    let s = entities::load(&b.txn, id)?.ok_or_else(missing)?;
    let owner = co
        .types
        .get(&s.entity.type_id)
        .map(|t| t.record.owner.clone());
    if owner.as_deref() != Some(ctx.principal.name.as_str()) {
        // Who may not see the entity learns nothing of it.
        if !super::entity_query::readable(co, ctx, &s.entity) {
            return Err(missing());
        }
        let why = format!(
            "only the extension of type {} may read the secure values of {id}",
            s.entity.type_id
        );
        return Err(deny(co, b, ctx, why));
    }
    let list = |v: secure::Secrets| -> Vec<Value> {
        v.into_iter()
            .map(|(path, value)| json!({"path": path, "value": value}))
            .collect()
    };
    let mut out =
        json!({"id": id, "revision": s.entity.revision, "secrets": list(unseal(co, &s)?)});
    if let Some(h) = s.entity.hook.as_ref().filter(|h| h.name == PRE_UPDATE) {
        if let Some(sealed) = crate::entities::hooks::get(&b.txn, &h.task)?.and_then(|r| r.sealed) {
            out["proposed"] = json!(list(unseal_of(co, id, &sealed)?));
        }
    }
    Ok(out)
}

/// `entities/<id>/update`: at the current revision only; secure fields left out are kept.
pub(crate) fn update(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    req: UpdateEntity,
) -> Result<Value, CommandError> {
    let (ty, s) = open_entity(co, b, ctx, id, true)?;
    let old = s.entity.clone();
    if old.state == EntityState::InDeletion {
        return Err(CommandError::conflict(format!(
            "entity {id} is being deleted"
        )));
    }
    entity_hooks::check_free(&old)?;
    if req.revision != old.revision {
        return Err(stale(req.revision, old.revision, id));
    }
    let mut content = req.entity;
    let given = secure::split(&mut content, &ty.secure);
    let mut secrets: secure::Secrets = unseal(co, &s)?
        .into_iter()
        .filter(|(p, _)| !given.iter().any(|(g, _)| g == p))
        .collect();
    secrets.extend(given.iter().cloned());
    let mut full = content.clone();
    secure::merge(&mut full, &secrets);
    let sealed = seal(co, id, &secrets)?;
    if ty.record.spec.hooks.pre_update {
        // The change waits for the hook; the proposal is kept with the hook's task.
        let mut rec = hook_record(&old, PRE_UPDATE, ctx);
        let proposal = json!({"update": {"revision": old.revision + 1, "entity": content}});
        rec.content = Some(content);
        rec.sealed = sealed;
        let mut e = old.clone();
        entity_hooks::hold(co, b, &ty, &mut e, rec, proposal)?;
        return held(b, &old, e, s.sealed);
    }
    let mut paths = entities::changed_paths(&old.entity, &content);
    paths.extend(given.iter().map(|(p, _)| p.clone()));
    let mut e = old.clone();
    e.entity = content;
    e.revision += 1;
    record(&mut e, &ctx.principal.name, b.now, "update", paths);
    entity_event(co, b, "entity.updated", &e);
    settle(co, b, &ty, &mut e, &full);
    store(b, &ty, Some(&old), e, sealed)
}

/// `entities/<id>/resolve`: validates again (and seals the secure fields with the current key).
pub(crate) fn resolve(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
) -> Result<Value, CommandError> {
    let (ty, s) = open_entity(co, b, ctx, id, true)?;
    let old = s.entity.clone();
    if old.state == EntityState::InDeletion {
        return Err(CommandError::conflict(format!(
            "entity {id} is being deleted"
        )));
    }
    entity_hooks::check_free(&old)?;
    let secrets = unseal(co, &s)?;
    let mut full = old.entity.clone();
    secure::merge(&mut full, &secrets);
    let sealed = seal(co, id, &secrets)?;
    let mut e = old.clone();
    record(&mut e, &ctx.principal.name, b.now, "resolve", Vec::new());
    settle(co, b, &ty, &mut e, &full);
    store(b, &ty, Some(&old), e, sealed)
}

/// `entities/<id>/delete`: `in_deletion`, then gone; the reply is its last form.
pub(crate) fn delete(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    req: DeleteEntity,
) -> Result<Value, CommandError> {
    let (ty, s) = open_entity(co, b, ctx, id, true)?;
    let old = s.entity.clone();
    let mut e = s.entity;
    entity_hooks::check_free(&e)?;
    if let Some(r) = req.revision.filter(|r| *r != e.revision) {
        return Err(stale(r, e.revision, id));
    }
    let prior = e.state;
    e.state = EntityState::InDeletion;
    record(&mut e, &ctx.principal.name, b.now, "delete", Vec::new());
    let hooks = &ty.record.spec.hooks;
    if hooks.pre_delete {
        let mut rec = hook_record(&e, PRE_DELETE, ctx);
        rec.prior = Some(prior);
        entity_hooks::hold(co, b, &ty, &mut e, rec, json!({}))?;
        return held(b, &old, e, s.sealed);
    }
    finish_delete(co, b, &e);
    if hooks.post_delete {
        let rec = hook_record(&e, POST_DELETE, ctx);
        entity_hooks::start(co, b, &ty, &e, rec, POST_DELETE, None, json!({}))?;
    }
    Ok(answer(&e))
}

/// A stale revision: `conflict` with a `/revision` detail (HTTP `If-Match` makes it 412).
fn stale(given: u64, current: u64, id: &str) -> CommandError {
    CommandError::conflict(format!(
        "revision {given} is not the current revision {current} of entity {id}"
    ))
    .with_details(vec![extbus_schema::ErrorDetail {
        path: "/revision".into(),
        message: format!("the current revision is {current}"),
    }])
}

fn hook_record(e: &Entity, hook: &str, ctx: &Ctx) -> HookRecord {
    HookRecord {
        entity: e.id.clone(),
        name: hook.to_string(),
        by: ctx.principal.name.clone(),
        content: None,
        sealed: None,
        prior: None,
    }
}

/// Stores `e`, now held by a hook, and answers it.
fn held(
    b: &mut Batch,
    old: &Entity,
    e: Entity,
    sealed: Option<String>,
) -> Result<Value, CommandError> {
    let v = answer(&e);
    entities::put(&mut b.txn, Some(old), &Stored { entity: e, sealed })?;
    Ok(v)
}

/// Removes an entity in `in_deletion` and announces it.
pub(super) fn finish_delete(co: &mut Coordinator, b: &mut Batch, e: &Entity) {
    entities::remove(&mut b.txn, e);
    if let Some(ty) = co.types.get(&e.type_id).cloned() {
        crate::metadata::content::reindex(&mut b.txn, &ty.record.spec.schema, Some(e), None);
    }
    if let Err(err) = crate::metadata::remove_all(&mut b.txn, &e.id) {
        tracing::error!(entity = %e.id, error = %err, "metadata of a deleted entity unreadable");
    }
    entity_event(co, b, "entity.deleted", e);
}
