//! SIGHUP and `[[exec]]` entries against the real binary, with real scripts in a temp dir: an
//! added entry's rule blocks a new submission and its run resumes it, and its service answers;
//! a removed entry's rule no longer matches, a task already waiting on it stays blocked and
//! resolvable by hand, and its run in flight finishes rather than being killed; a changed
//! entry runs in its new form; an entry added under a name tasks already wait on answers
//! them; a bad entry is refused naming its field and the running entries
//! keep working. Each outcome is logged entry by entry, counted, and seen on `/metrics` and in
//! `registrations/query`.

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `observer:observer`, for the service gateway.
const OBSERVER: &str = "Basic b2JzZXJ2ZXI6b2JzZXJ2ZXI=";

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An `[[exec]]` entry answering `<name>.create` and the service at `/x/<name>/`.
fn entry(name: &str, path: &Path, extra: &str) -> String {
    format!(
        "[[exec]]\nname = \"{name}\"\npath = \"{}\"\ntimeout_ms = 20000\n{extra}\
         [[exec.rules]]\noperation = \"{name}.create\"\n\
         [[exec.services]]\nvendor = \"acme\"\nname = \"{name}\"\nversion = \"1.0.0\"\n\
         url_patterns = [\"^/x/{name}/\"]\n\n",
        path.display()
    )
}

/// `entry` plus the action `ping`, run by operators.
fn with_ping(entry: String) -> String {
    entry + "[[exec.actions]]\nname = \"ping\"\nroles = [\"operator\"]\n\n"
}

