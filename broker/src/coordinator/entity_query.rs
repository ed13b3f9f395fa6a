//! `entities/query` and `entities/types`: pages of the entities a principal may read, in id
//! order, through the type, org or state index; and the registered types.

use super::ctx::Ctx;
use super::entities::has_any;
use super::{Batch, Coordinator};
use crate::entities;
use extbus_schema::entities::{Entity, EntityQuery};
use extbus_schema::CommandError;
use serde_json::{json, Value};

/// A query page stops growing past this many bytes (it always holds at least one entity).
const QUERY_MAX_BYTES: usize = 1 << 20;
/// Most entities one query looks at; past that it answers what it found with a cursor.
const QUERY_MAX_SCAN: usize = 10_000;

/// `entities/query`: a page in id order of the entities the sender may read.
pub(crate) fn query(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    q: &EntityQuery,
) -> Result<Value, CommandError> {
    if q.metadata.is_some() || q.filter.is_some() {
        return super::metadata_query::entities(co, b, ctx, q);
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let prefix = match (&q.type_id, &q.org, q.state) {
        (Some(t), _, _) => Some(entities::index_prefix(b't', t)),
        (_, Some(o), _) => Some(entities::index_prefix(b'o', o)),
        (_, _, Some(s)) => Some(entities::index_prefix(b's', s.as_str())),
        _ => None,
    };
    let (mut items, mut bytes, mut scanned) = (Vec::new(), 0usize, 0usize);
    let mut last: Option<String> = None;
    let mut cut = false;
    for id in entities::ids_after(&b.txn, prefix, q.after.as_deref()) {
        let id = id?;
        if items.len() >= limit || scanned >= QUERY_MAX_SCAN {
            cut = true;
            break;
        }
        scanned += 1;
        let Some(s) = entities::load(&b.txn, &id)? else {
            last = Some(id);
            continue;
        };
        let e = &s.entity;
        let fits = q.type_id.as_ref().is_none_or(|t| *t == e.type_id)
            && q.org.as_ref().is_none_or(|o| *o == e.org)
            && q.state.is_none_or(|st| st == e.state);
        if !fits || !readable(co, ctx, e) {
            last = Some(id);
            continue;
        }
        let v = e.summary();
        bytes += v.to_string().len();
        if bytes > QUERY_MAX_BYTES && !items.is_empty() {
            cut = true;
            break;
        }
        items.push(v);
        last = Some(id);
    }
    let next = if cut { last } else { None };
    let served_by = match (&q.type_id, &q.org, q.state) {
        (Some(_), _, _) => "type-index",
        (_, Some(_), _) => "org-index",
        (_, _, Some(_)) => "state-index",
        _ => "scan",
    };
    Ok(
        json!({"entities": items, "next": next, "states": entities::states(),
              "plan": {"served_by": served_by, "scanned": scanned}}),
    )
}

/// Whether `ctx` may read `e` (query pages leave out what it may not, without refusing).
pub(super) fn readable(co: &Coordinator, ctx: &Ctx, e: &Entity) -> bool {
    let owner = e.owner == ctx.principal.name;
    if owner {
        return true;
    }
    ctx.principal.in_org(&e.org)
        && co
            .types
            .get(&e.type_id)
            .is_some_and(|t| has_any(ctx, &t.record.spec.access.read))
}

/// `entities/types`: every registered type, in id order.
pub(crate) fn types(co: &Coordinator, b: &Batch) -> Result<Value, CommandError> {
    let mut out = Vec::new();
    for t in co.types.list() {
        let id = t.record.spec.id();
        out.push(json!({"id": id, "owner": t.record.owner,
            "registered_at": extbus_schema::time_fmt::format_ms(t.record.registered_at),
            "in_use": entities::type_in_use(&b.txn, &id)?, "secure": t.secure,
            "spec": t.record.spec}));
    }
    Ok(json!({ "types": out }))
}
