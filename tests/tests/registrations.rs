//! Registrations per component over real MQTT: two programs under one principal keep their own
//! rules and services, `registrations/query` shows them with presence, and an operator's
//! disable/enable takes a registration out of matching and its services out of service,
//! persisted across a restart.

use extbus_tests::http::{basic, request};
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};

const APPROVER: &str = r#"{"component": "approver", "rules": [{"operation": "vm.create"}]}"#;
const GREETER: &str = r#"{"component": "greeter",
    "services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
                  "url_patterns": ["^/ext/acme/greeter/.*"]}]}"#;

async fn register(ext: &BusClient, manifest: &str) -> Value {
    let r = ext
        .command("register", serde_json::from_str(manifest).unwrap())
        .await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"].clone()
}

async fn submit(p: &BusClient, request_id: &str) -> Value {
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": request_id, "operation": "vm.create", "org": "acme", "data": {}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"].clone()
}

async fn items(c: &BusClient) -> Vec<Value> {
    let r = c.command("registrations/query", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"]["items"].as_array().unwrap().clone()
}

fn find<'a>(items: &'a [Value], component: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["principal"] == "extension" && i["component"] == component)
        .unwrap_or_else(|| panic!("no extension/{component} in {items:?}"))
}

#[tokio::test]
async fn two_components_of_one_principal_both_stay_in_force() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let a = register(&ext, APPROVER).await;
    assert_eq!(a["component"], "approver");
    assert_eq!(a["added"]["rules"][0]["operation"], "vm.create");
    assert_eq!(a["removed"]["rules"], json!([]));
    let g = register(&ext, GREETER).await;
    assert_eq!(g["added"]["services"][0]["name"], "greeter");
    assert_eq!(g["rules"], json!([]));

    // The greeter did not replace the approver: vm.create still blocks.
    let p = b.client("platform").await;
    assert_eq!(submit(&p, "r1").await["state"], "blocked");

    // The query shows both, with the extension's one connection.
    let obs = b.client("observer").await;
    let all = items(&obs).await;
    let approver = find(&all, "approver");
    // An external broker's connections are not seen by extbus.
    if !extbus_tests::external_mode() {
        assert_eq!(approver["connections"], 1);
        assert!(approver["last_seen"].is_string(), "{approver}");
    }
    assert!(approver["registered_at"].is_string(), "{approver}");
    assert_eq!(approver["disabled"], false);
    assert_eq!(approver["entity_types"], json!([]));
    assert_eq!(find(&all, "greeter")["services"][0]["vendor"], "acme");

    // Re-registering the approver removes only its own rule.
    let again = register(&ext, r#"{"component": "approver", "rules": []}"#).await;
    assert_eq!(again["removed"]["rules"][0]["operation"], "vm.create");
    assert_eq!(submit(&p, "r2").await["state"], "resumed");
    let all = items(&obs).await;
    assert!(all.iter().all(|i| i["component"] != "approver"), "{all:?}");
    assert_eq!(find(&all, "greeter")["services"][0]["name"], "greeter");

    // A manifest without a component is `default`, beside the others.
    let d = register(&ext, r#"{"rules": [{"operation": "vm.delete"}]}"#).await;
    assert_eq!(d["component"], "default");
    assert_eq!(items(&obs).await.len(), 2);
    let one = obs
        .command("registrations/query", json!({"principal": "nobody"}))
        .await;
    assert_eq!(one["result"]["items"], json!([]));

    let bad = ext
        .command("register", json!({"component": "Not Valid"}))
        .await;
    assert_eq!(bad["error"]["code"], "invalid_name", "{bad}");
}

#[tokio::test]
async fn disabled_registrations_block_nothing_new_and_survive_a_restart() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    register(&ext, APPROVER).await;
    register(&ext, GREETER).await;
    let p = b.client("platform").await;
    let waiting = submit(&p, "before").await;
    assert_eq!(waiting["state"], "blocked");

    // Only operators and admins may switch.
    let refused = ext
        .command("registrations/extension/approver/disable", json!({}))
        .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    let op = b.client("operator").await;
    op.subscribe("extbus/events/system/extension/#").await;
    let r = op
        .command(
            "registrations/extension/approver/disable",
            json!({"message": "misbehaving"}),
        )
        .await;
    assert_eq!(r["result"]["changed"], true, "{r}");
    let ev = op
        .expect_on("extbus/events/system/extension/disabled")
        .await
        .json();
    assert_eq!(ev["data"]["component"], "approver");
    assert_eq!(ev["data"]["by"], "operator");
    assert_eq!(ev["data"]["message"], "misbehaving");
    let r = op
        .command("registrations/extension/approver/disable", json!({}))
        .await;
    assert_eq!(r["result"]["changed"], false, "{r}");
    let r = op
        .command("registrations/extension/nothing/disable", json!({}))
        .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");

    assert_eq!(submit(&p, "while-off").await["state"], "resumed");
    // The task already waiting stays visible and resolvable by hand.
    let id = waiting["id"].as_str().unwrap();
    let got = op.command(&format!("tasks/{id}/get"), json!({})).await;
    assert_eq!(got["result"]["state"], "blocked", "{got}");

    // The whole principal off: its services answer 503 saying so.
    op.command("registrations/extension/disable", json!({}))
        .await;
    let auth = basic("observer", "observer");
    let h = request(
        b.http,
        "GET",
        "/ext/acme/greeter/hi",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(h.status, 503);
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "service acme/greeter/1.0.0 is disabled"
    );
    let all = items(&op).await;
    assert_eq!(find(&all, "greeter")["disabled"], true);

    drop((ext, p, op));
    let b = b.restart().await;
    let p = b.client("platform").await;
    let op = b.client("operator").await;
    assert_eq!(submit(&p, "after-restart").await["state"], "resumed");
    let all = items(&op).await;
    assert_eq!(find(&all, "approver")["disabled"], true);
    assert_eq!(find(&all, "approver")["connections"], 0);

    // Back on, principal first: the component is still off by itself.
    op.command("registrations/extension/enable", json!({}))
        .await;
    assert_eq!(find(&items(&op).await, "greeter")["disabled"], false);
    assert_eq!(submit(&p, "principal-on").await["state"], "resumed");
    op.command("registrations/extension/approver/enable", json!({}))
        .await;
    assert_eq!(submit(&p, "all-on").await["state"], "blocked");
    let r = op
        .command(&format!("tasks/{id}/resume"), json!({"message": "by hand"}))
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
}
