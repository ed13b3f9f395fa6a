//! Executable extensions (in the style of Apache CloudStack's extension framework): programs
//! the broker runs itself for the callout stages they are named in. `[[exec]]` config entries;
//! the adapter that runs an entry's program when a task blocks on it and feeds the answer to the
//! coordinator as that entry's principal (no MQTT credentials); readiness reporting.
//! Files: `runner` (one run), `readiness` (exists and executable).

pub mod readiness;
pub mod runner;

use crate::config::ConfigError;
use crate::coordinator::internal::{InternalCommand, Link};
use crate::metrics::Metrics;
use crate::principals::Principal;
use extbus_schema::register::ServiceSpec;
use extbus_schema::tasks::{DefaultAction, RuleSpec, Task, TaskState};
use extbus_schema::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_check_interval_ms() -> u64 {
    30_000
}

/// One `[[exec]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The principal name its stages and history use (`[a-z0-9-]`).
    pub name: String,
    /// The program, run as `<path> <action> <payload_file> <timeout_seconds>`.
    pub path: PathBuf,
    /// Callout rules it answers; `extension` is always `name`.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Extension services (action `service`). Reserved: the services gateway does not route
    /// requests to executables yet, so a non-empty list is refused.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// How long one run may take before it is killed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often readiness (exists, executable) is checked.
    #[serde(default = "default_check_interval_ms")]
    pub check_interval_ms: u64,
}

impl ExecConfig {
    pub fn new(name: &str, path: &Path) -> ExecConfig {
        ExecConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            rules: Vec::new(),
            services: Vec::new(),
            timeout_ms: default_timeout_ms(),
            check_interval_ms: default_check_interval_ms(),
        }
    }

    /// Its rules with `extension` set to its name.
    pub fn bound_rules(&self) -> Vec<RuleSpec> {
        self.rules
            .iter()
            .cloned()
            .map(|mut r| {
                r.extension = Some(self.name.clone());
                r
            })
            .collect()
    }

    /// The principal it acts as: role extension, all orgs.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            roles: vec![Role::Extension],
            orgs: vec!["*".into()],
        }
    }
}

fn invalid(field: String, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        why: why.into(),
    }
}

/// Checks the `[[exec]]` entries; a bad value names its field (`exec[0].timeout_ms`).
pub fn validate(entries: &[ExecConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let f = |k: &str| format!("exec[{i}].{k}");
        if !crate::principals::valid_name(&e.name) {
            return Err(invalid(
                f("name"),
                format!("'{}' is not [a-z0-9-]{{1,64}}", e.name),
            ));
        }
        if !names.insert(e.name.as_str()) {
            return Err(invalid(
                f("name"),
                format!("'{}' is configured twice", e.name),
            ));
        }
        if e.path.as_os_str().is_empty() {
            return Err(invalid(f("path"), "name the program to run"));
        }
        if !e.services.is_empty() {
            return Err(invalid(
                f("services"),
                "services of executable extensions are not served yet; leave it out",
            ));
        }
        if e.timeout_ms == 0 || e.timeout_ms > 3_600_000 {
            return Err(invalid(f("timeout_ms"), "must be between 1 and 3600000"));
        }
        if e.check_interval_ms < 100 {
            return Err(invalid(f("check_interval_ms"), "must be at least 100"));
        }
        for (j, r) in e.rules.iter().enumerate() {
            let rf = |k: &str| format!("exec[{i}].rules[{j}].{k}");
            if extbus_schema::names::split_operation(&r.operation).is_none() {
                return Err(invalid(
                    rf("operation"),
                    format!("'{}' is not <entity>.<operation>", r.operation),
                ));
            }
            if r.extension.as_deref().is_some_and(|x| x != e.name) {
                return Err(invalid(
                    rf("extension"),
                    "an exec rule is always answered by its own entry; leave it out",
                ));
            }
            if r.timeout_ms == 0 || r.timeout_ms > r.max_timeout_ms {
                return Err(invalid(
                    rf("timeout_ms"),
                    "must be at least 1 and at most max_timeout_ms",
                ));
            }
        }
    }
    Ok(())
}

/// Every entry's rules, bound to their entries, for the callouts engine.
pub fn rules(entries: &[ExecConfig]) -> Vec<RuleSpec> {
    entries.iter().flat_map(ExecConfig::bound_rules).collect()
}

