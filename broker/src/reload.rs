//! SIGHUP: the configuration is read again through the same validation as at start. A file
//! that fails is refused with the field's name and the running configuration stays; a good
//! one applies `log.level`, and `tasks` and `services` (callout rules, renotify, retention,
//! batch size, declared services) through the coordinator, at once; every other changed
//! section is named and takes effect at the next start. Each outcome is logged and counted.

use crate::config::{Config, ConfigError};
use crate::coordinator::Reconfigure;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Reads the configuration again as `serve` first read it (file, environment, flags).
pub type Loader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// What a reload found.
#[derive(Debug, PartialEq)]
pub struct Reloaded {
    /// Sections applied while running.
    pub applied: Vec<&'static str>,
    /// Sections that changed and wait for a restart.
    pub restart: Vec<&'static str>,
}

/// Top-level sections that changed between `old` and `new`.
pub fn changed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    const SECTIONS: [&str; 11] = [
        "data_dir", "dev", "bus", "mqtt", "http", "tasks", "events", "services", "log", "auth",
        "exec",
    ];
    SECTIONS
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .collect()
}

/// Applies what can change while running and reports the rest.
pub fn apply(running: &mut Config, new: Config) -> Result<Reloaded, String> {
    let mut out = Reloaded {
        applied: Vec::new(),
        restart: Vec::new(),
    };
    for section in changed(running, &new) {
        if section == "log" && running.log.format == new.log.format {
            crate::logging::set_level(&new.log.level)?;
            running.log.level = new.log.level.clone();
            out.applied.push("log.level");
        } else {
            out.restart.push(section);
        }
    }
    Ok(out)
}

/// Sections the coordinator applies while running.
const LIVE: [&str; 2] = ["tasks", "services"];

/// Hands the `tasks` and `services` sections of `new` to the coordinator, if they changed
/// and it takes reloads; moves them from `restart` to `applied` once it has.
pub async fn apply_live(
    running: &mut Config,
    new: &Config,
    out: &mut Reloaded,
    coordinator: Option<&mpsc::Sender<Reconfigure>>,
) -> Result<(), String> {
    let Some(tx) = coordinator else {
        return Ok(());
    };
    if !out.restart.iter().any(|s| LIVE.contains(s)) {
        return Ok(());
    }
    let (done, answer) = oneshot::channel();
    let r = Reconfigure {
        config: Box::new(new.clone()),
        done,
    };
    tx.send(r)
        .await
        .map_err(|_| "the coordinator is stopping".to_string())?;
    answer
        .await
        .map_err(|_| "the coordinator is stopping".to_string())??;
    running.tasks = new.tasks.clone();
    running.services = new.services.clone();
    let live: Vec<&'static str> = out
        .restart
        .iter()
        .copied()
        .filter(|s| LIVE.contains(s))
        .collect();
    out.restart.retain(|s| !LIVE.contains(s));
    out.applied.extend(live);
    Ok(())
}

/// Waits for SIGHUP and reloads, until the process stops.
pub async fn on_sighup(
    mut running: Config,
    load: Loader,
    metrics: Arc<Metrics>,
    coordinator: Option<mpsc::Sender<Reconfigure>>,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; reloading needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let outcome = match load() {
            Err(e) => Err(format!(
                "configuration refused; the running configuration stays: {e}"
            )),
            Ok(new) => match apply(&mut running, new.clone()) {
                Err(e) => Err(format!("applying the log filter failed: {e}")),
                Ok(mut r) => {
                    match apply_live(&mut running, &new, &mut r, coordinator.as_ref()).await {
                        Ok(()) => Ok(r),
                        Err(e) => Err(format!("applying rules and services failed: {e}")),
                    }
                }
            },
        };
        let result = match &outcome {
            Err(_) => "refused",
            Ok(r) if r.restart.is_empty() => "ok",
            Ok(_) => "partial",
        };
        // Counted before the line is written: whoever reads the line sees the count.
        let r = crate::metrics::Outcome { result };
        metrics.config_reloads.get_or_create(&r).inc();
        match outcome {
            Err(e) => tracing::error!("SIGHUP: {e}"),
            Ok(r) if r.restart.is_empty() => {
                tracing::info!(applied = ?r.applied, "SIGHUP: configuration reloaded")
            }
            Ok(r) => {
                tracing::warn!(applied = ?r.applied, restart_needed = ?r.restart, "SIGHUP: configuration checked; changed sections take effect at the next start")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_sections_are_named() {
        let a = Config::default();
        let mut b = a.clone();
        assert!(changed(&a, &b).is_empty());
        b.tasks.renotify_ms += 1;
        b.log.level = "debug".into();
        assert_eq!(changed(&a, &b), ["tasks", "log"]);
    }
}
