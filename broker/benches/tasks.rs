//! Blocking-task (callout) benchmarks against the real binary (figures printed, nothing
//! asserted, every reply checked): end-to-end tasks/s (submit -> notice -> resume -> outcome,
//! durable) with 64 in flight; submit-to-outcome p50/p99 at a steady 1,000 tasks/s, measured
//! from each task's scheduled send time; RSS and store size with N pending tasks and the
//! time from start to serving them. Clients at default socket options give the headline
//! rows, NODELAY clients the second. A submit counts only when its reply is `ok` with state
//! `blocked`, an outcome only when it is `resumed`; 30 s of silence fails the run.
//! Run: `cargo bench -p extbus --bench tasks` (BENCH_TASKS, default 20,000;
//! BENCH_LATENCY_SECS, default 5; BENCH_PENDING_TASKS, default 100,000; BENCH_BUS=external:
//! throughput and latency with extbus in external bus mode on Mosquitto).

mod common;

use common::{
    client, dir_size, env_usize, external_bus, pct, recv_within, Broker, Client, Mosquitto, Sock,
};
use extbus_schema::topics;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// Renotify is set to 10 minutes: at the 30 s default, a million waiting tasks would be
// re-announced at ~33,000 messages/s, which is a deployment choice, not the store's cost.
const CONFIG: &str = r#"
[tasks]
renotify_ms = 600000

[[tasks.rules]]
operation = "vm.create"
extension = "extension"
timeout_ms = 3600000
max_timeout_ms = 3600000

[[tasks.rules]]
operation = "vm.park"
extension = "extension"
timeout_ms = 3600000
max_timeout_ms = 3600000
"#;

const SUBMIT: &str = "extbus/in/platform/tasks/submit";
const OUTCOMES: &str = "extbus/out/platform/outcomes";
const REPLIES: &str = "extbus/out/platform/replies";
/// Longest silence before a run is declared stalled.
const STALL_SECS: u64 = 30;
const IN_FLIGHT: usize = 64;

fn submit(op: &str, rid: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"request_id": rid, "operation": op, "org": "acme", "data": {"cpu": 2}}),
    )
    .unwrap()
}

fn parse(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("a reply that is not JSON")
}

/// Panics unless `v` is an ok `tasks/submit` reply whose task is blocked.
fn check_submit_reply(v: &Value) {
    assert!(
        v["ok"] == true && v["command"] == "tasks/submit" && v["result"]["state"] == "blocked",
        "submit was not stored as a blocked task: {v}"
    );
}

/// The platform, subscribed to its outcomes and replies.
async fn platform(port: u16, sock: Sock) -> Client {
    client(port, "platform", &[OUTCOMES, REPLIES], sock).await
}

