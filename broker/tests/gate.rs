//! The MQTT gate over real parts: an embedded rumqttd, the gate on 127.0.0.1:0, rumqttc 3.1.1
//! and MQTT 5 clients, principals with argon2 secrets. Covers authentication, SPEC.md's role
//! table, spoofing, aliases, QoS 1/2, retained messages, wills, blocked-task filtering,
//! oversized commands, TLS and shutdown. Every wait is bounded.

use extbus::metrics::Metrics;
use extbus::mqtt::{self, BusRx, BusTx, InboundPublish, MqttHandle, MqttSettings, PublishProps};
use extbus::notices::GateNotice;
use extbus::principals::Principals;
use extbus::registry::{Registration, Registry};
use extbus_schema::Role;
use rumqttc::v5 as m5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{self as m4};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const SECRET: &str = "gate-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);
const Q1: m4::QoS = m4::QoS::AtLeastOnce;
const Q2: m4::QoS = m4::QoS::ExactlyOnce;
const P1: m5::mqttbytes::QoS = m5::mqttbytes::QoS::AtLeastOnce;
const P2: m5::mqttbytes::QoS = m5::mqttbytes::QoS::ExactlyOnce;

type Who = (&'static str, &'static [Role], &'static [&'static str]);
const PEOPLE: &[Who] = &[
    ("plat", &[Role::Platform], &["*"]),
    ("ext", &[Role::Extension], &["acme"]),
    ("extop", &[Role::Extension, Role::Operator], &["*"]),
    ("op", &[Role::Operator], &["*"]),
    ("obs", &[Role::Observer], &["acme"]),
    ("admin", &[Role::Admin], &["*"]),
];

/// One principals file for the whole test binary: argon2 is slow in debug builds, and the
/// verified-secret cache then makes reconnects cheap.
fn principals() -> Arc<Principals> {
    static P: OnceLock<(tempfile::TempDir, Arc<Principals>)> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let p = Principals::open(dir.path()).unwrap();
        for (name, roles, orgs) in PEOPLE {
            let orgs = orgs.iter().map(|o| o.to_string()).collect();
            p.add(name, roles.to_vec(), orgs, Some(SECRET.into()))
                .unwrap();
        }
        (dir, Arc::new(p))
    })
    .1
    .clone()
}

fn uniq(who: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{who}-{}", N.fetch_add(1, Ordering::Relaxed))
}

