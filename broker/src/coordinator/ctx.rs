//! What a command family works with: the decoded command's sender and reply address (`Ctx`),
//! and a successful result (`Output`); `Ctx::reply` sends the one reply every command gets.

use super::Batch;
use crate::principals::Principal;
use bytes::Bytes;
use extbus_schema::reply::Reply;
use extbus_schema::tasks::Task;
use extbus_schema::CommandError;
use serde_json::Value;

/// A command's successful result: a JSON value, or a task, which the reply writes straight to
/// JSON (the same bytes as its `Value` form; see `Task::to_json`).
pub(crate) enum Output {
    Value(Value),
    Task(Box<Task>),
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
            Ok(Output::Task(t)) => {
                b.outbox.reply_ok_json(
                    &self.principal.name,
                    &self.suffix,
                    self.correlation_id.as_ref(),
                    &t.to_json(),
                    self.correlation_data.clone(),
                );
                return;
            }
            Ok(Output::Value(v)) => Reply::ok(&self.suffix, self.correlation_id.clone(), v),
            Err(e) => Reply::err(&self.suffix, self.correlation_id.clone(), e),
        };
        b.outbox
            .reply(&self.principal.name, &reply, self.correlation_data.clone());
    }
}
