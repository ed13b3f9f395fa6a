//! `POST /bus/authn` and `/bus/authz` with request bodies shaped as EMQX's HTTP authentication
//! and authorization backends send them (their documented templates: `${username}`,
//! `${password}`, `${clientid}`, `${peerhost}`, `${topic}`, `${action}`, `${qos}`, `${retain}`
//! all as strings), answered in EMQX's format with the embedded gate's decisions; refusals
//! are audited as `security.denied`; only an admin principal may ask.

use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::TestBroker;
use serde_json::{json, Value};

async fn ask(b: &TestBroker, path: &str, as_who: &str, body: Value) -> HttpResponse {
    let auth = basic(as_who, as_who);
    request(
        b.http,
        "POST",
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

async fn result(b: &TestBroker, path: &str, body: Value) -> Value {
    let r = ask(b, path, "admin", body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    r.json()
}

fn authz(username: &str, topic: &str, action: &str) -> Value {
    json!({"clientid": format!("{username}-1"), "username": username, "peerhost": "10.0.0.5",
           "proto_name": "MQTT", "mountpoint": "", "topic": topic, "action": action,
           "qos": "1", "retain": "false"})
}

#[tokio::test]
async fn logins_are_checked_against_the_principals() {
    let b = TestBroker::start().await;
    let login = |u: &str, p: &str| json!({"clientid": "c1", "username": u, "password": p, "peerhost": "10.0.0.7"});
    assert_eq!(
        result(&b, "/bus/authn", login("platform", "platform")).await,
        json!({"result": "allow", "is_superuser": false})
    );
    assert_eq!(
        result(&b, "/bus/authn", login("admin", "admin")).await,
        json!({"result": "allow", "is_superuser": true})
    );
    assert_eq!(
        result(&b, "/bus/authn", login("platform", "wrong")).await["result"],
        "deny"
    );
    assert_eq!(
        result(&b, "/bus/authn", login("nobody", "x")).await["result"],
        "deny"
    );
    // No password (a certificate login): for the broker's next authenticator.
    assert_eq!(
        result(
            &b,
            "/bus/authn",
            json!({"clientid": "c1", "username": "platform"})
        )
        .await["result"],
        "ignore"
    );
}

#[tokio::test]
async fn publish_and_subscribe_follow_the_role_table_and_refusals_are_audited() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command("register", json!({"rules": [{"operation": "vm.create"}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let obs = b.client("observer").await;
    assert_eq!(obs.subscribe("extbus/events/system/#").await, vec![1]);

    for (who, topic, action, want) in [
        (
            "platform",
            "extbus/in/platform/tasks/submit",
            "publish",
            "allow",
        ),
        (
            "platform",
            "extbus/in/operator/tasks/query",
            "publish",
            "deny",
        ),
        ("platform", "extbus/out/platform/#", "subscribe", "allow"),
        ("platform", "extbus/out/operator/#", "subscribe", "deny"),
        (
            "extension",
            "extbus/tasks/blocked/vm/create",
            "subscribe",
            "allow",
        ),
        (
            "extension",
            "$share/pool/extbus/tasks/blocked/vm/create",
            "subscribe",
            "allow",
        ),
        // The embedded gate would filter these deliveries; an external broker cannot.
        ("extension", "extbus/tasks/blocked/#", "subscribe", "deny"),
        (
            "extension",
            "extbus/tasks/blocked/vm/delete",
            "subscribe",
            "deny",
        ),
        ("operator", "extbus/tasks/#", "subscribe", "allow"),
        ("observer", "extbus/events/acme/#", "subscribe", "allow"),
        ("observer", "extbus/tasks/#", "subscribe", "deny"),
        // `all` needs both: one's inbox is for publishing only.
        (
            "observer",
            "extbus/in/observer/events/replay",
            "all",
            "deny",
        ),
        ("nobody", "extbus/in/nobody/events", "publish", "deny"),
        ("admin", "#", "subscribe", "allow"),
    ] {
        let got = result(&b, "/bus/authz", authz(who, topic, action)).await;
        assert_eq!(got, json!({"result": want}), "{who} {action} {topic}");
    }

    let denied = obs
        .expect(|m| {
            m.topic == "extbus/events/system/security/denied"
                && m.json()["data"]["topic"] == "extbus/tasks/blocked/#"
        })
        .await
        .json();
    assert_eq!(denied["data"]["principal"], "extension");
    assert_eq!(denied["data"]["client_id"], "extension-1");
    assert_eq!(denied["data"]["action"], "subscribe");
    assert!(
        denied["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("literally"),
        "{denied}"
    );
}

#[tokio::test]
async fn only_an_admin_may_ask_and_bad_bodies_are_refused() {
    let b = TestBroker::start().await;
    let body = authz("platform", "extbus/in/platform/events", "publish");
    let r = ask(&b, "/bus/authz", "operator", body.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden");
    let r = request(
        b.http,
        "POST",
        "/bus/authz",
        &[],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = ask(&b, "/bus/authz", "admin", json!({"username": "platform"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_json");
    let r = ask(&b, "/bus/authz", "admin", authz("platform", "x", "delete")).await;
    assert_eq!(r.status, 400);
    let r = request(
        b.http,
        "POST",
        "/bus/authn",
        &[("authorization", basic("admin", "admin").as_str())],
        b"{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    // The broker keeps serving.
    assert_eq!(result(&b, "/bus/authz", body).await["result"], "allow");
}