struct Bus {
    addr: SocketAddr,
    handle: MqttHandle,
    tx: BusTx,
    rx: BusRx,
    notices: mpsc::Receiver<GateNotice>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

async fn start(settings: MqttSettings, tls: Option<(TcpListener, mqtt::TlsFiles)>) -> Bus {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Arc::new(Registry::new());
    let mut reg = Registration::default();
    reg.services.insert(("acme".into(), "greeter".into()));
    reg.operations.insert("vapp.instantiate".into());
    registry.set("ext", reg);
    let metrics = Arc::new(Metrics::new());
    let (ntx, notices) = mpsc::channel(256);
    let (handle, tx, rx) = mqtt::start(
        settings,
        listener,
        tls,
        principals(),
        registry.clone(),
        metrics.clone(),
        ntx,
    )
    .await
    .unwrap();
    tx.subscribe("extbus/in/#").unwrap();
    Bus {
        addr,
        handle,
        tx,
        rx,
        notices,
        registry,
        metrics,
    }
}

async fn bus() -> Bus {
    start(MqttSettings::default(), None).await
}

impl Bus {
    async fn inbound(&mut self) -> InboundPublish {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("no inbound publish")
            .expect("bus gone")
    }
    fn publish(&self, topic: &str, payload: &str) {
        self.tx
            .publish(
                topic,
                payload.as_bytes().to_vec().into(),
                PublishProps::default(),
            )
            .unwrap();
    }
    fn notices(&mut self) -> Vec<GateNotice> {
        std::iter::from_fn(|| self.notices.try_recv().ok()).collect()
    }
    fn denied(&mut self) -> Vec<(&'static str, String)> {
        let all = self.notices();
        all.into_iter()
            .filter_map(|n| match n {
                GateNotice::Denied { action, topic, .. } => Some((action, topic)),
                _ => None,
            })
            .collect()
    }
}

/// Generates a client wrapper: the event loop runs in a task that forwards every event.
macro_rules! client {
    ($name:ident, $m:ident, $packet:ty, $publish:ty, $pubvar:path) => {
        struct $name {
            cl: $m::AsyncClient,
            rx: mpsc::UnboundedReceiver<Result<$m::Event, $m::ConnectionError>>,
            task: tokio::task::JoinHandle<()>,
        }

        impl $name {
            fn spawn(o: $m::MqttOptions) -> Self {
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
            async fn event(&mut self) -> Result<$m::Event, $m::ConnectionError> {
                let e = timeout(WAIT, self.rx.recv())
                    .await
                    .expect("no MQTT event in time");
                e.expect("event loop gone")
            }
            async fn next(&mut self) -> Result<$packet, $m::ConnectionError> {
                loop {
                    if let $m::Event::Incoming(p) = self.event().await? {
                        return Ok(p);
                    }
                }
            }
            async fn packet(&mut self) -> $packet {
                self.next().await.expect("connection failed")
            }
            async fn publish(&mut self) -> $publish {
                loop {
                    if let $pubvar(p) = self.packet().await {
                        return p;
                    }
                }
            }
            async fn closed(&mut self) -> $m::ConnectionError {
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

fn opts4(addr: SocketAddr, who: &str, secret: Option<&str>) -> m4::MqttOptions {
    let mut o = m4::MqttOptions::new(uniq(who), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(2 << 20, 2 << 20);
    if let Some(s) = secret {
        o.set_credentials(who, s);
    }
    o
}

fn opts5(addr: SocketAddr, who: &str, secret: Option<&str>) -> m5::MqttOptions {
    let mut o = m5::MqttOptions::new(uniq(who), addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(2 << 20));
    if let Some(s) = secret {
        o.set_credentials(who, s);
    }
    o
}

async fn up4(o: m4::MqttOptions) -> C4 {
    let mut c = C4::spawn(o);
    match c.packet().await {
        m4::Packet::ConnAck(a) => assert_eq!(a.code, m4::ConnectReturnCode::Success),
        p => panic!("expected CONNACK, got {p:?}"),
    }
    c
}

async fn up5(o: m5::MqttOptions) -> C5 {
    let mut c = C5::spawn(o);
    match c.packet().await {
        p5::Packet::ConnAck(a) => assert_eq!(a.code, p5::ConnectReturnCode::Success),
        p => panic!("expected CONNACK, got {p:?}"),
    }
    c
}

async fn c4(bus: &Bus, who: &str) -> C4 {
    up4(opts4(bus.addr, who, Some(SECRET))).await
}

async fn c5(bus: &Bus, who: &str) -> C5 {
    up5(opts5(bus.addr, who, Some(SECRET))).await
}

impl C4 {
    async fn sub(&mut self, filters: &[&str], qos: m4::QoS) -> Vec<m4::SubscribeReasonCode> {
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
    async fn send(&mut self, topic: &str, qos: m4::QoS, payload: impl Into<Vec<u8>>) {
        self.cl.publish(topic, qos, false, payload).await.unwrap();
    }
}

impl C5 {
    async fn sub(
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
    async fn send(&mut self, topic: &str, qos: m5::mqttbytes::QoS, payload: impl Into<Vec<u8>>) {
        let payload: Vec<u8> = payload.into();
        self.cl.publish(topic, qos, false, payload).await.unwrap();
    }
    async fn puback(&mut self) -> p5::PubAckReason {
        loop {
            if let p5::Packet::PubAck(a) = self.packet().await {
                return a.reason;
            }
        }
    }
}

fn topic4(p: &m4::Publish) -> String {
    p.topic.clone()
}

fn topic5(p: &p5::Publish) -> String {
    String::from_utf8(p.topic.to_vec()).unwrap()
}

#[tokio::test]
async fn credentials_are_checked_at_connect() {
    let b = bus().await;
    for (who, secret) in [("plat", "wrong"), ("nobody", SECRET)] {
        let mut c = C4::spawn(opts4(b.addr, who, Some(secret)));
        let e = c.closed().await;
        assert!(
            matches!(
                e,
                m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
            ),
            "{e:?}"
        );
        let mut c = C5::spawn(opts5(b.addr, who, Some(secret)));
        let e = c.closed().await;
        assert!(
            matches!(
                e,
                m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::BadUserNamePassword)
            ),
            "{e:?}"
        );
    }
    let e = C4::spawn(opts4(b.addr, "plat", None)).closed().await;
    assert!(matches!(
        e,
        m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
    ));
    let e = C5::spawn(opts5(b.addr, "plat", None)).closed().await;
    assert!(matches!(
        e,
        m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::BadUserNamePassword)
    ));
    let mut reserved = opts5(b.addr, "plat", Some(SECRET));
    reserved.set_client_id("extbus-coordinator".into());
    let e = C5::spawn(reserved).closed().await;
    assert!(matches!(
        e,
        m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::ClientIdentifierNotValid)
    ));
    let refused = |reason| {
        b.metrics
            .get("extbus_connect_refused_total", &[("reason", reason)])
    };
    assert_eq!(refused("bad_credentials"), 4);
    assert_eq!(refused("no_credentials"), 2);
    assert_eq!(refused("reserved_client_id"), 1);
    let _ok4 = c4(&b, "plat").await;
    let _ok5 = c5(&b, "plat").await;
    assert_eq!(b.metrics.get("extbus_connections", &[]), 2);
    assert_eq!(b.metrics.get("extbus_connections_total", &[]), 2);
}

/// One row of SPEC.md's role table, as the gate must apply it.
struct Row {
    who: &'static str,
    pub_ok: &'static str,
    pub_no: Option<&'static str>,
    sub_ok: &'static str,
    /// A topic `sub_ok` matches, published by the coordinator.
    sample: &'static str,
    sub_no: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        who: "plat",
        pub_ok: "extbus/in/plat/tasks/submit",
        pub_no: Some("extbus/in/ext/tasks/submit"),
        sub_ok: "extbus/out/plat/#",
        sample: "extbus/out/plat/replies",
        sub_no: "extbus/events/acme/#",
    },
    Row {
        who: "ext",
        pub_ok: "extbus/in/ext/register",
        pub_no: Some("extbus/services/acme/greeter/1.0.0/requests"),
        sub_ok: "extbus/services/acme/greeter/+/requests",
        sample: "extbus/services/acme/greeter/1.0.0/requests",
        sub_no: "extbus/services/acme/billing/#",
    },
    Row {
        who: "ext",
        pub_ok: "extbus/in/ext/services/responses",
        pub_no: Some("extbus/out/plat/replies"),
        sub_ok: "extbus/events/acme/#",
        sample: "extbus/events/acme/vapp/instantiate",
        sub_no: "extbus/tasks/#",
    },
    Row {
        who: "op",
        pub_ok: "extbus/in/op/tasks/t1/resume",
        pub_no: Some("extbus/tasks/resolved/vapp/instantiate"),
        sub_ok: "extbus/tasks/#",
        sample: "extbus/tasks/resolved/vapp/instantiate",
        sub_no: "extbus/out/plat/#",
    },
    Row {
        who: "op",
        pub_ok: "extbus/in/op/tasks/query",
        pub_no: Some("extbus/in/obs/tasks/query"),
        sub_ok: "extbus/events/#",
        sample: "extbus/events/beta/vapp/delete",
        sub_no: "extbus/services/acme/greeter/#",
    },
    Row {
        who: "obs",
        pub_ok: "extbus/in/obs/tasks/query",
        pub_no: Some("extbus/events/acme/vapp/instantiate"),
        sub_ok: "extbus/events/acme/#",
        sample: "extbus/events/acme/vapp/instantiate",
        sub_no: "extbus/events/#",
    },
    Row {
        who: "obs",
        pub_ok: "extbus/in/obs/events/replay",
        pub_no: Some("$SYS/x"),
        sub_ok: "extbus/out/obs/replies",
        sample: "extbus/out/obs/replies",
        sub_no: "#",
    },
    Row {
        who: "admin",
        pub_ok: "extbus/in/plat/events",
        pub_no: None,
        sub_ok: "#",
        sample: "anything/at/all",
        sub_no: "$SYS/#",
    },
];

#[tokio::test]
async fn role_table_over_v4() {
    let mut b = bus().await;
    for r in ROWS {
        let mut c = c4(&b, r.who).await;
        let codes = c.sub(&[r.sub_ok, r.sub_no], Q1).await;
        assert_eq!(
            codes,
            [
                m4::SubscribeReasonCode::Success(Q1),
                m4::SubscribeReasonCode::Failure
            ],
            "{}",
            r.sub_no
        );
        b.publish(r.sample, "sample");
        assert_eq!(topic4(&c.publish().await), r.sample);
        c.send(r.pub_ok, Q1, "ok").await;
        assert_eq!(b.inbound().await.topic, r.pub_ok);
        let mut expected = vec![("subscribe", r.sub_no.to_string())];
        if let Some(no) = r.pub_no {
            c.send(no, Q1, "spoof").await;
            c.closed().await;
            // Nothing of the refused publish reached the bus before this marker.
            let marker = format!("extbus/in/{}/marker", r.who);
            c4(&b, r.who).await.send(&marker, Q1, "m").await;
            assert_eq!(b.inbound().await.topic, marker, "{no}");
            expected.push(("publish", no.to_string()));
        }
        assert_eq!(b.denied(), expected);
    }
    assert!(
        b.metrics
            .get("extbus_gate_denied_total", &[("action", "subscribe")])
            >= ROWS.len() as u64
    );
}

#[tokio::test]
async fn role_table_over_v5() {
    let mut b = bus().await;
    for r in ROWS {
        let mut c = c5(&b, r.who).await;
        let codes = c.sub(&[r.sub_no, r.sub_ok], P1).await;
        assert_eq!(
            codes,
            [
                p5::SubscribeReasonCode::NotAuthorized,
                p5::SubscribeReasonCode::Success(P1)
            ]
        );
        b.publish(r.sample, "sample");
        assert_eq!(topic5(&c.publish().await), r.sample);
        c.send(r.pub_ok, P1, "ok").await;
        assert_eq!(c.puback().await, p5::PubAckReason::Success);
        assert_eq!(b.inbound().await.topic, r.pub_ok);
        let mut expected = vec![("subscribe", r.sub_no.to_string())];
        if let Some(no) = r.pub_no {
            c.send(no, P1, "spoof").await;
            assert_eq!(c.puback().await, p5::PubAckReason::NotAuthorized, "{no}");
            let marker = format!("extbus/in/{}/marker", r.who);
            c.send(&marker, P1, "m").await;
            assert_eq!(b.inbound().await.topic, marker, "{no}");
            expected.push(("publish", no.to_string()));
        }
        assert_eq!(b.denied(), expected);
    }
}

#[tokio::test]
async fn spoofed_publishes_never_reach_subscribers() {
    let mut b = bus().await;
    let mut admin = c4(&b, "admin").await;
    assert_eq!(
        admin.sub(&["#"], Q1).await,
        [m4::SubscribeReasonCode::Success(Q1)]
    );
    // 3.1.1: the connection is closed.
    let mut a = c4(&b, "plat").await;
    a.send("extbus/in/ext/tasks/submit", Q1, "spoof").await;
    a.closed().await;
    // MQTT 5 QoS 1: PUBACK 0x87 and the connection stays.
    let mut a5 = c5(&b, "plat").await;
    a5.send("extbus/in/ext/tasks/submit", P1, "spoof").await;
    assert_eq!(a5.puback().await, p5::PubAckReason::NotAuthorized);
    // MQTT 5 QoS 2: PUBREC 0x87.
    a5.send("extbus/in/ext/tasks/t/cancel", P2, "spoof").await;
    loop {
        if let p5::Packet::PubRec(r) = a5.packet().await {
            assert_eq!(r.reason, p5::PubRecReason::NotAuthorized);
            break;
        }
    }
    a5.send("extbus/in/plat/marker", P1, "m").await;
    assert_eq!(a5.puback().await, p5::PubAckReason::Success);
    // MQTT 5 QoS 0: DISCONNECT 0x87.
    a5.send(
        "extbus/in/ext/register",
        m5::mqttbytes::QoS::AtMostOnce,
        "spoof",
    )
    .await;
    let e = a5.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::NotAuthorized,
                ..
            })
        ),
        "{e:?}"
    );
    // The admin on `#` saw only the marker, and the coordinator too.
    assert_eq!(topic4(&admin.publish().await), "extbus/in/plat/marker");
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    let denied = b.denied();
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(denied
        .iter()
        .all(|(a, t)| *a == "publish" && t.starts_with("extbus/in/ext/")));
}

#[tokio::test]
async fn org_limits_and_shared_subscriptions() {
    let mut b = bus().await;
    let mut obs = c5(&b, "obs").await;
    let codes = obs
        .sub(
            &[
                "extbus/events/acme/#",
                "extbus/events/beta/#",
                "extbus/events/#",
                "#",
                "extbus/events/+/vapp/x",
            ],
            P1,
        )
        .await;
    use p5::SubscribeReasonCode::{NotAuthorized as No, Success};
    assert_eq!(codes, [Success(P1), No, No, No, No]);
    b.publish("extbus/events/beta/vapp/x", "other org");
    b.publish("extbus/events/acme/vapp/x", "mine");
    let p = obs.publish().await;
    assert_eq!(
        (topic5(&p).as_str(), &p.payload[..]),
        ("extbus/events/acme/vapp/x", &b"mine"[..])
    );
    // An extension may share its own service's requests, not another's.
    let mut ext = c4(&b, "ext").await;
    let codes = ext
        .sub(
            &[
                "$share/workers/extbus/services/acme/billing/1.0.0/requests",
                "$share/workers/extbus/services/acme/greeter/1.0.0/requests",
                "$share/workers/extbus/services/+/greeter/1.0.0/requests",
            ],
            Q1,
        )
        .await;
    use m4::SubscribeReasonCode::{Failure, Success as Ok4};
    assert_eq!(codes, [Failure, Ok4(Q1), Failure]);
    b.publish("extbus/services/acme/billing/1.0.0/requests", "not yours");
    b.publish("extbus/services/acme/greeter/1.0.0/requests", "yours");
    assert_eq!(&ext.publish().await.payload[..], b"yours");
    let denied: Vec<String> = b.denied().into_iter().map(|(_, t)| t).collect();
    assert_eq!(denied.len(), 6, "{denied:?}");
    assert!(
        denied.contains(&"$share/workers/extbus/services/acme/billing/1.0.0/requests".to_string())
    );
}

#[tokio::test]
async fn qos_retain_and_properties_pass_through() {
    let mut b = bus().await;
    let mut op4 = c4(&b, "op").await;
    let mut op5 = c5(&b, "op").await;
    assert_eq!(
        op4.sub(&["extbus/out/op/#"], Q2).await,
        [m4::SubscribeReasonCode::Success(Q2)]
    );
    assert_eq!(
        op5.sub(&["extbus/out/op/#"], P2).await,
        [p5::SubscribeReasonCode::Success(P2)]
    );
    let mut admin = c4(&b, "admin").await;
    for (qos, done) in [(Q1, "PubAck"), (Q2, "PubComp")] {
        admin
            .send("extbus/out/op/replies", qos, format!("{qos:?}"))
            .await;
        loop {
            let p = format!("{:?}", admin.packet().await);
            if p.starts_with(done) {
                break;
            }
        }
        let p = op4.publish().await;
        // rumqttd delivers at the subscription's QoS, whatever the publisher used.
        assert_eq!(
            (p.qos, p.payload.to_vec()),
            (Q2, format!("{qos:?}").into_bytes())
        );
        assert_eq!(op5.publish().await.payload, format!("{qos:?}").as_bytes());
    }
    // The receiving QoS 2 flows complete (PUBREC, PUBREL, PUBCOMP through the gate).
    loop {
        if let m4::Event::Outgoing(m4::Outgoing::PubComp(_)) = op4.event().await.unwrap() {
            break;
        }
    }
    // Client QoS 2 into its inbox reaches the coordinator once.
    op5.send("extbus/in/op/tasks/query", P2, "{}").await;
    loop {
        if let p5::Packet::PubComp(_) = op5.packet().await {
            break;
        }
    }
    assert_eq!(b.inbound().await.topic, "extbus/in/op/tasks/query");
    // MQTT 5 properties: correlation data in, user properties and correlation data out.
    let props = p5::PublishProperties {
        correlation_data: Some("c-17".into()),
        ..Default::default()
    };
    op5.cl
        .publish_with_properties("extbus/in/op/tasks/query", P1, false, "{}", props)
        .await
        .unwrap();
    let m = b.inbound().await;
    assert_eq!(m.correlation_data.as_deref(), Some(&b"c-17"[..]));
    let props = PublishProps {
        user_properties: vec![("ce_type".into(), "task.blocked".into())],
        correlation_data: Some("c-17".into()),
        content_type: Some("application/json".into()),
    };
    b.tx.publish("extbus/out/op/replies", "{}".into(), props)
        .unwrap();
    let p = op5.publish().await;
    let got = p.properties.unwrap();
    assert_eq!(got.correlation_data.as_deref(), Some(&b"c-17"[..]));
    assert_eq!(
        got.user_properties,
        vec![("ce_type".to_string(), "task.blocked".to_string())]
    );
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(op4.publish().await.payload, "{}".as_bytes());
    // Retained: stored through the gate, delivered to a later subscriber.
    let mut admin5 = c5(&b, "admin").await;
    admin5
        .cl
        .publish("extbus/events/acme/vapp/instantiate", P1, true, "kept")
        .await
        .unwrap();
    assert_eq!(admin5.puback().await, p5::PubAckReason::Success);
    let mut obs = c4(&b, "obs").await;
    obs.sub(&["extbus/events/acme/#"], Q1).await;
    let p = obs.publish().await;
    assert!(p.retain);
    assert_eq!(p.payload, "kept".as_bytes());
}

#[tokio::test]
async fn wills_fire_through_the_gate_and_are_checked() {
    let mut b = bus().await;
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/plat/events",
        "gone-4",
        Q1,
        false,
    ));
    let c = up4(o).await;
    c.task.abort();
    let m = b.inbound().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("extbus/in/plat/events", &b"gone-4"[..])
    );
    let mut o = opts5(b.addr, "plat", Some(SECRET));
    o.set_last_will(p5::LastWill::new(
        "extbus/in/plat/events",
        "gone-5",
        P1,
        false,
        None,
    ));
    let c = up5(o).await;
    c.task.abort();
    assert_eq!(&b.inbound().await.payload[..], b"gone-5");
    // A clean DISCONNECT does not fire the will.
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/plat/events",
        "not-sent",
        Q1,
        false,
    ));
    let mut c = up4(o).await;
    c.cl.disconnect().await.unwrap();
    c.closed().await;
    // A will outside the principal's rights refuses the connection.
    let mut o = opts5(b.addr, "plat", Some(SECRET));
    o.set_last_will(p5::LastWill::new(
        "extbus/in/ext/events",
        "spoof",
        P1,
        false,
        None,
    ));
    let e = C5::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::NotAuthorized)
        ),
        "{e:?}"
    );
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/ext/events",
        "spoof",
        Q1,
        false,
    ));
    let e = C4::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::NotAuthorized)
        ),
        "{e:?}"
    );
    c4(&b, "plat")
        .await
        .send("extbus/in/plat/marker", Q1, "m")
        .await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    assert_eq!(b.denied().len(), 2);
}

