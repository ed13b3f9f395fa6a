//! Durability under `kill -9`: the real binary takes a stream of submits, resolutions and audit
//! events and is killed with SIGKILL at a random moment, several times. After each restart every
//! submission and resolution that had been acknowledged is there unchanged, deadlines that
//! passed while it was down have been applied, every acknowledged event replays with the seq it
//! was given, the log's seqs are gap-free and never reused, and a re-sent event id is still
//! recognised as a duplicate.

mod support;
use support::free_port;
use support::session::{session, Session};

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker process; killed on drop, so a failing test leaves nothing running.
struct Running(Child);

impl Running {
    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start(dir: &Path, config: &Path, mqtt: u16, http: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_extbus"))
        .args([
            "serve",
            "--dev",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .args([
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Running(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Session {
    /// Every stored task, as id -> (state, resolved_by), via paged `tasks/query`.
    async fn all_tasks(&self, tag: &str) -> HashMap<String, (String, Value)> {
        let mut out = HashMap::new();
        let mut after: Option<String> = None;
        for page in 0.. {
            let mut q = json!({"limit": 200});
            if let Some(a) = &after {
                q["after"] = a.clone().into();
            }
            let r = self.call("tasks/query", &format!("{tag}-q{page}"), q).await;
            assert_eq!(r["ok"], true, "{r}");
            for t in r["result"]["tasks"].as_array().unwrap() {
                out.insert(
                    t["id"].as_str().unwrap().to_string(),
                    (
                        t["state"].as_str().unwrap().to_string(),
                        t["resolved_by"].clone(),
                    ),
                );
            }
            match r["result"]["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        out
    }

    /// The whole event log as (seq, id), via paged `events/replay`.
    async fn all_events(&self, tag: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut from = 0u64;
        for page in 0.. {
            let q = json!({"from_seq": from});
            let r = self
                .call("events/replay", &format!("{tag}-e{page}"), q)
                .await;
            assert_eq!(r["ok"], true, "{r}");
            for e in r["result"]["events"].as_array().unwrap() {
                out.push((
                    e["seq"].as_u64().unwrap(),
                    e["id"].as_str().unwrap().to_string(),
                ));
            }
            if r["result"]["more"] != true {
                break;
            }
            from = r["result"]["next_seq"].as_u64().unwrap();
        }
        out
    }
}

/// The platform's event draft number `i` of `round` (its own id, so a re-send is a duplicate).
fn draft(round: usize, i: usize) -> Value {
    json!({"type": "vm.create", "org": "acme", "id": format!("ev-{round}-{i}"), "data": {"i": i}})
}

/// Checks the replayed log: seqs gap-free from 1 and each used once, every acknowledged event
/// (id -> seq) there with its seq, and every event an earlier check saw still there unchanged.
fn check_events(
    log: &[(u64, String)],
    acked: &HashMap<String, u64>,
    seen: &mut HashMap<String, u64>,
    when: &str,
) {
    for (i, (seq, _)) in log.iter().enumerate() {
        assert_eq!(
            *seq,
            i as u64 + 1,
            "{when}: seq gap or reuse at position {i}"
        );
    }
    let by_id: HashMap<&str, u64> = log.iter().map(|(s, id)| (id.as_str(), *s)).collect();
    assert_eq!(by_id.len(), log.len(), "{when}: an event id logged twice");
    for (id, seq) in acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(seq),
            "{when}: acknowledged event {id}"
        );
    }
    for (id, seq) in seen.iter() {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(seq),
            "{when}: replayed before, {id}"
        );
    }
    seen.extend(log.iter().map(|(s, id)| (id.clone(), *s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("extbus.toml");
    std::fs::write(
        &config,
        r#"
[[tasks.rules]]
operation = "vm.create"
extension = "extension"
timeout_ms = 600000

[[tasks.rules]]
operation = "vm.quick"
extension = "extension"
timeout_ms = 1000
default_action = "abort"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    // Acknowledged state: task id -> (expected state, whether its deadline is short).
    let mut acked: HashMap<String, (&'static str, bool)> = HashMap::new();
    // Resumes sent but not acknowledged: they may or may not have been applied.
    let mut maybe_resumed: std::collections::HashSet<String> = Default::default();
    // Acknowledged events (id -> seq), and every event a replay has shown so far.
    let mut acked_events: HashMap<String, u64> = HashMap::new();
    let mut seen_events: HashMap<String, u64> = HashMap::new();
    for round in 0..3 {
        let (mqtt, http) = (free_port(), free_port());
        let mut child = start(&data, &config, mqtt, http);
        let platform = session("platform", mqtt).await;
        let ext = session("extension", mqtt).await;
        let admin = session("admin", mqtt).await;

        let log = admin.all_events(&format!("check-{round}")).await;
        check_events(
            &log,
            &acked_events,
            &mut seen_events,
            &format!("round {round}"),
        );
        // An event acknowledged before a kill is still known by its id.
        if let Some((id, seq)) = acked_events.iter().next() {
            let (r, i) = id
                .strip_prefix("ev-")
                .and_then(|x| x.split_once('-'))
                .unwrap();
            let again = platform
                .call(
                    "events",
                    &format!("dup-{round}"),
                    draft(r.parse().unwrap(), i.parse().unwrap()),
                )
                .await;
            assert_eq!(again["result"]["duplicate"], true, "{again}");
            assert_eq!(again["result"]["seq"], *seq, "{again}");
        }

        // Everything acknowledged before this kill must be intact.
        let stored = platform.all_tasks(&format!("check-{round}")).await;
        for (id, (state, short)) in &acked {
            let (got, resolved_by) = stored.get(id).unwrap_or_else(|| panic!("task {id} lost"));
            let got = got.as_str();
            let g = json!({"id": id, "state": got, "resolved_by": resolved_by});
            if *state == "blocked" && got == "resumed" && maybe_resumed.contains(id) {
                continue;
            }
            if *short && *state == "blocked" && got != "blocked" {
                // Its one-second deadline may have passed since; then only the timeout may end it.
                assert_eq!(got, "aborted", "{g}");
                assert_eq!(g["resolved_by"], "timeout");
            } else {
                assert_eq!(got, *state, "task {id}: {g}");
            }
        }

        // A stream of work, killed at a random moment.
        let kill_after = Duration::from_millis(150 + rand::random::<u64>() % 600);
        let started = Instant::now();
        let mut sent: Vec<(String, bool)> = Vec::new();
        let mut resumes: Vec<(String, String)> = Vec::new();
        let mut events_sent: Vec<String> = Vec::new();
        let mut i = 0;
        while started.elapsed() < kill_after {
            let short = i % 5 == 0;
            let op = if short { "vm.quick" } else { "vm.create" };
            let corr = format!("s-{round}-{i}");
            platform
                .send(
                    "tasks/submit",
                    &corr,
                    json!({"request_id": corr, "operation": op, "org": "acme"}),
                )
                .await;
            sent.push((corr, short));
            let ec = format!("e-{round}-{i}");
            platform.send("events", &ec, draft(round, i)).await;
            events_sent.push(ec);
            // Resume every other task already acknowledged as blocked.
            if i % 2 == 1 {
                if let Some((c, _)) = sent
                    .iter()
                    .rev()
                    .skip(4)
                    .find(|(c, _)| platform.reply(c).is_some())
                {
                    let id = platform.reply(c).unwrap()["result"]["id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let rc = format!("r-{round}-{i}");
                    ext.send(&format!("tasks/{id}/resume"), &rc, json!({"message": "ok"}))
                        .await;
                    resumes.push((rc, id));
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill(); // SIGKILL

        let mut acked_now = 0;
        for (corr, short) in &sent {
            if let Some(r) = platform.reply(corr) {
                if r["ok"] == true {
                    acked_now += 1;
                    acked
                        .entry(r["result"]["id"].as_str().unwrap().to_string())
                        .or_insert(("blocked", *short));
                }
            }
        }
        let mut events_now = 0;
        for ec in &events_sent {
            if let Some(r) = platform.reply(ec) {
                assert_eq!(r["ok"], true, "{r}");
                assert_eq!(r["result"]["duplicate"], false, "{r}");
                events_now += 1;
                let id = format!("ev-{}", ec.strip_prefix("e-").unwrap());
                acked_events.insert(id, r["result"]["seq"].as_u64().unwrap());
            }
        }
        for (rc, id) in &resumes {
            if let Some(r) = ext.reply(rc) {
                if r["ok"] == true && r["result"]["state"] == "resumed" {
                    acked.insert(id.clone(), ("resumed", false));
                    continue;
                }
            }
            maybe_resumed.insert(id.clone());
        }
        // Per round: an earlier round's acknowledgements must not hide an empty one.
        assert!(acked_now > 0, "round {round} acknowledged no submit");
        assert!(events_now > 0, "round {round} acknowledged no event");
    }

    // Let the short deadlines lapse while down, then check one last time.
    std::thread::sleep(Duration::from_millis(1100));
    let (mqtt, http) = (free_port(), free_port());
    let mut child = start(&data, &config, mqtt, http);
    let platform = session("platform", mqtt).await;
    let admin = session("admin", mqtt).await;
    let log = admin.all_events("final").await;
    check_events(&log, &acked_events, &mut seen_events, "final");
    let stored = platform.all_tasks("final").await;
    for (id, (state, short)) in &acked {
        let (got, resolved_by) = stored.get(id).unwrap_or_else(|| panic!("task {id} lost"));
        if *state == "blocked" && got == "resumed" && maybe_resumed.contains(id) {
            continue;
        }
        let expected = if *short && *state == "blocked" {
            "aborted"
        } else {
            state
        };
        assert_eq!(got, expected, "task {id}, deadline passed while down");
        if expected != *state {
            assert_eq!(resolved_by, "timeout");
        }
    }
    child.kill();
}
