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

    /// A command reply on `extbus/out/<principal>/replies`, echoing MQTT 5 correlation data.
    pub fn reply(&mut self, principal: &str, reply: &Reply, correlation_data: Option<Bytes>) {
        let payload = serde_json::to_vec(reply).unwrap_or_default();
        let props = PublishProps {
            correlation_data,
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.push(
            extbus_schema::topics::replies(principal),
            Bytes::from(payload),
            props,
        );
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
