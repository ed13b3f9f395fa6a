//! The query planner: turns a metadata query into the object ids to look at by walking the
//! index. In an `and` the clause with the fewest index entries is walked and the others are
//! filtered on the candidates; an `or` walks each branch. Only entries the requester may see
//! (its domains) are walked. A candidate is checked again against the whole query unless the
//! walk was exact: a clause, a range (`n=ge=2;n=lt=5`), or an `or` of such, finds just the
//! objects that satisfy it.

use super::{encode_value, escape_into, selector_prefix, split_key, Kind};
use extbus_callouts::{prefix_end, CalloutError, TreeId, Txn};
use extbus_schema::metadata::{Domain, Entry};
use extbus_schema::query::{Clause, Expr, Op, Operand, TypedValue};
use extbus_schema::query_range;
use extbus_schema::{CommandError, ErrorCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Most candidate objects one query may walk to; a broader query is refused (`overloaded`)
/// and should add a more selective clause.
pub const MAX_CANDIDATES: usize = 200_000;

/// What a requester may see of an object's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Sight {
    pub kind: Kind,
    /// Principals with all orgs see `provider` entries too.
    pub all_orgs: bool,
}

impl Sight {
    pub fn domains(&self) -> &'static [Domain] {
        if self.all_orgs {
            &[Domain::Tenant, Domain::Provider]
        } else {
            &[Domain::Tenant]
        }
    }

    pub fn sees(&self, e: &Entry) -> bool {
        self.all_orgs || e.domain == Domain::Tenant
    }
}

/// The candidates of a query, in id order, and how they were found (the reply's `plan`).
pub struct Planned {
    pub ids: BTreeSet<String>,
    pub plan: Value,
    /// Every candidate satisfies the query: no need to load its entries to check again.
    pub exact: bool,
}

/// The key range one clause walks in one domain: start, end, selector prefix length.
fn range(kind: Kind, domain: Domain, c: &Clause) -> (Vec<u8>, Vec<u8>, usize) {
    let p = selector_prefix(kind, domain, c.namespace.as_deref(), &c.key);
    let at = |v: &TypedValue| {
        let mut k = p.clone();
        encode_value(v, &mut k);
        k
    };
    let tag = |v: &TypedValue| {
        let mut k = p.clone();
        let mut e = Vec::new();
        encode_value(v, &mut e);
        k.push(e[0]);
        k
    };
    let (start, end) = match (&c.operand, c.op) {
        (_, Op::Ne) => (p.clone(), prefix_end(&p)),
        (Operand::Prefix(s), _) => {
            let mut k = p.clone();
            k.push(b's');
            escape_into(s.as_bytes(), &mut k);
            let e = prefix_end(&k);
            (k, e)
        }
        (Operand::Value(v), Op::Eq) => {
            let k = at(v);
            let e = prefix_end(&k);
            (k, e)
        }
        (Operand::Value(v), Op::Lt) => (tag(v), at(v)),
        (Operand::Value(v), Op::Le) => (tag(v), prefix_end(&at(v))),
        (Operand::Value(v), Op::Gt) => (prefix_end(&at(v)), prefix_end(&tag(v))),
        (Operand::Value(v), Op::Ge) => (at(v), prefix_end(&tag(v))),
    };
    (start, end, p.len())
}

/// Walks the index entries of one clause that satisfy it, calling `f` with each object id,
/// until `f` says stop. Returns how many were seen.
fn walk(
    txn: &Txn,
    sight: Sight,
    c: &Clause,
    f: impl FnMut(String) -> bool,
) -> Result<usize, CalloutError> {
    walk_between(txn, sight, c, None, f)
}

