//! Launches the real `extbus` binary on free ports and talks to it over TCP: HTTP health,
//! an MQTT command and its reply, the CLI's principal and config commands, and a clean exit on
//! SIGTERM with the store flushed.

mod support;
use support::free_port;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn extbus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_extbus"))
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn cli_manages_principals_and_prints_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = extbus()
        .args([
            "principal",
            "add",
            "alice",
            "--role",
            "operator",
            "--org",
            "acme",
            "--data-dir",
            d,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(secret.len(), 32);
    let list = extbus()
        .args(["principal", "list", "--json", "--data-dir", d])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "alice");
    assert_eq!(v[0]["orgs"][0], "acme");
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&secret));
    let bad = extbus()
        .args(["principal", "add", "bob", "--role", "root", "--data-dir", d])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
    let rm = extbus()
        .args(["principal", "remove", "alice", "--data-dir", d])
        .output()
        .unwrap();
    assert!(rm.status.success());

    let cfg = extbus()
        .args(["config", "print", "--mqtt-listen", "127.0.0.1:1999"])
        .env("EXTBUS_HTTP__LISTEN", "127.0.0.1:8999")
        .output()
        .unwrap();
    let text = String::from_utf8(cfg.stdout).unwrap();
    assert!(
        text.contains("127.0.0.1:1999") && text.contains("127.0.0.1:8999"),
        "{text}"
    );
    let bad = extbus()
        .args(["config", "print"])
        .env("EXTBUS_MQTT__MAX_PAYLOAD", "12")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("mqtt.max_payload"));
}

#[test]
fn schema_export_writes_schemas_asyncapi_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let out = extbus()
        .args(["schema", "export", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("asyncapi.json")).unwrap()).unwrap();
    assert!(doc["asyncapi"].as_str().unwrap().starts_with("3."));
    assert!(dir.path().join("schemas").read_dir().unwrap().count() >= 10);
    let api: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("openapi.json")).unwrap()).unwrap();
    assert_eq!(api["openapi"], "3.1.0");
    assert!(api["paths"]["/api/tasks/{task_id}/resume"]["post"].is_object());
}

#[test]
fn binary_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let mut child = extbus()
        .args(["serve", "--dev", "--data-dir", dir.path().to_str().unwrap()])
        .args([
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let health = loop {
        if let Some(h) = http_get(http, "/healthz") {
            break h;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no /healthz");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // One command over MQTT 3.1.1 from the platform principal gets its reply.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut o = rumqttc::MqttOptions::new("smoke", "127.0.0.1", mqtt);
        o.set_credentials("platform", "platform");
        let (c, mut el) = rumqttc::AsyncClient::new(o, 16);
        c.subscribe("extbus/out/platform/replies", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut sent = false;
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match el.poll().await.unwrap() {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) if !sent => {
                        sent = true;
                        c.publish(
                            "extbus/in/platform/tasks/query",
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            r#"{"correlation_id":"s1"}"#,
                        )
                        .await
                        .unwrap();
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        return serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap()
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("reply");
        assert_eq!(reply["correlation_id"], "s1");
        assert_eq!(reply["ok"], true);
    });
    let metrics = http_get(http, "/metrics").unwrap();
    assert!(metrics.contains("extbus_commands_total"), "{metrics}");

    unsafe_kill(child.id(), 15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("store flushed"), "{err}");
}

fn unsafe_kill(pid: u32, sig: i32) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}
