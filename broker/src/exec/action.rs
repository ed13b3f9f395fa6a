//! Executable extensions answering their actions: a run declared in an `[[exec]]` entry's
//! `actions` starts `<path> action <payload_file> <timeout_seconds>` with the action request
//! (password arguments included, in the private payload file) and sends the program's answer
//! back as `actions/responses` on the link, as the entry's principal. The answer's `result`
//! (an object or an array of objects) or else its `message` text becomes the run's message;
//! a failed run answers `error` without the program's stderr.

use super::{runner, Entry};
use crate::clock::Clock;
use crate::link::{InternalCommand, LocalActions};
use crate::metrics::Metrics;
use extbus_schema::actions::{ActionRequest, ActionSpec};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One entry's actions, answered by running its program.
pub struct ExecActions {
    pub entry: Arc<Entry>,
    pub commands: mpsc::Sender<InternalCommand>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl LocalActions for ExecActions {
    fn owner(&self) -> &str {
        &self.entry.config.name
    }

    fn run(&self, request: ActionRequest, _spec: ActionSpec) {
        let (entry, commands) = (self.entry.clone(), self.commands.clone());
        let (clock, metrics) = (self.clock.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let Some(body) = answer(&entry, &request, clock.as_ref(), &metrics).await else {
                return; // the deadline passed waiting for a slot: the coordinator times it out
            };
            let (reply, rx) = oneshot::channel();
            let cmd = InternalCommand {
                principal: entry.config.principal(),
                suffix: "actions/responses".into(),
                body,
                reply,
            };
            if commands.send(cmd).await.is_err() {
                return;
            }
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(exec = %entry.config.name, run = %request.id, error = %e.message,
                    "action answer not taken");
            }
        });
    }
}

/// Runs the program for `req` once a slot is free, within the run's deadline and the entry's
/// `timeout_ms`; the `actions/responses` body. `None`: no time was left.
async fn answer(e: &Entry, req: &ActionRequest, clock: &dyn Clock, m: &Metrics) -> Option<Value> {
    let payload = serde_json::to_value(req).unwrap_or(Value::Null);
    let outcome = e
        .run_within("action", &payload, req.deadline, clock, m)
        .await?;
    if let Err(f) = &outcome {
        tracing::warn!(exec = %e.config.name, run = %req.id, action = %req.action, reason = %f,
            "executable extension gave no answer");
    }
    Some(response(&e.config.name, &req.id, &outcome))
}

/// The `actions/responses` body a run's outcome stands for.
pub fn response(name: &str, id: &str, outcome: &Result<runner::Answer, runner::Failure>) -> Value {
    let a = match outcome {
        Ok(a) => a,
        Err(runner::Failure::Exit { code, .. }) => {
            let m = format!("executable extension '{name}' exited with status {code}");
            return json!({"id": id, "status": "error", "message": m});
        }
        Err(f) => {
            let m = format!("executable extension '{name}' {f}");
            return json!({"id": id, "status": "error", "message": m});
        }
    };
    let status = if a.success { "success" } else { "error" };
    let table = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_object));
    let message = match &a.result {
        Value::Object(_) => a.result.clone(),
        v if table(v) => v.clone(),
        _ => Value::String(a.message.clone().unwrap_or_default()),
    };
    json!({"id": id, "status": status, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner::{Answer, Failure};

    fn ok(success: bool, message: Option<&str>, result: Value) -> Result<Answer, Failure> {
        Ok(Answer {
            success,
            message: message.map(str::to_string),
            result,
        })
    }

    #[test]
    fn answers_become_action_responses() {
        let r = response("x", "1", &ok(true, Some("done"), Value::Null));
        assert_eq!(
            r,
            json!({"id": "1", "status": "success", "message": "done"})
        );
        let t = json!([{"a": 1}]);
        assert_eq!(response("x", "1", &ok(true, None, t.clone()))["message"], t);
        let o = json!({"a": 1});
        assert_eq!(
            response("x", "1", &ok(false, Some("no"), o.clone()))["message"],
            o
        );
        assert_eq!(
            response("x", "1", &ok(false, None, json!([1])))["message"],
            ""
        );
        let exit = Err(Failure::Exit {
            code: "3".into(),
            stderr: "; stderr: secret".into(),
        });
        let r = response("x", "1", &exit);
        assert_eq!(r["status"], "error");
        assert!(!r["message"].as_str().unwrap().contains("secret"), "{r}");
        let r = response("x", "1", &Err(Failure::Timeout(5)));
        assert!(r["message"].as_str().unwrap().contains("5 ms"), "{r}");
    }
}
