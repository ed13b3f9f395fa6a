//! Gate throughput: QoS 1, one publisher, one subscriber, 200-byte payloads, through the
//! gate and through the unchecked relay (`gate: false`), for 3.1.1 and MQTT 5 clients.
//! Prints messages per second and the gate/unchecked ratio. Run with
//! `cargo bench -p extbus --bench gate_throughput` (`GATE_BENCH_N` overrides the count,
//! `GATE_BENCH_VERBOSE=1` prints every round, `GATE_BENCH_LOG=<filter>` logs).

use extbus::metrics::Metrics;
use extbus::mqtt::{self, MqttSettings};
use extbus::principals::Principals;
use extbus::registry::Registry;
use extbus_schema::Role;
use rumqttc::v5 as m5;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const PAYLOAD: usize = 200;
const ROUNDS: usize = 7;
const SECRET: &str = "bench-secret-0123456789";
const TOPIC: &str = "extbus/in/bench-pub/events";
const FILTER: &str = "extbus/in/bench-pub/#";

#[derive(Clone, Copy, PartialEq)]
enum Version {
    V4,
    V5,
}

/// Starts a gate (checked or not) and returns its address; it runs until the process ends.
async fn start(principals: Arc<Principals>, gate: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (notices, mut drain) = mpsc::channel(16);
    tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let settings = MqttSettings {
        gate,
        ..Default::default()
    };
    let registry = Arc::new(Registry::new());
    let metrics = Arc::new(Metrics::new());
    let (handle, _tx, _rx) = mqtt::start(
        settings,
        listener,
        None,
        extbus::auth::Verifier::with_defaults(principals, metrics.clone()),
        registry,
        metrics,
        notices,
    )
    .await
    .expect("start the bus");
    std::mem::forget(handle);
    addr
}

/// Runs one publisher -> subscriber transfer of `n` messages; returns messages per second.
async fn run(addr: SocketAddr, label: &str, v: Version, n: usize, round: usize) -> f64 {
    let id = |who: &str| format!("{who}-{round}-{}", if v == Version::V4 { 4 } else { 5 });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let got = Arc::new(Pace::default());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let payload = vec![0x5a; PAYLOAD];
    let mut tasks = Vec::new();
    match v {
        Version::V4 => {
            let opts = |who: &str| {
                let mut o = rumqttc::MqttOptions::new(id(who), "127.0.0.1", addr.port());
                o.set_credentials(who, SECRET)
                    .set_keep_alive(Duration::from_secs(60))
                    .set_inflight(100);
                o
            };
            let (sub, mut el) = rumqttc::AsyncClient::new(opts("bench-sub"), 1024);
            sub.subscribe(FILTER, rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap();
            let seen = got.clone();
            tasks.push(tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut done = Some(done_tx);
                loop {
                    let e = match el.poll().await {
                        Ok(e) => e,
                        Err(e) => {
                            if seen.got.load(Ordering::Relaxed) < n {
                                eprintln!("gate_throughput: subscriber: {e}");
                            }
                            break;
                        }
                    };
                    match e {
                        rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                            ready.take().map(|r| r.send(()));
                        }
                        rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) => {
                            let got = seen.received();
                            if got == n {
                                done.take().map(|d| d.send(Instant::now()));
                            }
                        }
                        _ => {}
                    }
                }
            }));
            ready_rx.await.unwrap();
            let (publ, mut el) = rumqttc::AsyncClient::new(opts("bench-pub"), 1024);
            tasks.push(tokio::spawn(
                async move { while el.poll().await.is_ok() {} },
            ));
            let start = Instant::now();
            let p2 = publ.clone();
            let pace = got.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n {
                    pace.wait(i).await;
                    let p = payload.clone();
                    p2.publish(TOPIC, rumqttc::QoS::AtLeastOnce, false, p)
                        .await
                        .unwrap();
                }
            }));
            let end = wait(done_rx, &got, n, label).await;
            let _ = (publ.disconnect().await, sub.disconnect().await);
            finish(tasks).await;
            n as f64 / (end - start).as_secs_f64()
        }
        Version::V5 => {
            let opts = |who: &str| {
                let mut o = m5::MqttOptions::new(id(who), "127.0.0.1", addr.port());
                o.set_credentials(who, SECRET)
                    .set_keep_alive(Duration::from_secs(60));
                o
            };
            let (sub, mut el) = m5::AsyncClient::new(opts("bench-sub"), 1024);
            sub.subscribe(FILTER, m5::mqttbytes::QoS::AtLeastOnce)
                .await
                .unwrap();
            let seen = got.clone();
            tasks.push(tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut done = Some(done_tx);
                loop {
                    use m5::mqttbytes::v5::Packet;
                    let e = match el.poll().await {
                        Ok(e) => e,
                        Err(e) => {
                            if seen.got.load(Ordering::Relaxed) < n {
                                eprintln!("gate_throughput: subscriber: {e}");
                            }
                            break;
                        }
                    };
                    match e {
                        m5::Event::Incoming(Packet::SubAck(_)) => {
                            ready.take().map(|r| r.send(()));
                        }
                        m5::Event::Incoming(Packet::Publish(_)) => {
                            let got = seen.received();
                            if got == n {
                                done.take().map(|d| d.send(Instant::now()));
                            }
                        }
                        _ => {}
                    }
                }
            }));
            ready_rx.await.unwrap();
            let (publ, mut el) = m5::AsyncClient::new(opts("bench-pub"), 1024);
            tasks.push(tokio::spawn(
                async move { while el.poll().await.is_ok() {} },
            ));
            let start = Instant::now();
            let p2 = publ.clone();
            let pace = got.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n {
                    pace.wait(i).await;
                    let p = payload.clone();
                    let q = m5::mqttbytes::QoS::AtLeastOnce;
                    p2.publish(TOPIC, q, false, p).await.unwrap();
                }
            }));
            let end = wait(done_rx, &got, n, label).await;
            let _ = (publ.disconnect().await, sub.disconnect().await);
            finish(tasks).await;
            n as f64 / (end - start).as_secs_f64()
        }
    }
}

