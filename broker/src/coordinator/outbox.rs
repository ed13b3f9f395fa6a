//! What a batch of commands wants said on the bus once the batch is durable: replies, task
//! notices, outcomes, events. Collected while applying, published only after the flush.

use crate::mqtt::{BusTx, PublishProps};
use bytes::Bytes;
use extbus_schema::reply::Reply;
use serde_json::Value;

/// One pending publish.
pub struct Pending {
    pub topic: String,
    pub payload: Bytes,
    pub props: PublishProps,
}

#[derive(Default)]
pub struct Outbox {
    pending: Vec<Pending>,
}

impl Outbox {
    pub fn push(&mut self, topic: String, payload: Bytes, props: PublishProps) {
        self.pending.push(Pending {
            topic,
            payload,
            props,
        });
    }

    pub fn json(&mut self, topic: String, value: &Value) {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        self.push(topic, Bytes::from(payload), PublishProps::default());
    }

    /// A command reply on `topic` (the sender's `replies`, or the MQTT 5 Response Topic it
    /// chose in its outbox), echoing MQTT 5 correlation data.
    pub fn reply(&mut self, topic: String, reply: &Reply, correlation_data: Option<Bytes>) {
        let payload = serde_json::to_vec(reply).unwrap_or_default();
        let props = PublishProps {
            correlation_data,
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.push(topic, Bytes::from(payload), props);
    }

    /// A successful reply whose result is already JSON (`result_json`): the same bytes as
    /// `reply` with `Reply::ok` gives for that result as a `Value`, without building one.
    pub fn reply_ok_json(
        &mut self,
        topic: String,
        command: &str,
        correlation_id: Option<&Value>,
        result_json: &[u8],
        correlation_data: Option<Bytes>,
    ) {
        let payload = ok_reply_json(command, correlation_id, result_json);
        let props = PublishProps {
            correlation_data,
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.push(topic, Bytes::from(payload), props);
    }

    /// The pending publishes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.pending.iter()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Publishes everything in order; a closed bus is logged, not fatal (the store has it).
    pub fn send(self, bus: &mut BusTx) {
        for p in self.pending {
            if let Err(e) = bus.publish(&p.topic, p.payload, p.props) {
                tracing::warn!(topic = %p.topic, error = %e, "bus publish failed");
            }
        }
    }
}

/// `Reply::ok` as JSON, in its field order (`correlation_id` only when there is one).
fn ok_reply_json(command: &str, correlation_id: Option<&Value>, result_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result_json.len() + command.len() + 64);
    out.push(b'{');
    if let Some(c) = correlation_id {
        out.extend_from_slice(b"\"correlation_id\":");
        let _ = serde_json::to_writer(&mut out, c);
        out.push(b',');
    }
    out.extend_from_slice(b"\"command\":");
    let _ = serde_json::to_writer(&mut out, command);
    out.extend_from_slice(b",\"ok\":true,\"result\":");
    out.extend_from_slice(result_json);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ok_reply_json_matches_the_reply_type() {
        let result = json!({"b": [1, "x\"y"], "a": null});
        let raw = serde_json::to_vec(&result).unwrap();
        for corr in [None, Some(json!("c-\"1\"")), Some(json!(42))] {
            let want = serde_json::to_vec(&Reply::ok(
                "tasks/0193/resume",
                corr.clone(),
                result.clone(),
            ))
            .unwrap();
            let got = ok_reply_json("tasks/0193/resume", corr.as_ref(), &raw);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }
}