#[tokio::test]
async fn extensions_receive_only_their_blocked_tasks() {
    let b = bus().await;
    let mut ext4 = c4(&b, "ext").await;
    let mut ext5 = c5(&b, "ext").await;
    let mut extop = c5(&b, "extop").await;
    assert_eq!(
        ext4.sub(&["extbus/tasks/blocked/#"], Q1).await,
        [m4::SubscribeReasonCode::Success(Q1)]
    );
    assert_eq!(
        ext5.sub(&["extbus/tasks/blocked/+/+"], P2).await,
        [p5::SubscribeReasonCode::Success(P2)]
    );
    assert_eq!(
        extop.sub(&["extbus/tasks/blocked/#"], P1).await,
        [p5::SubscribeReasonCode::Success(P1)]
    );
    // More than the broker's 100 in-flight messages: a dropped notice must still be acked.
    const N: usize = 300;
    for i in 0..N {
        let op = if i % 2 == 0 { "instantiate" } else { "delete" };
        b.publish(&format!("extbus/tasks/blocked/vapp/{op}"), &i.to_string());
    }
    b.publish("extbus/tasks/blocked/vapp", "malformed");
    b.publish("extbus/tasks/blocked/vapp/instantiate", "end");
    let expected: Vec<String> = (0..N)
        .step_by(2)
        .map(|i| i.to_string())
        .chain(["end".into()])
        .collect();
    let mut got4 = Vec::new();
    while got4.len() < expected.len() {
        let p = ext4.publish().await;
        assert_eq!(topic4(&p), "extbus/tasks/blocked/vapp/instantiate");
        got4.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    assert_eq!(got4, expected);
    let mut got5 = Vec::new();
    while got5.len() < expected.len() {
        got5.push(String::from_utf8(ext5.publish().await.payload.to_vec()).unwrap());
    }
    assert_eq!(got5, expected);
    let mut all = 0;
    while all < N + 2 {
        extop.publish().await;
        all += 1;
    }
    // Still connected and acking in order: another notice arrives.
    b.publish("extbus/tasks/blocked/vapp/instantiate", "after");
    assert_eq!(ext4.publish().await.payload, "after".as_bytes());
    assert_eq!(ext5.publish().await.payload, "after".as_bytes());
}

#[tokio::test]
async fn oversized_commands_get_a_notice_not_a_delivery() {
    let mut b = bus().await;
    let big = vec![b'x'; 300 * 1024];
    let mut admin = c5(&b, "admin").await;
    admin.sub(&["extbus/in/#"], P1).await;
    let mut plat = c5(&b, "plat").await;
    let props = p5::PublishProperties {
        correlation_data: Some("c-9".into()),
        ..Default::default()
    };
    plat.cl
        .publish_with_properties("extbus/in/plat/tasks/submit", P1, false, big.clone(), props)
        .await
        .unwrap();
    assert_eq!(
        plat.puback().await,
        p5::PubAckReason::ImplementationSpecificError
    );
    let mut plat4 = c4(&b, "plat").await;
    plat4.send("extbus/in/plat/events", Q2, big.clone()).await;
    loop {
        if let m4::Packet::PubComp(_) = plat4.packet().await {
            break;
        }
    }
    plat4.send("extbus/in/plat/marker", Q1, "m").await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    assert_eq!(topic5(&admin.publish().await), "extbus/in/plat/marker");
    let notices = b.notices();
    assert_eq!(
        notices,
        [
            GateNotice::Oversized {
                principal: "plat".into(),
                suffix: "tasks/submit".into(),
                size: big.len(),
                limit: 256 * 1024,
                correlation_data: Some(b"c-9".to_vec()),
            },
            GateNotice::Oversized {
                principal: "plat".into(),
                suffix: "events".into(),
                size: big.len(),
                limit: 256 * 1024,
                correlation_data: None,
            },
        ]
    );
    // Payloads up to the limit pass.
    plat4
        .send("extbus/in/plat/events", Q1, vec![b'y'; 256 * 1024])
        .await;
    assert_eq!(b.inbound().await.payload.len(), 256 * 1024);
}

#[tokio::test]
async fn topic_aliases_cannot_hide_a_topic() {
    let mut b = bus().await;
    let mut c = c5(&b, "plat").await;
    let alias = |a| p5::PublishProperties {
        topic_alias: Some(a),
        ..Default::default()
    };
    c.cl.publish_with_properties("extbus/in/plat/a", P1, false, "1", alias(1))
        .await
        .unwrap();
    c.cl.publish_with_properties("", P1, false, "2", alias(1))
        .await
        .unwrap();
    for payload in ["1", "2"] {
        let m = b.inbound().await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            ("extbus/in/plat/a", payload.as_bytes())
        );
    }
    // Re-pointing the alias at someone else's inbox is refused...
    c.cl.publish_with_properties("extbus/in/ext/register", P1, false, "3", alias(1))
        .await
        .unwrap();
    loop {
        if let p5::Packet::PubAck(a) = c.packet().await {
            if a.reason == p5::PubAckReason::NotAuthorized {
                break;
            }
        }
    }
    // ...and the alias is gone: using it is a protocol error, not a publish anywhere.
    c.cl.publish_with_properties("", P1, false, "4", alias(1))
        .await
        .unwrap();
    let e = c.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::ProtocolError,
                ..
            })
        ),
        "{e:?}"
    );
    c4(&b, "plat")
        .await
        .send("extbus/in/plat/marker", Q1, "m")
        .await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    assert_eq!(
        b.denied(),
        [("publish", "extbus/in/ext/register".to_string())]
    );
}

