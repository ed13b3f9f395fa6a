//! `/metrics` of the real `extbus` binary, checked as a scraper reads it: both exposition formats
//! parse into well-formed families (HELP and TYPE on each, samples named for their family, no
//! two families sharing a name under OpenMetrics rules), the documented metrics are there from
//! start, and Prometheus' own `promtool check metrics` accepts the text (installed by the test when it can, else it fails).

mod support;
use support::free_port;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// Metrics the README documents that carry no open label values, so they exist from start.
const DOCUMENTED: [&str; 27] = [
    "extbus_connections_open",
    "extbus_connections_total",
    "extbus_connect_refused_total",
    "extbus_gate_denied_total",
    "extbus_gate_subscriptions_refused_total",
    "extbus_commands_total",
    "extbus_tasks_blocked_total",
    "extbus_tasks_resolved_total",
    "extbus_tasks_purged_total",
    "extbus_config_reloads_total",
    "extbus_events_logged_total",
    "extbus_store_flushes_total",
    "extbus_auth_checks_total",
    "extbus_auth_hashes_total",
    "extbus_auth_queue",
    "extbus_auth_running",
    "extbus_auth_throttled_total",
    "extbus_service_request_duration_seconds",
    "extbus_service_requests_pending",
    "extbus_service_late_responses_total",
    "extbus_action_runs_total",
    "extbus_action_runs_pending",
    "extbus_http_connections",
    "extbus_http_refused_total",
    "extbus_http_closed_total",
    "extbus_gate_oversized_total",
    "extbus_commands_batched_total",
];

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /metrics` with `accept`: (content type, body).
fn scrape(port: u16, accept: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-type: ")
            .map(str::to_string)
    })?;
    Some((ctype, body.to_string()))
}

/// Families by name (TYPE), with the sample names seen under each, and the HELP names.
/// Panics on any line that is neither a comment nor `name{labels} value`.
fn parse(text: &str, openmetrics: bool) -> HashMap<String, (String, HashSet<String>)> {
    let mut families: HashMap<String, (String, HashSet<String>)> = HashMap::new();
    let mut helped = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_string()), "second HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(helped.contains(name), "TYPE without HELP: {line}");
            let fresh = families.insert(name.into(), (kind.into(), HashSet::new()));
            assert!(fresh.is_none(), "second TYPE for {name}");
            current = Some(name.to_string());
        } else if line == "# EOF" {
            assert!(openmetrics, "# EOF in the 0.0.4 text");
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "odd line: {line:?}"
            );
            let name_end = line.find(['{', ' ']).expect(line);
            let name = &line[..name_end];
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad value: {line}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name: {line}"
            );
            let family = current.as_ref().expect("sample before any TYPE");
            families.get_mut(family).unwrap().1.insert(name.to_string());
        }
    }
    if openmetrics {
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text must end with # EOF"
        );
    }
    families
}

/// Sample names a family of `kind` called `family` may have.
fn allowed(family: &str, kind: &str, openmetrics: bool) -> Vec<String> {
    match kind {
        "counter" if openmetrics => vec![format!("{family}_total")],
        "counter" | "gauge" => vec![family.to_string()],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{family}{s}"))
            .collect(),
        other => panic!("unexpected type {other} for {family}"),
    }
}

fn check_families(text: &str, openmetrics: bool) -> HashSet<String> {
    let families = parse(text, openmetrics);
    let mut all_samples: HashMap<String, String> = HashMap::new();
    for (family, (kind, samples)) in &families {
        assert!(!samples.is_empty(), "{family} has no samples");
        let ok = allowed(family, kind, openmetrics);
        for s in samples {
            assert!(ok.contains(s), "{s} does not belong to {kind} {family}");
            let clash = all_samples.insert(s.clone(), family.clone());
            assert!(clash.is_none(), "{s} in two families");
        }
    }
    // A sample may not be named like another family (a gauge `x` beside a counter `x`).
    for s in all_samples.keys() {
        if let Some((_, samples)) = families.get(s) {
            assert!(samples.contains(s), "sample {s} collides with family {s}");
        }
    }
    all_samples.into_keys().collect()
}

/// `promtool`, installed from Debian's `prometheus` package when missing and this is root with
/// apt-get; otherwise the test fails naming the command (never a silent skip).
fn promtool_present() {
    let found = || Command::new("promtool").arg("--version").output().is_ok();
    if found() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if root && Command::new("apt-get").arg("--version").output().is_ok() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "prometheus",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    assert!(
        found(),
        "promtool is needed: install it with `apt-get install prometheus` (Debian)"
    );
}

fn promtool(text: &str) {
    promtool_present();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A refused and an accepted MQTT connection, so labelled series move off zero.
fn some_traffic(mqtt: u16) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (secret, id) in [("wrong", "expo-bad"), ("platform", "expo")] {
            let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", mqtt);
            o.set_credentials("platform", secret);
            let (_c, mut el) = rumqttc::AsyncClient::new(o, 4);
            let first = tokio::time::timeout(Duration::from_secs(10), el.poll()).await;
            let accepted = matches!(first, Ok(Ok(rumqttc::Event::Incoming(_))));
            assert_eq!(accepted, secret == "platform", "{id}: {first:?}");
        }
    });
}

#[test]
fn metrics_parse_in_both_formats_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let _broker = Broker(
        Command::new(env!("CARGO_BIN_EXE_extbus"))
            .args(["serve", "--dev", "--data-dir", dir.path().to_str().unwrap()])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let (ctype, text) = loop {
        if let Some(r) = scrape(http, "text/plain") {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no /metrics");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let samples = check_families(&text, false);
    for name in DOCUMENTED {
        let present = samples.contains(name) || samples.contains(&format!("{name}_count"));
        assert!(present, "{name} missing at start:\n{text}");
    }
    promtool(&text);

    some_traffic(mqtt);
    let (_, text) = scrape(http, "text/plain").unwrap();
    check_families(&text, false);
    let refused = "extbus_connect_refused_total{reason=\"bad_credentials\"} 1";
    assert!(text.lines().any(|l| l == refused), "{text}");
    promtool(&text);

    let (ctype, om) = scrape(http, OPENMETRICS).unwrap();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let om_samples = check_families(&om, true);
    assert!(om_samples.contains("extbus_connections_total"));
    assert!(om_samples.contains("extbus_connections_open"));
}
