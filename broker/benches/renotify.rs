//! Waiting tasks at rest and an extension coming back, against the real binary (figures
//! printed, nothing asserted beyond what each figure needs): broker CPU while N tasks wait and
//! nobody talks (the periodic re-announcement is the only work left, 10 min by default), and
//! the time from an extension's SUBSCRIBE to its having seen every task waiting on it.
//! Run: `cargo bench -p extbus --bench renotify` (BENCH_PENDING_TASKS, default 100,000;
//! BENCH_IDLE_SECS, default 10).

mod common;

use common::{client, env_usize, recv_within, Broker, Sock};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[[tasks.rules]]
operation = "vm.park"
extension = "extension"
timeout_ms = 3600000
max_timeout_ms = 3600000
"#;

const SUBMIT: &str = "extbus/in/platform/tasks/submit";
const REPLIES: &str = "extbus/out/platform/replies";
const TOPIC: &str = "extbus/tasks/blocked/vm/park";

/// Stores `n` tasks that stay blocked, 512 submits in flight.
async fn fill(b: &Broker, n: usize) {
    let mut p = client(b.mqtt, "platform", &[REPLIES], Sock::Default).await;
    let start = Instant::now();
    let (mut sent, mut stored) = (0, 0);
    while stored < n {
        while sent < n && sent - stored < 512 {
            let body = json!({"request_id": format!("p-{sent}"), "operation": "vm.park",
                "org": "acme", "data": {"cpu": 2}});
            p.client
                .publish(SUBMIT, QoS::AtLeastOnce, false, body.to_string())
                .await
                .unwrap();
            sent += 1;
        }
        let (_, payload) = recv_within(&mut p.rx, 30, "fill").await;
        let v: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["result"]["state"], "blocked", "{v}");
        stored += 1;
        if stored % 100_000 == 0 {
            eprintln!(
                "  ... {stored} stored ({:.0}/s)",
                stored as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "fill: {n} blocked tasks stored in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let _ = p.client.disconnect().await;
}

/// User + system CPU seconds the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn main() {
    let pending = env_usize("BENCH_PENDING_TASKS", 100_000);
    let idle = env_usize("BENCH_IDLE_SECS", 10) as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let b = Broker::start(&dir.path().join("data"), CONFIG);
        fill(&b, pending).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = b.child.id();
        let before = cpu_secs(pid);
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let used = cpu_secs(pid) - before;
        println!(
            "idle with {pending} waiting: {:.2}% of one core over {idle} s ({used:.2} CPU s)",
            used * 100.0 / idle as f64
        );

        // The extension comes back: every task waiting on it arrives, without any renotify.
        let t = Instant::now();
        let mut ext = client(b.mqtt, "extension", &[TOPIC], Sock::Default).await;
        let mut seen = HashSet::new();
        while seen.len() < pending {
            let (_, payload) = recv_within(&mut ext.rx, 30, "re-announcement").await;
            let v: Value = serde_json::from_slice(&payload).unwrap();
            seen.insert(v["id"].as_str().unwrap_or_default().to_string());
        }
        println!(
            "extension back: saw all {pending} waiting tasks {:.2} s after connecting",
            t.elapsed().as_secs_f64()
        );
        let _ = ext.client.disconnect().await;
    });
}
