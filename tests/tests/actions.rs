//! Custom actions over a real broker, real MQTT clients and the HTTP API: invoke success,
//! error, timeout (manual clock), no extension connected, a disabled registration, only the
//! extension answering its runs, HTTP status mapping, and registrations across a restart.

use extbus_schema::Role;
use extbus_tests::actions::{answer, http, registered, spawn_invoke, REQUESTS, SECRET};
use extbus_tests::http::{basic, request};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn invoke_over_mqtt_succeeds_and_is_an_event() {
    let (b, ext) = registered().await;
    let op = b.client("operator").await;
    assert_eq!(op.subscribe("extbus/events/system/action/#").await, vec![1]);
    let run = spawn_invoke(
        &op,
        "snapshot",
        json!({"resource_id": "vm-7",
        "arguments": {"label": "nightly", "quiesce": true, "password": SECRET}}),
    );
    let req = answer(&ext, "success", json!("done")).await;
    // The extension gets the arguments as sent, password included, and who asked.
    assert_eq!(req["action"], "snapshot");
    assert_eq!(req["resource_id"], "vm-7");
    assert_eq!(req["arguments"]["password"], SECRET);
    assert_eq!(req["principal"], "operator");
    assert_eq!(req["orgs"], json!(["*"]));
    assert!(req["deadline"].is_string(), "{req}");
    let r = run.await.unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let res = &r["result"];
    assert_eq!(res["id"], req["id"]);
    assert_eq!(res["action"], "extension/snapshot");
    assert_eq!(res["status"], "success");
    assert_eq!(res["message"], "done");
    assert_eq!(res["text"], "Snapshot nightly of vm-7 taken");
    let ev = op
        .expect_on("extbus/events/system/action/succeeded")
        .await
        .json();
    assert_eq!(ev["data"]["id"], req["id"]);
    assert_eq!(ev["subject"], "vm-7");
    assert_eq!(ev["data"]["arguments"]["password"], "********");
    assert_eq!(ev["data"]["arguments"]["label"], "nightly");
    b.stop().await;
}

#[tokio::test]
async fn an_error_answer_fails_and_a_table_message_passes_through() {
    let (b, ext) = registered().await;
    let op = b.client("operator").await;
    assert_eq!(op.subscribe("extbus/events/system/action/#").await, vec![1]);
    let run = spawn_invoke(&op, "snapshot", json!({"arguments": {"label": "x"}}));
    let table = json!([{"disk": "a", "error": "full"}, {"disk": "b", "error": "busy"}]);
    answer(&ext, "error", table.clone()).await;
    let r = run.await.unwrap();
    assert_eq!(r["result"]["status"], "error", "{r}");
    assert_eq!(r["result"]["message"], table);
    assert_eq!(r["result"]["text"], Value::Null);
    let ev = op
        .expect_on("extbus/events/system/action/failed")
        .await
        .json();
    assert_eq!(ev["data"]["status"], "error");
    b.stop().await;
}

#[tokio::test]
async fn no_answer_in_time_is_overloaded_and_a_late_answer_is_refused() {
    let (b, ext) = registered().await;
    let op = b.client("operator").await;
    assert_eq!(op.subscribe("extbus/events/system/action/#").await, vec![1]);
    let run = spawn_invoke(&op, "snapshot", json!({"arguments": {"label": "x"}}));
    let req = ext.expect_on(REQUESTS).await.json();
    b.clock.advance(4_999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!run.is_finished(), "answered before the deadline");
    b.clock.advance(1);
    let r = run.await.unwrap();
    assert_eq!(r["error"]["code"], "overloaded", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("within 5000 ms"),
        "{r}"
    );
    let ev = op
        .expect_on("extbus/events/system/action/failed")
        .await
        .json();
    assert_eq!(ev["data"]["status"], "timeout");
    let late = ext
        .command(
            "actions/responses",
            json!({"id": req["id"], "status": "success"}),
        )
        .await;
    assert_eq!(late["error"]["code"], "not_found", "{late}");
    let m = request(b.http, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&m.body).to_string();
    assert!(
        text.contains("extbus_action_runs_total{result=\"timeout\"} 1"),
        "{text}"
    );
    assert!(text.contains("extbus_action_runs_pending 0"), "{text}");
    b.stop().await;
}

