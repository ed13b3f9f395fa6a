//! Executable extensions answering extension services end to end: real scripts run by a real
//! broker for HTTP requests and MQTT-native calls. The answer's `result` becomes the response
//! (or a 200 JSON body); an `error` answer is a 500; garbage and non-zero exits are 502s that
//! never show the script's stderr; a hang is killed at its 1 s budget and answered 504 (process
//! timeouts are wall-clock time: a real process runs in real time); `max_running` keeps runs of
//! one program from overlapping.

use base64::Engine as _;
use extbus::exec::{ExecConfig, ExecService};
use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    extbus_tests::write_script(dir, name, body)
}

/// An entry serving `acme/<name>/1.0.0` at `/x/<name>/...`.
fn entry(name: &str, path: &Path, timeout_ms: u64) -> ExecConfig {
    let mut e = ExecConfig::new(name, path);
    e.timeout_ms = timeout_ms;
    e.services = vec![ExecService {
        vendor: "acme".into(),
        name: name.into(),
        version: "1.0.0".into(),
        url_patterns: vec![format!("^/x/{name}/")],
        priority: 50,
        timeout_ms: Some(20_000),
    }];
    e
}

async fn post(b: &TestBroker, path: &str, body: &str) -> HttpResponse {
    post_to(b.http, path, body).await
}

async fn post_to(http: std::net::SocketAddr, path: &str, body: &str) -> HttpResponse {
    let auth = basic("observer", "observer");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "text/plain"),
    ];
    request(http, "POST", path, &headers, body.as_bytes()).await
}

fn error_message(r: &HttpResponse) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_answer_service_requests_and_failures_become_gateway_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seen = d.join("seen");
    // Echoes the request's path and decoded body back in a 201 with a header of its own.
    let echo = script(
        d,
        "echo",
        &format!(
            r#"echo "$1 $3 $(stat -c %a "$2") $2" > {seen}
cp "$2" {seen}.json
path=$(grep -o '"path":"[^"]*"' "$2" | cut -d'"' -f4)
body=$(grep -o '"body":"[^"]*"' "$2" | cut -d'"' -f4 | base64 -d)
printf '{{"status":"success","result":{{"status":201,"headers":{{"x-by":"echo"}},"json":{{"path":"%s","body":"%s"}}}}}}\n' "$path" "$body""#,
            seen = seen.display()
        ),
    );
    let plain = script(
        d,
        "plain",
        r#"echo '{"status":"success","message":"ok","result":{"answer":42}}'"#,
    );
    let refuse = script(
        d,
        "refuse",
        r#"echo '{"status":"error","message":"quota exceeded"}'"#,
    );
    let garbage = script(d, "garbage", "echo 'hello there'");
    let exit = script(d, "exit", "echo 'secret detail' >&2\nexit 3");
    let pids = d.join("hang.pids");
    let hang = script(d, "hang", &extbus_tests::hang_with_grandchild(&pids));
    let scaffolded = extbus::cli::ext::scaffold("scaffolded", d, false).unwrap();
    let entries = vec![
        entry("echo", &echo, 10_000),
        entry("plain", &plain, 10_000),
        entry("refuse", &refuse, 10_000),
        entry("garbage", &garbage, 10_000),
        entry("exit", &exit, 10_000),
        entry("hang", &hang, 1_000),
        entry("scaffolded", &scaffolded, 10_000),
    ];
    let b = TestBroker::start_with(|c| c.exec = entries).await;
    let watcher = b.client("admin").await;
    assert_eq!(watcher.subscribe("extbus/services/#").await, vec![1]);

    let r = post(&b, "/x/echo/hello?lang=en", "hi there").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("x-by"), Some("echo"));
    assert_eq!(
        r.json(),
        json!({"path": "/x/echo/hello", "body": "hi there"})
    );
    // Run as `<path> service <payload_file> <timeout_seconds>`, the file private, then gone.
    let line = std::fs::read_to_string(&seen).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&parts[..3], &["service", "10", "600"], "{line}");
    assert!(!Path::new(parts[3]).exists(), "payload file left behind");
    let req: Value =
        serde_json::from_str(&std::fs::read_to_string(seen.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(
        (req["method"].as_str(), req["query"].as_str()),
        (Some("POST"), Some("lang=en"))
    );
    assert_eq!(req["principal"], "observer");
    assert!(req.get("authorization").is_none() && req["headers"].get("authorization").is_none());

    let r = post(&b, "/x/plain/", "").await;
    assert_eq!((r.status, r.json()), (200, json!({"answer": 42})), "{r:?}");

    let r = post(&b, "/x/refuse/", "").await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(error_message(&r), "quota exceeded");

    let r = post(&b, "/x/garbage/", "").await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(error_message(&r).contains("no JSON answer"), "{r:?}");

    let r = post(&b, "/x/exit/", "").await;
    assert_eq!(r.status, 502, "{r:?}");
    let m = error_message(&r);
    assert!(m.contains("status 3") && !m.contains("secret"), "{m}");

    let started = std::time::Instant::now();
    let r = post(&b, "/x/hang/", "").await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The whole process group went at the timeout, the grandchild included.
    for pid in extbus_tests::running_pids(&pids) {
        assert!(
            extbus_tests::process_gone(pid, std::time::Duration::from_secs(5)).await,
            "process {pid} of the hung script still runs"
        );
    }

    let r = post(&b, "/x/scaffolded/a", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["hello"], "from scaffolded");

    // The same service over MQTT: the response is the reply's result.
    let caller = b.client("observer").await;
    let r = caller
        .command(
            "services/acme/echo/1.0.0",
            json!({"method": "PUT", "path": "/x/echo/bus", "body": B64.encode("from the bus")}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["status"], 201, "{r}");
    assert_eq!(r["result"]["json"]["path"], "/x/echo/bus");
    assert_eq!(r["result"]["json"]["body"], "from the bus");

    // Requests to an executable extension never go over MQTT: an admin watching every
    // service topic since before the first request saw none of them.
    let seen = watcher
        .collect(std::time::Duration::from_millis(200), |m| {
            m.topic.starts_with("extbus/services/")
        })
        .await;
    assert!(seen.is_empty(), "{} requests published", seen.len());

    let metrics = request(b.http, "GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    for (name, outcome) in [("echo", "success"), ("hang", "timeout"), ("exit", "exit")] {
        let line = format!(
            "extbus_exec_runs_total{{name=\"{name}\",action=\"service\",outcome=\"{outcome}\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_running_keeps_runs_of_one_program_apart() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    // Fails when another run holds the lock: two runs overlapping answer error (500).
    let serial = script(
        dir.path(),
        "serial",
        &format!(
            r#"mkdir {lock} 2>/dev/null || {{ echo '{{"status":"error","message":"overlap"}}'; exit 0; }}
sleep 0.2
rmdir {lock}
echo '{{"status":"success","result":{{"ok":true}}}}'"#,
            lock = lock.display()
        ),
    );
    let mut e = entry("serial", &serial, 10_000);
    e.max_running = 1;
    let b = TestBroker::start_with(|c| c.exec = vec![e]).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..4 {
        let http = b.http;
        calls.spawn(async move { post_to(http, &format!("/x/serial/{i}"), "").await });
    }
    while let Some(r) = calls.join_next().await {
        let r = r.unwrap();
        assert_eq!((r.status, r.json()), (200, json!({"ok": true})), "{r:?}");
    }
    b.stop().await;
}
