//! The foundation over real MQTT 3.1.1 and 5: authentication, and that malformed,
//! schema-violating, oversized and unknown commands each get their documented error reply,
//! change nothing, and leave the broker serving.

use extbus_schema::topics;
use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::json;
use std::time::Duration;

const PROTOS: [Proto; 2] = [Proto::V4, Proto::V5];

#[tokio::test]
async fn authentication_is_required_on_both_protocols() {
    let b = TestBroker::start().await;
    for proto in PROTOS {
        assert!(
            BusClient::connect(&b, proto, "operator", "operator")
                .await
                .is_ok(),
            "{proto:?} valid"
        );
        assert!(
            BusClient::connect(&b, proto, "operator", "wrong")
                .await
                .is_err(),
            "{proto:?} wrong secret"
        );
        assert!(
            BusClient::connect(&b, proto, "nobody", "nobody")
                .await
                .is_err(),
            "{proto:?} unknown user"
        );
        assert!(
            BusClient::connect(&b, proto, "", "").await.is_err(),
            "{proto:?} no credentials"
        );
    }
    b.stop().await;
}

async fn assert_error(c: &BusClient, suffix: &str, payload: Vec<u8>, code: &str) {
    let r = c.command_raw(suffix, payload).await;
    assert_eq!(r["ok"], false, "{suffix}: {r}");
    assert_eq!(r["error"]["code"], code, "{suffix}: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{r}"
    );
}