/// Keeps the publisher at most `WINDOW` messages ahead of the subscriber: rumqttd does not
/// slow a publisher down for a slow subscriber, it drops what falls out of its log.
#[derive(Default)]
struct Pace {
    got: AtomicUsize,
    more: tokio::sync::Notify,
}

const WINDOW: usize = 20_000;

impl Pace {
    /// Counts one received message; returns the count.
    fn received(&self) -> usize {
        let got = self.got.fetch_add(1, Ordering::Relaxed) + 1;
        if got.is_multiple_of(1000) {
            self.more.notify_waiters();
        }
        got
    }

    async fn wait(&self, sent: usize) {
        loop {
            let more = self.more.notified();
            if sent < self.got.load(Ordering::Relaxed) + WINDOW {
                return;
            }
            more.await;
        }
    }
}

/// Waits for the last message; a transfer that stalls ends the benchmark with a message.
async fn wait(
    done: tokio::sync::oneshot::Receiver<Instant>,
    got: &Pace,
    n: usize,
    label: &str,
) -> Instant {
    match tokio::time::timeout(Duration::from_secs(120), done).await {
        Ok(Ok(t)) => t,
        _ => {
            let got = got.got.load(Ordering::Relaxed);
            eprintln!("gate_throughput: {label}: transfer stalled after {got} of {n} messages");
            std::process::exit(1);
        }
    }
}

/// Gives the clients a moment to send their DISCONNECT, then ends their event loops.
async fn finish(tasks: Vec<tokio::task::JoinHandle<()>>) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    for t in tasks {
        t.abort();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(filter) = std::env::var("GATE_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let n: usize = std::env::var("GATE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let principals = Arc::new(Principals::open(dir.path()).unwrap());
        for (name, role) in [("bench-pub", Role::Platform), ("bench-sub", Role::Admin)] {
            principals
                .add(name, vec![role], vec![], Some(SECRET.into()))
                .unwrap();
        }
        let gated = start(principals.clone(), true).await;
        let unchecked = start(principals, false).await;
        println!(
            "gate_throughput: QoS 1, 1 publisher -> 1 subscriber, {PAYLOAD}-byte payloads, \
             {n} messages, median of {ROUNDS} alternating rounds"
        );
        for v in [Version::V4, Version::V5] {
            let (mut with, mut without) = (Vec::new(), Vec::new());
            // One warm-up transfer each, not counted.
            run(gated, "gate", v, n / 5, 100).await;
            run(unchecked, "unchecked", v, n / 5, 100).await;
            for round in 0..ROUNDS {
                with.push(run(gated, "gate", v, n, round).await);
                without.push(run(unchecked, "unchecked", v, n, round).await);
            }
            if std::env::var_os("GATE_BENCH_VERBOSE").is_some() {
                println!("  rounds: gate {with:.0?}  unchecked {without:.0?}");
            }
            let (w, wo) = (median(with), median(without));
            let name = if v == Version::V4 {
                "MQTT 3.1.1"
            } else {
                "MQTT 5    "
            };
            println!(
                "{name}  gate: {w:>9.0} msg/s   unchecked relay: {wo:>9.0} msg/s   ratio {:.2}",
                w / wo
            );
        }
    });
}
