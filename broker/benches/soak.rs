//! Memory soak against the real binary (figures printed, nothing asserted): N task cycles
//! (submit, blocked notice, resume by an extension, outcome; SOAK_CYCLES, default 1,000,000)
//! while an observer subscribes to and unsubscribes from N/10 distinct filters. Prints the
//! broker's RSS every N/10 cycles and the ratio of the final RSS to the RSS after the first
//! tenth. Clients use rumqttc's default socket options.
//! Run: `cargo bench -p extbus --bench soak` (quicker: `SOAK_CYCLES=200000 cargo bench ...`).

mod common;

use common::Broker;
use extbus_schema::topics;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

// Ended tasks are removed after 10 s and events are capped, so the store's own growth does
// not hide the router's; sled's cache is bounded (64 MiB) by the broker.
const CONFIG: &str = r#"
[tasks]
renotify_ms = 600000
retention_ms = 10000

[[tasks.rules]]
operation = "vm.create"
extension = "extension"
timeout_ms = 3600000
max_timeout_ms = 3600000

[events]
retention_max_count = 100000
"#;

/// Tasks in flight at once.
const WINDOW: usize = 256;
/// How long any awaited reply may take before the bench reports a stall.
const STALL: Duration = Duration::from_secs(60);

/// What a client's event loop reports.
enum Got {
    Publish(bytes::Bytes),
    SubAck,
    UnsubAck,
}

/// Connects with name = secret and default socket options; returns the client and what it
/// receives.
async fn connect(port: u16, name: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Got>) {
    let (client, mut el) = AsyncClient::new(common::options(port, name), 100_000);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let got = match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => Got::Publish(p.payload),
                Ok(Event::Incoming(Packet::SubAck(_))) => Got::SubAck,
                Ok(Event::Incoming(Packet::UnsubAck(_))) => Got::UnsubAck,
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("soak client: {e}");
                    return;
                }
            };
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    (client, rx)
}

async fn subscribed(client: &AsyncClient, rx: &mut mpsc::UnboundedReceiver<Got>, filter: &str) {
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        match tokio::time::timeout(STALL, rx.recv()).await {
            Ok(Some(Got::SubAck)) => return,
            Ok(Some(_)) => {}
            _ => panic!("no SUBACK for {filter}"),
        }
    }
}

/// Resumes every task announced for vm.create.
async fn extension(port: u16) {
    let (client, mut rx) = connect(port, "extension").await;
    subscribed(&client, &mut rx, &topics::tasks_blocked("vm.create")).await;
    tokio::spawn(async move {
        while let Some(got) = rx.recv().await {
            let Got::Publish(payload) = got else { continue };
            let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if let Some(id) = v["id"].as_str() {
                let topic = topics::inbox("extension", &topics::task_action(id, "resume"));
                let _ = client
                    .publish(topic, QoS::AtLeastOnce, false, b"{}".to_vec())
                    .await;
            }
        }
    });
}

/// Subscribes to and unsubscribes from one new filter per token received.
async fn observer(port: u16, mut tokens: mpsc::UnboundedReceiver<usize>) -> usize {
    let (client, mut rx) = connect(port, "observer").await;
    let mut done = 0;
    while let Some(i) = tokens.recv().await {
        let filter = topics::events_filter("acme", &format!("soak-{i}/#"));
        subscribed(&client, &mut rx, &filter).await;
        client.unsubscribe(&filter).await.unwrap();
        loop {
            match tokio::time::timeout(STALL, rx.recv()).await {
                Ok(Some(Got::UnsubAck)) => break,
                Ok(Some(_)) => {}
                _ => panic!("no UNSUBACK for {filter}"),
            }
        }
        done += 1;
    }
    done
}

fn submit(rid: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "request_id": format!("s-{rid}"),
        "operation": "vm.create",
        "org": "acme",
        "data": {"cpu": 2}
    }))
    .unwrap()
}

async fn soak(b: &Broker, cycles: usize) {
    extension(b.mqtt).await;
    let (tokens, rx) = mpsc::unbounded_channel();
    let obs = tokio::spawn(observer(b.mqtt, rx));
    let (platform, mut outcomes) = connect(b.mqtt, "platform").await;
    subscribed(&platform, &mut outcomes, &topics::outcomes("platform")).await;

    let step = (cycles / 10).max(1);
    let start = Instant::now();
    let rss0 = b.rss_mib();
    println!(
        "soak: {cycles} task cycles, {} filters subscribed and unsubscribed",
        cycles / 10
    );
    println!(
        "{:>10} {:>9} {:>9} {:>10}",
        "cycles", "filters", "RSS MiB", "cycles/s"
    );
    println!("{:>10} {:>9} {:>9.1} {:>10}", 0, 0, rss0, "-");
    let (mut sent, mut done) = (0, 0);
    let mut curve = Vec::new();
    while done < cycles {
        while sent < cycles && sent - done < WINDOW {
            let topic = topics::inbox("platform", "tasks/submit");
            platform
                .publish(topic, QoS::AtLeastOnce, false, submit(sent))
                .await
                .unwrap();
            sent += 1;
        }
        match tokio::time::timeout(STALL, outcomes.recv()).await {
            Ok(Some(Got::Publish(_))) => {}
            Ok(Some(_)) => continue,
            _ => {
                println!("soak: stalled after {done} cycles");
                break;
            }
        }
        done += 1;
        if done % 10 == 0 {
            let _ = tokens.send(done / 10);
        }
        if done % step == 0 {
            let rss = b.rss_mib();
            let rate = done as f64 / start.elapsed().as_secs_f64();
            println!("{done:>10} {:>9} {rss:>9.1} {rate:>10.0}", done / 10);
            curve.push(rss);
        }
    }
    drop(tokens);
    let filters = tokio::time::timeout(10 * STALL, obs)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let rss = b.rss_mib();
    let first = curve.first().copied().unwrap_or(f64::NAN);
    println!(
        "soak: {done} cycles and {filters} filters in {:.0}s; RSS at start {rss0:.1} MiB, after the first {step} cycles {first:.1} MiB, at the end {rss:.1} MiB: final / first = {:.2} (target <= 1.20)",
        start.elapsed().as_secs_f64(),
        rss / first
    );
}

fn main() {
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let b = Broker::start(&dir.path().join("soak"), CONFIG);
        soak(&b, cycles).await;
        b.stop();
    });
}