#[tokio::test]
async fn bad_commands_get_documented_errors_and_change_nothing() {
    let b = TestBroker::start().await;
    // A rule for the operation the bad submits name: had one been accepted, a task would be
    // stored and the query below would show it.
    let ext = b.client("extension").await;
    let r = ext
        .command("register", json!({"rules": [{"operation": "vapp.create"}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let op = b.client("operator").await;
    for proto in PROTOS {
        let p = BusClient::connect(&b, proto, "platform", "platform")
            .await
            .unwrap();
        assert_error(&p, "tasks/submit", b"{not json".to_vec(), "bad_json").await;
        assert_error(&p, "tasks/submit", b"[1,2]".to_vec(), "bad_json").await;
        assert_error(&p, "no/such/command", b"{}".to_vec(), "unknown_command").await;
        assert_error(
            &p,
            "events",
            br#"{"type":"Vapp.Instantiate","org":"acme"}"#.to_vec(),
            "invalid_name",
        )
        .await;
        let big = format!("{{\"request_id\":\"r\",\"operation\":\"vapp.create\",\"org\":\"acme\",\"data\":\"{}\"}}", "x".repeat(300 * 1024));
        assert_error(&p, "tasks/submit", big.into_bytes(), "payload_too_large").await;

        // A schema violation names the failing path and echoes the correlation id.
        let r = p
            .command(
                "tasks/submit",
                json!({"request_id": 5, "operation": "vapp.create"}),
            )
            .await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], "schema_violation");
        let details = r["error"]["details"].as_array().expect("details");
        assert!(!details.is_empty());
        assert!(
            details
                .iter()
                .all(|d| d["path"].is_string() && d["message"].is_string()),
            "{r}"
        );
        assert!(r["correlation_id"].is_string());

        // A role that may not send a command is refused.
        let r = p.command("register", json!({"rules": []})).await;
        assert_eq!(r["error"]["code"], "forbidden", "{r}");

        // Nothing was stored, and the broker still serves.
        let q = p.command("tasks/query", json!({})).await;
        assert_eq!(q["ok"], true, "{q}");
        assert_eq!(q["result"]["tasks"], json!([]));
        let ev = op
            .command(
                "events/replay",
                json!({"from_seq": 0, "filter": "extbus/events/acme/#"}),
            )
            .await;
        assert_eq!(ev["result"]["events"], json!([]), "{ev}");
    }
    // The same submit, well formed, is accepted and stored: the checks above could fail.
    let p = b.client("platform").await;
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": "r", "operation": "vapp.create", "org": "acme"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let q = p.command("tasks/query", json!({})).await;
    assert_eq!(q["result"]["tasks"].as_array().map(Vec::len), Some(1));
    b.stop().await;
}

#[tokio::test]
async fn correlation_data_is_echoed_to_mqtt5_clients() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let b = TestBroker::start().await;
    let p = BusClient::connect(&b, Proto::V5, "platform", "platform")
        .await
        .unwrap();
    let props = PublishProperties {
        correlation_data: Some(bytes::Bytes::from_static(b"corr-42")),
        ..Default::default()
    };
    p.publish_with_props("extbus/in/platform/tasks/query", b"{}".to_vec(), props)
        .await;
    let m = p
        .expect(|m| m.topic == topics::replies("platform") && m.correlation_data.is_some())
        .await;
    assert_eq!(m.correlation_data.as_deref(), Some(&b"corr-42"[..]));
    assert_eq!(m.json()["ok"], true);
    b.stop().await;
}

/// An oversized command is not parsed, but the `correlation_id` in its first
/// `mqtt.max_payload` bytes is still echoed; one further in cannot be.
#[tokio::test]
async fn oversized_commands_keep_a_correlation_id_found_early() {
    let b = TestBroker::start().await;
    let big = "x".repeat(300 * 1024);
    for proto in PROTOS {
        let p = BusClient::connect(&b, proto, "platform", "platform")
            .await
            .unwrap();
        let early = format!(
            r#"{{"attrs": {{"correlation_id": "nested"}}, "correlation_id": "big-1", "data": "{big}"}}"#
        );
        let r = p.command_raw("tasks/submit", early.into_bytes()).await;
        assert_eq!(r["error"]["code"], "payload_too_large", "{proto:?}: {r}");
        assert_eq!(r["correlation_id"], "big-1", "{proto:?}: {r}");

        let late = format!(r#"{{"data": "{big}", "correlation_id": "big-2"}}"#);
        let r = p.command_raw("tasks/submit", late.into_bytes()).await;
        assert_eq!(r["error"]["code"], "payload_too_large", "{proto:?}: {r}");
        assert!(r["correlation_id"].is_null(), "{proto:?}: {r}");
    }
    b.stop().await;
}

#[tokio::test]
async fn every_command_gets_exactly_one_reply() {
    let b = TestBroker::start().await;
    let p = BusClient::connect(&b, Proto::V4, "platform", "platform")
        .await
        .unwrap();
    for i in 0..20 {
        let payload = if i % 2 == 0 {
            b"{}".to_vec()
        } else {
            b"garbage".to_vec()
        };
        p.publish("extbus/in/platform/tasks/query", payload).await;
    }
    let replies = p
        .collect(Duration::from_secs(2), |m| {
            m.topic == topics::replies("platform")
        })
        .await;
    assert_eq!(replies.len(), 20);
    assert_eq!(
        replies.iter().filter(|m| m.json()["ok"] == true).count(),
        10
    );
    b.stop().await;
}

#[tokio::test]
async fn first_start_without_dev_creates_admin_with_a_private_secret_file() {
    let b = TestBroker::start_with(|c| c.dev = false).await;
    let path = b.data_dir().join("admin.secret");
    let secret = std::fs::read_to_string(&path)
        .expect("admin.secret written")
        .trim()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(BusClient::connect(&b, Proto::V5, "admin", &secret)
        .await
        .is_ok());
    #[cfg(unix)]
    {
        // The store holds every payload: nobody but the owner may enter the data dir or
        // read a file of the store.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b.data_dir()), 0o700);
        let mut dirs = vec![b.data_dir().join("store")];
        let mut files = 0;
        while let Some(d) = dirs.pop() {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files += 1;
                    assert_eq!(mode(&p), 0o600, "{}", p.display());
                }
            }
        }
        assert!(files > 0, "sled wrote no files?");
    }
    assert!(BusClient::connect(&b, Proto::V5, "operator", "operator")
        .await
        .is_err());
    b.stop().await;
}
