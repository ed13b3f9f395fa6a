//! The MQTT gate over real parts: embedded rumqttd, the gate on 127.0.0.1:0, rumqttc 3.1.1 and
//! MQTT 5 clients, argon2 principals. This file is the harness; scenarios live in `gate/`:
//! `access` (auth, role table, spoofing, orgs, shared subs, aliases), `delivery` (QoS, retain,
//! properties, wills, blocked tasks, oversized, unsubscribe), `transport` (bad frames, TLS,
//! shutdown, unchecked relay), `caps` (subscription caps), `frames` (UNSUBACKs counted on a
//! raw socket). Every wait is bounded.

#[path = "gate/access.rs"]
mod access;
#[path = "gate/caps.rs"]
mod caps;
#[path = "gate/clients.rs"]
mod clients;
#[path = "gate/delivery.rs"]
mod delivery;
#[path = "gate/frames.rs"]
mod frames;
#[path = "gate/transport.rs"]
mod transport;

use clients::*;
use extbus::auth::Verifier;
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
use tokio::net::TcpListener;
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
        Verifier::with_defaults(principals(), metrics.clone()),
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
