//! The broker's own `task.*` events over real MQTT: each carries the snapshot of its own task
//! (an extended task's event holds its new deadline), and the task counters on `/metrics`
//! count each notice and each outcome exactly once.

use extbus_tests::http::request;
use extbus_tests::{BusClient, TestBroker};
use serde_json::json;
use std::time::Duration;

async fn submit(p: &BusClient, request_id: &str) -> String {
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": request_id, "operation": "vm.create", "org": "acme"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    r["result"]["id"].as_str().unwrap().to_string()
}

/// The value of one sample line of the text exposition, e.g. `extbus_tasks_blocked_total`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn each_task_event_carries_its_own_task_and_counters_count_once() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 10_000, "max_timeout_ms": 60_000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let op = b.client("operator").await;
    assert_eq!(op.subscribe("extbus/events/acme/task/#").await, vec![1]);
    let p = b.client("platform").await;
    let ids = [
        submit(&p, "r1").await,
        submit(&p, "r2").await,
        submit(&p, "r3").await,
    ];
    for id in &ids {
        let ev = op
            .expect(|m| {
                m.topic == "extbus/events/acme/task/blocked"
                    && m.json()["data"]["id"] == id.as_str()
            })
            .await
            .json();
        assert_eq!(ev["subject"], format!("urn:extbus:task:{id}"));
        assert_eq!(ev["data"]["state"], "blocked", "{ev}");
    }

    // Nothing announces an extended task on `tasks/blocked`: its event builds its own JSON.
    let r = ext
        .command(
            &format!("tasks/{}/extend", ids[0]),
            json!({"extend_ms": 30_000, "message": "need time"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ev = op
        .expect_on("extbus/events/acme/task/extended")
        .await
        .json();
    assert_eq!(ev["subject"], format!("urn:extbus:task:{}", ids[0]));
    assert_eq!(ev["data"]["id"], ids[0].as_str(), "{ev}");
    assert_eq!(ev["data"]["state"], "blocked", "{ev}");
    assert_eq!(ev["data"]["deadline"], r["result"]["deadline"], "{ev}");

    let r = ext
        .command(&format!("tasks/{}/resume", ids[1]), json!({}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ev = op.expect_on("extbus/events/acme/task/resumed").await.json();
    assert_eq!(ev["data"]["id"], ids[1].as_str(), "{ev}");
    assert_eq!(ev["data"]["state"], "resumed", "{ev}");

    // Three notices, one extension, one outcome: the counters see 3 and 1, nothing else.
    let extra = op
        .collect(Duration::from_millis(300), |m| {
            m.topic.starts_with("extbus/events/")
        })
        .await;
    assert!(extra.is_empty(), "unexpected events: {}", extra.len());
    let m = request(b.http, "GET", "/metrics", &[], b"").await;
    let m = String::from_utf8_lossy(&m.body).to_string();
    assert_eq!(sample(&m, "extbus_tasks_blocked_total"), Some(3.0), "{m}");
    let resolved = |state: &str| {
        sample(
            &m,
            &format!("extbus_tasks_resolved_total{{state=\"{state}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(resolved("resumed"), 1.0, "{m}");
    assert_eq!(resolved("cancelled") + resolved("aborted"), 0.0, "{m}");
    b.stop().await;
}
