//! SIGHUP: the configuration is read again through the same validation as at start. A file
//! that fails is refused with the field's name and the running configuration stays; a good
//! one applies `log.level`, `tasks`, `services` and `exec` (callout rules, renotify, retention,
//! batch size, declared services, executable extensions) through the coordinator, and the
//! run-time limits of `LIVE_LIMITS` (connection caps and timeouts, login throttle, subscription
//! caps), at once; every other changed field (listeners, TLS files, payload limit, ...) is
//! named and takes effect at the next start. Each outcome is logged (for `exec`, each entry
//! added, removed or changed) and counted.

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
    /// Sections (or fields) applied while running.
    pub applied: Vec<String>,
    /// Sections (or fields) that changed and wait for a restart.
    pub restart: Vec<String>,
}

/// Fields of `[mqtt]`, `[http]` and `[auth]` that a reload applies while running, to what
/// comes next (connections already open keep their timeouts; filters already held stay).
/// Their other fields — listener addresses, TLS files, backlogs, `mqtt.max_payload` (the
/// embedded broker's own packet limit is fixed at start), auth workers and queue, SSE
/// settings — wait for a restart.
pub const LIVE_LIMITS: [&str; 12] = [
    "mqtt.subscriptions",
    "mqtt.connect_timeout_ms",
    "http.header_read_timeout_ms",
    "http.idle_timeout_ms",
    "http.max_connections",
    "http.max_connections_per_address",
    "http.shutdown_grace_ms",
    "auth.free_failures",
    "auth.penalty_base_ms",
    "auth.penalty_max_ms",
    "auth.forget_after_ms",
    "auth.max_tracked",
];

/// Sections named field by field: some of their fields apply live, the rest (all of
/// `entities` and `metadata`) wait for the next start.
const SPLIT: [&str; 5] = ["mqtt", "http", "auth", "entities", "metadata"];

/// `section.field` for each field of `section` that differs between `old` and `new`.
fn changed_fields(old: &Config, new: &Config, section: &str) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let (a, b) = (&a[section], &b[section]);
    let mut keys: Vec<&String> = a.as_object().into_iter().flat_map(|o| o.keys()).collect();
    keys.extend(b.as_object().into_iter().flat_map(|o| o.keys()));
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
        .map(|k| format!("{section}.{k}"))
        .collect()
}

/// What a reload hands to the running parts: the coordinator's share (rules, services) and
/// the limits', each answered once applied.
pub struct Reloads {
    pub coordinator: mpsc::Receiver<Reconfigure>,
    pub limits: mpsc::Receiver<Reconfigure>,
}

/// The senders `on_sighup` uses, and the `Reloads` for `server::run_reloadable`.
pub fn channels() -> (Appliers, Reloads) {
    let (c_tx, c_rx) = mpsc::channel(1);
    let (l_tx, l_rx) = mpsc::channel(1);
    (
        Appliers {
            coordinator: c_tx,
            limits: l_tx,
        },
        Reloads {
            coordinator: c_rx,
            limits: l_rx,
        },
    )
}

pub struct Appliers {
    pub coordinator: mpsc::Sender<Reconfigure>,
    pub limits: mpsc::Sender<Reconfigure>,
}

/// Top-level sections that changed between `old` and `new`.
pub fn changed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    const SECTIONS: [&str; 13] = [
        "data_dir", "dev", "bus", "mqtt", "http", "tasks", "events", "services", "log", "auth",
        "exec", "entities", "metadata",
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
            out.applied.push("log.level".into());
        } else if SPLIT.contains(&section) {
            // Live fields move to `applied` once the running parts have them (`apply_live`).
            out.restart.extend(changed_fields(running, &new, section));
        } else {
            out.restart.push(section.into());
        }
    }
    Ok(out)
}

/// Sections the coordinator applies while running.
const LIVE: [&str; 3] = ["tasks", "services", "exec"];

/// Sends `new` to `tx` and waits until it is applied.
async fn hand_over(tx: &mpsc::Sender<Reconfigure>, new: &Config) -> Result<(), String> {
    let (done, answer) = oneshot::channel();
    let r = Reconfigure {
        config: Box::new(new.clone()),
        done,
    };
    let stopping = "the broker is stopping".to_string();
    tx.send(r).await.map_err(|_| stopping.clone())?;
    answer.await.map_err(|_| stopping)?
}

/// Moves the entries of `out.restart` that `live` accepts to `out.applied`.
fn mark_applied(out: &mut Reloaded, live: impl Fn(&str) -> bool) {
    let (now, later): (Vec<String>, Vec<String>) = out.restart.drain(..).partition(|s| live(s));
    out.restart = later;
    out.applied.extend(now);
}

