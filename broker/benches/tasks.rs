//! Blocking-task benchmarks against the real binary (figures printed, nothing asserted):
//! durable end-to-end tasks/s with one extension resuming everything and 64 in flight;
//! submit-to-outcome p50/p99 at a steady 1,000 tasks/s; RSS and store size with N pending
//! tasks (BENCH_PENDING_TASKS, default 1,000,000) and the time from start to serving them.
//! Run: `cargo bench -p extbus --bench tasks`.

mod common;

use common::{client, dir_size, pct, Broker};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::HashMap;
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

[events]
retention_max_count = 200000
"#;

fn submit(op: &str, rid: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"request_id": rid, "operation": op, "org": "acme", "data": {"cpu": 2}}),
    )
    .unwrap()
}

/// Resumes every task announced on the blocked topic for vm.create.
async fn resumer(port: u16) {
    let mut ext = client(port, "extension", &["extbus/tasks/blocked/vm/create"]).await;
    tokio::spawn(async move {
        while let Some((_, payload)) = ext.rx.recv().await {
            let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if let Some(id) = v["id"].as_str() {
                let _ = ext
                    .client
                    .publish(
                        format!("extbus/in/extension/tasks/{id}/resume"),
                        QoS::AtLeastOnce,
                        false,
                        b"{}".to_vec(),
                    )
                    .await;
            }
        }
    });
}

async fn throughput(b: &Broker, total: usize, in_flight: usize) {
    resumer(b.mqtt).await;
    let mut p = client(b.mqtt, "platform", &["extbus/out/platform/outcomes"]).await;
    let start = Instant::now();
    let mut sent = 0;
    let mut done = 0;
    while sent < in_flight.min(total) {
        p.client
            .publish(
                "extbus/in/platform/tasks/submit",
                QoS::AtLeastOnce,
                false,
                submit("vm.create", &format!("t-{sent}")),
            )
            .await
            .unwrap();
        sent += 1;
    }
    while done < total {
        match tokio::time::timeout(Duration::from_secs(30), p.rx.recv()).await {
            Ok(Some(_)) => {
                done += 1;
                if sent < total {
                    p.client
                        .publish(
                            "extbus/in/platform/tasks/submit",
                            QoS::AtLeastOnce,
                            false,
                            submit("vm.create", &format!("t-{sent}")),
                        )
                        .await
                        .unwrap();
                    sent += 1;
                }
            }
            _ => {
                println!("throughput: stalled after {done} outcomes");
                return;
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!("throughput: {total} tasks (submit, block, resume, outcome), {in_flight} in flight, durable: {:.0} tasks/s (target 20000)", total as f64 / s);
}

async fn latency(b: &Broker, rate: u64, secs: u64) {
    let mut p = client(b.mqtt, "platform", &["extbus/out/platform/outcomes"]).await;
    let total = (rate * secs) as usize;
    let sender = p.client.clone();
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, Instant>::new()));
    let s2 = sent_at.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        for i in 0..total {
            tick.tick().await;
            let rid = format!("l-{i}");
            s2.lock().unwrap().insert(rid.clone(), Instant::now());
            sender
                .publish(
                    "extbus/in/platform/tasks/submit",
                    QoS::AtLeastOnce,
                    false,
                    submit("vm.create", &rid),
                )
                .await
                .unwrap();
        }
    });
    let mut samples = Vec::with_capacity(total);
    while samples.len() < total {
        match tokio::time::timeout(Duration::from_secs(30), p.rx.recv()).await {
            Ok(Some((_, payload))) => {
                let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                let rid = v["request_id"].as_str().unwrap_or_default().to_string();
                if let Some(t) = sent_at.lock().unwrap().remove(&rid) {
                    samples.push(t.elapsed().as_micros() as u64);
                }
            }
            _ => break,
        }
    }
    samples.sort_unstable();
    println!(
        "latency at {rate} tasks/s for {secs}s: {} samples, submit-to-outcome p50 {:.2} ms, p99 {:.2} ms (target p99 < 5 ms), max {:.2} ms",
        samples.len(),
        pct(&samples, 50.0),
        pct(&samples, 99.0),
        pct(&samples, 100.0)
    );
}

async fn fill_pending(b: &Broker, n: usize) {
    let mut p = client(b.mqtt, "platform", &["extbus/out/platform/replies"]).await;
    let start = Instant::now();
    let window = 512;
    let mut sent = 0;
    let mut acked = 0;
    let mut last_report = Instant::now();
    while acked < n {
        while sent < n && sent - acked < window {
            p.client
                .publish(
                    "extbus/in/platform/tasks/submit",
                    QoS::AtLeastOnce,
                    false,
                    submit("vm.park", &format!("p-{sent}")),
                )
                .await
                .unwrap();
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(60), p.rx.recv()).await {
            Ok(Some(_)) => acked += 1,
            _ => {
                println!("fill: stalled at {acked}");
                return;
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  ... {acked} pending tasks stored ({:.0}/s)",
                acked as f64 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    println!(
        "fill: {n} pending tasks stored in {:.1}s ({:.0}/s)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
}

async fn first_reply(port: u16) -> Duration {
    let t = Instant::now();
    let mut p = client(port, "operator", &["extbus/out/operator/replies"]).await;
    p.client
        .publish(
            "extbus/in/operator/tasks/query",
            QoS::AtLeastOnce,
            false,
            br#"{"limit":1}"#.to_vec(),
        )
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(120), p.rx.recv()).await;
    t.elapsed()
}

fn main() {
    let pending: usize = std::env::var("BENCH_PENDING_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let b = Broker::start(&dir.path().join("a"), CONFIG);
        throughput(&b, 20_000, 64).await;
        latency(&b, 1000, 5).await;
        b.stop();

        let data = dir.path().join("b");
        let b = Broker::start(&data, CONFIG);
        fill_pending(&b, pending).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("with {pending} pending: RSS {:.0} MiB (target < 1024), store {:.0} MiB", b.rss_mib(), dir_size(&data) as f64 / (1 << 20) as f64);
        b.stop();
        let t = Instant::now();
        let b = Broker::start(&data, CONFIG);
        let served = t.elapsed() + first_reply(b.mqtt).await;
        println!("start to serving with {pending} pending: {:.2}s (target < 10 s); RSS after start {:.0} MiB", served.as_secs_f64(), b.rss_mib());
        b.stop();
    });
}
