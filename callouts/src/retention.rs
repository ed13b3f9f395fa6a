//! Retention of finished tasks, driven by the time-ordered `f/` index: a task that ended before
//! the cut-off is removed with its idempotency key, so the store stops growing with history.
//! Blocked tasks are never touched. After the purge, the same `request_id` submits a new task.

use extbus_schema::tasks::TaskState;

use crate::engine::Engine;
use crate::error::CalloutError;
use crate::keys;
use crate::record::cap;
use crate::trees::TreeId;
use crate::txn::Txn;

impl Engine {
    /// Removes up to `limit` tasks that ended at or before `before_ms`, oldest first, with their
    /// `q/` keys (when they still point at them). Returns the ids removed; stale `f/` entries
    /// are dropped without counting.
    pub fn purge_finished(
        &self,
        txn: &mut Txn,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, CalloutError> {
        let end = keys::finished(cap(before_ms).saturating_add(1), "");
        let mut purged = Vec::new();
        while purged.len() < limit {
            let batch = txn.range(TreeId::Callouts, keys::FINISHED, &end, limit - purged.len())?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in batch {
                let (at, id) = keys::split_timed(&k)?;
                txn.remove(TreeId::Callouts, k);
                let Some(s) = txn.stored(&id)? else { continue };
                if s.task.state == TaskState::Blocked || s.finished_at != Some(at) {
                    continue;
                }
                let q = keys::request(&s.task.submitted_by, &s.task.request_id);
                if txn.get(TreeId::Callouts, &q)?.as_deref() == Some(id.as_bytes()) {
                    txn.remove(TreeId::Callouts, q);
                }
                txn.remove(TreeId::Callouts, keys::task(&id));
                purged.push(id);
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    //! Limits and stale `f/` entries, which need the key layout to set up.
    use crate::{keys, Engine, Store};
    use extbus_schema::tasks::TaskAction;

    const T0: u64 = 1_795_341_600_000;

    /// Three tasks that ended at T0+1, T0+2 and T0+3, in that order.
    fn three_finished() -> (tempfile::TempDir, Store, Engine, Vec<String>) {
        let (dir, store, engine) = crate::fixture::engine(0);
        let mut txn = store.txn();
        let mut ids = Vec::new();
        for i in 0..3u64 {
            let req = crate::fixture::submit(&format!("r{i}"));
            let (t, _) = engine.submit(&mut txn, "plat", req, T0).unwrap();
            engine
                .resolve(
                    &mut txn,
                    "ext",
                    false,
                    &t.id,
                    TaskAction::Resume,
                    None,
                    None,
                    T0 + 1 + i,
                )
                .unwrap();
            ids.push(t.id);
        }
        txn.commit().unwrap();
        (dir, store, engine, ids)
    }

    #[test]
    fn a_purge_removes_exactly_its_limit_oldest_first() {
        let (_dir, store, engine, ids) = three_finished();
        let mut txn = store.txn();
        assert_eq!(
            engine.purge_finished(&mut txn, T0 + 10, 2).unwrap(),
            ids[..2]
        );
        txn.commit().unwrap();
        let mut txn = store.txn();
        assert_eq!(
            engine.purge_finished(&mut txn, T0 + 10, 2).unwrap(),
            ids[2..]
        );
        txn.commit().unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_stale_finished_entry_is_dropped_without_removing_its_task_or_counting() {
        let (_dir, store, engine, ids) = three_finished();
        // An f/ entry for the last task at a time it did not end: first in time order.
        store
            .tree()
            .insert(keys::finished(T0, &ids[2]), &[])
            .unwrap();
        let mut txn = store.txn();
        assert_eq!(
            engine.purge_finished(&mut txn, T0 + 10, 2).unwrap(),
            ids[..2]
        );
        txn.commit().unwrap();
        assert!(
            store.get(&ids[2]).unwrap().is_some(),
            "the stale entry's task is kept"
        );
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }
}