/// Hands the `tasks`, `services` and `exec` sections of `new` to the coordinator and the live
/// limits to the parts that hold them, if they changed and the broker takes reloads; moves
/// them from `restart` to `applied` once applied (`exec` as one `exec added|removed|changed
/// NAME` per entry).
pub async fn apply_live(
    running: &mut Config,
    new: &Config,
    out: &mut Reloaded,
    appliers: Option<&Appliers>,
) -> Result<(), String> {
    let Some(to) = appliers else {
        return Ok(());
    };
    if out.restart.iter().any(|s| LIVE.contains(&s.as_str())) {
        hand_over(&to.coordinator, new).await?;
        let exec = crate::exec::changes(&running.exec, &new.exec);
        running.tasks = new.tasks.clone();
        running.services = new.services.clone();
        running.exec = new.exec.clone();
        mark_applied(out, |s| LIVE.contains(&s));
        name_exec_changes(out, &exec);
    }
    if out.restart.iter().any(|s| is_live_limit(s)) {
        hand_over(&to.limits, new).await?;
        running.mqtt.subscriptions = new.mqtt.subscriptions;
        running.mqtt.connect_timeout_ms = new.mqtt.connect_timeout_ms;
        let h = &new.http;
        running.http.header_read_timeout_ms = h.header_read_timeout_ms;
        running.http.idle_timeout_ms = h.idle_timeout_ms;
        running.http.max_connections = h.max_connections;
        running.http.max_connections_per_address = h.max_connections_per_address;
        running.http.shutdown_grace_ms = h.shutdown_grace_ms;
        let a = &new.auth;
        running.auth.free_failures = a.free_failures;
        running.auth.penalty_base_ms = a.penalty_base_ms;
        running.auth.penalty_max_ms = a.penalty_max_ms;
        running.auth.forget_after_ms = a.forget_after_ms;
        running.auth.max_tracked = a.max_tracked;
        mark_applied(out, is_live_limit);
    }
    Ok(())
}

/// Puts what changed in `[[exec]]` in the place of `exec` among the applied sections.
fn name_exec_changes(out: &mut Reloaded, exec: &crate::exec::Changes) {
    if let Some(i) = out.applied.iter().position(|s| s == "exec") {
        out.applied.splice(i..=i, exec.lines());
    }
}

/// `mqtt.subscriptions` covers its own fields.
fn is_live_limit(field: &str) -> bool {
    LIVE_LIMITS.contains(&field)
}

/// Waits for SIGHUP and reloads, until the process stops.
pub async fn on_sighup(
    mut running: Config,
    load: Loader,
    metrics: Arc<Metrics>,
    appliers: Option<Appliers>,
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
                    match apply_live(&mut running, &new, &mut r, appliers.as_ref()).await {
                        Ok(()) => Ok(r),
                        Err(e) => Err(format!("applying the new configuration failed: {e}")),
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
                tracing::warn!(applied = ?r.applied, restart_needed = ?r.restart, "SIGHUP: configuration checked; changed sections take effect at the next start (listener addresses, TLS files and the payload limit are read at start only)")
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

    #[test]
    fn entity_and_metadata_settings_are_named_for_the_next_start() {
        let mut running = Config::default();
        let mut new = running.clone();
        new.metadata.max_entries += 1;
        new.entities.hook_timeout_ms += 1;
        let r = apply(&mut running, new).unwrap();
        assert!(r.applied.is_empty());
        assert_eq!(
            r.restart,
            ["entities.hook_timeout_ms", "metadata.max_entries"]
        );
        assert_eq!(
            running.metadata.max_entries, 50,
            "nothing changed while running"
        );
    }

    #[test]
    fn limits_are_told_apart_from_listeners() {
        let mut running = Config::default();
        let mut new = running.clone();
        new.http.max_connections += 1;
        new.http.listen = "127.0.0.1:1".parse().unwrap();
        new.mqtt.subscriptions.max_per_connection += 1;
        new.auth.free_failures += 1;
        let r = apply(&mut running, new).unwrap();
        assert!(r.applied.is_empty());
        assert_eq!(
            r.restart,
            [
                "mqtt.subscriptions",
                "http.listen",
                "http.max_connections",
                "auth.free_failures"
            ]
        );
        let mut r = r;
        mark_applied(&mut r, is_live_limit);
        assert_eq!(r.restart, ["http.listen"]);
        assert_eq!(r.applied.len(), 3);
    }

    #[test]
    fn exec_is_applied_entry_by_entry() {
        let running = Config {
            exec: vec![crate::exec::ExecConfig::new("a", "/bin/a".as_ref())],
            ..Config::default()
        };
        let mut new = running.clone();
        new.exec[0].timeout_ms += 1;
        new.exec
            .push(crate::exec::ExecConfig::new("b", "/bin/b".as_ref()));
        let mut r = apply(&mut running.clone(), new.clone()).unwrap();
        assert_eq!(r.restart, ["exec"]);
        mark_applied(&mut r, |s| LIVE.contains(&s));
        name_exec_changes(&mut r, &crate::exec::changes(&running.exec, &new.exec));
        assert_eq!(r.applied, ["exec added b", "exec changed a"]);
        assert!(r.restart.is_empty());
    }
}
