//! MQTT 5 request/response over real MQTT: a command's Response Topic in the sender's own
//! outbox takes its reply (with the Correlation Data), as `mosquitto_rr -e` expects; one
//! anywhere else is refused with the reason on the usual replies topic, and the command is
//! not applied.

use extbus_tests::{BusClient, Proto, TestBroker};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::json;
use std::time::Duration;

fn props(response_topic: &str) -> PublishProperties {
    PublishProperties {
        response_topic: Some(response_topic.into()),
        correlation_data: Some(b"cd-1".to_vec().into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_response_topic_in_the_senders_outbox_takes_the_reply() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600_000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let p = BusClient::connect(&b, Proto::V5, "platform", "platform")
        .await
        .unwrap();
    assert_eq!(p.subscribe("extbus/out/platform/#").await, vec![1]);

    let submit = |rid: &str| {
        serde_json::to_vec(&json!({"correlation_id": rid, "request_id": rid, "operation": "vm.create", "org": "acme"}))
            .unwrap()
    };
    p.publish_with_props(
        "extbus/in/platform/tasks/submit",
        submit("r1"),
        props("extbus/out/platform/rr"),
    )
    .await;
    let m = p.expect(|m| m.json()["correlation_id"] == "r1").await;
    assert_eq!(m.topic, "extbus/out/platform/rr");
    assert_eq!(m.correlation_data.as_deref(), Some(&b"cd-1"[..]));
    assert_eq!(m.json()["result"]["state"], "blocked", "{}", m.json());

    // Someone else's outbox, a wildcard, or outside the outbox: refused, nothing submitted.
    for bad in [
        "extbus/out/operator/rr",
        "extbus/out/platform/+",
        "extbus/out/platform/",
        "elsewhere/rr",
    ] {
        p.publish_with_props("extbus/in/platform/tasks/submit", submit("r2"), props(bad))
            .await;
        let m = p.expect(|m| m.json()["correlation_id"] == "r2").await;
        assert_eq!(m.topic, "extbus/out/platform/replies", "{bad}");
        let r = m.json();
        assert_eq!(r["error"]["code"], "forbidden", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not a topic under extbus/out/platform/"),
            "{r}"
        );
    }
    let q = p.command("tasks/query", json!({})).await;
    let ids: Vec<_> = q["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["request_id"].clone())
        .collect();
    assert_eq!(ids, [json!("r1")], "the refused submits were not applied");
    // Nothing else arrived on the refused topics' behalf.
    let stray = p
        .collect(Duration::from_millis(300), |m| m.topic.ends_with("/rr"))
        .await;
    assert!(stray.is_empty());
    b.stop().await;
}
