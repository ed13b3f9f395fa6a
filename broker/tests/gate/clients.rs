//! rumqttc client wrappers for the gate tests: each event loop runs in a task that forwards
//! every event, so a test can wait for the next packet (bounded), a publish, or the close.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generates a client wrapper: the event loop runs in a task that forwards every event.
macro_rules! client {
    ($name:ident, $m:ident, $packet:ty, $publish:ty, $pubvar:path) => {
        pub(crate) struct $name {
            pub(crate) cl: $m::AsyncClient,
            pub(crate) rx: mpsc::UnboundedReceiver<Result<$m::Event, $m::ConnectionError>>,
            pub(crate) task: tokio::task::JoinHandle<()>,
        }

        impl $name {
            pub(crate) fn spawn(o: $m::MqttOptions) -> Self {
                let (cl, mut el) = $m::AsyncClient::new(o, 256);
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    loop {
                        let e = el.poll().await;
                        let end = e.is_err();
                        if tx.send(e).is_err() || end {
                            break;
                        }
                    }
                });
                $name { cl, rx, task }
            }
            pub(crate) async fn event(&mut self) -> Result<$m::Event, $m::ConnectionError> {
                let e = timeout(WAIT, self.rx.recv())
                    .await
                    .expect("no MQTT event in time");
                e.expect("event loop gone")
            }
            pub(crate) async fn next(&mut self) -> Result<$packet, $m::ConnectionError> {
                loop {
                    if let $m::Event::Incoming(p) = self.event().await? {
                        return Ok(p);
                    }
                }
            }
            pub(crate) async fn packet(&mut self) -> $packet {
                self.next().await.expect("connection failed")
            }
            pub(crate) async fn publish(&mut self) -> $publish {
                loop {
                    if let $pubvar(p) = self.packet().await {
                        return p;
                    }
                }
            }
            pub(crate) async fn closed(&mut self) -> $m::ConnectionError {
                loop {
                    if let Err(e) = self.next().await {
                        return e;
                    }
                }
            }
        }
    };
}

client!(C4, m4, m4::Packet, m4::Publish, m4::Packet::Publish);
client!(C5, m5, p5::Packet, p5::Publish, p5::Packet::Publish);

pub(crate) fn opts4(addr: SocketAddr, who: &str, secret: Option<&str>) -> m4::MqttOptions {
    let mut o = m4::MqttOptions::new(uniq(who), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(2 << 20, 2 << 20);
    if let Some(s) = secret {
        o.set_credentials(who, s);
    }
    o
}

pub(crate) fn opts5(addr: SocketAddr, who: &str, secret: Option<&str>) -> m5::MqttOptions {
    let mut o = m5::MqttOptions::new(uniq(who), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(2 << 20));
    if let Some(s) = secret {
        o.set_credentials(who, s);
    }
    o
}

pub(crate) async fn up4(o: m4::MqttOptions) -> C4 {
    let mut c = C4::spawn(o);
    match c.packet().await {
        m4::Packet::ConnAck(a) => assert_eq!(a.code, m4::ConnectReturnCode::Success),
        p => panic!("expected CONNACK, got {p:?}"),
    }
    c
}

pub(crate) async fn up5(o: m5::MqttOptions) -> C5 {
    let mut c = C5::spawn(o);
    match c.packet().await {
        p5::Packet::ConnAck(a) => assert_eq!(a.code, p5::ConnectReturnCode::Success),
        p => panic!("expected CONNACK, got {p:?}"),
    }
    c
}

pub(crate) async fn c4(bus: &Bus, who: &str) -> C4 {
    up4(opts4(bus.addr, who, Some(SECRET))).await
}

pub(crate) async fn c5(bus: &Bus, who: &str) -> C5 {
    up5(opts5(bus.addr, who, Some(SECRET))).await
}

impl C4 {
    pub(crate) async fn sub(
        &mut self,
        filters: &[&str],
        qos: m4::QoS,
    ) -> Vec<m4::SubscribeReasonCode> {
        let f = filters
            .iter()
            .map(|f| m4::SubscribeFilter::new(f.to_string(), qos));
        self.cl.subscribe_many(f.collect::<Vec<_>>()).await.unwrap();
        loop {
            if let m4::Packet::SubAck(a) = self.packet().await {
                return a.return_codes;
            }
        }
    }
    pub(crate) async fn send(&mut self, topic: &str, qos: m4::QoS, payload: impl Into<Vec<u8>>) {
        self.cl.publish(topic, qos, false, payload).await.unwrap();
    }
}

impl C5 {
    pub(crate) async fn sub(
        &mut self,
        filters: &[&str],
        qos: m5::mqttbytes::QoS,
    ) -> Vec<p5::SubscribeReasonCode> {
        let f = filters.iter().map(|f| p5::Filter::new(*f, qos));
        self.cl.subscribe_many(f.collect::<Vec<_>>()).await.unwrap();
        loop {
            if let p5::Packet::SubAck(a) = self.packet().await {
                return a.return_codes;
            }
        }
    }
    pub(crate) async fn send(
        &mut self,
        topic: &str,
        qos: m5::mqttbytes::QoS,
        payload: impl Into<Vec<u8>>,
    ) {
        let payload: Vec<u8> = payload.into();
        self.cl.publish(topic, qos, false, payload).await.unwrap();
    }
    pub(crate) async fn puback(&mut self) -> p5::PubAckReason {
        loop {
            if let p5::Packet::PubAck(a) = self.packet().await {
                return a.reason;
            }
        }
    }
}

pub(crate) fn topic4(p: &m4::Publish) -> String {
    p.topic.clone()
}

pub(crate) fn topic5(p: &p5::Publish) -> String {
    String::from_utf8(p.topic.to_vec()).unwrap()
}

/// Writes raw bytes and returns everything read until the gate closes the connection.
pub(crate) async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("gate kept the connection")
        .ok();
    out
}

pub(crate) fn connect_frame(level: u8, name: &[u8], user: &str, secret: &str) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, 0xc2, 0, 30]);
    if level == 5 {
        body.push(0);
    }
    for f in ["raw", user, secret] {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
    }
    let mut f = vec![0x10, body.len() as u8];
    f.extend_from_slice(&body);
    f
}
