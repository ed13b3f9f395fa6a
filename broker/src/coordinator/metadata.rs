//! `metadata/<object_id>/get|set|delete` on entities and tasks, and the metadata a task gets
//! at submit or on resume. An object the sender may not see is `not_found` (existence does not
//! leak); `provider` entries are invisible to principals without all orgs, and only they may
//! write `provider` or `read_only` entries. Each change is a `metadata.changed` event written
//! in the same batch: tenant entries in the object's org, provider entries in the system org.

use super::ctx::Ctx;
use super::entities::has_any;
use super::{events, Batch, Coordinator};
use crate::metadata::{self, plan::Sight, Kind};
use extbus_schema::metadata::{DeleteMetadata, Domain, Entry, SetMetadata};
use extbus_schema::{CommandError, ErrorCode, ErrorDetail};
use serde_json::{json, Value};

/// Event type of every metadata change.
pub const CHANGED: &str = "metadata.changed";

/// The object an id names, as far as its metadata is concerned: its org.
struct Object {
    org: String,
}

fn missing(id: &str) -> CommandError {
    CommandError::not_found(format!("no object '{id}'"))
}

/// The object `id` if `ctx` may see it (and write its metadata, `write`).
fn open(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    id: &str,
    write: bool,
) -> Result<Object, CommandError> {
    match Kind::of(id) {
        Kind::Entity => {
            let s = crate::entities::load(&b.txn, id)?.ok_or_else(|| missing(id))?;
            let e = &s.entity;
            if !super::entity_query::readable(co, ctx, e) {
                return Err(missing(id));
            }
            if write {
                let may = ctx.principal.in_org(&e.org)
                    && co
                        .types
                        .get(&e.type_id)
                        .is_some_and(|t| has_any(ctx, &t.record.spec.access.write));
                if !may {
                    return Err(CommandError::forbidden(format!(
                        "principal '{}' may not write entity {id}",
                        ctx.principal.name
                    )));
                }
            }
            Ok(Object { org: e.org.clone() })
        }
        // Ids never name content indexes.
        Kind::Task | Kind::Content => match b.txn.task(id)? {
            Some(t) if ctx.principal.in_org(&t.org) || t.submitted_by == ctx.principal.name => {
                if write && !ctx.principal.in_org(&t.org) {
                    return Err(CommandError::forbidden(format!(
                        "principal '{}' may not act for org '{}'",
                        ctx.principal.name, t.org
                    )));
                }
                Ok(Object { org: t.org })
            }
            _ => Err(missing(id)),
        },
    }
}

fn sight(ctx: &Ctx, id: &str) -> Sight {
    Sight {
        kind: Kind::of(id),
        all_orgs: ctx.principal.all_orgs(),
    }
}

/// The entries of `id` that `ctx` may see, as JSON.
pub(crate) fn visible(b: &Batch, ctx: &Ctx, id: &str) -> Result<Value, CommandError> {
    let s = sight(ctx, id);
    let list: Vec<Entry> = metadata::load(&b.txn, id)?
        .into_iter()
        .filter(|e| s.sees(e))
        .collect();
    Ok(serde_json::to_value(list).unwrap_or(Value::Null))
}

fn detail(code: ErrorCode, path: String, message: String) -> CommandError {
    CommandError::new(code, format!("{path}: {message}"))
        .with_details(vec![ErrorDetail { path, message }])
}

