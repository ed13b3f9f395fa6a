//! SIGHUP: the configuration is read again through the same validation as at start. A file
//! that fails is refused with the field's name and the running configuration stays; a good
//! one applies `log.level` at once and names every other changed section, which takes effect
//! at the next start. Each outcome is logged and counted.

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use std::sync::Arc;

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

/// Waits for SIGHUP and reloads, until the process stops.
pub async fn on_sighup(mut running: Config, load: Loader, metrics: Arc<Metrics>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; reloading needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let outcome = load()
            .map_err(|e| format!("configuration refused; the running configuration stays: {e}"))
            .and_then(|new| {
                apply(&mut running, new).map_err(|e| format!("applying the log filter failed: {e}"))
            });
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
