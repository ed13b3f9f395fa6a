//! Audit-event ingest beside Mosquitto in the same run (figures printed, nothing asserted):
//! 1 and 4 publishers -> 4 subscribers, QoS 1, ~300-byte drafts, counted at the subscribers,
//! which must each receive every event. On extbus the `platform` publishes drafts to its
//! inbox and the events (validated, stamped with `seq`, persisted before fan-out) reach four
//! observers on `extbus/events/acme/#`; on Mosquitto the same drafts are plain QoS 1 fan-out.
//! Clients at default socket options give the headline rows, NODELAY clients the second.
//! Run: `cargo bench -p extbus --bench events` (BENCH_EVENTS, default 150,000; BENCH_WINDOW,
//! how far publishers may run ahead of the slowest subscriber, default 10,000; BENCH_BUS=
//! external runs extbus in external bus mode on a second Mosquitto instead of embedded).

mod common;

use common::{
    client, env_usize, external_bus, recv_within, Broker, CpuShare, Figure, Mosquitto, Sock, Table,
};
use rumqttc::QoS;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const SUBSCRIBERS: usize = 4;
const FILTER: &str = "extbus/events/acme/#";
/// Longest silence at a subscriber before the run is declared stalled.
const STALL_SECS: u64 = 30;

/// A draft of about 300 bytes, carrying its index as `bench_n`.
fn draft(i: usize) -> Vec<u8> {
    let pad = "x".repeat(150);
    format!(r#"{{"type":"vm.create","org":"acme","subject":"urn:acme:vm:{i}","outcome":"succeeded","data":{{"bench_n":{i},"pad":"{pad}"}}}}"#).into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The index a received message carries.
fn bench_n(p: &[u8]) -> usize {
    let at = find(p, b"\"bench_n\":").expect("a message without bench_n") + 10;
    let digits = p[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&p[at..at + digits])
        .unwrap()
        .parse()
        .unwrap()
}

/// Where a run publishes and whom it connects as.
struct Target {
    port: u16,
    publisher: &'static str,
    subscriber: &'static str,
    topic: &'static str,
    /// Events must carry the broker's sequence number.
    stamped: bool,
}

/// Publishes `total` drafts from `publishers` clients; returns events/s once every
/// subscriber holds every event.
async fn run(t: &Target, sock: Sock, publishers: usize, total: usize, window: usize) -> f64 {
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subs.push(client(t.port, t.subscriber, &[FILTER], sock).await);
    }
    let mut pubs = Vec::new();
    for _ in 0..publishers {
        pubs.push(client(t.port, t.publisher, &[], sock).await);
    }
    let pace = Arc::new(common::Window::new(SUBSCRIBERS, window));
    let sent = Arc::new(AtomicUsize::new(0));
    let per = total / publishers;
    let total = per * publishers;
    let start = Instant::now();
    let mut senders = Vec::new();
    for (k, p) in pubs.iter().enumerate() {
        let (c, topic) = (p.client.clone(), t.topic);
        let (pace, sent) = (pace.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            for i in k * per..(k + 1) * per {
                pace.wait(sent.fetch_add(1, Ordering::Relaxed)).await;
                c.publish(topic, QoS::AtLeastOnce, false, draft(i))
                    .await
                    .unwrap();
            }
        }));
    }
    let mut waiters = Vec::new();
    for (r, mut s) in subs.into_iter().enumerate() {
        let (pace, stamped) = (pace.clone(), t.stamped);
        waiters.push(tokio::spawn(async move {
            let mut seen = vec![false; total];
            let mut got = 0;
            while got < total {
                let what = format!("subscriber {r} (holding {got} of {total})");
                let (_, p) = recv_within(&mut s.rx, STALL_SECS, &what).await;
                assert!(
                    !stamped || find(&p, b"\"seq\":").is_some(),
                    "an event without seq"
                );
                let i = bench_n(&p);
                assert!(i < total, "event {i} was never published");
                // A QoS 1 duplicate is not a second event.
                if !std::mem::replace(&mut seen[i], true) {
                    got += 1;
                    pace.received(r);
                }
            }
            let _ = s.client.disconnect().await;
        }));
    }
    for w in waiters {
        w.await.expect("a subscriber failed");
    }
    let secs = start.elapsed().as_secs_f64();
    for s in senders {
        s.await.unwrap();
    }
    for p in pubs {
        let _ = p.client.disconnect().await;
    }
    total as f64 / secs
}