#[tokio::test]
async fn only_the_extension_answers_its_runs() {
    let (b, ext) = registered().await;
    b.add_principal("other-ext", &[Role::Extension], &["*"]);
    let other = b.client("other-ext").await;
    let op = b.client("operator").await;
    let run = spawn_invoke(&op, "snapshot", json!({"arguments": {"label": "x"}}));
    let req = ext.expect_on(REQUESTS).await.json();
    let r = other
        .command(
            "actions/responses",
            json!({"id": req["id"], "status": "success"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    // The run still waits for its own extension.
    let r = ext
        .command(
            "actions/responses",
            json!({"id": req["id"], "status": "success", "message": {"ok": 1}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(run.await.unwrap()["result"]["message"], json!({"ok": 1}));
    b.stop().await;
}

#[tokio::test]
async fn not_connected_and_disabled_answer_overloaded_at_once() {
    let (b, ext) = registered().await;
    let op = b.client("operator").await;
    // Disabled: hidden from the queries and refused.
    let r = op
        .command("registrations/extension/vm-tools/disable", json!({}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {"label": "x"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "overloaded", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is disabled"),
        "{r}"
    );
    assert_eq!(
        op.command("actions/query", json!({})).await["result"]["actions"],
        json!([])
    );
    assert_eq!(
        op.command("ui-plugins/query", json!({})).await["result"]["ui_plugins"],
        json!([])
    );
    let h = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": "x"}}),
    )
    .await;
    assert_eq!(h.status, 503, "{:?}", h.json());
    let r = op
        .command("registrations/extension/vm-tools/enable", json!({}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        op.command("actions/query", json!({})).await["result"]["actions"][0]["name"],
        "snapshot"
    );
    // Not connected: at once, not after the timeout (the clock does not move).
    ext.disconnect().await;
    drop(ext);
    for _ in 0..100 {
        let q = op.command("registrations/query", json!({})).await;
        if q["result"]["items"][0]["connections"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {"label": "x"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "overloaded", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no extension connected"),
        "{r}"
    );
    b.stop().await;
}

#[tokio::test]
async fn http_invoke_answers_with_the_run_and_maps_errors() {
    let (b, ext) = registered().await;
    let addr = b.http;
    let run = tokio::spawn(async move {
        let body = json!({"resource_id": "vm-1", "arguments": {"label": "web"}}).to_string();
        request(
            addr,
            "POST",
            "/api/actions/extension/snapshot",
            &[("authorization", &basic("operator", "operator"))],
            body.as_bytes(),
        )
        .await
    });
    let req = answer(&ext, "success", json!("fine")).await;
    let h = run.await.unwrap();
    assert_eq!(h.status, 200, "{:?}", h.json());
    assert_eq!(
        h.json(),
        json!({"id": req["id"], "action": "extension/snapshot", "status": "success",
        "message": "fine", "text": "Snapshot web of vm-1 taken"})
    );
    let h = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {}}),
    )
    .await;
    assert_eq!(h.status, 400);
    assert_eq!(
        h.json()["error"]["details"][0]["path"],
        "",
        "{:?}",
        h.json()
    );
    let h = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": 3}}),
    )
    .await;
    assert_eq!(h.status, 400);
    assert_eq!(
        h.json()["error"]["details"],
        json!([{"path": "/label", "message": "3 is not of type \"string\""}])
    );
    let h = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/missing",
        &json!({}),
    )
    .await;
    assert_eq!(
        (h.status, h.json()["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let h = http(
        &b,
        "observer",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": "x"}}),
    )
    .await;
    assert_eq!(
        (h.status, h.json()["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    // Timeout over HTTP: 503.
    let run = tokio::spawn(async move {
        request(
            addr,
            "POST",
            "/api/actions/extension/snapshot",
            &[("authorization", &basic("operator", "operator"))],
            br#"{"arguments": {"label": "t"}}"#,
        )
        .await
    });
    ext.expect_on(REQUESTS).await;
    b.clock.advance(5_000);
    let h = run.await.unwrap();
    assert_eq!(
        (h.status, h.json()["error"]["code"].clone()),
        (503, json!("overloaded"))
    );
    b.stop().await;
}

#[tokio::test]
async fn actions_survive_a_restart_and_withdraw_with_their_component() {
    let (b, ext) = registered().await;
    drop(ext);
    let b = b.restart().await;
    let op = b.client("operator").await;
    assert_eq!(
        op.command("actions/query", json!({})).await["result"]["actions"][0]["name"],
        "snapshot"
    );
    let ext = b.client("extension").await;
    let r = ext
        .command("register", json!({"component": "vm-tools"}))
        .await;
    assert_eq!(
        r["result"]["removed"]["actions"],
        json!(["snapshot", "audit"]),
        "{r}"
    );
    assert_eq!(r["result"]["removed"]["ui_plugins"], json!(["vm-ui"]));
    assert_eq!(
        op.command("actions/query", json!({})).await["result"]["actions"],
        json!([])
    );
    let r = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {"label": "x"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    b.stop().await;
}
