//! `extbus entity ...` against the real binary: types, create from a file, list, get, update
//! from stdin, resolve, delete, with tables and `--json`, and failures as errors.

mod support;

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TYPE_ID: &str = "urn:extbus:type:acme:cluster:1.0.0";

fn cli(mqtt: u16, user: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_extbus"));
    for v in [
        "EXTBUS_URL",
        "EXTBUS_USER",
        "EXTBUS_SECRET",
        "EXTBUS_CREDENTIALS",
    ] {
        c.env_remove(v);
    }
    c.args(args)
        .args(["--url", &format!("mqtt://127.0.0.1:{mqtt}")])
        .args(["--user", user, "--secret", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(mqtt: u16, args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(mqtt, "platform", args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(mqtt: u16, args: &[&str], stdin: Option<&str>) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(mqtt, &a, stdin)).unwrap()
}

/// Registers the cluster type as `extension` over plain MQTT.
fn register(mqtt: u16) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut o = rumqttc::MqttOptions::new("cli-entity-ext", "127.0.0.1", mqtt);
        o.set_credentials("extension", "extension");
        let (c, mut el) = rumqttc::AsyncClient::new(o, 16);
        c.subscribe("extbus/out/extension/replies", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let manifest = json!({"entity_types": [{"vendor": "acme", "nss": "cluster",
            "version": "1.0.0", "name": "Cluster",
            "schema": {"type": "object", "required": ["nodes"],
                       "properties": {"nodes": {"type": "integer", "minimum": 1}}},
            "access": {"read": ["platform"], "write": ["platform"]}}]});
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match el.poll().await.unwrap() {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                        c.publish(
                            "extbus/in/extension/register",
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            serde_json::to_vec(&manifest).unwrap(),
                        )
                        .await
                        .unwrap();
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        let r: Value = serde_json::from_slice(&p.payload).unwrap();
                        assert_eq!(r["ok"], true, "{r}");
                        return;
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("register reply");
    });
}

#[test]
fn entity_commands_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = support::serve(&["--data-dir", data.to_str().unwrap()], Stdio::null());
    let start = Instant::now();
    while !cli(b.mqtt, "platform", &["entity", "types"], None)
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "broker not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    register(b.mqtt);
    let types = ok(b.mqtt, &["entity", "types"], None);
    assert!(
        types.contains(TYPE_ID) && types.contains("Cluster"),
        "{types}"
    );

    let file = dir.path().join("c.json");
    std::fs::write(&file, r#"{"nodes": 3}"#).unwrap();
    let args = [
        "entity", "create", "--type", TYPE_ID, "--org", "acme", "--name", "prod-1",
    ];
    let mut a = args.to_vec();
    a.push(file.to_str().unwrap());
    let e = json_of(b.mqtt, &a, None);
    assert_eq!(e["state"], "resolved");
    let id = e["id"].as_str().unwrap().to_string();

    let table = ok(b.mqtt, &["entity", "list", "--type", TYPE_ID], None);
    assert!(
        table.contains("prod-1") && table.contains("resolved"),
        "{table}"
    );
    let details = ok(b.mqtt, &["entity", "get", &id], None);
    assert!(
        details.contains("history:") && details.contains("create"),
        "{details}"
    );

    let bad = ok(
        b.mqtt,
        &["entity", "update", &id, "--revision", "1", "-"],
        Some(r#"{"nodes": 0}"#),
    );
    assert!(
        bad.contains("resolution_error") && bad.contains("/nodes"),
        "{bad}"
    );
    let err = cli(
        b.mqtt,
        "platform",
        &["entity", "update", &id, "--revision", "1", "-"],
        Some(r#"{"nodes": 4}"#),
    );
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("conflict"));
    let fixed = json_of(
        b.mqtt,
        &["entity", "update", &id, "--revision", "2", "-"],
        Some(r#"{"nodes": 4}"#),
    );
    assert_eq!(fixed["revision"], 3);
    assert_eq!(
        json_of(b.mqtt, &["entity", "resolve", &id], None)["state"],
        "resolved"
    );
    ok(b.mqtt, &["entity", "delete", &id, "--revision", "3"], None);
    let gone = cli(b.mqtt, "platform", &["entity", "get", &id], None);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not_found"));
}
