//! The coordinator: the single writer. It takes commands from the bus (and notices from the
//! gate), applies a batch of them to the store as one transaction over its trees (tasks, events,
//! services), flushes once (group commit), and only then publishes replies, task notices and
//! events. Timers (deadlines, renotify, retention) run here.
//!
//! Files: `outbox` (pending publishes), `ctx` (a command's sender and reply), `dispatch`
//! (command -> family), `internal` (commands from exec), `tasks`, `events`, `register`,
//! `registrations`, `services`, `actions` (with `action_runs`), `entities` with `entity_hooks`,
//! `entity_query` and `entity_types` (one per command family), `metadata` with `metadata_query`;
//! `records` (what registrations hold beside their rules), `reannounce`
//! (waiting tasks sent again to a returning extension).

mod action_runs;
mod actions;
mod ctx;
mod dispatch;
mod entities;
mod entity_hooks;
mod entity_query;
mod entity_types;
mod events;
mod internal;
mod metadata;
mod metadata_query;
pub mod outbox;
mod principals;
mod reannounce;
mod reconfigure;
mod records;
mod register;
mod registrations;
mod services;
mod tasks;

use crate::clock::Clock;
use crate::config::Config;
use crate::eventlog::{EventLog, Staged};
use crate::metrics::Metrics;
use crate::mqtt::{BusRx, BusTx, InboundPublish};
use crate::notices::GateNotice;
use crate::principals::Principals;
use crate::registry::Registry;
use extbus_callouts::{Engine, Store, Trees, Txn};
use outbox::Outbox;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Everything the coordinator needs, handed over at start.
pub struct Parts {
    pub config: Config,
    pub db: sled::Db,
    pub bus_tx: BusTx,
    pub bus_rx: BusRx,
    pub notices: mpsc::Receiver<GateNotice>,
    pub principals: Arc<Principals>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Extension services: the router `register` updates, the hub responses complete.
    pub services: Arc<crate::services::Services>,
    /// Commands from in-process extensions (exec), and where blocked tasks go for them.
    pub internal: Option<crate::link::Link>,
    /// External mode with dynamic security: the broker's ACLs, kept in step.
    pub acl_sync: Option<Arc<crate::external::sync::Sync>>,
    /// Commands from the HTTP API, applied and answered like those of `internal`.
    pub api: Option<tokio::sync::mpsc::Receiver<crate::link::InternalCommand>>,
    /// Where each durable batch's events go for in-process readers.
    pub feed: crate::feed::Feed,
    /// Configurations reloaded on SIGHUP, applied between batches.
    pub reconfigure: Option<mpsc::Receiver<Reconfigure>>,
}

pub use reconfigure::Reconfigure;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("store: {0}")]
    Store(String),
    #[error("bus: {0}")]
    Bus(String),
}

/// State shared by the command families while a batch is applied.
pub(crate) struct Coordinator {
    pub config: Config,
    pub db: sled::Db,
    pub store: Store,
    pub engine: Engine,
    pub log: EventLog,
    pub principals: Arc<Principals>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub services: Arc<crate::services::Services>,
    /// Entity types, compiled; the key that seals secure entity fields.
    pub types: crate::entities::Types,
    pub sealer: crate::entities::secure::Sealer,
    /// Registrations' services, times and switches (the rules are in `engine`).
    pub records: records::Records,
    /// Extensions whose waiting tasks are being announced again.
    pub reannounce: reannounce::Queue,
    /// Principals as last seen, to log changes made while running.
    known_principals: principals::Snapshot,
    next_principal_check: u64,
    /// When finished tasks are next purged (retention).
    next_task_purge: u64,
    pub exec_tap: Option<mpsc::UnboundedSender<extbus_schema::tasks::Task>>,
    acl_sync: Option<Arc<crate::external::sync::Sync>>,
    pub feed: crate::feed::Feed,
    /// Action runs waiting for their extension's answer.
    pub runs: action_runs::Runs,
    /// In-process extensions (exec): who answers actions, and where a reload's entries go.
    pub local: Option<Arc<dyn crate::link::InProcess>>,
    /// Readiness of the executable extensions (none configured: empty).
    pub exec_ready: Arc<crate::link::Readiness>,
}

