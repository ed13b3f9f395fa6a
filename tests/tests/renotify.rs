//! Presence-driven re-announcement on the manual clock: a task that blocked while its
//! extension was away reaches the extension as soon as it subscribes again, without the clock
//! moving by the renotify period; tasks waiting on others are not sent to it.

use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::json;
use std::time::Duration;

const TOPIC: &str = "extbus/tasks/blocked/vm/create";

#[tokio::test]
async fn a_returning_extension_hears_the_tasks_waiting_on_it_at_once() {
    let b = TestBroker::start().await;
    b.add_principal("other-ext", &[extbus_schema::Role::Extension], &["*"]);
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"component": "approver", "rules": [{"operation": "vm.create"}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let other = b.client("other-ext").await;
    let r = other
        .command("register", json!({"rules": [{"operation": "vm.delete"}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    ext.disconnect().await;
    assert!(ext.wait_disconnected(Duration::from_secs(5)).await);

    let p = b.client("platform").await;
    let mut ids = Vec::new();
    for (n, op) in [(1, "vm.create"), (2, "vm.create"), (3, "vm.delete")] {
        let r = p
            .command(
                "tasks/submit",
                json!({"request_id": format!("away-{n}"), "operation": op, "org": "acme", "data": {}}),
            )
            .await;
        assert_eq!(r["result"]["state"], "blocked", "{r}");
        ids.push(r["result"]["id"].as_str().unwrap().to_string());
    }

    // Back, and listening: both of its waiting tasks arrive, the clock untouched.
    let back = BusClient::connect(&b, Proto::V5, "extension", "extension")
        .await
        .unwrap();
    assert_eq!(back.subscribe("extbus/tasks/blocked/#").await, vec![1]);
    let got = back
        .collect(Duration::from_secs(3), |m| {
            m.topic.starts_with("extbus/tasks/blocked/")
        })
        .await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    seen.dedup();
    let mut want = ids[..2].to_vec();
    want.sort();
    assert_eq!(
        seen,
        want,
        "{:?}",
        got.iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|m| m.topic == TOPIC));
}
