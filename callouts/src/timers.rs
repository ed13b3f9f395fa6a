//! Deadlines and renotify, driven by the time-ordered `d/` and `n/` indexes: nothing is held in
//! memory and nothing is loaded at start, so a deadline that passed while the broker was down
//! is simply due at the first call. The caller sleeps until `Store::next_wakeup`.

use extbus_schema::tasks::{DefaultAction, Task, TaskState};

use crate::effects::{self, Effects};
use crate::engine::{entry, finish, index, unindex, Engine, TIMEOUT_PRINCIPAL};
use crate::error::CalloutError;
use crate::keys;
use crate::record::{cap, Stored};
use crate::trees::TreeId;
use crate::txn::Txn;

impl Engine {
    /// Applies the default action of up to `limit` blocked tasks whose deadline is `<= now_ms`,
    /// earliest first, with `resolved_by: "timeout"`. A default `resume` passes the stage (the
    /// next stage, if any, starts). Returns one `Effects` per task; stale index entries are dropped.
    pub fn due(
        &self,
        txn: &mut Txn,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Effects>, CalloutError> {
        let now = cap(now_ms);
        let end = keys::deadline(now + 1, "");
        let mut out = Vec::new();
        while out.len() < limit {
            let batch = txn.range(TreeId::Callouts, keys::DEADLINE, &end, limit - out.len())?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in batch {
                let (at, id) = keys::split_timed(&k)?;
                match txn.stored(&id)? {
                    Some(s)
                        if s.task.state == TaskState::Blocked && s.task.deadline == Some(at) =>
                    {
                        out.push(self.time_out(txn, s, now)?);
                    }
                    _ => txn.remove(TreeId::Callouts, k),
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` blocked tasks whose renotify time is `<= now_ms`, to announce again; each
    /// is rescheduled `EngineConfig::renotify_ms` later. Stale index entries are dropped.
    pub fn renotify_due(
        &self,
        txn: &mut Txn,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Task>, CalloutError> {
        self.renotify_due_every(txn, now_ms, self.config().renotify_ms, limit)
    }

    /// `renotify_due` with an explicit period: rescheduled at `now_ms + renotify_ms` (0: not again).
    pub fn renotify_due_every(
        &self,
        txn: &mut Txn,
        now_ms: u64,
        renotify_ms: u64,
        limit: usize,
    ) -> Result<Vec<Task>, CalloutError> {
        let now = cap(now_ms);
        let end = keys::renotify(now + 1, "");
        let next = Some(cap(now.saturating_add(renotify_ms))).filter(|n| *n > now);
        let mut out = Vec::new();
        while out.len() < limit {
            let batch = txn.range(TreeId::Callouts, keys::RENOTIFY, &end, limit - out.len())?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in batch {
                let (at, id) = keys::split_timed(&k)?;
                txn.remove(TreeId::Callouts, k);
                match txn.stored(&id)? {
                    Some(mut s)
                        if s.task.state == TaskState::Blocked && s.renotify_at == Some(at) =>
                    {
                        s.renotify_at = next;
                        if let Some(n) = next {
                            txn.insert(TreeId::Callouts, keys::renotify(n, &id), Vec::new());
                        }
                        txn.put_stored(&s)?;
                        out.push(s.task);
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    fn time_out(&self, txn: &mut Txn, mut s: Stored, now: u64) -> Result<Effects, CalloutError> {
        unindex(txn, &s);
        let stage = s.task.stage;
        let action = s
            .current_rule()
            .map_or(s.task.default_action, |r| r.default_action);
        let name = match action {
            DefaultAction::Resume => "resume",
            DefaultAction::Cancel => "cancel",
            DefaultAction::Abort => "abort",
        };
        let note = format!("deadline passed at stage {stage}; default action {name}");
        s.task.history.push(entry(
            now,
            TIMEOUT_PRINCIPAL,
            "timeout",
            Some(note.clone()),
            Some(stage),
        ));
        let mut fx = Effects::default();
        match action {
            DefaultAction::Resume => {
                self.pass_stage(&mut s, TIMEOUT_PRINCIPAL, Some(note), now, &mut fx)
            }
            DefaultAction::Cancel | DefaultAction::Abort => finish(
                &mut s,
                action.final_state(),
                TIMEOUT_PRINCIPAL,
                Some(note),
                &mut fx,
            ),
        }
        if !s.task.state.is_final() {
            index(txn, &s);
        }
        fx.events
            .insert(0, (effects::TASK_TIMED_OUT.to_string(), s.task.clone()));
        txn.put_stored(&s)?;
        Ok(fx)
    }
}

#[cfg(test)]
mod tests {
    //! Limits and stale `d/` entries, which need the key layout to set up.
    use crate::{keys, Engine, Store};
    use extbus_schema::tasks::TaskState;

    const T0: u64 = 1_795_341_600_000;

    /// Three blocked tasks whose deadlines are T0+60000, +60001 and +60002.
    fn three_blocked() -> (tempfile::TempDir, Store, Engine, Vec<String>) {
        three_blocked_every(0)
    }

    /// The same, announced again every `renotify_ms` (from T0+i + renotify_ms).
    fn three_blocked_every(renotify_ms: u64) -> (tempfile::TempDir, Store, Engine, Vec<String>) {
        let (dir, store, engine) = crate::fixture::engine(renotify_ms);
        let mut txn = store.txn();
        let mut ids = Vec::new();
        for i in 0..3u64 {
            let req = crate::fixture::submit(&format!("r{i}"));
            ids.push(engine.submit(&mut txn, "plat", req, T0 + i).unwrap().0.id);
        }
        txn.commit().unwrap();
        (dir, store, engine, ids)
    }

    fn timed_out(fx: Vec<crate::Effects>) -> Vec<String> {
        fx.iter().map(|e| e.resolved[0].id.clone()).collect()
    }

    #[test]
    fn due_applies_exactly_its_limit_earliest_first() {
        let (_dir, store, engine, ids) = three_blocked();
        let mut txn = store.txn();
        assert_eq!(
            timed_out(engine.due(&mut txn, T0 + 70_000, 2).unwrap()),
            ids[..2]
        );
        txn.commit().unwrap();
        let mut txn = store.txn();
        assert_eq!(
            timed_out(engine.due(&mut txn, T0 + 70_000, 2).unwrap()),
            ids[2..]
        );
        txn.commit().unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_stale_deadline_entry_is_dropped_without_timing_its_task_out() {
        let (_dir, store, engine, ids) = three_blocked();
        // A d/ entry for the last task at a time that is not its deadline: first in time order.
        store
            .tree()
            .insert(keys::deadline(T0, &ids[2]), &[])
            .unwrap();
        let mut txn = store.txn();
        assert_eq!(
            timed_out(engine.due(&mut txn, T0 + 60_001, 2).unwrap()),
            ids[..2]
        );
        txn.commit().unwrap();
        let last = store.get(&ids[2]).unwrap().unwrap();
        assert_eq!(
            last.state,
            TaskState::Blocked,
            "its real deadline has not come"
        );
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn renotify_takes_exactly_its_limit_and_skips_stale_entries() {
        let (_dir, store, engine, ids) = three_blocked_every(1_000);
        // A stale n/ entry for the last task, first in time order.
        store
            .tree()
            .insert(keys::renotify(T0, &ids[2]), &[])
            .unwrap();
        let mut txn = store.txn();
        let got = engine.renotify_due(&mut txn, T0 + 5_000, 2).unwrap();
        let got: Vec<String> = got.into_iter().map(|t| t.id).collect();
        assert_eq!(got, ids[..2]);
        txn.commit().unwrap();
        let mut txn = store.txn();
        let got = engine.renotify_due(&mut txn, T0 + 5_000, 2).unwrap();
        assert_eq!(got.into_iter().map(|t| t.id).collect::<Vec<_>>(), ids[2..]);
        txn.commit().unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }
    #[test]
    fn due_stops_at_its_limit_when_a_stale_entry_took_a_slot() {
        let (_dir, store, engine, ids) = three_blocked();
        store
            .tree()
            .insert(keys::deadline(T0, &ids[2]), &[])
            .unwrap();
        // All three are due: the stale entry costs a read, not a slot of the limit.
        let mut txn = store.txn();
        assert_eq!(
            timed_out(engine.due(&mut txn, T0 + 70_000, 2).unwrap()),
            ids[..2]
        );
        txn.commit().unwrap();
        assert_eq!(
            store.get(&ids[2]).unwrap().unwrap().state,
            TaskState::Blocked
        );
    }

    #[test]
    fn a_zero_period_announces_once_and_never_again() {
        let (_dir, store, engine, ids) = three_blocked_every(1_000);
        let mut txn = store.txn();
        let got = engine
            .renotify_due_every(&mut txn, T0 + 5_000, 0, 10)
            .unwrap();
        assert_eq!(got.into_iter().map(|t| t.id).collect::<Vec<_>>(), ids);
        txn.commit().unwrap();
        let mut txn = store.txn();
        assert!(engine
            .renotify_due_every(&mut txn, T0 + 5_000, 0, 10)
            .unwrap()
            .is_empty());
        txn.commit().unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
    }
}
