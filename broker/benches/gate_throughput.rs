//! Plain MQTT through the gate, beside Mosquitto in the same run (figures printed, nothing
//! asserted): request/response (a requester publishes QoS 1 on `bench/rr/req` with 64 in
//! flight, a responder echoes each on `bench/rr/resp`; req/s, p50, p99) and a one-way QoS 1
//! stream (1 publisher -> 1 subscriber, msg/s), 200-byte payloads. On extbus both clients
//! are the `admin` principal on ordinary topics, which the gate checks and relays to rumqttd.
//! Clients at default socket options give the headline rows, NODELAY clients the second.
//! Run: `cargo bench -p extbus --bench gate_throughput` (GATE_BENCH_REQUESTS, default 20,000;
//! GATE_BENCH_N stream messages, default 50,000; BENCH_WINDOW, default 10,000).

mod common;

use common::{client, env_usize, pct, recv_within, Broker, Figure, Mosquitto, Sock, Table};
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Instant;

const PAYLOAD: usize = 200;
const IN_FLIGHT: usize = 64;
/// Longest silence before a transfer is declared stalled.
const STALL_SECS: u64 = 30;

/// A 200-byte payload that starts with its index.
fn payload(i: usize) -> Vec<u8> {
    let mut p = vec![0x5a; PAYLOAD];
    p[..8].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn index(p: &[u8]) -> usize {
    assert!(
        p.len() == PAYLOAD,
        "a payload of {} bytes came back",
        p.len()
    );
    u64::from_be_bytes(p[..8].try_into().unwrap()) as usize
}

struct RoundTrips {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `n` requests, `IN_FLIGHT` at a time; every one must be answered exactly once.
async fn request_response(port: u16, sock: Sock, n: usize) -> RoundTrips {
    let mut responder = client(port, "admin", &["bench/rr/req"], sock).await;
    let echo = responder.client.clone();
    let responder_client = responder.client.clone();
    let echoing = tokio::spawn(async move {
        while let Some((_, p)) = responder.rx.recv().await {
            if echo
                .publish("bench/rr/resp", QoS::AtLeastOnce, false, p)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut req = client(port, "admin", &["bench/rr/resp"], sock).await;
    let mut sent_at: Vec<Option<Instant>> = vec![None; n];
    let mut answered = vec![false; n];
    let mut samples = Vec::with_capacity(n);
    let (mut sent, mut done) = (0, 0);
    let start = Instant::now();
    while done < n {
        while sent < n && sent - done < IN_FLIGHT {
            sent_at[sent] = Some(Instant::now());
            req.client
                .publish("bench/rr/req", QoS::AtLeastOnce, false, payload(sent))
                .await
                .unwrap();
            sent += 1;
        }
        let (_, p) = recv_within(&mut req.rx, STALL_SECS, "request/response").await;
        let i = index(&p);
        assert!(i < sent, "an answer to request {i}, which was never sent");
        // A QoS 1 duplicate is not a second answer.
        if !std::mem::replace(&mut answered[i], true) {
            samples.push(sent_at[i].unwrap().elapsed().as_micros() as u64);
            done += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = (
        req.client.disconnect().await,
        responder_client.disconnect().await,
    );
    echoing.abort();
    samples.sort_unstable();
    RoundTrips {
        per_sec: n as f64 / secs,
        p50_ms: pct(&samples, 50.0),
        p99_ms: pct(&samples, 99.0),
    }
}

/// `n` messages one way, the publisher at most `window` ahead; returns msg/s counted at the
/// subscriber once it has every message.
async fn stream(port: u16, sock: Sock, n: usize, window: usize) -> f64 {
    let mut sub = client(port, "admin", &["bench/stream"], sock).await;
    let publ = client(port, "admin", &[], sock).await;
    let pace = Arc::new(common::Window::new(1, window));
    let (p2, pace2) = (publ.client.clone(), pace.clone());
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            pace2.wait(i).await;
            p2.publish("bench/stream", QoS::AtLeastOnce, false, payload(i))
                .await
                .unwrap();
        }
    });
    let mut seen = vec![false; n];
    let mut got = 0;
    while got < n {
        let (_, p) = recv_within(&mut sub.rx, STALL_SECS, "stream").await;
        let i = index(&p);
        assert!(i < n, "message {i} was never sent");
        if !std::mem::replace(&mut seen[i], true) {
            got += 1;
            pace.received(0);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    sender.await.unwrap();
    let _ = (
        publ.client.disconnect().await,
        sub.client.disconnect().await,
    );
    n as f64 / secs
}

fn main() {
    let requests = env_usize("GATE_BENCH_REQUESTS", 20_000);
    let n = env_usize("GATE_BENCH_N", 50_000);
    let window = env_usize("BENCH_WINDOW", 10_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let broker = Broker::start(&dir.path().join("data"), "");
        let mosquitto = Mosquitto::start();
        let mut rr = Table::default();
        let mut st = Table::default();
        for sock in Sock::BOTH {
            // A short warm-up on each broker, not counted.
            request_response(broker.mqtt, sock, 500).await;
            if let Some(m) = &mosquitto {
                request_response(m.port, sock, 500).await;
            }
            let e = request_response(broker.mqtt, sock, requests).await;
            let m = match &mosquitto {
                Some(m) => Some(request_response(m.port, sock, requests).await),
                None => None,
            };
            let l = sock.label();
            rr.add(format!("req/s, {l}"), Figure::Rate(e.per_sec), m.as_ref().map(|m| Figure::Rate(m.per_sec)));
            rr.add(format!("p50, {l}"), Figure::Millis(e.p50_ms), m.as_ref().map(|m| Figure::Millis(m.p50_ms)));
            rr.add(format!("p99, {l}"), Figure::Millis(e.p99_ms), m.as_ref().map(|m| Figure::Millis(m.p99_ms)));

            let e = stream(broker.mqtt, sock, n, window).await;
            let m = match &mosquitto {
                Some(m) => Some(stream(m.port, sock, n, window).await),
                None => None,
            };
            st.add(format!("msg/s, {l}"), Figure::Rate(e), m.map(Figure::Rate));
        }
        rr.print(&format!(
            "request/response, QoS 1, {IN_FLIGHT} in flight, {PAYLOAD} B, {requests} requests (admin on bench/... topics on extbus)"
        ));
        st.print(&format!(
            "stream, QoS 1, 1 publisher -> 1 subscriber, {PAYLOAD} B, {n} messages, publisher window {window}"
        ));
        println!(
            "RSS after the run: extbus {:.1} MiB{}",
            broker.rss_mib(),
            mosquitto
                .as_ref()
                .map_or(String::new(), |m| format!(", Mosquitto {:.1} MiB", m.rss_mib()))
        );
    });
}
