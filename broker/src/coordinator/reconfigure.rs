//! A reloaded configuration (SIGHUP), applied by the single writer between two batches: the
//! config's callout rules, renotify period, retention, batch size, declared services and
//! `[[exec]]` entries take effect at once. Tasks already blocked keep the stages they were
//! given (a removed entry's stay visible and resolvable by hand); registrations stay.

use super::{internal, records, Coordinator};
use crate::config::Config;
use extbus_callouts::EngineConfig;
use std::collections::BTreeSet;
use tokio::sync::oneshot;

/// A new configuration for the coordinator, answered once applied (or why not).
pub struct Reconfigure {
    pub config: Box<Config>,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Principals the config gives rules, services or executable extensions to.
fn owners(cfg: &Config) -> BTreeSet<String> {
    let rules = cfg.tasks.rules.iter().filter_map(|r| r.extension.clone());
    let services = cfg.services.declared.iter().map(|d| d.extension.clone());
    let exec = cfg.exec.iter().map(|e| e.name.clone());
    rules.chain(services).chain(exec).collect()
}

pub(crate) fn apply(co: &mut Coordinator, new: Config) -> Result<(), String> {
    let mut tasks = new.tasks;
    let mut services = new.services;
    // Executable extensions' rules and services join the config's, as at start.
    tasks.rules.extend(crate::exec::rules(&new.exec));
    services
        .declared
        .extend(crate::exec::declared_services(&new.exec));
    let engine = EngineConfig {
        renotify_ms: tasks.renotify_ms,
        ..*co.engine.config()
    };
    co.engine
        .reconfigure(engine, tasks.rules.clone())
        .map_err(|e| e.to_string())?;
    let exec = crate::exec::changes(&co.config.exec, &new.exec);
    if !exec.is_empty() {
        // New rules and entries together: a task the batch after this blocks finds its entry.
        if let Some(local) = &co.local {
            local.reconfigure(&new.exec);
        }
        for name in co
            .principals
            .reserve(new.exec.iter().map(|e| e.name.clone()))
        {
            tracing::warn!(principal = %name, "a principal has the name of an [[exec]] entry; it cannot log in while the entry is configured");
        }
    }
    let mut affected = owners(&co.config);
    co.config.tasks = tasks;
    co.config.services = services;
    co.config.exec = new.exec;
    affected.extend(owners(&co.config));
    for principal in &affected {
        records::refresh(co, principal);
    }
    // An added entry takes the tasks already waiting on its name, as at start.
    if !exec.added.is_empty() {
        if let Some(tap) = co.exec_tap() {
            internal::announce_waiting(co, tap);
        }
    }
    Ok(())
}