fn http(port: u16, method: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {OBSERVER}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The broker's log lines, read as they come.
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits for a line after the first `from` that contains `want`; returns it.
    fn wait(&self, from: usize, want: &str) -> String {
        let t = Instant::now();
        loop {
            if let Some(l) = self.0.lock().unwrap()[from..]
                .iter()
                .find(|l| l.contains(want))
            {
                return l.clone();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no log line with {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Commands over real MQTT sessions, one runtime for the whole test.
struct Bus {
    rt: tokio::runtime::Runtime,
    platform: support::session::Session,
    operator: support::session::Session,
    corr: AtomicUsize,
}

impl Bus {
    fn call(&self, who: &support::session::Session, suffix: &str, body: Value) -> Value {
        let corr = format!("c-{}", self.corr.fetch_add(1, Ordering::Relaxed));
        self.rt.block_on(who.call(suffix, &corr, body))
    }

    fn submit(&self, op: &str, data: Value) -> Value {
        let id = format!("r-{}", self.corr.fetch_add(1, Ordering::Relaxed));
        let body = json!({"request_id": id, "operation": op, "org": "acme", "data": data});
        let r = self.call(&self.platform, "tasks/submit", body);
        assert_eq!(r["ok"], true, "{r}");
        r["result"].clone()
    }

    /// Waits until task `id` is in `state`; returns it.
    fn wait_state(&self, id: &str, state: &str) -> Value {
        let t = Instant::now();
        loop {
            let r = self.call(&self.operator, &format!("tasks/{id}/get"), json!({}));
            if r["result"]["state"] == state {
                return r["result"].clone();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "task {id} never {state}: {r}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The principals `registrations/query` lists.
    fn registered(&self) -> Vec<String> {
        let r = self.call(&self.operator, "registrations/query", json!({}));
        let items = r["result"]["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .filter_map(|i| i["principal"].as_str().map(str::to_string))
            .collect()
    }
}

fn last_by(task: &Value) -> (String, String) {
    let h = task["history"].as_array().unwrap().last().unwrap().clone();
    let s = |k: &str| h[k].as_str().unwrap_or("").to_string();
    (s("by"), s("message"))
}

#[test]
fn sighup_adds_removes_and_changes_exec_entries_live() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (release, finished) = (d.join("release"), d.join("first-finished"));
    // `first` holds a run whose data says so until `release` exists, then notes it finished.
    let first = script(
        d,
        "first",
        &format!(
            "if [ \"$1\" = service ]; then echo '{{\"status\":\"success\",\"result\":{{\"by\":\"first\"}}}}'; exit 0; fi\n\
             if grep -q '\"hold\"' \"$2\"; then\n\
               while [ ! -f {r} ]; do sleep 0.05; done\n\
               touch {f}\n\
             fi\n\
             echo '{{\"status\":\"success\",\"message\":\"first says yes\"}}'",
            r = release.display(),
            f = finished.display()
        ),
    );
    let answer = |by: &str| {
        format!(
            "if [ \"$1\" = service ]; then echo '{{\"status\":\"success\",\"result\":{{\"by\":\"{by}\"}}}}'; exit 0; fi\n\
             if [ \"$1\" = action ]; then echo '{{\"status\":\"success\",\"message\":\"{by} pongs\"}}'; exit 0; fi\n\
             echo '{{\"status\":\"success\",\"message\":\"{by} says yes\"}}'"
        )
    };
    let second = script(d, "second", &answer("second"));
    let second_b = script(d, "second-b", &answer("second-b"));

    let file = d.join("extbus.toml");
    std::fs::write(&file, entry("first", &first, "")).unwrap();
    let data = d.join("data");
    let args = [
        "--log-format",
        "json",
        "--config",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut served = support::serve(&args, Stdio::piped());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (l2, stderr) = (lines.clone(), served.child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    let log = Log(lines);
    log.wait(0, "extbus serving");
    let pid = served.child.id() as i32;
    let hup = || unsafe { libc::kill(pid, libc::SIGHUP) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (platform, operator) = rt.block_on(async {
        (
            support::session::session("platform", served.mqtt).await,
            support::session::session("operator", served.mqtt).await,
        )
    });
    let bus = Bus {
        rt,
        platform,
        operator,
        corr: AtomicUsize::new(0),
    };
    let port = served.http;

    // At start: first answers, second is unknown.
    let t = bus.submit("first.create", json!({}));
    assert_eq!(t["state"], "blocked", "{t}");
    let done = bus.wait_state(t["id"].as_str().unwrap(), "resumed");
    assert_eq!(last_by(&done).0, "first", "{done}");
    assert_ne!(bus.submit("second.create", json!({}))["state"], "blocked");

    // A bad second entry is refused naming its field; the running entries keep working.
    let from = log.len();
    let bad = entry("first", &first, "") + &entry("second", &second, "max_running = 0\n");
    std::fs::write(&file, bad).unwrap();
    hup();
    let refused = log.wait(from, "configuration refused");
    assert!(refused.contains("exec[1].max_running"), "{refused}");
    assert_ne!(bus.submit("second.create", json!({}))["state"], "blocked");
    let t = bus.submit("first.create", json!({}));
    assert_eq!(t["state"], "blocked", "{t}");
    bus.wait_state(t["id"].as_str().unwrap(), "resumed");
    assert!(http(port, "GET", "/x/second/hi").starts_with("HTTP/1.1 404"));
    let ping = || bus.call(&bus.operator, "actions/second/ping/invoke", json!({}));
    assert_eq!(ping()["error"]["code"], "not_found");

    // Second added: its rule blocks a new submission and its run resumes it; its service
    // answers; readiness and registrations show it.
    let from = log.len();
    std::fs::write(
        &file,
        entry("first", &first, "") + &with_ping(entry("second", &second, "")),
    )
    .unwrap();
    hup();
    let line = log.wait(from, "SIGHUP: configuration reloaded");
    assert!(line.contains("exec added second"), "{line}");
    assert!(!line.contains("first"), "first is unchanged: {line}");
    let t = bus.submit("second.create", json!({}));
    assert_eq!(t["state"], "blocked", "{t}");
    let done = bus.wait_state(t["id"].as_str().unwrap(), "resumed");
    assert_eq!(
        last_by(&done),
        ("second".into(), "second says yes".into()),
        "{done}"
    );
    let r = http(port, "GET", "/x/second/hi");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains(r#"{"by":"second"}"#),
        "{r}"
    );
    let metrics = http(port, "GET", "/metrics");
    assert!(
        metrics.contains("extbus_exec_ready{name=\"second\"} 1"),
        "{metrics}"
    );
    assert!(bus.registered().contains(&"second".to_string()));
    assert_eq!(ping()["result"]["message"], "second pongs");

    // A run of first held in flight, then first removed.
    let held = bus.submit("first.create", json!({"hold": true}));
    assert_eq!(held["state"], "blocked", "{held}");
    let held_id = held["id"].as_str().unwrap().to_string();
    let from = log.len();
    std::fs::write(&file, with_ping(entry("second", &second, ""))).unwrap();
    hup();
    let line = log.wait(from, "SIGHUP: configuration reloaded");
    assert!(line.contains("exec removed first"), "{line}");
    // Its rule no longer matches: a new submission goes through unblocked.
    let t = bus.submit("first.create", json!({}));
    assert_ne!(t["state"], "blocked", "{t}");
    assert!(http(port, "GET", "/x/first/hi").starts_with("HTTP/1.1 404"));
    let metrics = http(port, "GET", "/metrics");
    assert!(
        !metrics.contains("extbus_exec_ready{name=\"first\"}"),
        "{metrics}"
    );
    assert!(!bus.registered().contains(&"first".to_string()));
    // The task waiting on it stays, and an operator resolves it by hand.
    let waiting = bus.wait_state(&held_id, "blocked");
    assert_eq!(waiting["stages"], json!([["first"]]), "{waiting}");
    let r = bus.call(
        &bus.operator,
        &format!("tasks/{held_id}/resume"),
        json!({"message": "by hand"}),
    );
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    // The run in flight was not killed: released, it finishes; its late answer changes nothing.
    assert!(!finished.exists());
    std::fs::write(&release, "").unwrap();
    let t0 = Instant::now();
    while !finished.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the held run never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Counted as a run that answered (three of first's, this one the last), not a kill.
    let ran = "extbus_exec_runs_total{name=\"first\",action=\"callout\",outcome=\"success\"} 3";
    let t0 = Instant::now();
    while !http(port, "GET", "/metrics").contains(ran) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the held run was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = bus.wait_state(&held_id, "resumed");
    assert_eq!(last_by(&after), ("operator".into(), "by hand".into()));

    // Second changed (another program): new runs take the new form.
    let from = log.len();
    std::fs::write(&file, with_ping(entry("second", &second_b, ""))).unwrap();
    hup();
    let line = log.wait(from, "SIGHUP: configuration reloaded");
    assert!(line.contains("exec changed second"), "{line}");
    let t = bus.submit("second.create", json!({}));
    let done = bus.wait_state(t["id"].as_str().unwrap(), "resumed");
    assert_eq!(last_by(&done).1, "second-b says yes", "{done}");
    let r = http(port, "GET", "/x/second/hi");
    assert!(r.contains(r#"{"by":"second-b"}"#), "{r}");
    assert_eq!(ping()["result"]["message"], "second-b pongs");

    // A task already waiting on a name is handed to the entry a reload adds under it.
    let waits = "[[tasks.rules]]\noperation = \"third.create\"\nextension = \"third\"\n\n";
    let base = with_ping(entry("second", &second_b, "")) + waits;
    let from = log.len();
    std::fs::write(&file, &base).unwrap();
    hup();
    log.wait(from, "SIGHUP: configuration reloaded");
    let t = bus.submit("third.create", json!({}));
    assert_eq!(t["state"], "blocked", "{t}");
    let third_id = t["id"].as_str().unwrap().to_string();
    let third = script(d, "third", &answer("third"));
    let from = log.len();
    let added = format!(
        "{base}[[exec]]\nname = \"third\"\npath = \"{}\"\n",
        third.display()
    );
    std::fs::write(&file, added).unwrap();
    hup();
    let line = log.wait(from, "SIGHUP: configuration reloaded");
    assert!(line.contains("exec added third"), "{line}");
    let done = bus.wait_state(&third_id, "resumed");
    assert_eq!(last_by(&done), ("third".into(), "third says yes".into()));

    let metrics = http(port, "GET", "/metrics");
    for (result, n) in [("ok", 5), ("partial", 0), ("refused", 1)] {
        let series = format!("extbus_config_reloads_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series}: {metrics}");
    }
    drop(bus);
    drop(served);
}

#[test]
fn config_check_validates_exec_entries_and_no_longer_calls_them_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extbus.toml");
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_extbus"))
            .args(["config", "check", file.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    std::fs::write(&file, entry("quota", Path::new("/bin/true"), "")).unwrap();
    let ok = check();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("1 executable extensions"), "{out}");
    assert!(!out.contains("[[exec]]"), "{out}");
    std::fs::write(
        &file,
        entry("quota", Path::new("/bin/true"), "max_running = 0\n"),
    )
    .unwrap();
    let no = check();
    assert_eq!(no.status.code(), Some(1));
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(err.contains("exec[0].max_running"), "{err}");
}
