//! Consistency check of the callouts tree: every task agrees with its index entries and every
//! index entry points at a task that agrees with it. Reports problems; never repairs.

use std::collections::{BTreeMap, BTreeSet};

use extbus_schema::tasks::TaskState;

use crate::error::CalloutError;
use crate::keys;
use crate::record::Stored;

type Timed = BTreeMap<String, Vec<u64>>;

fn timed(tree: &sled::Tree, prefix: &[u8]) -> Result<Timed, CalloutError> {
    let mut out = Timed::new();
    for item in tree.scan_prefix(prefix) {
        let (k, _) = item?;
        let (at, id) = keys::split_timed(&k)?;
        out.entry(id).or_default().push(at);
    }
    Ok(out)
}

pub(crate) fn verify(tree: &sled::Tree) -> Result<Vec<String>, CalloutError> {
    let mut problems = Vec::new();
    let mut deadlines = timed(tree, keys::DEADLINE)?;
    let mut renotify = timed(tree, keys::RENOTIFY)?;
    let mut finished = timed(tree, keys::FINISHED)?;
    let mut blocked = BTreeSet::new();
    for item in tree.scan_prefix(keys::BLOCKED) {
        blocked.insert(keys::suffix(&item?.0)?);
    }
    let mut requests = BTreeMap::new();
    for item in tree.scan_prefix(keys::REQUEST) {
        let (k, v) = item?;
        requests.insert(k.to_vec(), String::from_utf8_lossy(&v).into_owned());
    }
    let mut tasks = BTreeSet::new();
    for item in tree.scan_prefix(keys::TASK) {
        let (k, v) = item?;
        let id = keys::suffix(&k)?;
        let s = match Stored::decode(&k, &v) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("task {id}: {e}"));
                continue;
            }
        };
        tasks.insert(id.clone());
        let t = &s.task;
        if t.id != id {
            problems.push(format!("task {id}: stored under another id {}", t.id));
        }
        let d = deadlines.remove(&id).unwrap_or_default();
        let n = renotify.remove(&id).unwrap_or_default();
        let b = blocked.remove(&id);
        let f = finished.remove(&id).unwrap_or_default();
        if f != s.finished_at.into_iter().collect::<Vec<_>>() {
            problems.push(format!(
                "task {id}: finished_at {:?}, f/ {f:?}",
                s.finished_at
            ));
        }
        // A final task without `finished_at` ended before retention existed and is kept.
        if !t.state.is_final() && s.finished_at.is_some() {
            problems.push(format!(
                "task {id}: {} with finished_at {:?}",
                t.state, s.finished_at
            ));
        }
        if t.state == TaskState::Blocked {
            if t.deadline.is_none() || d != t.deadline.into_iter().collect::<Vec<_>>() {
                problems.push(format!(
                    "task {id}: blocked, deadline {:?}, d/ {d:?}",
                    t.deadline
                ));
            }
            if n != s.renotify_at.into_iter().collect::<Vec<_>>() {
                problems.push(format!("task {id}: renotify {:?}, n/ {n:?}", s.renotify_at));
            }
            if !b {
                problems.push(format!("task {id}: blocked but no b/ entry"));
            }
        } else if !d.is_empty() || !n.is_empty() || b || s.renotify_at.is_some() {
            problems.push(format!("task {id}: {} but still indexed", t.state));
        }
        let q = keys::request(&t.submitted_by, &t.request_id);
        match requests.remove(&q) {
            Some(target) if target == id => {}
            other => problems.push(format!("task {id}: request key points to {other:?}")),
        }
    }
    for (id, at) in deadlines {
        problems.push(format!("d/ {at:?} for missing task {id}"));
    }
    for (id, at) in renotify {
        problems.push(format!("n/ {at:?} for missing task {id}"));
    }
    for (id, at) in finished {
        problems.push(format!("f/ {at:?} for missing task {id}"));
    }
    for id in blocked {
        problems.push(format!("b/ for missing task {id}"));
    }
    for (k, id) in requests {
        let k = String::from_utf8_lossy(&k).into_owned();
        let what = if tasks.contains(&id) {
            "a task of another request"
        } else {
            "a missing task"
        };
        problems.push(format!("{k} points to {what} {id}"));
    }
    Ok(problems)
}
