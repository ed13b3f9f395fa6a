//! Executable extensions answering callouts: runs an entry's program (action `callout`) when a
//! task blocks on a stage naming it, and feeds the answer to the coordinator as the entry's
//! principal (no MQTT credentials). Success resumes, error aborts, a failed run applies the
//! rule's default action with the reason in the history.

use super::{runner, Entries, Entry};
use crate::link::InternalCommand;
use crate::metrics::Metrics;
use extbus_schema::tasks::{DefaultAction, Task, TaskState};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Runs an entry's program for every blocked task whose current stage names it, at most once
/// per (task, stage) at a time; renotifies of a task being worked on are ignored. The entries
/// are looked up for each task: a reload's new entries answer, removed ones no longer do.
pub(super) async fn adapter(
    entries: Arc<Entries>,
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
        for e in entries
            .all()
            .into_iter()
            .filter(|e| names.contains(&e.config.name))
        {
            let key = (t.id.clone(), t.stage, e.config.name.clone());
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
    name: &str,
    t: &Task,
    outcome: &Result<runner::Answer, runner::Failure>,
) -> (String, Value) {
    let (action, body) = match outcome {
        Ok(a) if a.success => ("resume", json!({"message": a.message, "result": a.result})),
        Ok(a) => (
            "abort",
            json!({"message": a.message.clone().unwrap_or_else(|| format!("{name} answered error"))}),
        ),
        Err(f) => {
            let action = match t.default_action {
                DefaultAction::Resume => "resume",
                DefaultAction::Cancel => "cancel",
                DefaultAction::Abort => "abort",
            };
            let msg = format!("exec extension '{name}' {f}; default action {action} applied");
            (action, json!({"message": msg}))
        }
    };
    (format!("tasks/{}/{action}", t.id), body)
}

async fn answer(e: &Entry, t: &Task, tx: &mpsc::Sender<InternalCommand>, metrics: &Metrics) {
    let name = e.config.name.as_str();
    let Some(_slot) = e.slot().await else {
        return;
    };
    let payload = t.announcement();
    let timeout = Duration::from_millis(e.config.timeout_ms);
    let outcome = runner::run(&e.config.path, "callout", &payload, timeout).await;
    e.count(metrics, "callout", runner::label(&outcome));
    if let Err(f) = &outcome {
        tracing::warn!(exec = %name, task_id = %t.id, reason = %f, "executable extension gave no answer");
    }
    let (suffix, body) = resolution(name, t, &outcome);
    let (reply_tx, reply_rx) = oneshot::channel();
    let cmd = InternalCommand {
        principal: e.config.principal(),
        suffix: suffix.clone(),
        body,
        reply: reply_tx,
    };
    if tx.send(cmd).await.is_err() {
        return;
    }
    match reply_rx.await {
        Ok(Ok(_)) => tracing::debug!(exec = %name, task_id = %t.id, command = %suffix, "applied"),
        Ok(Err(err)) => {
            tracing::info!(exec = %name, task_id = %t.id, command = %suffix, code = err.code.as_str(), error = %err.message, "not applied")
        }
        Err(_) => {
            tracing::warn!(exec = %name, task_id = %t.id, "resolution not stored; will retry on the next notice")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_apply_the_default_action_with_the_reason() {
        let t: Task = serde_json::from_value(json!({
            "id": "t1", "request_id": "r", "operation": "vm.create", "org": "acme", "state": "blocked",
            "stage": 0, "stages": [["quota"]], "created_at": "2026-11-22T10:00:00.000Z",
            "default_action": "cancel", "submitted_by": "p", "stage_started_at": "2026-11-22T10:00:00.000Z"
        }))
        .unwrap();
        let (s, b) = resolution("quota", &t, &Err(runner::Failure::Timeout(1000)));
        assert_eq!(s, "tasks/t1/cancel");
        assert!(b["message"].as_str().unwrap().contains("killed"));
        let ok = runner::Answer {
            success: true,
            message: None,
            result: json!({"a": 1}),
        };
        assert_eq!(resolution("quota", &t, &Ok(ok)).0, "tasks/t1/resume");
    }
}