/// Writes raw bytes and returns everything read until the gate closes the connection.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("gate kept the connection")
        .ok();
    out
}

fn connect_frame(level: u8, name: &[u8], user: &str, secret: &str) -> Vec<u8> {
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

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let b = bus().await;
    let mut watcher = c5(&b, "admin").await;
    assert!(raw(b.addr, b"GET / HTTP/1.1\r\n\r\n").await.is_empty());
    assert_eq!(
        raw(b.addr, &connect_frame(3, b"MQIsdp", "plat", SECRET)).await,
        [0x20, 2, 0, 1]
    );
    assert_eq!(
        raw(b.addr, &connect_frame(4, b"MQTT", "plat", "bad")).await,
        [0x20, 2, 0, 4]
    );
    // Authenticated, then a PUBLISH announcing 8 MiB: closed without reading it.
    let mut bytes = connect_frame(4, b"MQTT", "plat", SECRET);
    bytes.extend_from_slice(&[0x30, 0x80, 0x80, 0x80, 0x04]);
    assert_eq!(raw(b.addr, &bytes).await, [0x20, 2, 0, 0]);
    // A remaining length over four bytes is malformed: MQTT 5 clients hear why.
    let mut bytes = connect_frame(5, b"MQTT", "plat", SECRET);
    bytes.extend_from_slice(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let out = raw(b.addr, &bytes).await;
    assert!(out.ends_with(&[0xe0, 2, 0x81, 0]), "{out:?}");
    // A client that only opens a socket is not counted as a connection.
    let refused = |r| {
        b.metrics
            .get("extbus_connect_refused_total", &[("reason", r)])
    };
    assert_eq!(
        (refused("not_connect"), refused("unsupported_protocol")),
        (1, 1)
    );
    // Everyone else is unaffected.
    watcher.sub(&["extbus/out/admin/#"], P1).await;
    b.publish("extbus/out/admin/replies", "still here");
    assert_eq!(watcher.publish().await.payload, "still here".as_bytes());
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmDCCAT+gAwIBAgIUf2yfLu9mJyK1FFhyIHmwsDnMu6cwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZXh0YnVzIHRlc3QgQ0EwIBcNMjYxMTIyMDQxMjE2WhgPMjEy
NjEwMjkwNDEyMTZaMBkxFzAVBgNVBAMMDmV4dGJ1cyB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEszk7Z7zqJZC0B9feqIU3xGBbtMcvKnm6yJJJHN7o
LlnkDBM46ZDIQaMOronKXLFxHEZJ3nv3O0Lix65O0YSiaKNjMGEwHQYDVR0OBBYE
FNvY9r73D5+rUZSk1J0emt2TxmM/MB8GA1UdIwQYMBaAFNvY9r73D5+rUZSk1J0e
mt2TxmM/MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49
BAMCA0cAMEQCIF1APSm6Zh2qoHe5UxSCGxwypLaA+nTkJhlfl/9tfWB5AiBGGeYM
6k7SIysKjL0k89/Ea5TEdBz3pnyvwxp5srUAxA==
-----END CERTIFICATE-----
";

/// Signed by `CA_PEM`, for `localhost` and 127.0.0.1; a test-only key.
const LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBwTCCAWegAwIBAgIUbNNT44CA3PGypAhvN5UCiIe8qdEwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOZXh0YnVzIHRlc3QgQ0EwIBcNMjYxMTIyMDQxMjE2WhgPMjEy
NjEwMjkwNDEyMTZaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABClKQfwEJqrEMv9cTXUSFu1kR8C35dKEvAUdoqO9mwkXOhgL
03WLdIwMZuMFwCk/zpoNYLqDYUjAzNNc1qo55LejgY8wgYwwCQYDVR0TBAIwADAO
BgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYIJ
bG9jYWxob3N0hwR/AAABMB0GA1UdDgQWBBSoaXCBm4Pw/8qGesS/BBeOTzr+lTAf
BgNVHSMEGDAWgBTb2Pa+9w+fq1GUpNSdHprdk8ZjPzAKBggqhkjOPQQDAgNIADBF
AiA1VNGAg+ug4AoK4Hluo+ZVcGzBpr0AOLn6URo5RMS9BwIhAL9QuTKbsO/HVn0L
f792/EAfC5JKhIz63Duh/dQpRyKB
-----END CERTIFICATE-----
";

const LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgP65lvER+vCHTTTFU
WPSqj54EW5+Dd5+8MauhZ4m1Y4ShRANCAAQpSkH8BCaqxDL/XE11EhbtZEfAt+XS
hLwFHaKjvZsJFzoYC9N1i3SMDGbjBcApP86aDWC6g2FIwMzTXNaqOeS3
-----END PRIVATE KEY-----
";

#[tokio::test]
async fn tls_clients_pass_the_same_gate() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let files = mqtt::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, LEAF_PEM).unwrap();
    std::fs::write(&files.key, LEAF_KEY).unwrap();
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut b = start(MqttSettings::default(), Some((tls_listener, files))).await;
    let tls_addr = b.handle.tls_local_addr().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(CA_PEM.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let transport =
        || m4::Transport::tls_with_config(m4::TlsConfiguration::Rustls(Arc::new(config.clone())));
    let mut o = opts4(tls_addr, "plat", Some(SECRET));
    o.set_transport(transport());
    let mut c = up4(o).await;
    c.sub(&["extbus/out/plat/#"], Q1).await;
    b.publish("extbus/out/plat/replies", "over tls");
    assert_eq!(c.publish().await.payload, "over tls".as_bytes());
    c.send("extbus/in/ext/x", Q1, "spoof").await;
    c.closed().await;
    let mut o = opts4(tls_addr, "plat", Some("wrong"));
    o.set_transport(transport());
    let e = C4::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
        ),
        "{e:?}"
    );
    assert_eq!(b.denied(), [("publish", "extbus/in/ext/x".to_string())]);
}

