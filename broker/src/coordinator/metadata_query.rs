//! Searches: `metadata` in `tasks/query` and `entities/query`, and `filter` over entity
//! content. A metadata query is served by the index (`metadata::plan`): its candidates are
//! checked, in id order, against the sender's rights and, unless the walk was exact, against
//! the rest of the query. A content filter without one scans only what the type, org or
//! state index selects. Every reply says how it was served (`plan`).

use super::ctx::Ctx;
use super::Batch;
use super::Coordinator;
use crate::entities;
use crate::metadata::content::{at_path, index_paths};
use crate::metadata::{self, plan, plan::Sight, Kind};
use extbus_schema::entities::{Entity, EntityQuery};
use extbus_schema::query::{parse, Expr, Selectors, TypedValue};
use extbus_schema::tasks::TaskQuery;
use extbus_schema::CommandError;
use serde_json::{json, Value};

/// A page stops growing past this many bytes (it always holds at least one object).
const QUERY_MAX_BYTES: usize = 1 << 20;
/// Most entities a content filter without a metadata query looks at per page.
const FILTER_MAX_SCAN: usize = 10_000;

fn parsed(field: &str, text: &str, kind: Selectors) -> Result<Expr, CommandError> {
    parse(text, kind).map_err(|e| e.to_command_error(field))
}

/// Whether an entity's content (its summary, secure fields never in it) satisfies `f`.
fn content_matches(f: &Expr, summary: &Value) -> bool {
    let owned: Vec<(String, Vec<TypedValue>)> = f
        .clauses()
        .iter()
        .map(|c| {
            let vals = at_path(summary, &c.key)
                .into_iter()
                .filter_map(TypedValue::from_json)
                .collect();
            (c.key.clone(), vals)
        })
        .collect();
    f.eval(&|_, key: &str| {
        owned
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.iter().collect())
            .unwrap_or_default()
    })
}

/// `tasks/query` with `metadata`.
pub(crate) fn tasks(
    b: &Batch,
    ctx: &Ctx,
    q: &TaskQuery,
    text: &str,
) -> Result<Value, CommandError> {
    let e = parsed("/metadata", text, Selectors::Metadata)?;
    let sight = Sight {
        kind: Kind::Task,
        all_orgs: ctx.principal.all_orgs(),
    };
    let planned = plan::plan(&b.txn, sight, &e)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (mut items, mut bytes, mut next) = (Vec::new(), 0usize, None);
    let mut last = None;
    for id in after(&planned.ids, q.after.as_deref()) {
        if items.len() >= limit {
            next = last;
            break;
        }
        last = Some(id.clone());
        let Some(t) = b.txn.task(id)? else { continue };
        let fits = q.state.is_none_or(|s| s == t.state)
            && q.operation.as_ref().is_none_or(|o| *o == t.operation)
            && q.org.as_ref().is_none_or(|o| *o == t.org)
            && super::tasks::visible(ctx, &t)
            && (planned.exact || plan::matches(sight, &e, &metadata::load(&b.txn, id)?));
        if !fits {
            continue;
        }
        let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("history");
        }
        bytes += v.to_string().len();
        if bytes > QUERY_MAX_BYTES && !items.is_empty() {
            next = items
                .last()
                .and_then(|v: &Value| v["id"].as_str().map(str::to_string));
            break;
        }
        items.push(v);
    }
    Ok(
        json!({"tasks": items, "next": next, "states": extbus_schema::tasks::state_table(),
              "plan": planned.plan}),
    )
}

/// Ids of `set` after the cursor, in order.
fn after<'a>(
    set: &'a std::collections::BTreeSet<String>,
    cursor: Option<&str>,
) -> impl Iterator<Item = &'a String> + 'a {
    use std::ops::Bound;
    let start = match cursor {
        Some(c) => Bound::Excluded(c.to_string()),
        None => Bound::Unbounded,
    };
    set.range::<String, _>((start, Bound::Unbounded))
}

