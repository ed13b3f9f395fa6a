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

#[cfg(test)]
mod tests {
    //! The checker must catch each kind of damage: every index is corrupted once here.
    use crate::Store;
    use extbus_schema::tasks::TaskAction;

    const T0: u64 = 1_795_341_600_000;

    struct Fx {
        _dir: tempfile::TempDir,
        store: Store,
        blocked: String,
        done: String,
    }

    /// One blocked task and one resumed task, consistent.
    fn fx() -> Fx {
        let (dir, store, engine) = crate::fixture::engine(30_000);
        let req = crate::fixture::submit;
        let mut txn = store.txn();
        let (blocked, _) = engine.submit(&mut txn, "plat", req("a"), T0).unwrap();
        let (done, _) = engine.submit(&mut txn, "plat", req("b"), T0).unwrap();
        engine
            .resolve(
                &mut txn,
                "ext",
                false,
                &done.id,
                TaskAction::Resume,
                None,
                None,
                T0 + 1,
            )
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
        Fx {
            _dir: dir,
            store,
            blocked: blocked.id,
            done: done.id,
        }
    }

    fn keys_under(s: &Store, prefix: &[u8]) -> Vec<Vec<u8>> {
        s.tree()
            .scan_prefix(prefix)
            .map(|kv| kv.unwrap().0.to_vec())
            .collect()
    }

    /// Runs the checker and asserts exactly one problem mentioning `id` and `want`.
    fn reports(s: &Store, id: &str, want: &str) {
        let problems = s.verify().unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains(id) && problems[0].contains(want),
            "expected '{want}' about {id}: {problems:#?}"
        );
    }

    #[test]
    fn a_missing_or_stray_deadline_is_reported() {
        let f = fx();
        let k = keys_under(&f.store, super::keys::DEADLINE);
        assert_eq!(k.len(), 1);
        f.store.tree().remove(&k[0]).unwrap();
        reports(&f.store, &f.blocked, "deadline");
        f.store
            .tree()
            .insert(super::keys::deadline(T0, "ghost"), &[])
            .unwrap();
        let problems = f.store.verify().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("d/") && p.contains("ghost")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_missing_or_stray_renotify_entry_is_reported() {
        let f = fx();
        let k = keys_under(&f.store, super::keys::RENOTIFY);
        assert_eq!(k.len(), 1);
        f.store.tree().remove(&k[0]).unwrap();
        reports(&f.store, &f.blocked, "renotify");
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::renotify(T0, &f.done), &[])
            .unwrap();
        reports(&f.store, &f.done, "still indexed");
    }

    #[test]
    fn a_missing_or_stray_blocked_entry_is_reported() {
        let f = fx();
        f.store
            .tree()
            .remove(super::keys::blocked(&f.blocked))
            .unwrap();
        reports(&f.store, &f.blocked, "no b/ entry");
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::blocked("ghost"), &[])
            .unwrap();
        reports(&f.store, "ghost", "b/ for missing task");
        // A finished task left in the blocked index (and nowhere else).
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::blocked(&f.done), &[])
            .unwrap();
        reports(&f.store, &f.done, "still indexed");
    }

    #[test]
    fn a_missing_or_stray_finished_entry_is_reported() {
        let f = fx();
        let k = keys_under(&f.store, super::keys::FINISHED);
        assert_eq!(k.len(), 1);
        f.store.tree().remove(&k[0]).unwrap();
        reports(&f.store, &f.done, "finished_at");
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::finished(T0, "ghost"), &[])
            .unwrap();
        reports(&f.store, "ghost", "f/");
    }

    #[test]
    fn a_wrong_or_orphan_request_key_is_reported() {
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::request("plat", "a"), f.done.as_bytes())
            .unwrap();
        reports(&f.store, &f.blocked, "request key points to");
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::request("plat", "zzz"), &b"ghost"[..])
            .unwrap();
        reports(&f.store, "ghost", "a missing task");
    }

    #[test]
    fn an_undecodable_or_misfiled_task_record_is_reported() {
        let f = fx();
        f.store
            .tree()
            .insert(super::keys::task(&f.done), &b"not a record"[..])
            .unwrap();
        let problems = f.store.verify().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("task {}:", f.done))),
            "{problems:#?}"
        );
        let f = fx();
        let v = f
            .store
            .tree()
            .get(super::keys::task(&f.done))
            .unwrap()
            .unwrap();
        f.store.tree().insert(super::keys::task("copy"), v).unwrap();
        let problems = f.store.verify().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("stored under another id")),
            "{problems:#?}"
        );
    }
}
