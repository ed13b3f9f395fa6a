//! The executable extensions in service: the `[[exec]]` entries of the running configuration,
//! swapped whole when a reload changes them. The callout adapter, the services' local
//! answerers, the coordinator's action runs and the readiness checks look entries up here on
//! every use, so an added entry answers at once and a removed one is no longer found. A run
//! already started holds its entry and finishes (or times out) in the form it started with.

use super::{action, readiness, Entry, ExecConfig};
use crate::clock::Clock;
use crate::config::exec::{changes, Changes};
use crate::link::{InProcess, InternalCommand, LocalActions, Readiness};
use crate::metrics::Metrics;
use crate::services::{LocalAnswerer, LocalServices};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

/// The entries in service, each with its run slots; shared by everything that runs them.
pub struct Entries {
    current: RwLock<Vec<Arc<Entry>>>,
    /// Where action answers go (the link to the coordinator).
    commands: mpsc::Sender<InternalCommand>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Readiness as last reported, by name: a change is logged once.
    ready: Mutex<HashMap<String, bool>>,
    /// Where each check reports (gauge, the `registrations/query` table, the clock).
    sinks: readiness::Sinks,
    /// Woken by a swap, so the readiness loop takes the new entries' interval.
    swapped: Notify,
}

impl Entries {
    pub fn new(
        configs: &[ExecConfig],
        commands: mpsc::Sender<InternalCommand>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        table: Arc<Readiness>,
    ) -> Arc<Entries> {
        let sinks = readiness::Sinks {
            metrics: metrics.clone(),
            table,
            clock: clock.clone(),
        };
        Arc::new(Entries {
            current: RwLock::new(configs.iter().cloned().map(Entry::new).collect()),
            commands,
            clock,
            metrics,
            ready: Mutex::default(),
            sinks,
            swapped: Notify::new(),
        })
    }

    /// The entries in service now, in config order.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        let current = self.current.read().ok()?;
        current.iter().find(|e| e.config.name == name).cloned()
    }

    /// Swaps in `configs` (already validated): an unchanged entry stays as it is, a changed
    /// one takes its new form for the runs that start from now on, a removed one is no longer
    /// found (its runs in flight finish). Readiness is checked at once for what is new and
    /// the gauge of a removed entry goes.
    pub fn replace(&self, configs: &[ExecConfig]) -> Changes {
        let Ok(mut current) = self.current.write() else {
            return Changes::default();
        };
        let old: Vec<ExecConfig> = current.iter().map(|e| e.config.clone()).collect();
        let diff = changes(&old, configs);
        let next = configs
            .iter()
            .map(|c| match current.iter().find(|e| e.config.name == c.name) {
                Some(e) if e.config == *c => e.clone(),
                Some(e) => e.reformed(c.clone()),
                None => Entry::new(c.clone()),
            })
            .collect();
        *current = next;
        drop(current);
        if let Ok(mut ready) = self.ready.lock() {
            for name in diff.removed.iter().chain(&diff.changed) {
                ready.remove(name);
            }
        }
        for name in &diff.removed {
            let label = crate::metrics::ExecName { name: name.clone() };
            self.metrics.exec_ready.remove(&label);
            self.sinks.table.remove(name);
        }
        for c in configs {
            if diff.added.contains(&c.name) || diff.changed.contains(&c.name) {
                self.check(c);
            }
        }
        self.swapped.notify_one();
        diff
    }

    /// Checks one entry's readiness, logging a change since its last check.
    fn check(&self, e: &ExecConfig) {
        let Ok(mut ready) = self.ready.lock() else {
            return;
        };
        let last = ready.get(&e.name).copied();
        ready.insert(e.name.clone(), readiness::report(e, &self.sinks, last));
    }

    /// Checks every entry's readiness.
    pub fn check_all(&self) {
        for e in self.all() {
            self.check(&e.config);
        }
    }

    /// How often readiness is checked: the shortest interval of the entries in service.
    pub fn check_interval_ms(&self) -> u64 {
        let all = self.all();
        all.iter()
            .map(|e| e.config.check_interval_ms)
            .min()
            .unwrap_or(30_000)
            .max(100)
    }

    /// Resolves after the next swap.
    pub async fn swapped(&self) {
        self.swapped.notified().await
    }
}

impl LocalServices for Entries {
    fn answerer(&self, owner: &str) -> Option<Arc<dyn LocalAnswerer>> {
        self.get(owner).map(|e| e as Arc<dyn LocalAnswerer>)
    }
}

impl InProcess for Entries {
    fn actions(&self, owner: &str) -> Option<Arc<dyn LocalActions>> {
        let entry = self.get(owner).filter(|e| !e.config.actions.is_empty())?;
        Some(Arc::new(action::ExecActions {
            entry,
            commands: self.commands.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    fn reconfigure(&self, entries: &[ExecConfig]) {
        self.replace(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn a_swap_keeps_unchanged_entries_and_forgets_removed_ones() {
        let (tx, _rx) = mpsc::channel(1);
        let m = Arc::new(Metrics::new());
        let a = ExecConfig::new("a", Path::new("/nonexistent/a"));
        let mut b = ExecConfig::new("b", Path::new("/nonexistent/b"));
        let table = Arc::new(Readiness::default());
        let set = Entries::new(
            &[a.clone(), b.clone()],
            tx,
            Arc::new(crate::clock::SystemClock),
            m.clone(),
            table.clone(),
        );
        set.check_all();
        assert_eq!(m.get("extbus_exec_ready", &[("name", "a")]), 0);
        assert!(table.get("a").unwrap().reason.is_some());
        let kept = set.get("b").unwrap();
        // A slot taken in the old form is still taken in the new one (same max_running).
        let held = kept.slot().await.unwrap();
        b.timeout_ms = 5;
        let c = ExecConfig::new("c", Path::new("/bin/sh"));
        let d = set.replace(&[b.clone(), c]);
        assert_eq!(
            (d.added, d.removed, d.changed),
            (vec!["c".into()], vec!["a".into()], vec!["b".into()])
        );
        assert!(set.get("a").is_none());
        assert_eq!(set.get("b").unwrap().config.timeout_ms, 5);
        assert_eq!(set.get("b").unwrap().slots.available_permits(), 15);
        drop(held);
        assert_eq!(kept.slots.available_permits(), 16);
        assert_eq!(m.get("extbus_exec_ready", &[("name", "c")]), 1);
        assert!(!m.render().contains("name=\"a\""));
        assert!(table.get("a").is_none(), "a removed entry leaves the table");
        assert_eq!(table.get("c").unwrap().reason, None);
        assert!(set.answerer("a").is_none() && set.answerer("c").is_some());
        assert!(set.actions("c").is_none(), "c answers no actions");
    }
}