/// `entities/query` with `metadata` or `filter`.
pub(crate) fn entities(
    co: &Coordinator,
    b: &Batch,
    ctx: &Ctx,
    q: &EntityQuery,
) -> Result<Value, CommandError> {
    let meta = q
        .metadata
        .as_deref()
        .map(|t| parsed("/metadata", t, Selectors::Metadata))
        .transpose()?;
    let filter = q
        .filter
        .as_deref()
        .map(|t| parsed("/filter", t, Selectors::Content))
        .transpose()?;
    let sight = Sight {
        kind: Kind::Entity,
        all_orgs: ctx.principal.all_orgs(),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut page = Page::new(limit);
    let planned = meta
        .as_ref()
        .map(|m| plan::plan(&b.txn, sight, m))
        .transpose()?;
    // An exact walk needs no second look at each candidate's entries.
    let recheck = planned.as_ref().is_some_and(|p| !p.exact);
    let check = |e: &Entity, summary: &Value| -> Result<bool, CommandError> {
        let fits = q.type_id.as_ref().is_none_or(|t| *t == e.type_id)
            && q.org.as_ref().is_none_or(|o| *o == e.org)
            && q.state.is_none_or(|st| st == e.state)
            && super::entity_query::readable(co, ctx, e)
            && filter.as_ref().is_none_or(|f| content_matches(f, summary));
        Ok(fits
            && match &meta {
                Some(m) if recheck => plan::matches(sight, m, &metadata::load(&b.txn, &e.id)?),
                _ => true,
            })
    };
    let content = match meta {
        None => content_clause(co, q, filter.as_ref()),
        Some(_) => None,
    };
    let mut plan_v = match (planned, content) {
        (Some(planned), _) => {
            for id in after(&planned.ids, q.after.as_deref()) {
                if !page.visit(&b.txn, id, &check)? {
                    break;
                }
            }
            planned.plan
        }
        (None, Some((t, c))) => {
            let planned = plan::plan_content(&b.txn, &t, &c)?;
            for id in after(&planned.ids, q.after.as_deref()) {
                if !page.visit(&b.txn, id, &check)? {
                    break;
                }
            }
            planned.plan
        }
        (None, None) => {
            let (prefix, index) = match (&q.type_id, &q.org, q.state) {
                (Some(t), _, _) => (Some(entities::index_prefix(b't', t)), "type-index"),
                (_, Some(o), _) => (Some(entities::index_prefix(b'o', o)), "org-index"),
                (_, _, Some(s)) => (
                    Some(entities::index_prefix(b's', s.as_str())),
                    "state-index",
                ),
                _ => (None, "scan"),
            };
            let mut scanned = 0;
            for id in entities::ids_after(&b.txn, prefix, q.after.as_deref()) {
                let id = id?;
                if scanned >= FILTER_MAX_SCAN {
                    page.cut_at_last();
                    break;
                }
                scanned += 1;
                if !page.visit(&b.txn, &id, &check)? {
                    break;
                }
            }
            json!({"served_by": index, "scanned": scanned})
        }
    };
    if filter.is_some() {
        plan_v["filter"] = json!("content checked on the selected entities");
    }
    Ok(
        json!({"entities": page.items, "next": page.next, "states": entities::states(),
              "plan": plan_v}),
    )
}

/// The clauses of the filter (itself, or the sides of its top-level `and`) on paths the
/// queried type declares an index for, with that type id.
fn content_clause(
    co: &Coordinator,
    q: &EntityQuery,
    filter: Option<&Expr>,
) -> Option<(String, Vec<extbus_schema::query::Clause>)> {
    let t = q.type_id.as_ref()?;
    let paths = index_paths(&co.types.get(t)?.record.spec.schema);
    let on_index = |x: &Expr| match x {
        Expr::Clause(c) if paths.contains(&c.key) => Some(c.clone()),
        _ => None,
    };
    let f = filter?;
    let cs: Vec<_> = match f {
        Expr::And(xs) => xs.iter().filter_map(on_index).collect(),
        other => on_index(other).into_iter().collect(),
    };
    (!cs.is_empty()).then(|| (t.clone(), cs))
}

/// A page being filled in id order.
struct Page {
    limit: usize,
    items: Vec<Value>,
    bytes: usize,
    last: Option<String>,
    next: Option<String>,
}

impl Page {
    fn new(limit: usize) -> Page {
        Page {
            limit,
            items: Vec::new(),
            bytes: 0,
            last: None,
            next: None,
        }
    }

    fn cut_at_last(&mut self) {
        self.next = self.last.clone();
    }

    /// Looks at entity `id`; false when the page is full (its cursor is then set).
    fn visit(
        &mut self,
        txn: &extbus_callouts::Txn,
        id: &str,
        check: &impl Fn(&Entity, &Value) -> Result<bool, CommandError>,
    ) -> Result<bool, CommandError> {
        if self.items.len() >= self.limit {
            self.cut_at_last();
            return Ok(false);
        }
        let Some(s) = entities::load(txn, id)? else {
            self.last = Some(id.to_string());
            return Ok(true);
        };
        let summary = s.entity.summary();
        if check(&s.entity, &summary)? {
            self.bytes += summary.to_string().len();
            if self.bytes > QUERY_MAX_BYTES && !self.items.is_empty() {
                self.cut_at_last();
                return Ok(false);
            }
            self.items.push(summary);
        }
        self.last = Some(id.to_string());
        Ok(true)
    }
}
