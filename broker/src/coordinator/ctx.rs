//! What a command family works with: the decoded command's sender and reply address (`Ctx`),
//! and a successful result (`Output`); `Ctx::reply` sends the one reply every command gets.

use super::Batch;
use crate::principals::Principal;
use bytes::Bytes;
use extbus_schema::reply::Reply;
use extbus_schema::tasks::Task;
use extbus_schema::CommandError;
use serde_json::Value;

/// A command's successful result: a JSON value, a task, which the reply writes straight to
/// JSON (the same bytes as its `Value` form; see `Task::to_json`), or a result already
/// written as compact JSON (what hot paths answer, with no `Value` built to write it).
pub(crate) enum Output {
    Value(Value),
    Task(Box<Task>),
    Json(Vec<u8>),
}

impl Output {
    pub fn task(t: Task) -> Output {
        Output::Task(Box::new(t))
    }

    /// The result as a `Value` (for in-process callers).
    pub fn into_value(self) -> Value {
        match self {
            Output::Value(v) => v,
            Output::Task(t) => serde_json::to_value(&*t).unwrap_or(Value::Null),
            Output::Json(j) => serde_json::from_slice(&j).unwrap_or(Value::Null),
        }
    }
}

/// A decoded command with its sender, ready for a family to apply.
pub(crate) struct Ctx {
    pub principal: Principal,
    pub suffix: String,
    /// The command's metrics label (`Command::kind`), known once the suffix is decoded.
    pub kind: &'static str,
    pub correlation_id: Option<Value>,
    pub correlation_data: Option<Bytes>,
    /// An MQTT 5 Response Topic the sender chose in its own outbox; else its `replies`.
    pub reply_topic: Option<String>,
}

impl Ctx {
    pub fn reply(
        &self,
        b: &mut Batch,
        result: Result<Output, CommandError>,
        metrics: &crate::metrics::Metrics,
    ) {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        metrics.command_replied(self.kind, outcome);
        let reply = match result {
            Ok(Output::Task(t)) => return self.reply_json(b, &t.to_json()),
            Ok(Output::Json(j)) => return self.reply_json(b, &j),
            Ok(Output::Value(v)) => Reply::ok(&self.suffix, self.correlation_id.clone(), v),
            Err(e) => Reply::err(&self.suffix, self.correlation_id.clone(), e),
        };
        b.outbox
            .reply(self.reply_topic(), &reply, self.correlation_data.clone());
    }

    /// A success reply whose result is already JSON.
    fn reply_json(&self, b: &mut Batch, result: &[u8]) {
        b.outbox.reply_ok_json(
            self.reply_topic(),
            &self.suffix,
            self.correlation_id.as_ref(),
            result,
            self.correlation_data.clone(),
        );
    }

    /// Where this command's reply goes.
    pub fn reply_topic(&self) -> String {
        self.reply_topic
            .clone()
            .unwrap_or_else(|| extbus_schema::topics::replies(&self.principal.name))
    }
}

/// Checks an MQTT 5 Response Topic: a reply may go anywhere under the sender's own outbox
/// (`extbus/out/<P>/...`), which only it can read, and nowhere else.
pub(crate) fn response_topic(principal: &str, topic: &str) -> Result<(), CommandError> {
    let filter = extbus_schema::topics::outbox_filter(principal);
    let prefix = filter.strip_suffix('#').unwrap_or(&filter);
    let rest = topic.strip_prefix(prefix).unwrap_or("");
    if rest.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(CommandError::forbidden(format!(
            "response topic '{}' is not a topic under {prefix}: replies go only to the sender's own outbox",
            topic.chars().take(128).collect::<String>()
        )));
    }
    Ok(())
}