/// Starts the adapter and readiness checks; `None` when no entry is configured.
pub fn start(
    entries: Vec<ExecConfig>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Option<Link> {
    if entries.is_empty() {
        return None;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (blocked_tx, blocked_rx) = mpsc::unbounded_channel();
    tokio::spawn(readiness::watch(
        entries.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tokio::spawn(adapter(entries, cmd_tx, blocked_rx, metrics, stop));
    Some(Link {
        commands: cmd_rx,
        blocked: blocked_tx,
    })
}

/// Runs an entry's program for every blocked task whose current stage names it, at most once
/// per (task, stage) at a time; renotifies of a task being worked on are ignored.
async fn adapter(
    entries: Vec<ExecConfig>,
    to_coordinator: mpsc::Sender<InternalCommand>,
    mut blocked: mpsc::UnboundedReceiver<Task>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let busy: Arc<Mutex<HashSet<(String, usize, String)>>> = Arc::default();
    loop {
        let t = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            t = blocked.recv() => match t { Some(t) => t, None => return },
        };
        if t.state != TaskState::Blocked {
            continue;
        }
        let Some(names) = t.stages.get(t.stage) else {
            continue;
        };
        for e in entries.iter().filter(|e| names.contains(&e.name)) {
            let key = (t.id.clone(), t.stage, e.name.clone());
            if !busy
                .lock()
                .map(|mut b| b.insert(key.clone()))
                .unwrap_or(false)
            {
                continue;
            }
            let (e, t, tx, m, busy) = (
                e.clone(),
                t.clone(),
                to_coordinator.clone(),
                metrics.clone(),
                busy.clone(),
            );
            tokio::spawn(async move {
                answer(&e, &t, &tx, &m).await;
                if let Ok(mut b) = busy.lock() {
                    b.remove(&key);
                }
            });
        }
    }
}

/// The command (suffix, body) a run's outcome stands for.
pub fn resolution(
    e: &ExecConfig,
    t: &Task,
    outcome: &Result<runner::Answer, runner::Failure>,
) -> (String, Value) {
    let (action, body) = match outcome {
        Ok(a) if a.success => ("resume", json!({"message": a.message, "result": a.result})),
        Ok(a) => (
            "abort",
            json!({"message": a.message.clone().unwrap_or_else(|| format!("{} answered error", e.name))}),
        ),
        Err(f) => {
            let action = match t.default_action {
                DefaultAction::Resume => "resume",
                DefaultAction::Cancel => "cancel",
                DefaultAction::Abort => "abort",
            };
            let msg = format!(
                "exec extension '{}' {f}; default action {action} applied",
                e.name
            );
            (action, json!({"message": msg}))
        }
    };
    (format!("tasks/{}/{action}", t.id), body)
}

fn outcome_label(o: &Result<runner::Answer, runner::Failure>) -> &'static str {
    match o {
        Ok(a) if a.success => "success",
        Ok(_) => "error",
        Err(runner::Failure::Timeout(_)) => "timeout",
        Err(runner::Failure::Exit { .. }) => "exit",
        Err(runner::Failure::Garbage(_)) => "garbage",
        Err(_) => "failed",
    }
}

async fn answer(e: &ExecConfig, t: &Task, tx: &mpsc::Sender<InternalCommand>, metrics: &Metrics) {
    let payload = t.announcement();
    let timeout = Duration::from_millis(e.timeout_ms);
    let outcome = runner::run(&e.path, "callout", &payload, timeout).await;
    let label = outcome_label(&outcome);
    metrics.inc(
        "extbus_exec_runs_total",
        &[("name", e.name.as_str()), ("outcome", label)],
    );
    if let Err(f) = &outcome {
        tracing::warn!(exec = %e.name, task_id = %t.id, reason = %f, "executable extension gave no answer");
    }
    let (suffix, body) = resolution(e, t, &outcome);
    let (reply_tx, reply_rx) = oneshot::channel();
    let cmd = InternalCommand {
        principal: e.principal(),
        suffix: suffix.clone(),
        body,
        reply: reply_tx,
    };
    if tx.send(cmd).await.is_err() {
        return;
    }
    match reply_rx.await {
        Ok(Ok(_)) => tracing::debug!(exec = %e.name, task_id = %t.id, command = %suffix, "applied"),
        Ok(Err(err)) => {
            tracing::info!(exec = %e.name, task_id = %t.id, command = %suffix, code = err.code.as_str(), error = %err.message, "not applied")
        }
        Err(_) => {
            tracing::warn!(exec = %e.name, task_id = %t.id, "resolution not stored; will retry on the next notice")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(op: &str) -> RuleSpec {
        serde_json::from_value(json!({"operation": op})).unwrap()
    }

    #[test]
    fn entries_are_checked_and_their_rules_bound_to_them() {
        let mut e = ExecConfig::new("quota", Path::new("/bin/true"));
        e.rules = vec![rule("vm.create")];
        assert!(validate(std::slice::from_ref(&e)).is_ok());
        assert_eq!(
            rules(std::slice::from_ref(&e))[0].extension.as_deref(),
            Some("quota")
        );
        let field = |es: &[ExecConfig]| match validate(es) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&[e.clone(), e.clone()]), "exec[1].name");
        let mut bad = e.clone();
        bad.rules[0].extension = Some("other".into());
        assert_eq!(field(&[bad]), "exec[0].rules[0].extension");
        let mut bad = e.clone();
        bad.rules = vec![rule("nodot")];
        assert_eq!(field(&[bad]), "exec[0].rules[0].operation");
        let mut bad = e.clone();
        bad.timeout_ms = 0;
        assert_eq!(field(&[bad]), "exec[0].timeout_ms");
        let mut bad = e.clone();
        bad.name = "Bad".into();
        assert_eq!(field(&[bad]), "exec[0].name");
    }

    #[test]
    fn failures_apply_the_default_action_with_the_reason() {
        let e = ExecConfig::new("quota", Path::new("/x"));
        let t: Task = serde_json::from_value(json!({
            "id": "t1", "request_id": "r", "operation": "vm.create", "org": "acme", "state": "blocked",
            "stage": 0, "stages": [["quota"]], "created_at": "2026-11-22T10:00:00.000Z",
            "default_action": "cancel", "submitted_by": "p", "stage_started_at": "2026-11-22T10:00:00.000Z"
        }))
        .unwrap();
        let (s, b) = resolution(&e, &t, &Err(runner::Failure::Timeout(1000)));
        assert_eq!(s, "tasks/t1/cancel");
        assert!(b["message"].as_str().unwrap().contains("killed"));
        let ok = runner::Answer {
            success: true,
            message: None,
            result: json!({"a": 1}),
        };
        assert_eq!(resolution(&e, &t, &Ok(ok)).0, "tasks/t1/resume");
    }
}
