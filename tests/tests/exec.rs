//! Executable extensions end to end: real scripts (written into a temp dir) run by a real
//! broker for the callouts they answer. Success resumes, error aborts; a non-zero exit, garbage
//! output, a hang (killed at its 1 s timeout) or a missing program apply the rule's default
//! action with the reason in the history; payload files are 0600 and removed; readiness shows on
//! /metrics. Process timeouts are wall-clock time (a real process runs in real time), so the
//! hanging script gets a 1 s budget rather than the injected clock.

use extbus::exec::ExecConfig;
use extbus_schema::tasks::{DefaultAction, RuleSpec};
use extbus_schema::topics;
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    extbus_tests::write_script(dir, name, body)
}

fn entry(name: &str, path: &Path, default_action: DefaultAction, timeout_ms: u64) -> ExecConfig {
    let mut e = ExecConfig::new(name, path);
    e.timeout_ms = timeout_ms;
    e.rules = vec![RuleSpec {
        operation: format!("{name}.create"),
        orgs: vec!["*".into()],
        priority: 50,
        timeout_ms: 600_000,
        max_timeout_ms: 3_600_000,
        default_action,
        extension: None,
        result_schema: None,
    }];
    e
}

/// Submits `<name>.create` and returns (outcome, task with history).
async fn run_case(b: &TestBroker, p: &BusClient, name: &str) -> (Value, Value) {
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": format!("r-{name}"), "operation": format!("{name}.create"), "org": "acme", "data": {"cpu": 4}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let m = p
        .expect(|m| m.topic == topics::outcomes("platform") && m.json()["id"] == id.as_str())
        .await;
    let admin = b.client("admin").await;
    let t = admin.command(&format!("tasks/{id}/get"), json!({})).await;
    (m.json(), t["result"].clone())
}

fn last_message(task: &Value) -> String {
    task["history"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_resolve_tasks_by_their_answers_and_failures_by_default_action() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seen = d.join("seen");
    let ok = script(
        d,
        "ok",
        &format!(
            "echo \"$1 $3 $(stat -c %a \"$2\") $2\" > {seen}\ngrep -q '\"cpu\":4' \"$2\" || exit 9\necho '{{\"status\":\"success\",\"message\":\"fine\",\"result\":{{\"host\":\"h7\"}}}}'",
            seen = seen.display()
        ),
    );
    let no = script(
        d,
        "no",
        "echo '{\"status\":\"error\",\"message\":\"too large\"}'",
    );
    let garbage = script(d, "garbage", "echo 'hello there'");
    let pids = d.join("hang.pids");
    let hang = script(
        d,
        "hang",
        &format!(
            "{}\necho '{{\"status\":\"success\"}}'",
            extbus_tests::hang_with_grandchild(&pids)
        ),
    );
    let exit = script(
        d,
        "exit",
        "echo '{\"status\":\"success\"}'\necho oops >&2\nexit 3",
    );
    let scaffolded = extbus::cli::ext::scaffold("scaffolded", d, false).unwrap();
    let entries = vec![
        entry("ok", &ok, DefaultAction::Abort, 10_000),
        entry("no", &no, DefaultAction::Resume, 10_000),
        entry("garbage", &garbage, DefaultAction::Cancel, 10_000),
        entry("hang", &hang, DefaultAction::Resume, 1_000),
        entry("exit", &exit, DefaultAction::Abort, 10_000),
        entry("scaffolded", &scaffolded, DefaultAction::Abort, 10_000),
        entry(
            "missing",
            &d.join("missing.sh"),
            DefaultAction::Cancel,
            10_000,
        ),
    ];
    let b = TestBroker::start_with(|c| c.exec = entries).await;
    let p = b.client("platform").await;

    let (o, t) = run_case(&b, &p, "ok").await;
    assert_eq!(o["state"], "resumed", "{o}");
    assert_eq!(o["resolved_by"], "ok");
    assert_eq!(o["result"], json!({"host": "h7"}));
    assert_eq!(last_message(&t), "fine");
    // Called as `<path> callout <payload_file> <timeout_seconds>`, the file private, then gone.
    let seen = std::fs::read_to_string(&seen).unwrap();
    let parts: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(&parts[..3], &["callout", "10", "600"], "{seen}");
    assert!(!Path::new(parts[3]).exists(), "payload file left behind");

    let (o, _) = run_case(&b, &p, "no").await;
    assert_eq!(o["state"], "aborted", "{o}");
    assert_eq!(o["message"], "too large");

    let (o, t) = run_case(&b, &p, "garbage").await;
    assert_eq!(o["state"], "cancelled", "{o}");
    assert!(last_message(&t).contains("no JSON answer"), "{t}");

    let started = std::time::Instant::now();
    let (o, t) = run_case(&b, &p, "hang").await;
    assert_eq!(o["state"], "resumed", "{o}");
    assert!(last_message(&t).contains("killed"), "{t}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The whole process group went at the timeout, the grandchild included (the check itself
    // tells a live process: this test's own).
    assert!(!extbus_tests::process_gone(std::process::id(), std::time::Duration::ZERO).await);
    for pid in extbus_tests::running_pids(&pids) {
        assert!(
            extbus_tests::process_gone(pid, std::time::Duration::from_secs(5)).await,
            "process {pid} of the hung script still runs"
        );
    }

    let (o, t) = run_case(&b, &p, "exit").await;
    assert_eq!(o["state"], "aborted", "{o}");
    let m = last_message(&t);
    assert!(
        m.contains("status 3") && m.contains("oops") && m.contains("default action abort"),
        "{m}"
    );

    let (o, _) = run_case(&b, &p, "scaffolded").await;
    assert_eq!(o["state"], "resumed", "{o}");
    assert_eq!(o["result"]["checked_by"], "scaffolded");

    let (o, t) = run_case(&b, &p, "missing").await;
    assert_eq!(o["state"], "cancelled", "{o}");
    assert!(last_message(&t).contains("could not start"), "{t}");

    let metrics = http_get(b.http, "/metrics");
    assert!(
        metrics.contains("extbus_exec_ready{name=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("extbus_exec_ready{name=\"missing\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "extbus_exec_runs_total{name=\"hang\",action=\"callout\",outcome=\"timeout\"} 1"
        ),
        "{metrics}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_left_blocked_on_an_exec_stage_is_answered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.sh");
    // Not executable at first: the run fails until the file is fixed, as after a bad deploy.
    std::fs::write(
        &path,
        "#!/bin/sh\necho '{\"status\":\"success\",\"message\":\"late\"}'\n",
    )
    .unwrap();
    let e = entry("late", &path, DefaultAction::Abort, 10_000);
    let b = TestBroker::start_with(|c| {
        // No exec on the first run: the task blocks and waits.
        c.tasks.rules = e.bound_rules();
    })
    .await;
    let p = b.client("platform").await;
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": "r1", "operation": "late.create", "org": "acme"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    drop(p);
    let (mut config, tmp, clock) = b.stop().await;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    config.tasks.rules.clear();
    config.exec = vec![e];
    let b = TestBroker::start_again(config, tmp, clock).await;
    let admin = b.client("admin").await;
    let mut state = Value::Null;
    for _ in 0..100 {
        let t = admin.command(&format!("tasks/{id}/get"), json!({})).await;
        state = t["result"]["state"].clone();
        if state != "blocked" {
            assert_eq!(t["result"]["resolved_by"], "late");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "resumed");
    b.stop().await;
}
