//! A real MQTT client for tests over rumqttc, v3.1.1 or v5: subscribe, publish, wait for
//! messages matching a predicate, and send extbus commands that wait for their reply.

use crate::TestBroker;
use bytes::Bytes;
use extbus_schema::topics;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::{Packet as P4, QoS as Q4};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V4,
    V5,
}

/// A message the client received.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Bytes,
    pub user_properties: Vec<(String, String)>,
    pub correlation_data: Option<Bytes>,
}

impl Msg {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// Something that happened on the connection.
#[derive(Debug, Clone)]
pub enum Event {
    Msg(Msg),
    /// SUBACK return codes (v4 raw codes; v5 reason codes as u8).
    SubAck(Vec<u8>),
    /// PUBACK reason code (v5; 0 on v4).
    PubAck(u8),
    Disconnected(String),
}

enum Inner {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub struct BusClient {
    inner: Inner,
    pub name: String,
    events: broadcast::Sender<Event>,
    rx: Mutex<broadcast::Receiver<Event>>,
    seq: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

/// The wire value of an MQTT 5 SUBACK reason code.
fn suback_code(c: &rumqttc::v5::mqttbytes::v5::SubscribeReasonCode) -> u8 {
    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
    match c {
        R::Success(q) => *q as u8,
        R::Failure => 0x80,
        R::Unspecified => 0x80,
        R::ImplementationSpecific => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicFilterInvalid => 0x8F,
        R::PkidInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::SharedSubscriptionsNotSupported => 0x9E,
        R::SubscriptionIdNotSupported => 0xA1,
        R::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

pub const WAIT: Duration = Duration::from_secs(20);

impl BusClient {
    /// Connects and waits for CONNACK; `Err` carries the refusal.
    pub async fn connect(
        b: &TestBroker,
        proto: Proto,
        user: &str,
        pass: &str,
    ) -> Result<Arc<BusClient>, String> {
        Self::connect_addr(b.mqtt, proto, user, pass).await
    }

    pub async fn connect_addr(
        addr: std::net::SocketAddr,
        proto: Proto,
        user: &str,
        pass: &str,
    ) -> Result<Arc<BusClient>, String> {
        let id = format!("{user}-{}", uuid::Uuid::new_v4().simple());
        let (tx, _) = broadcast::channel(65_536);
        let rx = tx.subscribe();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (inner, task) = match proto {
            Proto::V4 => {
                let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
                o.set_credentials(user, pass)
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(4 << 20, 4 << 20);
                let (c, mut el) = rumqttc::AsyncClient::new(o, 1024);
                let tx = tx.clone();
                let task = tokio::spawn(async move {
                    let mut ready = Some(ready_tx);
                    loop {
                        match el.poll().await {
                            Ok(rumqttc::Event::Incoming(p)) => match p {
                                P4::ConnAck(_) => {
                                    if let Some(r) = ready.take() {
                                        let _ = r.send(Ok(()));
                                    }
                                }
                                P4::Publish(p) => {
                                    let _ = tx.send(Event::Msg(Msg {
                                        topic: p.topic,
                                        payload: p.payload,
                                        user_properties: vec![],
                                        correlation_data: None,
                                    }));
                                }
                                P4::SubAck(s) => {
                                    let codes = s
                                        .return_codes
                                        .iter()
                                        .map(|c| match c {
                                            rumqttc::SubscribeReasonCode::Success(q) => *q as u8,
                                            rumqttc::SubscribeReasonCode::Failure => 0x80,
                                        })
                                        .collect();
                                    let _ = tx.send(Event::SubAck(codes));
                                }
                                P4::PubAck(_) => {
                                    let _ = tx.send(Event::PubAck(0));
                                }
                                _ => {}
                            },
                            Ok(_) => {}
                            Err(e) => {
                                if let Some(r) = ready.take() {
                                    let _ = r.send(Err(e.to_string()));
                                }
                                let _ = tx.send(Event::Disconnected(e.to_string()));
                                return;
                            }
                        }
                    }
                });
                (Inner::V4(c), task)
            }
            Proto::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
                o.set_credentials(user, pass)
                    .set_keep_alive(Duration::from_secs(30))
                    .set_max_packet_size(Some(4 << 20));
                let (c, mut el) = rumqttc::v5::AsyncClient::new(o, 1024);
                let tx = tx.clone();
                let task = tokio::spawn(async move {
                    let mut ready = Some(ready_tx);
                    loop {
                        match el.poll().await {
                            Ok(rumqttc::v5::Event::Incoming(p)) => match p {
                                P5::ConnAck(_) => {
                                    if let Some(r) = ready.take() {
                                        let _ = r.send(Ok(()));
                                    }
                                }
                                P5::Publish(p) => {
                                    let props = p.properties.unwrap_or_default();
                                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                                    let _ = tx.send(Event::Msg(Msg {
                                        topic,
                                        payload: p.payload,
                                        user_properties: props.user_properties,
                                        correlation_data: props.correlation_data,
                                    }));
                                }
                                P5::SubAck(s) => {
                                    let codes = s.return_codes.iter().map(suback_code).collect();
                                    let _ = tx.send(Event::SubAck(codes));
                                }
                                P5::PubAck(a) => {
                                    let _ = tx.send(Event::PubAck(a.reason as u8));
                                }
                                _ => {}
                            },
                            Ok(_) => {}
                            Err(e) => {
                                if let Some(r) = ready.take() {
                                    let _ = r.send(Err(e.to_string()));
                                }
                                let _ = tx.send(Event::Disconnected(e.to_string()));
                                return;
                            }
                        }
                    }
                });
                (Inner::V5(c), task)
            }
        };
        match tokio::time::timeout(WAIT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                task.abort();
                return Err(e);
            }
            _ => {
                task.abort();
                return Err("no CONNACK".into());
            }
        }
        let client = BusClient {
            inner,
            name: user.to_string(),
            events: tx,
            rx: Mutex::new(rx),
            seq: AtomicU64::new(0),
            task,
        };
        let c = Arc::new(client);
        // Every client listens to its own outbox, as extbus clients do.
        c.subscribe(&topics::outbox_filter(user)).await;
        Ok(c)
    }

    /// Subscribes at QoS 1 and returns the SUBACK codes.
    pub async fn subscribe(&self, filter: &str) -> Vec<u8> {
        let mut rx = self.events.subscribe();
        match &self.inner {
            Inner::V4(c) => c
                .subscribe(filter, Q4::AtLeastOnce)
                .await
                .expect("subscribe"),
            Inner::V5(c) => c
                .subscribe(filter, Q5::AtLeastOnce)
                .await
                .expect("subscribe"),
        }
        loop {
            match tokio::time::timeout(WAIT, rx.recv()).await {
                Ok(Ok(Event::SubAck(codes))) => return codes,
                Ok(Ok(Event::Disconnected(e))) => {
                    panic!("disconnected while subscribing {filter}: {e}")
                }
                Ok(Ok(_)) => continue,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                _ => panic!("no SUBACK for {filter}"),
            }
        }
    }

    /// Publishes at QoS 1 (bytes as given).
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        let payload: Vec<u8> = payload.into();
        match &self.inner {
            Inner::V4(c) => c
                .publish(topic, Q4::AtLeastOnce, false, payload)
                .await
                .expect("publish"),
            Inner::V5(c) => c
                .publish(topic, Q5::AtLeastOnce, false, payload)
                .await
                .expect("publish"),
        }
    }

