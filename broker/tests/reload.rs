//! `extbus config check` and SIGHUP against the real binary: a bad file is refused naming its
//! field and changes nothing (the broker keeps serving); a good one applies `log.level` and the
//! callout rules at once and names the sections that wait for a restart; each outcome is
//! counted on `/metrics`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GOOD: &str = "[log]\nlevel = \"info\"\n\n[[tasks.rules]]\noperation = \"vm.create\"\nextension = \"extension\"\n";
const BAD: &str = "[tasks]\nrenotify_ms = 5\n";

fn extbus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_extbus"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Waits until a log line contains `want`; returns it.
fn wait_line(lines: &Mutex<Vec<String>>, want: &str) -> String {
    let t = Instant::now();
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(want)) {
            return l.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no log line with {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_check_names_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.toml"), dir.path().join("bad.toml"));
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let ok = extbus(&["config", "check", good.to_str().unwrap()]);
    assert!(ok.status.success());
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("ok (1 callout rules"), "{out}");
    assert!(
        out.contains("read at start only: listener addresses"),
        "{out}"
    );
    let no = extbus(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(no.status.code(), Some(1));
    let err = String::from_utf8_lossy(&no.stderr);
    assert!(err.contains("tasks.renotify_ms"), "{err}");
    let missing = extbus(&["config", "check", "/nonexistent/extbus.toml"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

#[test]
fn sighup_refuses_a_bad_file_and_applies_a_new_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extbus.toml");
    std::fs::write(&file, GOOD).unwrap();
    let (f, d) = (file.to_str().unwrap(), dir.path().join("data"));
    let args = [
        "--log-format",
        "json",
        "--config",
        f,
        "--data-dir",
        d.to_str().unwrap(),
    ];
    let mut served = support::serve(&args, Stdio::piped());
    let http = served.http;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (l2, stderr) = (lines.clone(), served.child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    wait_line(&lines, "extbus serving");
    let pid = served.child.id() as i32;
    let hup = || unsafe { libc::kill(pid, libc::SIGHUP) };

    std::fs::write(&file, BAD).unwrap();
    hup();
    let refused = wait_line(&lines, "configuration refused");
    assert!(refused.contains("tasks.renotify_ms"), "{refused}");
    assert!(
        get(http, "/healthz").starts_with("HTTP/1.1 200"),
        "still serving"
    );

    // Before the reload, vm.delete has no rule: it goes through at once.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let submit = |id: &str| {
        rt.block_on(async {
            let p = support::session::session("platform", served.mqtt).await;
            let body =
                serde_json::json!({"request_id": id, "operation": "vm.delete", "org": "acme"});
            p.call("tasks/submit", id, body).await
        })
    };
    let before = submit("d-1");
    assert_ne!(before["result"]["state"], "blocked", "{before}");

    // A quieter level, a new rule and a new event retention: the level and the rule apply
    // now, the retention at the next start.
    std::fs::write(
        &file,
        GOOD.replace("\"info\"", "\"warn\"")
            .replace("vm.create", "vm.delete")
            + "\n[events]\nretention_max_age_ms = 86400000\n",
    )
    .unwrap();
    hup();
    let partial = wait_line(&lines, "changed sections take effect at the next start");
    let (applied, restart) = partial.split_once("restart_needed").unwrap();
    assert!(
        applied.contains("log.level") && applied.contains("tasks") && restart.contains("events"),
        "{partial}"
    );
    // The new rule holds at once: vm.delete now blocks on its extension.
    let after = submit("d-2");
    assert_eq!(after["result"]["state"], "blocked", "{after}");
    let metrics = get(http, "/metrics");
    for (result, n) in [("ok", 0), ("partial", 1), ("refused", 1)] {
        let series = format!("extbus_config_reloads_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series}: {metrics}");
    }
    // At warn, the access line of that scrape is not written.
    std::thread::sleep(Duration::from_millis(300));
    let access = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"HTTP request\""))
        .count();
    assert_eq!(access, 1, "only the scrape before the new level was logged");
    drop(served);
}

/// Run-time limits apply at once; a listener setting is named as waiting for a restart.
#[test]
fn sighup_applies_connection_limits_at_once_and_names_restart_only_fields() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extbus.toml");
    std::fs::write(&file, GOOD).unwrap();
    let (f, d) = (file.to_str().unwrap(), dir.path().join("data"));
    let args = [
        "--log-format",
        "json",
        "--config",
        f,
        "--data-dir",
        d.to_str().unwrap(),
    ];
    let mut served = support::serve(&args, Stdio::piped());
    let http = served.http;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (l2, stderr) = (lines.clone(), served.child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    wait_line(&lines, "extbus serving");
    // One idle connection held open; under the default cap of 64 a second one is served.
    let held = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    assert!(get(http, "/healthz").starts_with("HTTP/1.1 200"));

    std::fs::write(
        &file,
        format!("{GOOD}\n[http]\nmax_connections_per_address = 1\n\n[mqtt]\nbacklog = 64\n"),
    )
    .unwrap();
    unsafe { libc::kill(served.child.id() as i32, libc::SIGHUP) };
    let partial = wait_line(&lines, "changed sections take effect at the next start");
    let (applied, restart) = partial.split_once("restart_needed").unwrap();
    assert!(
        applied.contains("http.max_connections_per_address") && restart.contains("mqtt.backlog"),
        "{partial}"
    );
    assert!(
        !restart.contains("http.max_connections_per_address"),
        "{partial}"
    );
    // The held connection fills this address's one slot: the next is refused at once.
    let refused = get(http, "/healthz");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("overloaded"), "{refused}");
    drop(held);
    // Its slot given back, the address is served again.
    let t = Instant::now();
    while !get(http, "/healthz").starts_with("HTTP/1.1 200") {
        assert!(t.elapsed() < Duration::from_secs(5), "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(served);
}