#[tokio::test]
async fn stop_closes_clients_and_the_listener() {
    let b = bus().await;
    let mut c = c5(&b, "op").await;
    let mut old = c4(&b, "op").await;
    let Bus {
        addr,
        handle,
        metrics,
        ..
    } = b;
    timeout(WAIT, handle.stop()).await.expect("stop hangs");
    let e = c.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::ServerShuttingDown,
                ..
            })
        ),
        "{e:?}"
    );
    old.closed().await;
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(metrics.get("extbus_connections", &[]), 0);
}

#[tokio::test]
async fn unchecked_mode_relays_without_auth_and_keep_alive_zero_works() {
    let mut b = start(
        MqttSettings {
            gate: false,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut sub = up4(opts4(b.addr, "anyone", Some("anything"))).await;
    sub.sub(&["extbus/in/#"], Q1).await;
    let mut publ = up5(opts5(b.addr, "whoever", None)).await;
    publ.send("extbus/in/someone/x", P1, "unchecked").await;
    assert_eq!(sub.publish().await.payload, "unchecked".as_bytes());
    assert_eq!(b.inbound().await.topic, "extbus/in/someone/x");
    // The gate itself maps keep alive 0 (which rumqttd refuses) to the longest interval.
    let g = bus().await;
    let mut f = connect_frame(4, b"MQTT", "plat", SECRET);
    f[11] = 0;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(&f).await.unwrap();
    let mut ack = [0u8; 4];
    timeout(WAIT, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
}
