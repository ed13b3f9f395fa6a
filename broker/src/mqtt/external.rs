//! External-broker mode: the coordinator as an MQTT 5 client (rumqttc) of an existing broker.
//! A persistent session (clean start off, a session expiry) and QoS 1 both ways: commands
//! come from `extbus/in/+/#` (or `$share/<group>/...`, see `bus.share_group`), and each is acknowledged
//! (PUBACK) only once it is in the coordinator's queue, so the broker keeps, and redelivers,
//! whatever extbus has not taken. Reconnects with backoff and subscribes again.

use super::bus::{self, BusError, BusRx, BusTx, InboundPublish, PublishProps};
use super::MqttError;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Every principal's inbox: the coordinator's one subscription.
pub const INBOX_FILTER: &str = "extbus/in/+/#";

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Publishes that may wait for the connection (replies, notices, events of a few batches).
const REQUEST_QUEUE: usize = 64 * 1024;

/// How to reach the external broker.
#[derive(Debug, Clone)]
pub struct ExternalSettings {
    pub host: String,
    pub port: u16,
    /// TLS trust for `mqtts://`; `None` for plain TCP.
    pub tls: Option<extbus_client::Tls>,
    pub user: String,
    pub secret: String,
    pub client_id: String,
    /// How long the broker keeps the session (and the commands queued in it) while away.
    pub session_expiry_s: u32,
    /// Largest command extbus accepts. The broker is told 4 MiB more, so that a command up to
    /// the broker's own limit still reaches extbus and gets its `payload_too_large` reply.
    pub max_payload: usize,
    /// A shared-subscription group for the inboxes; `None`: a plain subscription.
    pub share_group: Option<String>,
}

impl ExternalSettings {
    /// The coordinator's subscription.
    pub fn inbox_filter(&self) -> String {
        match &self.share_group {
            Some(g) => format!("$share/{g}/{INBOX_FILTER}"),
            None => INBOX_FILTER.to_string(),
        }
    }

    /// rumqttc options for a client of this broker with `client_id`.
    pub(crate) fn options(&self, client_id: &str) -> Result<MqttOptions, MqttError> {
        let mut o = MqttOptions::new(client_id, &self.host, self.port);
        o.set_credentials(&self.user, &self.secret)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(Some((self.max_payload + (4 << 20)) as u32));
        // Each reply and notice is one small write: without NODELAY it waits behind the
        // broker's delayed ACK of the previous one (tens of ms per round trip).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        if let Some(tls) = &self.tls {
            let t = extbus_client::tls_transport(tls).map_err(|e| MqttError::Tls(e.to_string()))?;
            o.set_transport(t);
        }
        Ok(o)
    }
}

/// Publishes to the external broker at QoS 1 (the broker delivers at each subscription's QoS).
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
}

impl Publisher {
    pub(crate) fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        props: PublishProps,
    ) -> Result<(), BusError> {
        let properties = PublishProperties {
            user_properties: props.user_properties,
            correlation_data: props.correlation_data,
            content_type: props.content_type,
            ..Default::default()
        };
        self.client
            .try_publish_with_properties(topic, QoS::AtLeastOnce, false, payload, properties)
            .map_err(|e| BusError::External(e.to_string()))
    }
}

/// The running client; `stop` disconnects it (the session, with its subscription, stays).
pub struct ExternalHandle {
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl ExternalHandle {
    pub async fn stop(self) {
        let _ = self.client.try_disconnect();
        // The driver sends the DISCONNECT and then sees the connection end.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// Connects to the external broker (waiting for the first CONNACK, so bad credentials or a
/// wrong address fail the start) and returns the coordinator's link over it.
pub async fn connect(s: &ExternalSettings) -> Result<(ExternalHandle, BusTx, BusRx), MqttError> {
    let mut o = s.options(&s.client_id)?;
    o.set_clean_start(false)
        .set_session_expiry_interval(Some(s.session_expiry_s))
        .set_manual_acks(true)
        .set_receive_maximum(Some(1024));
    let (client, mut eventloop) = AsyncClient::new(o, REQUEST_QUEUE);
    first_connack(&mut eventloop, &client, s).await?;
    let (commands, commands_rx) = mpsc::channel(bus::COMMAND_QUEUE);
    let (up_tx, _) = watch::channel(true);
    let task = tokio::spawn(drive(
        eventloop,
        client.clone(),
        commands,
        up_tx,
        s.inbox_filter(),
    ));
    let publisher = Publisher {
        client: client.clone(),
    };
    Ok((
        ExternalHandle { client, task },
        BusTx::external(publisher),
        BusRx::new(commands_rx),
    ))
}

async fn first_connack(
    el: &mut EventLoop,
    client: &AsyncClient,
    s: &ExternalSettings,
) -> Result<(), MqttError> {
    let wait = async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let r = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| Err("no CONNACK within 10 s".into()));
    r.map_err(|e| {
        MqttError::External(format!(
            "connecting to {}:{} as '{}' (bus.url, bus.user): {e}",
            s.host, s.port, s.user
        ))
    })?;
    subscribe(client, &s.inbox_filter());
    Ok(())
}

fn subscribe(client: &AsyncClient, filter: &str) {
    if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
        tracing::error!(error = %e, "cannot subscribe to the inboxes on the external broker");
    }
}

/// Polls the connection for as long as the process runs: commands into the queue, then their
/// PUBACK; on a lost connection, waits (100 ms doubling to 5 s) and connects again.
async fn drive(
    mut el: EventLoop,
    client: AsyncClient,
    commands: mpsc::Sender<InboundPublish>,
    up: watch::Sender<bool>,
    filter: String,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !deliver(&client, &commands, p).await {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("connected to the external MQTT broker again");
                backoff = MIN_BACKOFF;
                up.send_replace(true);
                subscribe(&client, &filter);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                if refused {
                    tracing::error!(codes = ?ack.return_codes, filter = %filter, "the external broker refused the inbox subscription: bus.user needs subscribe rights on it");
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                // `stop`: let the DISCONNECT go out, then end.
                let _ = tokio::time::timeout(Duration::from_millis(500), el.poll()).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                if up.send_replace(false) {
                    tracing::warn!(error = %e, "lost the external MQTT broker; reconnecting");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Queues one command (waiting for room: backpressure, as the gate does), then acknowledges
/// it. `false` once the coordinator is gone.
async fn deliver(
    client: &AsyncClient,
    commands: &mpsc::Sender<InboundPublish>,
    p: Publish,
) -> bool {
    let props = p.properties.clone().unwrap_or_default();
    let m = InboundPublish {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.clone(),
        correlation_data: props.correlation_data,
        response_topic: props.response_topic,
    };
    if commands.send(m).await.is_err() {
        return false;
    }
    if p.qos != QoS::AtMostOnce && client.try_ack(&p).is_err() {
        // The request queue is full: acknowledge once there is room.
        let c = client.clone();
        tokio::spawn(async move {
            let _ = c.ack(&p).await;
        });
    }
    true
}
