//! Custom actions and UI plugin registrations over a real broker, real MQTT clients and the
//! HTTP API: invoke success, error, timeout (manual clock), no extension connected, a disabled
//! registration; each bad input (unknown action, bad arguments with per-field details, wrong
//! role, unknown field); only the extension may subscribe its requests; events and every other
//! message never carry a password argument; queries filtered by role and switch.

use extbus_schema::Role;
use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "Sup3r-Secret-Value";
const REQUESTS: &str = "extbus/actions/extension/requests";

fn manifest() -> Value {
    json!({"component": "vm-tools",
        "actions": [
            {"name": "snapshot", "title": "Take a snapshot", "resource": "urn:extbus:type:acme:vm:1.0.0",
             "roles": ["operator"], "timeout_ms": 5000,
             "parameters": {"type": "object", "required": ["label"], "additionalProperties": false,
                "properties": {"label": {"type": "string", "minLength": 1}, "quiesce": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"}, "mode": {"enum": ["fast", "safe"]},
                    "owner": {"type": "string", "format": "email"},
                    "password": {"type": "string", "format": "password"}}},
             "success_message": "Snapshot {{label}} of {{resource}} taken"},
            {"name": "audit", "roles": ["observer"], "parameters": {"type": "object"}}],
        "ui_plugins": [{"name": "vm-ui", "title": "VM tools", "entry": "/ext/acme/vm-ui/index.html",
            "extension_points": [{"type": "navigation"},
                {"type": "task-action", "operation": "vm.create"}]}]})
}

async fn registered() -> (TestBroker, Arc<BusClient>) {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext.command("register", manifest()).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["result"]["added"]["actions"],
        json!(["snapshot", "audit"])
    );
    assert_eq!(r["result"]["added"]["ui_plugins"], json!(["vm-ui"]));
    assert_eq!(ext.subscribe(REQUESTS).await, vec![1]);
    (b, ext)
}

async fn http(b: &TestBroker, who: &str, method: &str, target: &str, body: &Value) -> HttpResponse {
    let auth = basic(who, who);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, &[("authorization", &auth)], &body).await
}

