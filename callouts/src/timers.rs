//! Deadlines and renotify, driven by the time-ordered `d/` and `n/` indexes: nothing is held in
//! memory and nothing is loaded at start, so a deadline that passed while the broker was down
//! is simply due at the first call. The caller sleeps until `Store::next_wakeup`.

use extbus_schema::tasks::{DefaultAction, Task, TaskState};

use crate::effects::{self, Effects};
use crate::engine::{entry, finish, index, unindex, Engine, TIMEOUT_PRINCIPAL};
use crate::error::CalloutError;
use crate::keys;
use crate::record::{cap, Stored};
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
            let batch = txn.range(keys::DEADLINE, &end, limit - out.len())?;
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
                    _ => txn.remove(k),
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
            let batch = txn.range(keys::RENOTIFY, &end, limit - out.len())?;
            if batch.is_empty() {
                break;
            }
            for (k, _) in batch {
                let (at, id) = keys::split_timed(&k)?;
                txn.remove(k);
                match txn.stored(&id)? {
                    Some(mut s)
                        if s.task.state == TaskState::Blocked && s.renotify_at == Some(at) =>
                    {
                        s.renotify_at = next;
                        if let Some(n) = next {
                            txn.insert(keys::renotify(n, &id), Vec::new());
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
