//! A reloaded configuration (SIGHUP), applied by the single writer between two batches: the
//! config's callout rules, renotify period, retention, batch size and declared services take
//! effect at once. Tasks already blocked keep the stages they were given; registrations stay.
//! Executable extensions keep what they had at start (their entries need a restart).

use super::{records, Coordinator};
use crate::config::Config;
use extbus_callouts::EngineConfig;
use std::collections::BTreeSet;
use tokio::sync::oneshot;

/// A new configuration for the coordinator, answered once applied (or why not).
pub struct Reconfigure {
    pub config: Box<Config>,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Principals the config gives rules or services to.
fn owners(cfg: &Config) -> BTreeSet<String> {
    let rules = cfg.tasks.rules.iter().filter_map(|r| r.extension.clone());
    let services = cfg.services.declared.iter().map(|d| d.extension.clone());
    rules.chain(services).collect()
}

pub(crate) fn apply(co: &mut Coordinator, new: Config) -> Result<(), String> {
    let mut tasks = new.tasks;
    let mut services = new.services;
    // The running executable extensions' rules and services stay, as at start.
    tasks.rules.extend(crate::exec::rules(&co.config.exec));
    services
        .declared
        .extend(crate::exec::declared_services(&co.config.exec));
    let engine = EngineConfig {
        renotify_ms: tasks.renotify_ms,
        ..*co.engine.config()
    };
    co.engine
        .reconfigure(engine, tasks.rules.clone())
        .map_err(|e| e.to_string())?;
    let mut affected = owners(&co.config);
    co.config.tasks = tasks;
    co.config.services = services;
    affected.extend(owners(&co.config));
    for principal in &affected {
        records::refresh(co, principal);
    }
    Ok(())
}