/// The extension answers the next request with `status` and `message`; returns the request.
async fn answer(ext: &BusClient, status: &str, message: Value) -> Value {
    let req = ext.expect_on(REQUESTS).await.json();
    let r = ext
        .command(
            "actions/responses",
            json!({"id": req["id"], "status": status, "message": message}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["delivered"], true);
    req
}

fn spawn_invoke(c: &Arc<BusClient>, action: &str, body: Value) -> tokio::task::JoinHandle<Value> {
    let (c, suffix) = (c.clone(), format!("actions/extension/{action}/invoke"));
    tokio::spawn(async move { c.command(&suffix, body).await })
}

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
async fn bad_inputs_are_refused_before_delivery() {
    let (b, ext) = registered().await;
    let op = b.client("operator").await;
    let unknown = op
        .command("actions/extension/nope/invoke", json!({"arguments": {}}))
        .await;
    assert_eq!(unknown["error"]["code"], "not_found", "{unknown}");
    let ghost = op
        .command("actions/ghost/snapshot/invoke", json!({"arguments": {}}))
        .await;
    assert_eq!(ghost["error"]["code"], "not_found", "{ghost}");
    let bad = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {
            "label": "", "at": "yesterday", "mode": "slow", "owner": "not-an-email",
            "password": 5, "extra": 1}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation", "{bad}");
    let mut paths: Vec<&str> = bad["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["", "/at", "/label", "/mode", "/owner", "/password"],
        "{bad}"
    );
    let missing = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {}}),
        )
        .await;
    assert_eq!(missing["error"]["code"], "schema_violation", "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("label"),
        "{missing}"
    );
    // Wrong role: an observer may run `audit` but not `snapshot`; a platform neither.
    let obs = b.client("observer").await;
    let r = obs
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {"label": "x"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let plat = b.client("platform").await;
    let r = plat
        .command("actions/extension/audit/invoke", json!({}))
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    // Unknown field of the invoke body; a bad name in the topic.
    let r = op
        .command("actions/extension/snapshot/invoke", json!({"argument": {}}))
        .await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("argument"),
        "{r}"
    );
    let r = op
        .command("actions/Extension/snapshot/invoke", json!({}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_name", "{r}");
    // None of these reached the extension, and the broker still serves.
    assert!(ext
        .collect(Duration::from_millis(300), |m| m.topic == REQUESTS)
        .await
        .is_empty());
    let ok = spawn_invoke(
        &op,
        "snapshot",
        json!({"arguments": {"label": "x", "at": "2026-12-01T10:00:00Z", "owner": "a@b.org"}}),
    );
    answer(&ext, "success", json!("ok")).await;
    assert_eq!(ok.await.unwrap()["result"]["status"], "success");
    b.stop().await;
}

#[tokio::test]
async fn bad_manifests_name_each_location() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"actions": [
            {"name": "a", "parameters": {"type": "nope"}},
            {"name": "a", "resource": "vm"}],
            "ui_plugins": [{"name": "p", "entry": "http://elsewhere/x"}]}),
        )
        .await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    let paths: Vec<&str> = r["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/actions/0/parameters",
            "/actions/1",
            "/actions/1/resource",
            "/ui_plugins/0/entry"
        ]
    );
    let r = ext
        .command("register", json!({"actions": [{"name": "a", "rolez": []}]}))
        .await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    let r = ext
        .command("register", json!({"actions": [{"name": "Bad Name"}]}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_name", "{r}");
    let items = ext.command("registrations/query", json!({})).await;
    assert_eq!(items["result"]["items"], json!([]), "{items}");
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
async fn only_the_extension_may_subscribe_its_requests() {
    let (b, _ext) = registered().await;
    b.add_principal("other-ext", &[Role::Extension], &["*"]);
    let admin = b.client("admin").await;
    assert_eq!(
        admin.subscribe("extbus/events/system/security/#").await,
        vec![1]
    );
    for who in ["other-ext", "operator", "observer", "platform"] {
        let c = b.client(who).await;
        for f in [REQUESTS, "extbus/actions/#", "extbus/actions/+/requests"] {
            assert_eq!(c.subscribe(f).await, vec![0x87], "{who} {f}");
        }
    }
    let ev = admin
        .expect_on("extbus/events/system/security/denied")
        .await
        .json();
    assert_eq!(ev["data"]["action"], "subscribe");
    b.stop().await;
}

#[tokio::test]
async fn a_password_never_appears_outside_the_request() {
    let (b, ext) = registered().await;
    // The admin hears every message on the bus.
    let admin = b.client("admin").await;
    assert_eq!(admin.subscribe("#").await, vec![1]);
    let op = b.client("operator").await;
    // Success, with an extension that repeats the secret in its message.
    let run = spawn_invoke(
        &op,
        "snapshot",
        json!({"arguments": {"label": "x", "password": SECRET}}),
    );
    answer(&ext, "success", json!({"note": format!("used {SECRET}")})).await;
    let r = run.await.unwrap();
    assert_eq!(r["result"]["message"]["note"], "used ********", "{r}");
    // A failure, a timeout, an invalid call and the HTTP route with it too.
    let run = spawn_invoke(
        &op,
        "snapshot",
        json!({"arguments": {"label": "y", "password": SECRET}}),
    );
    answer(&ext, "error", json!(SECRET)).await;
    run.await.unwrap();
    let run = spawn_invoke(
        &op,
        "snapshot",
        json!({"arguments": {"label": "z", "password": SECRET}}),
    );
    ext.expect_on(REQUESTS).await;
    b.clock.advance(5_000);
    run.await.unwrap();
    let bad = op
        .command(
            "actions/extension/snapshot/invoke",
            json!({"arguments": {"label": 1, "password": SECRET, "mode": SECRET}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation");
    let h = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": 7, "password": SECRET}}),
    )
    .await;
    assert_eq!(h.status, 400);
    assert!(!String::from_utf8_lossy(&h.body).contains(SECRET));
    let msgs = admin.collect(Duration::from_millis(500), |_| true).await;
    let events = msgs
        .iter()
        .filter(|m| m.topic.starts_with("extbus/events/"))
        .count();
    assert!(events >= 3, "{events} events");
    let requests = msgs.iter().filter(|m| m.topic == REQUESTS).count();
    assert_eq!(requests, 3);
    for m in &msgs {
        if m.topic == REQUESTS {
            continue; // the one place the secret must go: the extension's own requests
        }
        let text = String::from_utf8_lossy(&m.payload);
        assert!(
            !text.contains(SECRET),
            "{} carries the secret: {text}",
            m.topic
        );
    }
    // Nor the stored event log.
    let replay = op
        .command("events/replay", json!({"from_seq": 0, "limit": 1000}))
        .await;
    assert!(!replay.to_string().contains(SECRET));
    b.stop().await;
}

#[tokio::test]
async fn queries_list_what_the_caller_may_run() {
    let (b, _ext) = registered().await;
    let list = |who: &'static str| {
        let b = &b;
        async move {
            let h = http(b, who, "GET", "/api/actions", &Value::Null).await;
            assert_eq!(h.status, 200, "{:?}", h.json());
            let names: Vec<String> = h.json()["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string())
                .collect();
            names
        }
    };
    assert_eq!(list("operator").await, ["snapshot"]);
    assert_eq!(list("observer").await, ["audit"]);
    assert!(list("platform").await.is_empty());
    assert_eq!(list("admin").await, ["snapshot", "audit"]);
    let op = b.client("operator").await;
    let a = &op.command("actions/query", json!({})).await["result"]["actions"][0];
    assert_eq!(a["extension"], "extension");
    assert_eq!(a["component"], "vm-tools");
    assert_eq!(a["title"], "Take a snapshot");
    assert_eq!(a["resource"], "urn:extbus:type:acme:vm:1.0.0");
    assert_eq!(a["roles"], json!(["operator"]));
    assert_eq!(a["timeout_ms"], 5000);
    assert_eq!(a["parameters"]["required"], json!(["label"]));
    assert_eq!(
        a["success_message"],
        "Snapshot {{label}} of {{resource}} taken"
    );
    let h = http(&b, "observer", "GET", "/api/ui-plugins", &Value::Null).await;
    assert_eq!(h.status, 200);
    assert_eq!(
        h.json(),
        json!({"ui_plugins": [{"extension": "extension", "component": "vm-tools",
        "name": "vm-ui", "title": "VM tools", "entry": "/ext/acme/vm-ui/index.html",
        "extension_points": [{"type": "navigation"}, {"type": "task-action", "operation": "vm.create"}]}]})
    );
    let regs = op.command("registrations/query", json!({})).await;
    let item = &regs["result"]["items"][0];
    assert_eq!(item["actions"], json!(["snapshot", "audit"]), "{regs}");
    assert_eq!(item["ui_plugins"], json!(["vm-ui"]));
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
