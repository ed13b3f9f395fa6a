//! Action runs waiting for their extension's answer, by run id: who gets the reply (an MQTT
//! reply topic or an in-process caller's oneshot), the deadline the coordinator's timer checks,
//! and the secrets (password arguments) every text leaving the broker is scrubbed of.

use super::ctx::{Ctx, Output};
use super::Batch;
use crate::link::InternalReply;
use crate::principals::Principal;
use bytes::Bytes;
use extbus_schema::actions::{ActionSpec, REDACTED};
use extbus_schema::CommandError;
use serde_json::Value;
use std::collections::HashMap;

/// Where a run's reply goes.
pub(crate) enum ReplyTo {
    /// An MQTT command: its reply topic and correlation.
    Bus {
        suffix: String,
        kind: &'static str,
        correlation_id: Option<Value>,
        correlation_data: Option<Bytes>,
        reply_topic: Option<String>,
    },
    /// An in-process command (HTTP API, exec).
    Internal(InternalReply),
}

/// One run waiting for its answer.
pub(crate) struct Run {
    pub extension: String,
    pub spec: ActionSpec,
    pub invoker: Principal,
    pub resource_id: Option<String>,
    /// The arguments with password values redacted (for events and templates).
    pub redacted: Value,
    /// The password values themselves, scrubbed from anything shown.
    pub secrets: Vec<String>,
    pub deadline: u64,
    pub reply: ReplyTo,
}

impl Run {
    /// `<extension>/<name>`.
    pub fn action(&self) -> String {
        format!("{}/{}", self.extension, self.spec.name)
    }

    /// Sends the run's one reply.
    pub fn answer(
        self,
        b: &mut Batch,
        result: Result<Value, CommandError>,
        metrics: &crate::metrics::Metrics,
    ) {
        match self.reply {
            ReplyTo::Bus {
                suffix,
                kind,
                correlation_id,
                correlation_data,
                reply_topic,
            } => {
                let ctx = Ctx {
                    principal: self.invoker,
                    suffix,
                    kind,
                    correlation_id,
                    correlation_data,
                    reply_topic,
                };
                ctx.reply(b, result.map(Output::Value), metrics);
            }
            ReplyTo::Internal(tx) => b.internal.push((tx, result)),
        }
    }
}

/// Runs waiting now.
#[derive(Default)]
pub(crate) struct Runs {
    waiting: HashMap<String, Run>,
    /// The run the last `invoke` opened, until `bind` takes it or `forget_last` drops it.
    last: Option<String>,
}

impl Runs {
    pub fn open(&mut self, id: String, run: Run) {
        self.last = Some(id.clone());
        self.waiting.insert(id, run);
    }

    /// Called before an in-process command is applied: no run is "just opened".
    pub fn forget_last(&mut self) {
        self.last = None;
    }

    /// Gives the run just opened by an in-process command its reply channel; `Err` hands the
    /// channel back when the command opened no run.
    pub fn bind(&mut self, tx: InternalReply) -> Result<(), InternalReply> {
        let run = self.last.take().and_then(|id| self.waiting.get_mut(&id));
        match run {
            Some(r) => {
                r.reply = ReplyTo::Internal(tx);
                Ok(())
            }
            None => Err(tx),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Run> {
        self.waiting.get(id)
    }

    pub fn take(&mut self, id: &str) -> Option<Run> {
        self.waiting.remove(id)
    }

    /// Runs whose deadline is at or before `now`, removed.
    pub fn due(&mut self, now: u64) -> Vec<(String, Run)> {
        let ids: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.waiting.remove(&id).map(|r| (id, r)))
            .collect()
    }

    /// The earliest deadline of a waiting run.
    pub fn wakeup(&self) -> Option<u64> {
        self.waiting.values().map(|r| r.deadline).min()
    }
}

/// The password values among `arguments` (non-empty strings only; others cannot leak as text).
pub(crate) fn secrets(spec: &ActionSpec, arguments: &Value) -> Vec<String> {
    spec.password_paths()
        .iter()
        .filter_map(|p| arguments.pointer(p))
        .filter_map(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .collect()
}

/// `v` with every occurrence of a secret inside its strings (and keys) replaced by `REDACTED`,
/// so an extension echoing a password does not leak it into replies or events.
pub(crate) fn scrub(v: Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return v;
    }
    let text = |s: String| {
        secrets
            .iter()
            .fold(s, |s, secret| s.replace(secret.as_str(), REDACTED))
    };
    match v {
        Value::String(s) => Value::String(text(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| scrub(x, secrets)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| (text(k), scrub(x, secrets)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_found_and_scrubbed() {
        let spec: ActionSpec = serde_json::from_value(json!({"name": "a", "parameters": {
            "properties": {"pw": {"type": "string", "format": "password"}, "n": {}}}}))
        .unwrap();
        let s = secrets(&spec, &json!({"pw": "s3cret", "n": "s3cret"}));
        assert_eq!(s, ["s3cret"]);
        let m = json!([{"said s3cret": "pw=s3cret!"}, "x"]);
        assert_eq!(
            scrub(m, &s),
            json!([{"said ********": "pw=********!"}, "x"])
        );
    }
}
