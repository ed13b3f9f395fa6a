//! Executable extensions (in the style of Apache CloudStack's extension framework): programs
//! the broker runs itself for the callout stages and the services they are named in. This file
//! holds `Entry` (an `[[exec]]` entry, configured in `config::exec`, with its limit of
//! concurrent runs). Files: `entries` (the entries in service, swapped on reload), `callout`
//! (answers blocked tasks), `service` (answers service requests), `action` (answers action
//! runs), `runner` (one run), `readiness` (exists and executable).

pub mod action;
pub mod callout;
pub mod entries;
pub mod readiness;
pub mod runner;
pub mod service;

pub use crate::config::exec::{
    changes, declared_services, rules, validate, Changes, ExecConfig, ExecService,
};
use crate::link::Link;
use crate::metrics::Metrics;
pub use entries::Entries;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// An entry in service: its config and its free run slots.
pub struct Entry {
    pub config: ExecConfig,
    slots: Arc<Semaphore>,
}

impl Entry {
    pub fn new(config: ExecConfig) -> Arc<Entry> {
        let slots = Arc::new(Semaphore::new(config.max_running.max(1)));
        Arc::new(Entry { config, slots })
    }

    /// The entry in its reloaded form `config`. With the same `max_running` it shares this
    /// one's slots, so runs of both forms count against one limit; a new limit starts its own
    /// count beside the old form's runs still in flight.
    pub fn reformed(&self, config: ExecConfig) -> Arc<Entry> {
        if config.max_running != self.config.max_running {
            return Entry::new(config);
        }
        let slots = self.slots.clone();
        Arc::new(Entry { config, slots })
    }

    /// Waits for a free run slot; held for the run.
    pub async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    /// Runs the program as `<exe> <action> <payload_file> <timeout>` once a slot is free,
    /// within `deadline_ms` (on `clock`) and the entry's `timeout_ms`, and counts the run.
    /// `None`: the deadline passed while waiting for a slot.
    pub async fn run_within(
        &self,
        action: &'static str,
        payload: &serde_json::Value,
        deadline_ms: u64,
        clock: &dyn crate::clock::Clock,
        metrics: &Metrics,
    ) -> Option<Result<runner::Answer, runner::Failure>> {
        let _slot = self.slot().await?;
        let left = deadline_ms.saturating_sub(clock.now_ms());
        if left == 0 {
            return None;
        }
        let timeout = std::time::Duration::from_millis(left.min(self.config.timeout_ms));
        let outcome = runner::run(&self.config.path, action, payload, timeout).await;
        self.count(metrics, action, runner::label(&outcome));
        Some(outcome)
    }

    /// Counts one run in `extbus_exec_runs_total{name,action,outcome}`.
    pub fn count(&self, metrics: &Metrics, action: &'static str, outcome: &'static str) {
        let run = crate::metrics::ExecRun {
            name: self.config.name.clone(),
            action,
            outcome,
        };
        metrics.exec_runs.get_or_create(&run).inc();
    }
}

/// Starts the entries of `configs`, their callout adapter and readiness checks; the entries
/// (for the services' local answerers) and the coordinator's end of the link. Both serve
/// with no entry too: a reload may add some.
pub fn start(
    configs: &[ExecConfig],
    metrics: Arc<Metrics>,
    clock: Arc<dyn crate::clock::Clock>,
    stop: watch::Receiver<bool>,
) -> (Arc<Entries>, Link) {
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (blocked_tx, blocked_rx) = mpsc::unbounded_channel();
    let table = Arc::new(crate::link::Readiness::default());
    let entries = Entries::new(
        configs,
        cmd_tx.clone(),
        clock,
        metrics.clone(),
        table.clone(),
    );
    tokio::spawn(readiness::watch(entries.clone(), stop.clone()));
    tokio::spawn(callout::adapter(
        entries.clone(),
        cmd_tx,
        blocked_rx,
        metrics,
        stop,
    ));
    let link = Link {
        commands: cmd_rx,
        blocked: blocked_tx,
        local: entries.clone(),
        readiness: table,
    };
    (entries, link)
}
