//! The coordinator's side of the bus: an in-process rumqttd link wrapped in plain types.
//! `BusTx` publishes (QoS 0: rumqttd delivers at each subscription's QoS) and subscribes;
//! `BusRx` yields commands: those the gate hands over directly (a command needs no
//! fan-out, so it never becomes rumqttd topic state) and any that reach the link's own
//! subscriptions. The gate does not stand in the coordinator's path: it is trusted.
//! In external mode the same types carry an MQTT client of the external broker instead
//! (see `external`).

use bytes::Bytes;
use futures::FutureExt;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// MQTT 5 properties of a publish from the coordinator (3.1.1 subscribers see none of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProps {
    pub user_properties: Vec<(String, String)>,
    pub correlation_data: Option<Bytes>,
    pub content_type: Option<String>,
}

impl PublishProps {
    fn is_empty(&self) -> bool {
        self.user_properties.is_empty()
            && self.correlation_data.is_none()
            && self.content_type.is_none()
    }
}

/// A publish delivered to the coordinator's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPublish {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT 5 Correlation Data, if the sender set it.
    pub correlation_data: Option<Bytes>,
    /// MQTT 5 Response Topic, if the sender set it.
    pub response_topic: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the embedded MQTT broker refused the link: {0}")]
    Link(String),
    #[error("the external MQTT broker's client: {0}")]
    External(String),
}

/// Publishes and subscribes on the bus. Cheap to clone; clones share the link.
#[derive(Clone)]
pub struct BusTx {
    link: Link,
}

#[derive(Clone)]
enum Link {
    Embedded(Arc<Mutex<LinkTx>>),
    External(super::external::Publisher),
}

impl BusTx {
    pub(crate) fn new(link: LinkTx) -> Self {
        BusTx {
            link: Link::Embedded(Arc::new(Mutex::new(link))),
        }
    }

    pub(crate) fn external(publisher: super::external::Publisher) -> Self {
        BusTx {
            link: Link::External(publisher),
        }
    }

    fn send(&self, packet: Packet) -> Result<(), BusError> {
        let link = match &self.link {
            Link::Embedded(l) => l,
            Link::External(_) => return Err(BusError::External("not a link packet".into())),
        };
        let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
        // LinkTx::send never awaits: it queues the packet and signals the router (which
        // can wait briefly only when the router's event queue is full).
        match link.send(packet).now_or_never() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(BusError::Link(e.to_string())),
            None => Err(BusError::Link("link busy".into())),
        }
    }

    /// Publishes at QoS 0, not retained.
    pub fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        props: PublishProps,
    ) -> Result<(), BusError> {
        if let Link::External(p) = &self.link {
            return p.publish(topic, payload, props);
        }
        let publish = Publish::new(Bytes::copy_from_slice(topic.as_bytes()), payload, false);
        let properties = (!props.is_empty()).then(|| PublishProperties {
            user_properties: props.user_properties.into(),
            correlation_data: props.correlation_data,
            content_type: props.content_type,
            ..Default::default()
        });
        self.send(Packet::Publish(publish, properties))
    }

    /// Subscribes the link to `filter` (QoS 0).
    /// In external mode the client holds its one shared subscription itself (taken again on
    /// every connect), so this does nothing.
    pub fn subscribe(&self, filter: &str) -> Result<(), BusError> {
        let link = match &self.link {
            Link::Embedded(l) => l,
            Link::External(_) => return Ok(()),
        };
        let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
        link.subscribe(filter)
            .map(|_| ())
            .map_err(|e| BusError::Link(e.to_string()))
    }
}

/// How many commands may wait for the coordinator; a gate connection that finds the queue
/// full stops reading its client until there is room (backpressure, nothing dropped).
pub(crate) const COMMAND_QUEUE: usize = 16 * 1024;

/// Commands for the coordinator, from the gate and from the link.
pub struct BusRx {
    rx: mpsc::Receiver<InboundPublish>,
}

impl BusRx {
    pub(crate) fn new(rx: mpsc::Receiver<InboundPublish>) -> Self {
        BusRx { rx }
    }

    /// The next command; `None` once every sender is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<InboundPublish> {
        self.rx.recv().await
    }

    /// A command that is already waiting, if any.
    pub fn try_recv(&mut self) -> Option<InboundPublish> {
        self.rx.try_recv().ok()
    }
}

/// Moves publishes of the link's subscriptions into the command queue until either ends.
pub(crate) async fn pump(mut link: LinkRx, tx: mpsc::Sender<InboundPublish>) {
    loop {
        let m = match link.next().await {
            Ok(Some(Notification::Forward(f))) => {
                let props = f.properties.unwrap_or_default();
                InboundPublish {
                    topic: String::from_utf8_lossy(&f.publish.topic).into_owned(),
                    payload: f.publish.payload,
                    correlation_data: props.correlation_data,
                    response_topic: props.response_topic,
                }
            }
            // The router paused this link because its queue filled up: ask for more.
            Ok(Some(Notification::Unschedule)) => {
                if link.wake().await.is_err() {
                    return;
                }
                continue;
            }
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(m).await.is_err() {
            return;
        }
    }
}