/// `old` with `given` upserted, if `ctx` may: provider and read-only entries need all orgs, an
/// existing key keeps its value type, and the object stays within the configured count.
fn merged(
    co: &Coordinator,
    ctx: &Ctx,
    at: &str,
    old: &[Entry],
    given: &[Entry],
) -> Result<Vec<Entry>, CommandError> {
    let all = ctx.principal.all_orgs();
    let mut out = old.to_vec();
    for (i, e) in given.iter().enumerate() {
        if !all && (e.domain == Domain::Provider || e.read_only) {
            return Err(CommandError::forbidden(format!(
                "{at}/{i}: only a principal with all orgs may write provider or read_only entries"
            )));
        }
        match out
            .iter_mut()
            .find(|o| o.is(e.domain, &e.namespace, &e.key))
        {
            Some(o) => {
                if o.read_only && !all {
                    return Err(CommandError::forbidden(format!(
                        "{at}/{i}: entry ({}, {}) is read_only",
                        e.namespace, e.key
                    )));
                }
                if o.value.type_name() != e.value.type_name() {
                    return Err(detail(
                        ErrorCode::SchemaViolation,
                        format!("{at}/{i}/value"),
                        format!(
                            "entry ({}, {}) holds a {}, not a {}",
                            e.namespace,
                            e.key,
                            o.value.type_name(),
                            e.value.type_name()
                        ),
                    ));
                }
                *o = e.clone();
            }
            None => out.push(e.clone()),
        }
    }
    let max = co.config.metadata.max_entries;
    if out.len() > max {
        return Err(detail(
            ErrorCode::SchemaViolation,
            at.to_string(),
            format!(
                "an object carries at most {max} metadata entries; this would make {}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The `metadata.changed` events of one change: tenant entries in the object's org, provider
/// entries in the system org (only principals with all orgs see them).
fn announce(co: &mut Coordinator, b: &mut Batch, id: &str, org: &str, action: &str, es: &[Entry]) {
    for (domain, event_org) in [
        (Domain::Tenant, org),
        (Domain::Provider, events::SYSTEM_ORG),
    ] {
        let keys: Vec<Value> = es
            .iter()
            .filter(|e| e.domain == domain)
            .map(|e| json!({"domain": e.domain, "namespace": e.namespace, "key": e.key}))
            .collect();
        if keys.is_empty() {
            continue;
        }
        let data = json!({"id": id, "action": action, "entries": keys});
        events::system_in_org(co, b, CHANGED, event_org, Some(id.to_string()), data);
    }
}

/// `metadata/<id>/get`.
pub(crate) fn get(co: &Coordinator, b: &Batch, ctx: &Ctx, id: &str) -> Result<Value, CommandError> {
    open(co, b, ctx, id, false)?;
    Ok(json!({"id": id, "metadata": visible(b, ctx, id)?}))
}

/// `metadata/<id>/set`.
pub(crate) fn set(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    req: SetMetadata,
) -> Result<Value, CommandError> {
    let obj = open(co, b, ctx, id, true)?;
    let old = metadata::load(&b.txn, id)?;
    let new = merged(co, ctx, "/entries", &old, &req.entries)?;
    metadata::store(&mut b.txn, id, &old, &new)?;
    announce(co, b, id, &obj.org, "set", &req.entries);
    Ok(json!({"id": id, "metadata": visible(b, ctx, id)?}))
}

/// `metadata/<id>/delete`.
pub(crate) fn delete(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    id: &str,
    req: DeleteMetadata,
) -> Result<Value, CommandError> {
    let obj = open(co, b, ctx, id, true)?;
    let all = ctx.principal.all_orgs();
    let old = metadata::load(&b.txn, id)?;
    let gone = || {
        CommandError::not_found(format!(
            "object {id} has no entry ({}, {}, {})",
            req.domain.as_str(),
            req.namespace,
            req.key
        ))
    };
    // A provider entry does not exist for a principal that may not see it.
    if req.domain == Domain::Provider && !all {
        return Err(gone());
    }
    let at = old
        .iter()
        .position(|e| e.is(req.domain, &req.namespace, &req.key))
        .ok_or_else(gone)?;
    if old[at].read_only && !all {
        return Err(CommandError::forbidden(format!(
            "entry ({}, {}) is read_only",
            req.namespace, req.key
        )));
    }
    let mut new = old.clone();
    let removed = new.remove(at);
    metadata::store(&mut b.txn, id, &old, &new)?;
    announce(co, b, id, &obj.org, "delete", &[removed]);
    Ok(json!({"id": id, "metadata": visible(b, ctx, id)?}))
}

/// Checks entries a task will get (at submit or on resume) before anything changes.
pub(crate) fn check_task_entries(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    task_id: Option<&str>,
    given: &[Entry],
) -> Result<(), CommandError> {
    if given.is_empty() {
        return Ok(());
    }
    let old = match task_id {
        Some(id) => metadata::load(&b.txn, id)?,
        None => Vec::new(),
    };
    merged(co, ctx, "/metadata", &old, given).map(|_| ())
}

/// Adds checked entries to a stored task (submit, resume) with their event.
pub(crate) fn add_to_task(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    task_id: &str,
    org: &str,
    given: &[Entry],
) -> Result<(), CommandError> {
    if given.is_empty() || b.txn.task(task_id)?.is_none() {
        return Ok(());
    }
    let old = metadata::load(&b.txn, task_id)?;
    let new = merged(co, ctx, "/metadata", &old, given)?;
    metadata::store(&mut b.txn, task_id, &old, &new)?;
    announce(co, b, task_id, org, "set", given);
    Ok(())
}