/// An extension that resumes every task announced for vm.create and checks each reply.
async fn resumer(port: u16, sock: Sock) -> rumqttc::AsyncClient {
    let (blocked, replies) = (
        topics::tasks_blocked("vm.create"),
        topics::replies("extension"),
    );
    let filters = [blocked.as_str(), replies.as_str()];
    let mut ext = client(port, "extension", &filters, sock).await;
    let handle = ext.client.clone();
    tokio::spawn(async move {
        while let Some((topic, payload)) = ext.rx.recv().await {
            let v = parse(&payload);
            if topic.ends_with("/replies") {
                // A redelivered notice may be resumed twice; the second gets `conflict`.
                assert!(
                    v["ok"] == true || v["error"]["code"] == "conflict",
                    "resume refused: {v}"
                );
                continue;
            }
            let id = v["id"].as_str().expect("a notice without id");
            let topic = topics::inbox("extension", &topics::task_action(id, "resume"));
            if ext
                .client
                .publish(topic, QoS::AtLeastOnce, false, b"{}".to_vec())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    handle
}

/// Checked submit replies and outcomes of one run, whose request ids are `<tag>-<i>`, i < n.
struct Tally {
    tag: String,
    replies: usize,
    outcomes: usize,
    resolved: Vec<bool>,
}

impl Tally {
    fn new(tag: &str, n: usize) -> Tally {
        Tally {
            tag: format!("{tag}-"),
            replies: 0,
            outcomes: 0,
            resolved: vec![false; n],
        }
    }

    fn rid(&self, i: usize) -> String {
        format!("{}{i}", self.tag)
    }

    /// Checks one message; returns the index of a first `resumed` outcome.
    fn take(&mut self, topic: &str, payload: &[u8]) -> Option<usize> {
        let v = parse(payload);
        if topic == REPLIES {
            check_submit_reply(&v);
            self.replies += 1;
            return None;
        }
        assert!(
            v["state"] == "resumed",
            "an outcome that is not resumed: {v}"
        );
        let i = v["request_id"]
            .as_str()
            .and_then(|r| r.strip_prefix(&self.tag))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < self.resolved.len())
            .unwrap_or_else(|| panic!("an outcome for a task never submitted: {v}"));
        // A QoS 1 duplicate is not a second outcome.
        if std::mem::replace(&mut self.resolved[i], true) {
            return None;
        }
        self.outcomes += 1;
        Some(i)
    }

    fn complete(&self) -> bool {
        self.outcomes == self.resolved.len() && self.replies >= self.resolved.len()
    }
}

async fn throughput(b: &Broker, sock: Sock, total: usize) {
    let ext = resumer(b.mqtt, sock).await;
    let mut p = platform(b.mqtt, sock).await;
    let mut t = Tally::new(&format!("t{sock:?}"), total);
    let (b0, c0) = (b.cpu_secs(), common::cpu_secs("self"));
    let start = Instant::now();
    let mut sent = 0;
    while !t.complete() {
        while sent < total && sent - t.outcomes < IN_FLIGHT {
            let body = submit("vm.create", &t.rid(sent));
            p.client
                .publish(SUBMIT, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
            sent += 1;
        }
        let what = format!("throughput ({} outcomes of {total})", t.outcomes);
        let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, &what).await;
        t.take(&topic, &payload);
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "throughput, {}: {total} tasks, {IN_FLIGHT} in flight, durable: {:.0} tasks/s (target 20,000)",
        sock.label(),
        total as f64 / s
    );
    let cpu = common::CpuShare::of(b.cpu_secs() - b0, common::cpu_secs("self") - c0, total);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "  CPU per callout, {}: broker {:.0} us, bench clients (platform and extension) {:.0} us; \
         at 20,000 tasks/s the clients alone would need {:.2} of this machine's {cores} cores",
        sock.label(),
        cpu.server_us,
        cpu.clients_us,
        cpu.clients_us * 20_000.0 / 1e6
    );
    let _ = (p.client.disconnect().await, ext.disconnect().await);
}

/// Submits at `rate` for `secs`; latency runs from each task's scheduled send time, so a
/// sender held up by the broker shows in the figures instead of hiding them.
async fn latency(b: &Broker, sock: Sock, rate: usize, secs: usize) {
    let ext = resumer(b.mqtt, sock).await;
    let mut p = platform(b.mqtt, sock).await;
    let total = rate * secs;
    let mut t = Tally::new(&format!("l{sock:?}"), total);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let (sender, prefix) = (p.client.clone(), t.tag.clone());
    let send = tokio::spawn(async move {
        for i in 0..total {
            tokio::time::sleep_until(start + period * i as u32).await;
            let body = submit("vm.create", &format!("{prefix}{i}"));
            sender
                .publish(SUBMIT, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
    });
    let mut samples = Vec::with_capacity(total);
    while !t.complete() {
        let what = format!("latency ({} outcomes of {total})", t.outcomes);
        let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, &what).await;
        if let Some(i) = t.take(&topic, &payload) {
            let scheduled = (start + period * i as u32).into_std();
            samples.push(scheduled.elapsed().as_micros() as u64);
        }
    }
    send.await.unwrap();
    samples.sort_unstable();
    println!(
        "latency at {rate} tasks/s for {secs} s, {}: submit-to-outcome p50 {:.2} ms, p99 {:.2} ms (target p99 < 5 ms), max {:.2} ms",
        sock.label(),
        pct(&samples, 50.0),
        pct(&samples, 99.0),
        pct(&samples, 100.0)
    );
    let _ = (p.client.disconnect().await, ext.disconnect().await);
}

/// Stores `n` tasks that stay blocked (nobody resumes vm.park), 512 submits in flight.
async fn fill_pending(b: &Broker, n: usize) {
    let mut p = client(b.mqtt, "platform", &[REPLIES], Sock::Default).await;
    let start = Instant::now();
    let window = 512;
    let (mut sent, mut stored) = (0, 0);
    let mut last_report = Instant::now();
    while stored < n {
        while sent < n && sent - stored < window {
            let body = submit("vm.park", &format!("p-{sent}"));
            p.client
                .publish(SUBMIT, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
            sent += 1;
        }
        let what = format!("fill ({stored} of {n} stored)");
        let (_, payload) = recv_within(&mut p.rx, STALL_SECS, &what).await;
        check_submit_reply(&parse(&payload));
        stored += 1;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  ... {stored} pending tasks stored ({:.0}/s)",
                stored as f64 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    println!(
        "fill, default sockets: {n} blocked tasks stored in {:.1} s ({:.0}/s, 512 in flight)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
    let _ = p.client.disconnect().await;
}

/// Time until an operator's query for a blocked task is answered with one.
async fn first_reply(port: u16) -> Duration {
    let t = Instant::now();
    let mut p = client(
        port,
        "operator",
        &[topics::replies("operator").as_str()],
        Sock::Default,
    )
    .await;
    let query = br#"{"state":"blocked","limit":1}"#.to_vec();
    p.client
        .publish(
            topics::inbox("operator", "tasks/query"),
            QoS::AtLeastOnce,
            false,
            query,
        )
        .await
        .unwrap();
    let (_, payload) = recv_within(&mut p.rx, 120, "query after restart").await;
    let v = parse(&payload);
    assert!(
        v["ok"] == true && v["result"]["tasks"][0]["state"] == "blocked",
        "the restarted broker did not list a blocked task: {v}"
    );
    let _ = p.client.disconnect().await;
    t.elapsed()
}

fn main() {
    let tasks = env_usize("BENCH_TASKS", 20_000);
    let latency_secs = env_usize("BENCH_LATENCY_SECS", 5);
    let pending = env_usize("BENCH_PENDING_TASKS", 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let bus = external_bus().then(|| Mosquitto::start().expect("BENCH_BUS=external needs Mosquitto"));
        let b = match &bus {
            Some(m) => {
                println!("extbus in external bus mode on Mosquitto");
                Broker::start_external(&dir.path().join("a"), CONFIG, m).await
            }
            None => Broker::start(&dir.path().join("a"), CONFIG),
        };
        for sock in Sock::BOTH {
            throughput(&b, sock, tasks).await;
        }
        for sock in Sock::BOTH {
            latency(&b, sock, 1000, latency_secs).await;
        }
        drop(b);
        if bus.is_some() {
            // Pending tasks, RSS and restart are the store's figures, the same on either bus.
            return;
        }

        let data = dir.path().join("b");
        let b = Broker::start(&data, CONFIG);
        fill_pending(&b, pending).await;
        // Let the last flush and background work settle before reading RSS.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let store = dir_size(&data) as f64 / (1 << 20) as f64;
        println!(
            "with {pending} pending: RSS {:.0} MiB (target < 1024 at 1,000,000), store {store:.0} MiB",
            b.rss_mib()
        );
        drop(b);
        let t = Instant::now();
        let b = Broker::start(&data, CONFIG);
        let served = t.elapsed() + first_reply(b.mqtt).await;
        println!(
            "start to serving with {pending} pending: {:.2} s (target < 10 s); RSS after start {:.0} MiB",
            served.as_secs_f64(),
            b.rss_mib()
        );
    });
}