    /// Publishes with MQTT 5 properties (v5 only).
    pub async fn publish_with_props(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        props: PublishProperties,
    ) {
        let payload: Vec<u8> = payload.into();
        match &self.inner {
            Inner::V5(c) => c
                .publish_with_properties(topic, Q5::AtLeastOnce, false, payload, props)
                .await
                .expect("publish"),
            Inner::V4(_) => panic!("properties need MQTT 5"),
        }
    }

    /// Sends a command under this principal's inbox and waits for its reply.
    pub async fn command(&self, suffix: &str, mut body: Value) -> Value {
        let corr = format!("{}-{}", self.name, self.seq.fetch_add(1, Ordering::Relaxed));
        if let Some(o) = body.as_object_mut() {
            o.insert("correlation_id".into(), corr.clone().into());
        }
        let mut rx = self.events.subscribe();
        self.publish(
            &topics::inbox(&self.name, suffix),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        let reply_topic = topics::replies(&self.name);
        self.wait_on(&mut rx, |m| {
            m.topic == reply_topic && m.json()["correlation_id"] == corr.as_str()
        })
        .await
        .json()
    }

    /// Sends raw bytes as a command and returns the next reply on the outbox.
    pub async fn command_raw(&self, suffix: &str, payload: impl Into<Vec<u8>>) -> Value {
        let mut rx = self.events.subscribe();
        self.publish(&topics::inbox(&self.name, suffix), payload)
            .await;
        let reply_topic = topics::replies(&self.name);
        self.wait_on(&mut rx, |m| m.topic == reply_topic)
            .await
            .json()
    }

    async fn wait_on(
        &self,
        rx: &mut broadcast::Receiver<Event>,
        pred: impl Fn(&Msg) -> bool,
    ) -> Msg {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(Event::Msg(m))) if pred(&m) => return m,
                Ok(Ok(Event::Disconnected(e))) => panic!("{} disconnected: {e}", self.name),
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => panic!("{}: event stream closed", self.name),
                Err(_) => panic!("{}: timed out waiting for a message", self.name),
            }
        }
    }

    /// Waits for a received message (since the last `take`/`expect`) matching `pred`.
    pub async fn expect(&self, pred: impl Fn(&Msg) -> bool) -> Msg {
        let mut rx = self.rx.lock().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(Event::Msg(m))) if pred(&m) => return m,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => panic!("{}: event stream closed", self.name),
                Err(_) => panic!("{}: timed out waiting for an expected message", self.name),
            }
        }
    }

    /// Like `expect`, but `None` after `within` instead of a panic (for helpers that may idle).
    pub async fn next_within(&self, within: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let mut rx = self.rx.lock().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(Event::Msg(m))) if pred(&m) => return Some(m),
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Waits for a message on exactly `topic`.
    pub async fn expect_on(&self, topic: &str) -> Msg {
        self.expect(|m| m.topic == topic).await
    }

    /// Messages matching `pred` that arrive within `within` (for asserting absence).
    pub async fn collect(&self, within: Duration, pred: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(r) = tokio::time::timeout_at(deadline, rx.recv()).await {
            match r {
                Ok(Event::Msg(m)) if pred(&m) => out.push(m),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        out
    }

    /// Has the connection been closed by the broker?
    pub async fn wait_disconnected(&self, within: Duration) -> bool {
        let mut rx = self.events.subscribe();
        if self.task.is_finished() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(Event::Disconnected(_))) => return true,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => return true,
                Err(_) => return self.task.is_finished(),
            }
        }
    }

    pub async fn disconnect(&self) {
        match &self.inner {
            Inner::V4(c) => {
                let _ = c.disconnect().await;
            }
            Inner::V5(c) => {
                let _ = c.disconnect().await;
            }
        }
    }
}

impl Drop for BusClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}