/// `walk`, bounded above by `hi` too when given: a lower and an upper bound on one key in an
/// `and` are one range of the index (`between`).
fn walk_between(
    txn: &Txn,
    sight: Sight,
    c: &Clause,
    hi: Option<&Clause>,
    mut f: impl FnMut(String) -> bool,
) -> Result<usize, CalloutError> {
    let mut n = 0;
    for d in sight.domains() {
        let (start, mut end, plen) = range(sight.kind, *d, c);
        if let Some(h) = hi {
            end = end.min(range(sight.kind, *d, h).1);
        }
        for kv in txn.iter_range(TreeId::MetadataIndex, &start, &end) {
            let (k, _) = kv?;
            let Some((id, v)) = split_key(&k, plen, c.namespace.is_none()) else {
                continue;
            };
            if !c.test(&v) || hi.is_some_and(|h| !h.test(&v)) {
                continue;
            }
            n += 1;
            if !f(id) {
                return Ok(n);
            }
        }
    }
    Ok(n)
}

/// How many index entries `e` would walk, counted up to `cap`.
fn estimate(txn: &Txn, sight: Sight, e: &Expr, cap: usize) -> Result<usize, CalloutError> {
    match e {
        Expr::Clause(c) => {
            let mut n = 0;
            walk(txn, sight, c, |_| {
                n += 1;
                n < cap
            })
        }
        Expr::And(xs) => {
            // Bounded ranges first: their count caps the walk of each open-ended clause.
            let mut best = cap;
            for (lo, hi) in between(xs) {
                best = best.min(count_between(txn, sight, lo, hi, best)?);
            }
            for x in xs {
                best = best.min(estimate(txn, sight, x, best)?);
            }
            Ok(best)
        }
        Expr::Or(xs) => {
            let mut sum = 0;
            for x in xs {
                sum += estimate(txn, sight, x, cap.saturating_sub(sum))?;
                if sum >= cap {
                    break;
                }
            }
            Ok(sum)
        }
    }
}

/// Lower and upper bounds on the same key and value type among the clauses of an `and`: the
/// ranges of `query_range`, which one value must satisfy, so one walk of the index serves them.
fn between(xs: &[Expr]) -> Vec<(&Clause, &Clause)> {
    let lower = |c: &Clause| matches!(c.op, Op::Gt | Op::Ge);
    let mut out = Vec::new();
    for r in query_range::split(xs).0 {
        for lo in r.iter().filter(|c| lower(c)) {
            for hi in r.iter().filter(|c| !lower(c)) {
                out.push((*lo, *hi));
            }
        }
    }
    out
}

fn count_between(
    txn: &Txn,
    sight: Sight,
    lo: &Clause,
    hi: &Clause,
    cap: usize,
) -> Result<usize, CalloutError> {
    let mut n = 0;
    walk_between(txn, sight, lo, Some(hi), |_| {
        n += 1;
        n < cap
    })
}

fn too_broad() -> CommandError {
    CommandError::new(
        ErrorCode::Overloaded,
        format!(
            "the metadata query selects more than {MAX_CANDIDATES} objects; add a more selective clause"
        ),
    )
}