/// One batch in the making: store writes, staged events and the publishes they cause.
pub(crate) struct Batch {
    pub txn: Txn,
    pub staged: Staged,
    pub outbox: Outbox,
    pub now: u64,
    /// Replies to internal commands, sent once the batch is durable.
    pub internal: Vec<(crate::link::InternalReply, crate::link::Answer)>,
    /// Principals whose bus rights changed (registrations, the principals file).
    pub acl_changed: Vec<String>,
}

enum Input {
    Command(InboundPublish),
    Notice(GateNotice),
    Internal(crate::link::InternalCommand),
}

impl Coordinator {
    pub fn open(parts: &Parts) -> Result<Self, CoordinatorError> {
        let trees = Trees::open(&parts.db).map_err(|e| CoordinatorError::Store(e.to_string()))?;
        let store = Store::with_trees(trees.clone());
        let engine = tasks::engine(&store, &parts.config)
            .map_err(|e| CoordinatorError::Store(e.to_string()))?;
        let records =
            records::Records::load(&store).map_err(|e| CoordinatorError::Store(e.to_string()))?;
        let log = EventLog::open(&trees).map_err(|e| CoordinatorError::Store(e.to_string()))?;
        let types = crate::entities::Types::load(&trees);
        let sealer = crate::entities::secure::Sealer::open(&parts.config)
            .map_err(CoordinatorError::Store)?;
        parts.feed.publish(log.next_seq(), std::iter::empty());
        let known_principals = parts
            .principals
            .list()
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        let mut co = Coordinator {
            records,
            reannounce: reannounce::Queue::default(),
            known_principals,
            next_principal_check: 0,
            next_task_purge: 0,
            config: parts.config.clone(),
            db: parts.db.clone(),
            store,
            engine,
            log,
            principals: parts.principals.clone(),
            registry: parts.registry.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            services: parts.services.clone(),
            types,
            sealer,
            exec_tap: None,
            acl_sync: parts.acl_sync.clone(),
            feed: parts.feed.clone(),
            runs: action_runs::Runs::default(),
            local: parts.internal.as_ref().map(|l| l.local.clone()),
            exec_ready: parts
                .internal
                .as_ref()
                .map(|l| l.readiness.clone())
                .unwrap_or_default(),
        };
        entity_types::from_config(&mut co).map_err(CoordinatorError::Store)?;
        records::restore(&mut co);
        Ok(co)
    }
}

/// What is registered in the store `db` (and the config's rules and services), as the
/// coordinator restores it at start: for tools that work on a stopped broker's data dir.
pub fn registrations(db: &sled::Db, config: &Config) -> Result<Registry, CoordinatorError> {
    let store_err = |e: String| CoordinatorError::Store(e);
    let trees = Trees::open(db).map_err(|e| store_err(e.to_string()))?;
    let store = Store::with_trees(trees);
    let engine = tasks::engine(&store, config).map_err(|e| store_err(e.to_string()))?;
    let records = records::Records::load(&store).map_err(|e| store_err(e.to_string()))?;
    let registry = Registry::new();
    let mut owners = records.principals();
    let operations = engine.rules().registrations();
    owners.extend(operations.keys().cloned());
    owners.extend(config.services.declared.iter().map(|d| d.extension.clone()));
    for owner in owners {
        let mut services: std::collections::HashSet<(String, String)> = records
            .components
            .iter()
            .filter(|((p, _), _)| *p == owner)
            .flat_map(|(_, r)| {
                r.services
                    .iter()
                    .map(|s| (s.vendor.clone(), s.name.clone()))
            })
            .collect();
        services.extend(
            config
                .declared_services(&owner)
                .into_iter()
                .map(|s| (s.vendor, s.name)),
        );
        registry.set(
            &owner,
            crate::registry::Registration {
                operations: operations.get(&owner).cloned().unwrap_or_default(),
                services,
            },
        );
    }
    Ok(registry)
}

