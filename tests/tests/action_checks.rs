//! Custom actions refusing bad input and keeping secrets, over a real broker: unknown action,
//! bad arguments with per-field details, wrong role, unknown field, bad manifests; only the
//! extension may subscribe its requests; no message on the bus but the request carries a
//! password argument; queries filtered by role.

use extbus_schema::Role;
use extbus_tests::actions::{answer, http, registered, spawn_invoke, REQUESTS, SECRET};
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

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
    // A plugin's entry must be served by one of the principal's own services.
    let r = ext
        .command(
            "register",
            json!({"ui_plugins": [{"name": "p", "entry": "/ext/acme/p/index.html"}]}),
        )
        .await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    assert_eq!(
        r["error"]["details"][0]["path"], "/ui_plugins/0/entry",
        "{r}"
    );
    let served = json!({"component": "pages", "services": [{"vendor": "acme", "name": "p",
        "version": "1.0.0", "url_patterns": ["^/ext/acme/p/"]}]});
    assert_eq!(ext.command("register", served).await["ok"], true);
    let ui = json!({"component": "ui", "ui_plugins": [{"name": "p", "entry": "/ext/acme/p/index.html"}]});
    let r = ext.command("register", ui).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        ext.command("register", json!({"component": "ui"})).await["ok"],
        true
    );
    assert_eq!(
        ext.command("register", json!({"component": "pages"})).await["ok"],
        true
    );
    let r = ext
        .command("register", json!({"actions": [{"name": "Bad Name"}]}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_name", "{r}");
    let items = ext.command("registrations/query", json!({})).await;
    assert_eq!(items["result"]["items"], json!([]), "{items}");
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
