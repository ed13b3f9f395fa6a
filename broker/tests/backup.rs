//! `extbus backup` against the real binary: refused while the broker runs (the copy is not
//! made), refused into a non-empty directory, inside the data dir, or from a directory with no
//! store; after a stop the copy serves every acknowledged task, event and principal as the
//! original did.

mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn extbus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_extbus"))
        .args(args)
        .output()
        .unwrap()
}

fn serve(dir: &Path, config: &Path) -> support::Served {
    let (c, d) = (config.to_str().unwrap(), dir.to_str().unwrap());
    support::serve(&["--config", c, "--data-dir", d], Stdio::null())
}

/// One command as `user`, on a fresh connection; returns its reply.
async fn call(port: u16, user: &str, secret: &str, suffix: &str, body: Value) -> Value {
    let mut o = MqttOptions::new(
        format!("{user}-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_credentials(user, secret);
    let (client, mut el) = AsyncClient::new(o, 16);
    client
        .subscribe(format!("extbus/out/{user}/replies"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let run = async {
        loop {
            match el.poll().await.expect("connection") {
                Event::Incoming(Packet::SubAck(_)) => {
                    let topic = format!("extbus/in/{user}/{suffix}");
                    let payload = serde_json::to_vec(&body).unwrap();
                    client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .unwrap();
                }
                Event::Incoming(Packet::Publish(p)) => {
                    return serde_json::from_slice::<Value>(&p.payload).unwrap()
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("reply within 10 s")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test]
async fn a_backup_taken_after_a_stop_serves_everything_the_original_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, copy) = (tmp.path().join("data"), tmp.path().join("copy"));
    let config = tmp.path().join("extbus.toml");
    std::fs::write(
        &config,
        "[[tasks.rules]]\noperation = \"vm.create\"\nextension = \"extension\"\ntimeout_ms = 600000\n",
    )
    .unwrap();
    let d = data.to_str().unwrap();
    let added = extbus(&[
        "principal",
        "add",
        "ops",
        "--role",
        "operator",
        "--data-dir",
        d,
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let secret = String::from_utf8_lossy(&added.stdout).trim().to_string();

    let broker = serve(&data, &config);
    let task = call(
        broker.mqtt,
        "platform",
        "platform",
        "tasks/submit",
        json!({"request_id": "r1", "operation": "vm.create", "org": "acme"}),
    )
    .await;
    assert_eq!(task["result"]["state"], "blocked", "{task}");
    let id = task["result"]["id"].as_str().unwrap().to_string();
    let ev = call(
        broker.mqtt,
        "platform",
        "platform",
        "events",
        json!({"type": "vm.create", "org": "acme", "outcome": "succeeded", "id": "ev-1"}),
    )
    .await;
    assert_eq!(ev["ok"], true, "{ev}");
    let before = call(
        broker.mqtt,
        "ops",
        &secret,
        "events/replay",
        json!({"from_seq": 0}),
    )
    .await;
    let before = before["result"]["events"].clone();
    assert!(before.as_array().unwrap().len() >= 2, "{before}");

    // While the broker runs: refused, and nothing is written.
    let c = copy.to_str().unwrap();
    let busy = extbus(&["backup", c, "--data-dir", d]);
    assert!(!busy.status.success());
    assert!(stderr(&busy).contains("is in use"), "{}", stderr(&busy));
    assert!(!copy.exists(), "a refused backup left {}", copy.display());
    drop(broker);

    let inside = data.join("backup");
    let bad = extbus(&["backup", inside.to_str().unwrap(), "--data-dir", d]);
    assert!(stderr(&bad).contains("inside it"), "{}", stderr(&bad));
    assert!(!inside.exists());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let none = extbus(&["backup", c, "--data-dir", empty.to_str().unwrap()]);
    assert!(
        stderr(&none).contains("holds no store"),
        "{}",
        stderr(&none)
    );
    assert!(!copy.exists());

    let ok = extbus(&["backup", c, "--data-dir", d]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("store check passed"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let again = extbus(&["backup", c, "--data-dir", d]);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // The copy, served on its own, has the task, the events with their seqs, and the principal.
    let restored = serve(&copy, &config);
    let got = call(
        restored.mqtt,
        "ops",
        &secret,
        &format!("tasks/{id}/get"),
        json!({}),
    )
    .await;
    assert_eq!(got["result"]["state"], "blocked", "{got}");
    let after = call(
        restored.mqtt,
        "ops",
        &secret,
        "events/replay",
        json!({"from_seq": 0}),
    )
    .await;
    assert_eq!(after["result"]["events"], before, "{after}");
    let dup = call(
        restored.mqtt,
        "platform",
        "platform",
        "events",
        json!({"type": "vm.create", "org": "acme", "outcome": "succeeded", "id": "ev-1"}),
    )
    .await;
    assert_eq!(dup["result"]["duplicate"], true, "{dup}");
}