/// Runs the coordinator until `shutdown` resolves; the batch in hand is finished and flushed.
pub async fn run(parts: Parts, shutdown: impl Future<Output = ()>) -> Result<(), CoordinatorError> {
    let mut co = Coordinator::open(&parts)?;
    let Parts {
        mut bus_tx,
        mut bus_rx,
        mut notices,
        internal: link,
        mut api,
        mut reconfigure,
        ..
    } = parts;
    let mut internal_rx = link.map(|l| {
        co.exec_tap = Some(l.blocked);
        l.commands
    });
    bus_tx
        .subscribe(extbus_schema::topics::INBOX_ALL)
        .map_err(|e| CoordinatorError::Store(format!("bus: {e}")))?;
    if let Some(sync) = &co.acl_sync {
        // With the registrations restored: everything the broker must know, before any reply.
        match sync.all().await {
            Ok(r) => {
                tracing::info!(applied = r.applied.len(), drifted = ?r.drifted, removed = ?r.removed, "dynamic security in step")
            }
            Err(e) => return Err(CoordinatorError::Bus(format!("dynamic security sync: {e}"))),
        }
    }

    tokio::pin!(shutdown);
    // Start-up pass: deadlines that passed while the broker was down are applied now.
    co.flush_batch(Vec::new(), &mut bus_tx).await?;
    if let Some(tap) = co.exec_tap() {
        internal::announce_waiting(&co, tap);
    }
    loop {
        // Read each time: a reload may change it.
        let max_batch = co.config.tasks.max_batch;
        let wake = co.next_wakeup();
        let sleep = co.clock.sleep_until(wake);
        let first = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            m = bus_rx.recv() => match m { Some(m) => Some(Input::Command(m)), None => break },
            n = notices.recv() => n.map(Input::Notice),
            c = internal::recv(&mut internal_rx) => Some(Input::Internal(c)),
            c = internal::recv(&mut api) => Some(Input::Internal(c)),
            r = next_reconfigure(&mut reconfigure) => {
                let applied = reconfigure::apply(&mut co, *r.config);
                let _ = r.done.send(applied);
                None
            }
            _ = sleep => None,
        };
        let mut inputs: Vec<Input> = first.into_iter().collect();
        while inputs.len() < max_batch {
            match bus_rx.try_recv() {
                Some(m) => inputs.push(Input::Command(m)),
                None => break,
            }
        }
        // HTTP API commands share the batch (group commit) like MQTT ones.
        while inputs.len() < max_batch {
            match api.as_mut().map(|a| a.try_recv()) {
                Some(Ok(c)) => inputs.push(Input::Internal(c)),
                _ => break,
            }
        }
        while let Ok(n) = notices.try_recv() {
            inputs.push(Input::Notice(n));
        }
        co.flush_batch(inputs, &mut bus_tx).await?;
    }
    co.db
        .flush_async()
        .await
        .map_err(|e| CoordinatorError::Store(e.to_string()))?;
    Ok(())
}