fn main() {
    let events = env_usize("BENCH_EVENTS", 150_000);
    let window = env_usize("BENCH_WINDOW", 10_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let config = format!("[events]\nretention_max_count = {}\n", events * 2);
        let mosquitto = Mosquitto::start();
        // extbus's own Mosquitto in external mode: the plain-Mosquitto column stays unshared.
        let bus = if external_bus() {
            Some(Mosquitto::start().expect("BENCH_BUS=external needs Mosquitto"))
        } else {
            None
        };
        let mut table = Table::default();
        let mut cpu_rows = Vec::new();
        let mut run_no = 0;
        for sock in Sock::BOTH {
            for publishers in [1, 4] {
                // A fresh broker per run: each starts with an empty log.
                run_no += 1;
                let data = dir.path().join(format!("e{run_no}"));
                let b = match &bus {
                    Some(m) => Broker::start_external(&data, &config, m).await,
                    None => Broker::start(&data, &config),
                };
                let t = Target {
                    port: b.mqtt,
                    publisher: "platform",
                    subscriber: "observer",
                    topic: "extbus/in/platform/events",
                    stamped: true,
                };
                let (b0, c0) = (b.cpu_secs(), common::cpu_secs("self"));
                let e = run(&t, sock, publishers, events, window).await;
                let e_cpu = CpuShare::of(b.cpu_secs() - b0, common::cpu_secs("self") - c0, events);
                drop(b);
                let m = match &mosquitto {
                    Some(m) => {
                        let t = Target {
                            port: m.port,
                            publisher: "bench-pub",
                            subscriber: "bench-sub",
                            topic: "extbus/events/acme/vm/create",
                            stamped: false,
                        };
                        let (m0, c0) = (m.cpu_secs(), common::cpu_secs("self"));
                        let r = run(&t, sock, publishers, events, window).await;
                        let cpu =
                            CpuShare::of(m.cpu_secs() - m0, common::cpu_secs("self") - c0, events);
                        cpu_rows.push(format!(
                            "| {publishers} -> {SUBSCRIBERS}, {} | {} | {} |",
                            sock.label(),
                            e_cpu.show(),
                            cpu.show()
                        ));
                        Some(r)
                    }
                    None => {
                        cpu_rows.push(format!(
                            "| {publishers} -> {SUBSCRIBERS}, {} | {} | - |",
                            sock.label(),
                            e_cpu.show()
                        ));
                        None
                    }
                };
                table.add(
                    format!("{publishers} -> {SUBSCRIBERS}, {}", sock.label()),
                    Figure::Rate(e),
                    m.map(Figure::Rate),
                );
            }
        }
        table.print(&format!(
            "events/s, {events} x ~300 B drafts, QoS 1, counted at {SUBSCRIBERS} subscribers \
             (each receives all), publisher window {window}; extbus durable, {} bus",
            if bus.is_some() {
                "external (Mosquitto)"
            } else {
                "embedded"
            }
        ));
        // What each event cost the machine's cores: the broker's process, and the bench's
        // clients (publishers and subscribers, one process) in the same run.
        println!(
            "\nCPU per event (delivered to all {SUBSCRIBERS}), broker process and bench clients"
        );
        println!("| case | extbus | Mosquitto |");
        println!("|---|---|---|");
        for r in cpu_rows {
            println!("{r}");
        }
    });
}
