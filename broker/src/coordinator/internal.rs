//! Commands from inside the broker (executable extensions): applied by the coordinator as if the
//! named principal had sent them over MQTT, answered on a oneshot once the batch is durable.
//! Also forwards every `extbus/tasks/blocked/...` announcement of a flushed batch to that side.

use super::ctx::{Ctx, Output};
use super::dispatch;
use super::outbox::Outbox;
use super::{Batch, Coordinator};
use crate::link::InternalCommand;
use extbus_schema::tasks::{Task, TaskQuery, TaskState};
use extbus_schema::{CommandError, ErrorCode};
use tokio::sync::mpsc;

/// Decodes and applies one internal command; its reply waits in the batch for the flush.
pub(crate) fn apply(co: &mut Coordinator, b: &mut Batch, cmd: InternalCommand) {
    let max = co.config.mqtt.max_payload;
    let result = match extbus_schema::decode_value(&cmd.suffix, cmd.body, max) {
        Err(f) => Err(f.error),
        Ok(d) if !d.command.permitted(&cmd.principal.roles) => Err(CommandError::forbidden(
            format!("'{}' may not send '{}'", cmd.principal.name, cmd.suffix),
        )),
        Ok(d) => {
            let ctx = Ctx {
                principal: cmd.principal,
                suffix: cmd.suffix,
                kind: d.command.kind(),
                correlation_id: None,
                correlation_data: None,
                reply_topic: None,
            };
            co.runs.forget_last();
            match dispatch::apply(co, b, &ctx, d) {
                Some(r) => r.map(Output::into_value),
                // An action run: its reply comes with the extension's answer.
                None => match co.runs.bind(cmd.reply) {
                    Ok(()) => return,
                    Err(tx) => {
                        let e = CommandError::new(
                            ErrorCode::UnknownCommand,
                            "this command has no immediate answer",
                        );
                        b.internal.push((tx, Err(e)));
                        return;
                    }
                },
            }
        }
    };
    b.internal.push((cmd.reply, result));
}

/// Forwards the blocked-task announcements of a flushed batch.
pub(crate) fn tap(outbox: &Outbox, to: &mpsc::UnboundedSender<Task>) {
    for p in outbox.iter() {
        if extbus_schema::topics::parse_tasks_blocked(&p.topic).is_some() {
            if let Ok(t) = serde_json::from_slice::<Task>(&p.payload) {
                let _ = to.send(t);
            }
        }
    }
}

/// Hands the tasks already blocked at start to the in-process extensions.
pub(crate) fn announce_waiting(co: &Coordinator, to: &mpsc::UnboundedSender<Task>) {
    let q = TaskQuery {
        state: Some(TaskState::Blocked),
        limit: Some(10_000),
        ..Default::default()
    };
    match co.engine.query(&co.store, &q) {
        Ok(list) => {
            for t in list {
                let _ = to.send(t);
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing blocked tasks for exec extensions failed"),
    }
}

/// Receives the next internal command; a missing or closed link never yields.
pub(crate) async fn recv(rx: &mut Option<mpsc::Receiver<InternalCommand>>) -> InternalCommand {
    if let Some(r) = rx {
        if let Some(c) = r.recv().await {
            return c;
        }
    }
    std::future::pending().await
}
