//! Audit-event ingest benchmark (figures printed, nothing asserted): sustained events/s from
//! one and from four platform publishers to four subscribers, durable, 300-byte payloads,
//! through extbus (validated, sequenced, logged before fan-out) and, side by side, through a
//! plain MQTT broker relaying the same messages straight to an events topic.
//! The plain broker is `mosquitto` from PATH (started here on a free port) or the URL in
//! BENCH_PLAIN_MQTT_URL (mqtt://host:port). Run: `cargo bench -p extbus --bench events`.

mod common;

use common::{client, free_port, Broker};
use rumqttc::QoS;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUBSCRIBERS: usize = 4;
const EVENTS: usize = 40_000;

/// A draft of about 300 bytes.
fn draft(i: usize) -> Vec<u8> {
    let pad = "x".repeat(150);
    format!(r#"{{"type":"vm.create","org":"acme","subject":"urn:acme:vm:{i}","outcome":"succeeded","data":{{"n":{i},"pad":"{pad}"}}}}"#).into_bytes()
}

/// Publishes `EVENTS` messages from `publishers` clients and waits until every subscriber
/// received all of them; returns events/s.
async fn run(
    port: u16,
    user: &str,
    publish_topic: &str,
    sub_filter: &str,
    publishers: usize,
) -> Option<f64> {
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subs.push(client(port, user_for_sub(user), &[sub_filter]).await);
    }
    let mut pubs = Vec::new();
    for _ in 0..publishers {
        pubs.push(client(port, user, &[]).await);
    }
    let start = Instant::now();
    let per = EVENTS / publishers;
    let mut senders = Vec::new();
    for (k, p) in pubs.iter().enumerate() {
        let c = p.client.clone();
        let topic = publish_topic.to_string();
        senders.push(tokio::spawn(async move {
            for i in 0..per {
                c.publish(topic.clone(), QoS::AtLeastOnce, false, draft(k * per + i))
                    .await
                    .unwrap();
            }
        }));
    }
    let total = per * publishers;
    let mut waiters = Vec::new();
    for mut s in subs {
        waiters.push(tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                match tokio::time::timeout(Duration::from_secs(30), s.rx.recv()).await {
                    Ok(Some(_)) => n += 1,
                    _ => return n,
                }
            }
            n
        }));
    }
    let mut ok = true;
    for w in waiters {
        let got = w.await.unwrap();
        if got < total {
            println!("  a subscriber received {got} of {total}");
            ok = false;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ok.then_some(total as f64 / secs)
}

/// extbus subscribers are observers; a plain broker takes any name.
fn user_for_sub(user: &str) -> &str {
    if user == "platform" {
        "observer"
    } else {
        user
    }
}

fn plain_broker() -> Option<(u16, Option<std::process::Child>)> {
    if let Ok(url) = std::env::var("BENCH_PLAIN_MQTT_URL") {
        let port = url.rsplit(':').next()?.parse().ok()?;
        return Some((port, None));
    }
    let port = free_port();
    let dir = tempfile::tempdir().ok()?;
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"),
    )
    .ok()?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::mem::forget(dir);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((port, Some(child)))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let config = "[events]\nretention_max_count = 1000000\n";
        for publishers in [1, 4] {
            let b = Broker::start(&dir.path().join(format!("e{publishers}")), config);
            let r = run(b.mqtt, "platform", "extbus/in/platform/events", "extbus/events/acme/#", publishers).await;
            match r {
                Some(r) => println!("extbus: {EVENTS} events, {publishers} publisher(s) -> {SUBSCRIBERS} subscribers, 300 B, durable: {r:.0} events/s"),
                None => println!("extbus: {publishers} publisher(s): incomplete"),
            }
            b.stop();
        }
        match plain_broker() {
            Some((port, child)) => {
                for publishers in [1, 4] {
                    let r = run(port, "bench", "extbus/events/acme/vm/create", "extbus/events/acme/#", publishers).await;
                    match r {
                        Some(r) => println!("plain MQTT broker: {EVENTS} events, {publishers} publisher(s) -> {SUBSCRIBERS} subscribers, 300 B: {r:.0} events/s"),
                        None => println!("plain MQTT broker: {publishers} publisher(s): incomplete"),
                    }
                }
                if let Some(mut c) = child {
                    let _ = c.kill();
                }
            }
            None => println!("plain MQTT broker: skipped (no mosquitto on PATH and no BENCH_PLAIN_MQTT_URL)"),
        }
    });
}