/// Collects the candidates of `e` into `out`, and describes what was walked in `walked`.
/// True when the candidates are exactly the objects that satisfy `e`: a walked clause (or
/// range) tests each visible value as `Expr::eval` does, while any other `and` walks only
/// one of its parts.
fn collect(
    txn: &Txn,
    sight: Sight,
    e: &Expr,
    out: &mut BTreeSet<String>,
    walked: &mut Vec<String>,
) -> Result<bool, CommandError> {
    match e {
        Expr::Clause(c) => {
            let mut over = false;
            walk(txn, sight, c, |id| {
                out.insert(id);
                over = out.len() > MAX_CANDIDATES;
                !over
            })?;
            walked.push(Expr::Clause(c.clone()).to_string());
            if over {
                return Err(too_broad());
            }
            Ok(true)
        }
        Expr::And(xs) => {
            // Bounded ranges first: their count caps the walk of each open-ended clause.
            let mut pair: Option<(&Clause, &Clause, usize)> = None;
            for (lo, hi) in between(xs) {
                let cap = pair.map_or(MAX_CANDIDATES + 1, |(_, _, n)| n);
                let n = count_between(txn, sight, lo, hi, cap)?;
                if n < cap {
                    pair = Some((lo, hi, n));
                }
            }
            let mut best: Option<(&Expr, usize)> = None;
            for x in xs {
                let cap = best
                    .map(|(_, n)| n)
                    .or(pair.map(|(_, _, n)| n))
                    .unwrap_or(MAX_CANDIDATES + 1);
                let n = estimate(txn, sight, x, cap)?;
                if n < cap || (best.is_none() && pair.is_none()) {
                    best = Some((x, n));
                }
            }
            let pair = match (pair, best) {
                (Some((lo, hi, _)), None) => Some((lo, hi)),
                _ => None,
            };
            if let Some((lo, hi)) = pair {
                let mut over = false;
                walk_between(txn, sight, lo, Some(hi), |id| {
                    out.insert(id);
                    over = out.len() > MAX_CANDIDATES;
                    !over
                })?;
                walked.push(format!(
                    "{};{}",
                    Expr::Clause(lo.clone()),
                    Expr::Clause(hi.clone())
                ));
                // A range alone is exactly its walk: both bounds were tested on each value.
                return if over {
                    Err(too_broad())
                } else {
                    Ok(xs.len() == 2)
                };
            }
            match best {
                Some((x, _)) => Ok(collect(txn, sight, x, out, walked)? && xs.len() == 1),
                None => Ok(false),
            }
        }
        Expr::Or(xs) => {
            let mut exact = true;
            for x in xs {
                exact &= collect(txn, sight, x, out, walked)?;
            }
            Ok(exact)
        }
    }
}

/// The candidate objects of `e` for a requester with `sight`.
pub fn plan(txn: &Txn, sight: Sight, e: &Expr) -> Result<Planned, CommandError> {
    let mut ids = BTreeSet::new();
    let mut walked = Vec::new();
    let exact = collect(txn, sight, e, &mut ids, &mut walked)?;
    let filtered = if exact {
        "none: the walk is the query"
    } else {
        "every candidate against the whole query"
    };
    let plan = json!({"served_by": "metadata-index", "walked": walked,
                      "candidates": ids.len(), "filtered": filtered});
    Ok(Planned { ids, plan, exact })
}

/// The entities of type `type_id` that content clauses (of an `and`) on its declared indexes
/// select: the most selective one, or a lower and an upper bound on one path, is walked.
pub fn plan_content(txn: &Txn, type_id: &str, cs: &[Clause]) -> Result<Planned, CommandError> {
    let sight = Sight {
        kind: Kind::Content,
        all_orgs: false,
    };
    let scoped: Vec<Expr> = cs
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.namespace = Some(type_id.to_string());
            Expr::Clause(c)
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut walked = Vec::new();
    // Content candidates are always checked against the filter, on the entity's summary.
    collect(txn, sight, &Expr::And(scoped), &mut ids, &mut walked)?;
    // Walked clauses are shown as written, without the type id they are scoped to.
    let prefix = format!("{type_id}|");
    let walked: Vec<String> = walked.iter().map(|w| w.replace(&prefix, "")).collect();
    let plan = json!({"served_by": "content-index", "walked": walked,
                      "candidates": ids.len(), "filtered": "every candidate against the whole query"});
    Ok(Planned {
        ids,
        plan,
        exact: false,
    })
}

/// Whether the visible `entries` of one object satisfy `e`.
pub fn matches(sight: Sight, e: &Expr, entries: &[Entry]) -> bool {
    let lookup = |ns: Option<&str>, key: &str| -> Vec<&TypedValue> {
        entries
            .iter()
            .filter(|x| sight.sees(x) && x.key == key && ns.is_none_or(|n| n == x.namespace))
            .map(|x| &x.value)
            .collect()
    };
    e.eval(&lookup)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
