//! Retention of finished tasks, driven by the time-ordered `f/` index: a task that ended before
//! the cut-off is removed with its idempotency key, so the store stops growing with history.
//! Blocked tasks are never touched. After the purge, the same `request_id` submits a new task.

use extbus_schema::tasks::TaskState;

use crate::engine::Engine;
use crate::error::CalloutError;
use crate::keys;
use crate::record::cap;
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
            let batch = txn.range(keys::FINISHED, &end, limit - purged.len())?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in batch {
                let (at, id) = keys::split_timed(&k)?;
                txn.remove(k);
                let Some(s) = txn.stored(&id)? else { continue };
                if s.task.state == TaskState::Blocked || s.finished_at != Some(at) {
                    continue;
                }
                let q = keys::request(&s.task.submitted_by, &s.task.request_id);
                if txn.get(&q)?.as_deref() == Some(id.as_bytes()) {
                    txn.remove(q);
                }
                txn.remove(keys::task(&id));
                purged.push(id);
            }
        }
        Ok(purged)
    }
}