/// The next reloaded configuration, or never (no reloads, or their sender is gone).
async fn next_reconfigure(rx: &mut Option<mpsc::Receiver<Reconfigure>>) -> Reconfigure {
    match rx {
        Some(r) => match r.recv().await {
            Some(c) => c,
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

impl Coordinator {
    /// Where blocked tasks go for the executable extensions, while any is configured.
    pub(crate) fn exec_tap(&self) -> Option<&mpsc::UnboundedSender<extbus_schema::tasks::Task>> {
        self.exec_tap
            .as_ref()
            .filter(|_| !self.config.exec.is_empty())
    }

    /// The earliest instant a timer wants the loop to wake.
    fn next_wakeup(&self) -> u64 {
        // Housekeeping (principal changes, retention) runs at least once a second.
        let mut housekeeping = self.next_principal_check;
        if self.config.tasks.retention_ms > 0 {
            housekeeping = housekeeping.min(self.next_task_purge);
        }
        let housekeeping = housekeeping.max(self.clock.now_ms() + 1);
        let housekeeping = self
            .reannounce
            .wakeup()
            .map_or(housekeeping, |t| t.min(housekeeping));
        let housekeeping = self
            .runs
            .wakeup()
            .map_or(housekeeping, |t| t.min(housekeeping));
        self.engine
            .next_wakeup(&self.store)
            .map_or(housekeeping, |t| t.min(housekeeping))
    }

    /// Applies inputs and due timers as one batch, makes it durable, then publishes.
    async fn flush_batch(
        &mut self,
        inputs: Vec<Input>,
        bus: &mut BusTx,
    ) -> Result<(), CoordinatorError> {
        let now = self.clock.now_ms();
        let mut b = Batch {
            txn: self.store.txn(),
            staged: self.log.begin(),
            outbox: Outbox::default(),
            now,
            internal: Vec::new(),
            acl_changed: Vec::new(),
        };
        let commands = inputs.len();
        for input in inputs {
            match input {
                Input::Command(m) => dispatch::command(self, &mut b, m),
                Input::Notice(n) => dispatch::notice(self, &mut b, n),
                Input::Internal(c) => internal::apply(self, &mut b, c),
            }
        }
        tasks::timers(self, &mut b);
        actions::timers(self, &mut b);
        reannounce::step(self, &mut b);
        if now >= self.next_principal_check {
            principals::check(self, &mut b);
            self.next_principal_check = now + principals::POLL_MS;
        }
        let Batch {
            mut txn,
            mut staged,
            mut outbox,
            internal: replies,
            acl_changed,
            ..
        } = b;
        // Events and retention go into the batch's one transaction, beside its tasks.
        self.log.write(&mut staged, &mut txn);
        let expired = events::retention(self, &mut txn, &staged);
        if let Err(e) = self.commit(txn, &staged).await {
            // Nothing of this batch is acknowledged; its senders see no reply and may retry.
            self.metrics.store_errors.inc();
            tracing::error!(error = %e, "store write failed; batch dropped");
            // Entity types the batch registered are back to what the store holds.
            self.types = crate::entities::Types::load(self.store.trees());
            return Ok(());
        }
        self.metrics.store_flushes.inc();
        self.metrics.commands_batched.inc_by(commands as u64);
        let logged = staged.events().len() as u64;
        self.metrics.events_logged.inc_by(logged);
        self.metrics.events_expired.inc_by(expired as u64);
        // Events go out as the bytes `commit` stored, not encoded a second time.
        let encoded = staged.into_encoded();
        let next_seq = self.log.next_seq();
        self.feed
            .publish(next_seq, encoded.iter().map(|(ev, json)| (ev, json)));
        events::announce(&mut outbox, encoded);
        if let Some(tap) = self.exec_tap() {
            internal::tap(&outbox, tap);
        }
        self.sync_acls(acl_changed).await;
        outbox.send(bus);
        for (tx, r) in replies {
            let _ = tx.send(r);
        }
        Ok(())
    }

    /// Tells the external broker the new rights of `changed` principals (awaiting its answer,
    /// so a reply that follows finds them in force). A refusal is logged: the store has it,
    /// and `extbus bus sync` applies it again.
    async fn sync_acls(&self, mut changed: Vec<String>) {
        let Some(sync) = &self.acl_sync else { return };
        changed.sort();
        changed.dedup();
        for name in changed {
            if let Err(e) = sync.principal(&name, None).await {
                tracing::error!(principal = %name, error = %e, "dynamic security not updated");
            }
        }
    }

    /// Commits the batch's one transaction, then flushes once if it wrote anything. A batch
    /// that failed to commit wrote nothing, and its seqs go to the next batch.
    async fn commit(&mut self, txn: Txn, staged: &Staged) -> Result<(), String> {
        let wrote = txn.commit().map_err(|e| e.to_string())?;
        // The trees hold the batch's events now: their seqs are used even if the flush fails.
        self.log.committed(staged);
        if wrote {
            self.db.flush_async().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
