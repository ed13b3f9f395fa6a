//! extbus blocking tasks (docs/protocol.md "Blocking tasks"): the task state machine, callout rules and
//! stages, deadlines and renotify, and their durable sled store. Pure and synchronous: the
//! caller passes `now_ms`, commits, flushes, then announces the returned `Effects`.
//!
//! # Layout
//! - `trees`: `TreeId`, the store's named sled trees (tasks, events, services), and `Trees`,
//!   all of them opened once. The broker's event log and services live there too.
//! - `store`: `Store`, tasks in the `callouts` tree; committed reads (get, query, next wake-up).
//! - `txn`: `Txn`, one batch of writes over every tree that reads its own writes and commits
//!   as one sled transaction.
//! - `keys`: the key layout (`t/ q/ d/ n/ b/ r/ f/`). `record`: the stored task record.
//! - `rules`: config and registered rules, stage building. `engine`: submit, resolve, extend.
//! - `timers`: `Engine::due` and `Engine::renotify_due`. `effects`: what to announce.
//! - `retention`: `Engine::purge_finished`, removing tasks that ended long enough ago.
//! - `verify`: consistency check of tasks against indexes. `error`: `CalloutError`.
//!
//! Must not know about MQTT, HTTP or an async runtime.
//!
//! Decisions beyond the protocol: a stage whose deadline passes with default `resume` passes that
//! stage only (the next stage still decides); a resume repeated by a principal of a stage
//! already passed is acknowledged with no change; strangers get `forbidden` even on final
//! tasks; `extend` beyond the stage's max is clamped and the clamp noted in history.
//!
//! One batch, as the coordinator runs it:
//! ```no_run
//! # use extbus_callouts::*;
//! # fn demo(store: &Store, engine: &Engine, now: u64) -> Result<(), CalloutError> {
//! let mut txn = store.txn();
//! let timed_out = engine.due(&mut txn, now, 1000)?;
//! let renotify = engine.renotify_due(&mut txn, now, 1000)?;
//! txn.commit()?;
//! store.flush()?; // durable before anything is acknowledged or announced
//! # let _ = (timed_out, renotify, engine.next_wakeup(store));
//! # Ok(()) }
//! ```

mod effects;
mod engine;
mod error;
#[cfg(test)]
mod fixture;
mod keys;
mod record;
mod retention;
mod rules;
mod store;
mod timers;
mod trees;
mod txn;
mod verify;

pub use effects::{
    state_event, Effects, TASK_ABORTED, TASK_BLOCKED, TASK_CANCELLED, TASK_EXTENDED, TASK_RESUMED,
    TASK_STAGE_ADVANCED, TASK_TIMED_OUT,
};
pub use engine::{Engine, EngineConfig, TIMEOUT_PRINCIPAL};
pub use error::CalloutError;
pub use keys::prefix_end;
pub use record::MAX_TIME_MS;
pub use rules::{Registered, Rules, Stage, StageRule, DEFAULT_COMPONENT};
pub use store::{IndexEntries, Store, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, TREE_NAME};
pub use trees::{TreeId, Trees};
pub use txn::{Entries, Merged, Txn};
