//! Entity hooks and behaviors over real MQTT: each hook outcome (resume with and without a
//! replaced content, cancel, abort, timeout by the manual clock, resolution by an operator),
//! changes refused while a hook is pending, behaviors with checked arguments and their results,
//! the history naming who changed what, secure values kept out of every task payload and read
//! back by the type's extension alone, and a
//! pending hook that survives a restart.

use extbus_schema::{topics, Role};
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;

const TYPE_ID: &str = "urn:extbus:type:acme:cluster:1.0.0";
const SECRET: &str = "hunter2-hunter2";

fn cluster_type(hooks: Value) -> Value {
    json!({"vendor": "acme", "nss": "cluster", "version": "1.0.0",
           "schema": {"type": "object", "required": ["spec"], "properties": {
               "spec": {"type": "object", "required": ["nodes"], "properties": {
                   "nodes": {"type": "integer", "minimum": 1},
                   "password": {"type": "string", "x-extbus-secure": true}}},
               "status": {"type": "object", "properties": {
                   "phase": {"type": "string", "enum": ["ready", "scaling"]}}}}},
           "hooks": hooks,
           "behaviors": [{"name": "scale", "timeout_ms": 30000, "parameters": {
               "type": "object", "required": ["nodes"], "additionalProperties": false,
               "properties": {"nodes": {"type": "integer", "minimum": 1}}}}],
           "access": {"read": ["operator", "extension", "platform"],
                      "write": ["platform", "extension"]}})
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

fn code(r: &Value) -> &str {
    assert_eq!(r["ok"], false, "{r}");
    r["error"]["code"].as_str().unwrap_or_default()
}

fn s(v: &Value) -> String {
    v.as_str().expect("a string").to_string()
}

struct World {
    b: TestBroker,
    ext: Arc<BusClient>,
    plat: Arc<BusClient>,
}

async fn world(hooks: Value) -> World {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command("register", json!({"entity_types": [cluster_type(hooks)]}))
        .await;
    ok(&r);
    ext.subscribe(topics::TASKS_BLOCKED_ALL).await;
    let plat = b.client("platform").await;
    World { b, ext, plat }
}

impl World {
    async fn create(&self, nodes: u64) -> Value {
        let r = self
            .plat
            .command(
                "entities/create",
                json!({"type": TYPE_ID, "org": "acme", "name": "prod-1",
                       "entity": {"spec": {"nodes": nodes, "password": SECRET}}}),
            )
            .await;
        ok(&r).clone()
    }

    async fn get(&self, id: &str) -> Value {
        ok(&self
            .plat
            .command(&format!("entities/{id}/get"), json!({}))
            .await)
        .clone()
    }

    /// The next task announced on `operation`, as the extension sees it.
    async fn blocked(&self, operation: &str) -> Value {
        let m = self.ext.expect_on(&topics::tasks_blocked(operation)).await;
        let text = String::from_utf8_lossy(&m.payload).to_string();
        assert!(
            !text.contains(SECRET),
            "secure value in a task notice: {text}"
        );
        m.json()
    }

    async fn resolve(&self, who: &BusClient, task: &str, action: &str, body: Value) -> Value {
        who.command(&format!("tasks/{task}/{action}"), body).await
    }
}

/// The outcome of task `id` on `who`'s outcomes topic.
async fn outcome_of(who: &BusClient, name: &str, id: &str) -> Value {
    let topic = topics::outcomes(name);
    who.expect(|m| m.topic == topic && m.json()["id"] == id)
        .await
        .json()
}

fn hook_task(e: &Value) -> String {
    s(&e["hook"]["task"])
}

#[tokio::test]
async fn post_create_fills_the_status_and_the_history_says_who() {
    let w = world(json!({"post_create": true})).await;
    let e = w.create(3).await;
    assert_eq!(e["state"], "pre_created");
    assert_eq!(e["hook"]["name"], "post_create");
    let id = s(&e["id"]);
    let notice = w.blocked("cluster.post-create").await;
    assert_eq!(notice["id"], e["hook"]["task"]);
    assert_eq!(notice["subject"], id.as_str());
    assert_eq!(notice["stages"], json!([["extension"]]));
    assert_eq!(notice["data"]["entity"]["entity"]["spec"]["nodes"], 3);
    assert!(notice["data"]["entity"]["entity"]["spec"]
        .get("password")
        .is_none());

    // The entity waits: no update, resolve or delete while the hook runs.
    let up = w
        .plat
        .command(
            &format!("entities/{id}/update"),
            json!({"revision": 1, "entity": {"spec": {"nodes": 4}}}),
        )
        .await;
    assert_eq!(code(&up), "conflict");
    let del = w
        .plat
        .command(&format!("entities/{id}/delete"), json!({}))
        .await;
    assert_eq!(code(&del), "conflict");
    assert_eq!(w.get(&id).await["state"], "pre_created");

    // A replacement that fails the schema is resolution_error, not refused.
    let full = json!({"entity": {"spec": {"nodes": 3}, "status": {"phase": "ready"}}});
    let r = w
        .resolve(&w.ext, &hook_task(&e), "resume", json!({"result": full}))
        .await;
    assert_eq!(ok(&r)["state"], "resumed");
    let got = w.get(&id).await;
    assert_eq!(got["state"], "resolved", "{got}");
    assert!(got.get("hook").is_none());
    assert_eq!(got["entity"]["status"]["phase"], "ready");
    let last = got["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "post_create.resumed");
    assert_eq!(last["by"], "extension");
    assert_eq!(last["paths"], json!(["/status"]));
    assert_eq!(last["task"], e["hook"]["task"]);
    // The secure value the hook's content left out is kept: the schema still sees it.
    assert!(!got.to_string().contains(SECRET));
    w.b.stop().await;
}

#[tokio::test]
async fn post_create_outcomes_invalid_abort_timeout_and_by_an_operator() {
    let w = world(json!({"post_create": true})).await;
    // Invalid replacement content.
    let e = w.create(3).await;
    let bad = json!({"entity": {"spec": {"nodes": 0}}});
    ok(&w
        .resolve(&w.ext, &hook_task(&e), "resume", json!({"result": bad}))
        .await);
    let got = w.get(&s(&e["id"])).await;
    assert_eq!(got["state"], "resolution_error");
    assert_eq!(got["errors"][0]["path"], "/spec/nodes", "{got}");

    // Abort with a message.
    let e = w.create(3).await;
    ok(&w
        .resolve(
            &w.ext,
            &hook_task(&e),
            "abort",
            json!({"message": "no capacity"}),
        )
        .await);
    let got = w.get(&s(&e["id"])).await;
    assert_eq!(got["state"], "resolution_error");
    let msg = s(&got["errors"][0]["message"]);
    assert!(msg.contains("aborted by extension: no capacity"), "{msg}");

    // Nobody answers: the default action (abort) at the deadline.
    let e = w.create(3).await;
    w.b.clock.advance(60_001);
    let outcome = outcome_of(&w.plat, "platform", &hook_task(&e)).await;
    assert_eq!(outcome["resolved_by"], "timeout");
    let got = w.get(&s(&e["id"])).await;
    assert_eq!(got["state"], "resolution_error");
    let last = got["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["by"], "timeout");

    // An operator resolves the hook by hand, and the platform that created it is told.
    let e = w.create(3).await;
    let op = w.b.client("operator").await;
    let seen = ok(&op
        .command(&format!("tasks/{}/get", hook_task(&e)), json!({}))
        .await)
    .clone();
    assert_eq!(seen["operation"], "cluster.post-create");
    assert!(!seen.to_string().contains(SECRET));
    ok(&w.resolve(&op, &hook_task(&e), "resume", json!({})).await);
    let got = w.get(&s(&e["id"])).await;
    assert_eq!(got["state"], "resolved");
    assert_eq!(
        got["history"].as_array().unwrap().last().unwrap()["by"],
        "operator"
    );
    // Someone else may not resolve it.
    let e = w.create(3).await;
    let r = w
        .resolve(&w.plat, &hook_task(&e), "resume", json!({}))
        .await;
    assert_eq!(code(&r), "forbidden");
    w.b.stop().await;
}

#[tokio::test]
async fn pre_update_may_change_or_refuse_the_update() {
    let w = world(json!({"pre_update": true})).await;
    let e = w.create(3).await;
    assert_eq!(e["state"], "resolved");
    let id = s(&e["id"]);
    let up = json!({"revision": 1, "entity": {"spec": {"nodes": 5}}});
    let held = ok(&w
        .plat
        .command(&format!("entities/{id}/update"), up.clone())
        .await)
    .clone();
    assert_eq!(held["revision"], 1);
    assert_eq!(held["hook"]["name"], "pre_update");
    let notice = w.blocked("cluster.pre-update").await;
    assert_eq!(notice["data"]["update"]["entity"]["spec"]["nodes"], 5);
    assert_eq!(notice["data"]["entity"]["entity"]["spec"]["nodes"], 3);
    // A second update meets the pending hook.
    assert_eq!(
        code(
            &w.plat
                .command(&format!("entities/{id}/update"), up.clone())
                .await
        ),
        "conflict"
    );
    // The hook changes the proposal: nodes capped at 4, status set.
    let changed = json!({"entity": {"spec": {"nodes": 4}, "status": {"phase": "scaling"}}});
    ok(&w
        .resolve(
            &w.ext,
            &hook_task(&held),
            "resume",
            json!({"result": changed}),
        )
        .await);
    let got = w.get(&id).await;
    assert_eq!(got["revision"], 2);
    assert_eq!(got["state"], "resolved");
    assert_eq!(got["entity"]["spec"]["nodes"], 4);
    let h = got["history"].as_array().unwrap();
    let n = h.len();
    assert_eq!(
        (h[n - 2]["action"].clone(), h[n - 2]["by"].clone()),
        (json!("update"), json!("platform"))
    );
    assert_eq!(h[n - 2]["paths"], json!(["/spec/nodes"]));
    assert_eq!(
        (h[n - 1]["action"].clone(), h[n - 1]["by"].clone()),
        (json!("pre_update.resumed"), json!("extension"))
    );
    assert_eq!(h[n - 1]["paths"], json!(["/spec/nodes", "/status"]));

    // A cancelled hook refuses the change with its message; nothing else changes.
    let up = json!({"revision": 2, "entity": {"spec": {"nodes": 9}}});
    let held = ok(&w.plat.command(&format!("entities/{id}/update"), up).await).clone();
    ok(&w
        .resolve(
            &w.ext,
            &hook_task(&held),
            "cancel",
            json!({"message": "too big"}),
        )
        .await);
    let outcome = outcome_of(&w.plat, "platform", &hook_task(&held)).await;
    assert_eq!(
        (outcome["state"].clone(), outcome["message"].clone()),
        (json!("cancelled"), json!("too big"))
    );
    let got = w.get(&id).await;
    assert_eq!(
        (
            got["revision"].clone(),
            got["entity"]["spec"]["nodes"].clone()
        ),
        (json!(2), json!(4))
    );
    let last = got["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "pre_update.cancelled");
    assert!(s(&last["message"]).contains("too big"), "{last}");
    // The secure value given at create still counts after the hooked update (the schema
    // does not require it, so check it is not leaked and the entity stays resolved).
    assert!(!got.to_string().contains(SECRET));
    w.b.stop().await;
}

#[tokio::test]
async fn the_types_extension_alone_reads_the_secure_values() {
    let w = world(json!({"pre_update": true})).await;
    w.b.add_principal("ext-acme", &[Role::Extension], &["acme"]);
    w.b.add_principal("ext-globex", &[Role::Extension], &["globex"]);
    let id = s(&w.create(3).await["id"]);
    let secrets = format!("entities/{id}/secrets");
    let r = ok(&w.ext.command(&secrets, json!({})).await).clone();
    assert_eq!(
        r,
        json!({"id": id, "revision": 1,
               "secrets": [{"path": "/spec/password", "value": SECRET}]})
    );
    // Nobody else: not the entity's owner with write access, an operator, an admin or another
    // extension of the entity's org; an extension that may not see the entity gets not_found.
    for (who, want) in [
        ("platform", "forbidden"),
        ("operator", "forbidden"),
        ("admin", "forbidden"),
        ("ext-acme", "forbidden"),
        ("ext-globex", "not_found"),
    ] {
        let r = w.b.client(who).await.command(&secrets, json!({})).await;
        assert!(!r.to_string().contains(SECRET), "{r}");
        assert_eq!(code(&r), want, "{who}: {r}");
    }

    // An update held by pre_update: the notice marks the secure paths without their values,
    // and the extension reads the proposed values beside the stored ones.
    let new_secret = "correct-horse-battery";
    let up = json!({"revision": 1, "entity": {"spec": {"nodes": 5, "password": new_secret}}});
    ok(&w.plat.command(&format!("entities/{id}/update"), up).await);
    let notice = w.blocked("cluster.pre-update").await;
    assert!(!notice.to_string().contains(new_secret), "{notice}");
    assert_eq!(notice["data"]["secure_paths"], json!(["/spec/password"]));
    let r = ok(&w.ext.command(&secrets, json!({})).await).clone();
    assert_eq!(r["secrets"][0]["value"], SECRET);
    assert_eq!(
        r["proposed"],
        json!([{"path": "/spec/password", "value": new_secret}])
    );

    // The same over HTTP.
    let path = format!("/api/entities/{id}/secrets");
    let auth = extbus_tests::http::basic("extension", "extension");
    let r =
        extbus_tests::http::request(w.b.http, "GET", &path, &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["secrets"][0]["value"], SECRET);
    let auth = extbus_tests::http::basic("platform", "platform");
    let r =
        extbus_tests::http::request(w.b.http, "GET", &path, &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 403);
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    w.b.stop().await;
}

#[tokio::test]
async fn pre_delete_may_refuse_and_post_delete_is_told() {
    let w = world(json!({"pre_delete": true, "post_delete": true})).await;
    let e = w.create(3).await;
    let id = s(&e["id"]);
    let held = ok(&w
        .plat
        .command(&format!("entities/{id}/delete"), json!({}))
        .await)
    .clone();
    assert_eq!(held["state"], "in_deletion");
    let notice = w.blocked("cluster.pre-delete").await;
    assert_eq!(notice["id"], held["hook"]["task"]);
    ok(&w
        .resolve(
            &w.ext,
            &hook_task(&held),
            "abort",
            json!({"message": "in use"}),
        )
        .await);
    let got = w.get(&id).await;
    assert_eq!(got["state"], "resolved");
    assert!(got.get("hook").is_none());

    let held = ok(&w
        .plat
        .command(&format!("entities/{id}/delete"), json!({}))
        .await)
    .clone();
    ok(&w
        .resolve(&w.ext, &hook_task(&held), "resume", json!({}))
        .await);
    let r = w
        .plat
        .command(&format!("entities/{id}/get"), json!({}))
        .await;
    assert_eq!(code(&r), "not_found");
    let notice = w.blocked("cluster.post-delete").await;
    assert_eq!(notice["subject"], id.as_str());
    assert_eq!(notice["data"]["entity"]["id"], id.as_str());
    // Its outcome changes nothing (the entity is gone) and is accepted.
    ok(&w
        .resolve(&w.ext, &s(&notice["id"]), "resume", json!({}))
        .await);
    w.b.stop().await;
}

#[tokio::test]
async fn behaviors_check_arguments_and_carry_their_result() {
    let w = world(json!({})).await;
    let e = w.create(3).await;
    let id = s(&e["id"]);
    let path = format!("entities/{id}/behaviors/scale");
    let r = w
        .plat
        .command(&path, json!({"arguments": {"nodes": 0}}))
        .await;
    assert_eq!(code(&r), "schema_violation");
    assert_eq!(r["error"]["details"][0]["path"], "/arguments/nodes", "{r}");
    let r = w
        .plat
        .command(&format!("entities/{id}/behaviors/explode"), json!({}))
        .await;
    assert_eq!(code(&r), "not_found");
    let obs = w.b.client("observer").await;
    assert_eq!(
        code(&obs.command(&path, json!({"arguments": {"nodes": 5}})).await),
        "forbidden"
    );

    let t = ok(&w
        .plat
        .command(&path, json!({"arguments": {"nodes": 5}}))
        .await)
    .clone();
    assert_eq!(t["operation"], "cluster.scale");
    assert_eq!(t["state"], "blocked");
    let notice = w.blocked("cluster.scale").await;
    assert_eq!(notice["data"]["arguments"], json!({"nodes": 5}));
    assert_eq!(notice["data"]["behavior"], "scale");
    ok(&w
        .resolve(
            &w.ext,
            &s(&t["id"]),
            "resume",
            json!({"result": {"nodes": 5, "took_ms": 12}}),
        )
        .await);
    let outcome = outcome_of(&w.plat, "platform", &s(&t["id"])).await;
    assert_eq!(outcome["result"], json!({"nodes": 5, "took_ms": 12}));
    let got = w.get(&id).await;
    let h = got["history"].as_array().unwrap();
    let n = h.len();
    assert_eq!(
        (h[n - 2]["action"].clone(), h[n - 2]["by"].clone()),
        (json!("behavior:scale"), json!("platform"))
    );
    assert_eq!(
        (h[n - 1]["action"].clone(), h[n - 1]["by"].clone()),
        (json!("behavior:scale.resumed"), json!("extension"))
    );
    // The behavior's own timeout applies.
    let t = ok(&w
        .plat
        .command(&path, json!({"arguments": {"nodes": 2}}))
        .await)
    .clone();
    w.b.clock.advance(30_001);
    let outcome = outcome_of(&w.plat, "platform", &s(&t["id"])).await;
    assert_eq!(outcome["state"], "aborted");
    w.b.stop().await;
}

#[tokio::test]
async fn a_pending_hook_survives_a_restart() {
    let w = world(json!({"post_create": true})).await;
    let e = w.create(3).await;
    let id = s(&e["id"]);
    let b = w.b.restart().await;
    let ext = b.client("extension").await;
    let plat = b.client("platform").await;
    let got = ok(&plat.command(&format!("entities/{id}/get"), json!({})).await).clone();
    assert_eq!(got["state"], "pre_created");
    assert_eq!(got["hook"], e["hook"]);
    let r = ext
        .command(
            &format!("tasks/{}/resume", hook_task(&e)),
            json!({"result": {"entity": {"spec": {"nodes": 3}, "status": {"phase": "ready"}}}}),
        )
        .await;
    ok(&r);
    let got = ok(&plat.command(&format!("entities/{id}/get"), json!({})).await).clone();
    assert_eq!(got["state"], "resolved");
    assert_eq!(got["entity"]["status"]["phase"], "ready");
    b.stop().await;
}
