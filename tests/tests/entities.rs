//! Defined entities over real MQTT: the lifecycle (create, get, update, resolve, delete,
//! query) with its events, revisions that exactly one concurrent update wins, bad inputs that
//! answer their code and change nothing, types immutable once used, and every state kept
//! across a restart.

use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::time::Duration;

const TYPE_ID: &str = "urn:extbus:type:acme:cluster:1.0.0";

fn cluster_type(version: &str, min_nodes: u64) -> Value {
    json!({"vendor": "acme", "nss": "cluster", "version": version, "name": "Cluster",
           "schema": {"type": "object", "required": ["spec"], "properties": {
               "spec": {"type": "object", "required": ["nodes"], "properties": {
                   "nodes": {"type": "integer", "minimum": min_nodes},
                   "password": {"type": "string", "minLength": 8, "x-extbus-secure": true}}}}},
           "access": {"read": ["operator", "observer", "extension", "platform"],
                      "write": ["platform", "extension"]}})
}

async fn register(ext: &BusClient, types: Value) -> Value {
    ext.command("register", json!({"entity_types": types}))
        .await
}

async fn create(p: &BusClient, name: &str, entity: Value) -> Value {
    p.command(
        "entities/create",
        json!({"type": TYPE_ID, "org": "acme", "name": name, "entity": entity}),
    )
    .await
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

fn code(r: &Value) -> &str {
    assert_eq!(r["ok"], false, "{r}");
    r["error"]["code"].as_str().unwrap_or_default()
}

fn id_of(e: &Value) -> String {
    e["id"].as_str().expect("entity id").to_string()
}

async fn setup() -> (
    TestBroker,
    std::sync::Arc<BusClient>,
    std::sync::Arc<BusClient>,
) {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = register(&ext, json!([cluster_type("1.0.0", 1)])).await;
    assert_eq!(ok(&r)["entity_types"], json!([TYPE_ID]));
    let plat = b.client("platform").await;
    (b, ext, plat)
}

#[tokio::test]
async fn the_full_lifecycle_with_its_events() {
    let (b, _ext, plat) = setup().await;
    let admin = b.client("admin").await;
    admin.subscribe("extbus/events/acme/entity/#").await;

    let r = create(&plat, "prod-1", json!({"spec": {"nodes": 3}})).await;
    let e = ok(&r).clone();
    let id = id_of(&e);
    assert!(id.starts_with("urn:extbus:entity:"), "{id}");
    assert_eq!(e["state"], "resolved");
    assert_eq!(e["revision"], 1);
    assert_eq!(e["owner"], "platform");
    assert_eq!(e["type"], TYPE_ID);

    let got = plat.command(&format!("entities/{id}/get"), json!({})).await;
    assert_eq!(ok(&got)["entity"], json!({"spec": {"nodes": 3}}));
    assert_eq!(ok(&got)["history"][0]["action"], "create");
    assert_eq!(ok(&got)["history"][0]["by"], "platform");

    // Content failing the schema is kept, with the failing paths.
    let upd = format!("entities/{id}/update");
    let bad = plat
        .command(
            &upd,
            json!({"revision": 1, "entity": {"spec": {"nodes": 0}}}),
        )
        .await;
    assert_eq!(ok(&bad)["state"], "resolution_error");
    assert_eq!(ok(&bad)["revision"], 2);
    assert_eq!(ok(&bad)["errors"][0]["path"], "/spec/nodes");

    // A stale revision changes nothing.
    let stale = plat
        .command(
            &upd,
            json!({"revision": 1, "entity": {"spec": {"nodes": 9}}}),
        )
        .await;
    assert_eq!(code(&stale), "conflict");
    let now = plat.command(&format!("entities/{id}/get"), json!({})).await;
    assert_eq!(ok(&now)["revision"], 2);
    assert_eq!(ok(&now)["entity"]["spec"]["nodes"], 0);

    let fixed = plat
        .command(
            &upd,
            json!({"revision": 2, "entity": {"spec": {"nodes": 5}}}),
        )
        .await;
    assert_eq!(ok(&fixed)["state"], "resolved");
    assert_eq!(ok(&fixed)["revision"], 3);
    assert!(ok(&fixed).get("errors").is_none());
    let history = ok(&fixed)["history"].as_array().unwrap();
    assert_eq!(history[2]["paths"], json!(["/spec/nodes"]));

    let res = plat
        .command(&format!("entities/{id}/resolve"), json!({}))
        .await;
    assert_eq!(ok(&res)["state"], "resolved");
    assert_eq!(ok(&res)["revision"], 3);

    let q = plat
        .command("entities/query", json!({"type": TYPE_ID}))
        .await;
    assert_eq!(ok(&q)["entities"].as_array().unwrap().len(), 1);
    assert!(ok(&q)["entities"][0].get("history").is_none());
    let q = plat
        .command("entities/query", json!({"state": "resolution_error"}))
        .await;
    assert_eq!(ok(&q)["entities"], json!([]));

    let del = format!("entities/{id}/delete");
    assert_eq!(
        code(&plat.command(&del, json!({"revision": 2})).await),
        "conflict"
    );
    let gone = plat.command(&del, json!({"revision": 3})).await;
    assert_eq!(ok(&gone)["state"], "in_deletion");
    let after = plat.command(&format!("entities/{id}/get"), json!({})).await;
    assert_eq!(code(&after), "not_found");
    assert_eq!(code(&plat.command(&del, json!({})).await), "not_found");

    let events = admin
        .collect(Duration::from_millis(500), |m| m.topic.contains("/entity/"))
        .await;
    let kinds: Vec<String> = events
        .iter()
        .map(|m| m.json()["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "entity.created",
            "entity.resolved",
            "entity.updated",
            "entity.resolution-failed",
            "entity.updated",
            "entity.resolved",
            "entity.resolved",
            "entity.deleted"
        ]
    );
    for m in &events {
        let ev = m.json();
        assert_eq!(ev["subject"], id.as_str());
        assert_eq!(ev["org"], "acme");
        let keys: Vec<&String> = ev["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "revision", "state", "type"]);
    }
    assert_eq!(events[1].json()["data"]["state"], "resolved");
    assert_eq!(events[7].json()["data"]["revision"], 3);
}

#[tokio::test]
async fn of_two_updates_at_one_revision_exactly_one_wins() {
    let (b, ext, plat) = setup().await;
    let e = create(&plat, "c", json!({"spec": {"nodes": 1}})).await;
    let id = id_of(ok(&e));
    let upd = format!("entities/{id}/update");
    for round in 0..5u64 {
        let rev = round + 1;
        let (a, c) = tokio::join!(
            plat.command(
                &upd,
                json!({"revision": rev, "entity": {"spec": {"nodes": 10 + round}}})
            ),
            ext.command(
                &upd,
                json!({"revision": rev, "entity": {"spec": {"nodes": 20 + round}}})
            ),
        );
        let wins: Vec<&Value> = [&a, &c].into_iter().filter(|r| r["ok"] == true).collect();
        assert_eq!(wins.len(), 1, "{a} {c}");
        let loser = if a["ok"] == true { &c } else { &a };
        assert_eq!(code(loser), "conflict");
        let now = plat.command(&format!("entities/{id}/get"), json!({})).await;
        assert_eq!(ok(&now)["revision"], rev + 1);
        assert_eq!(ok(&now)["entity"], wins[0]["result"]["entity"]);
    }
    drop(b);
}

#[tokio::test]
async fn bad_inputs_answer_their_code_and_change_nothing() {
    let b = TestBroker::start_with(|c| c.entities.max_types_per_principal = 2).await;
    b.add_principal("plat-acme", &[extbus_schema::Role::Platform], &["acme"]);
    let ext = b.client("extension").await;
    let plat = b.client("plat-acme").await;

    // A schema that does not compile; a version that is not semver; an unknown field.
    let mut broken = cluster_type("1.0.0", 1);
    broken["schema"] = json!({"type": "no-such-type"});
    let r = register(&ext, json!([broken])).await;
    assert_eq!(code(&r), "schema_violation");
    assert_eq!(r["error"]["details"][0]["path"], "/entity_types/0/schema");
    // A valid document whose regex does not compile is refused the same way.
    let mut bad_regex = cluster_type("1.0.0", 1);
    bad_regex["schema"]["properties"]["name"] = json!({"type": "string", "pattern": "(("});
    let r = register(&ext, json!([bad_regex])).await;
    assert_eq!(code(&r), "schema_violation");
    assert_eq!(r["error"]["details"][0]["path"], "/entity_types/0/schema");
    let r = register(&ext, json!([cluster_type("1.0", 1)])).await;
    assert_eq!(code(&r), "invalid_name");
    let mut typo = cluster_type("1.0.0", 1);
    typo["acess"] = json!({});
    assert_eq!(
        code(&register(&ext, json!([typo])).await),
        "schema_violation"
    );
    // Over the cap of types per principal.
    let three = json!([
        cluster_type("1.0.0", 1),
        cluster_type("1.1.0", 1),
        cluster_type("1.2.0", 1)
    ]);
    assert_eq!(code(&register(&ext, three).await), "conflict");
    // None of them was registered: the type is unknown.
    let r = create(&plat, "x", json!({"spec": {"nodes": 1}})).await;
    assert_eq!(code(&r), "not_found");

    let r = register(&ext, json!([cluster_type("1.0.0", 1)])).await;
    ok(&r);
    // Wrong org.
    let r = plat
        .command(
            "entities/create",
            json!({"type": TYPE_ID, "org": "globex", "name": "x", "entity": {"spec": {"nodes": 1}}}),
        )
        .await;
    assert_eq!(code(&r), "forbidden");
    // Over the payload limit: refused by the gate (embedded) or the coordinator (external),
    // the reply carrying the correlation id either way.
    let big = "x".repeat(300 * 1024);
    let r = create(&plat, "big", json!({"spec": {"nodes": 1, "blob": big}})).await;
    assert_eq!(code(&r), "payload_too_large");
    // Unknown entity; unknown field in an update; an invalid org name.
    let r = plat
        .command("entities/urn:extbus:entity:nope/get", json!({}))
        .await;
    assert_eq!(code(&r), "not_found");
    let e = create(&plat, "ok", json!({"spec": {"nodes": 1}})).await;
    let id = id_of(ok(&e));
    let r = plat
        .command(
            &format!("entities/{id}/update"),
            json!({"revision": 1, "entity": {}, "revison": 1}),
        )
        .await;
    assert_eq!(code(&r), "schema_violation");
    let r = plat
        .command(
            "entities/create",
            json!({"type": TYPE_ID, "org": "Acme", "name": "x", "entity": {}}),
        )
        .await;
    assert_eq!(code(&r), "invalid_name");
    // Only the one good entity exists, untouched.
    let q = plat.command("entities/query", json!({})).await;
    let all = ok(&q)["entities"].as_array().unwrap().clone();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["revision"], 1);
}

#[tokio::test]
async fn a_type_version_is_immutable_once_used_and_versions_live_side_by_side() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let plat = b.client("platform").await;
    ok(&register(&ext, json!([cluster_type("1.0.0", 1)])).await);
    // The same body again changes nothing; another body while unused replaces it.
    ok(&register(&ext, json!([cluster_type("1.0.0", 1)])).await);
    ok(&register(&ext, json!([cluster_type("1.0.0", 2)])).await);
    let e = create(&plat, "a", json!({"spec": {"nodes": 1}})).await;
    assert_eq!(ok(&e)["state"], "resolution_error", "minimum 2 is in force");
    let r = register(&ext, json!([cluster_type("1.0.0", 1)])).await;
    assert_eq!(code(&r), "conflict");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("new version"),
        "{r}"
    );
    // Still the used body.
    let e2 = create(&plat, "b", json!({"spec": {"nodes": 1}})).await;
    assert_eq!(ok(&e2)["state"], "resolution_error");
    // Another principal cannot take the type over.
    let admin = b.client("admin").await;
    assert_eq!(
        code(&register(&admin, json!([cluster_type("1.0.0", 2)])).await),
        "conflict"
    );
    // A new version beside the old one.
    ok(&register(
        &ext,
        json!([cluster_type("1.0.0", 2), cluster_type("2.0.0", 1)]),
    )
    .await);
    let r = plat
        .command(
            "entities/create",
            json!({"type": "urn:extbus:type:acme:cluster:2.0.0", "org": "acme", "name": "c",
                   "entity": {"spec": {"nodes": 1}}}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "resolved");
}

#[tokio::test]
async fn every_state_survives_a_restart() {
    let (b, ext, plat) = setup().await;
    let secret = "pw-restart-4242";
    let good = create(
        &plat,
        "good",
        json!({"spec": {"nodes": 2, "password": secret}}),
    )
    .await;
    let good = id_of(ok(&good));
    let bad = create(&plat, "bad", json!({"spec": {"nodes": 0}})).await;
    let bad = id_of(ok(&bad));
    let gone = create(&plat, "gone", json!({"spec": {"nodes": 1}})).await;
    let gone = id_of(ok(&gone));
    ok(&plat
        .command(&format!("entities/{gone}/delete"), json!({}))
        .await);
    let upd = plat
        .command(
            &format!("entities/{good}/update"),
            json!({"revision": 1, "entity": {"spec": {"nodes": 3}}}),
        )
        .await;
    assert_eq!(ok(&upd)["revision"], 2);
    drop((ext, plat));

    let b = b.restart().await;
    let plat = b.client("platform").await;
    let g = plat
        .command(&format!("entities/{good}/get"), json!({}))
        .await;
    assert_eq!(ok(&g)["state"], "resolved");
    assert_eq!(ok(&g)["revision"], 2);
    assert_eq!(ok(&g)["history"].as_array().unwrap().len(), 2);
    let x = plat
        .command(&format!("entities/{bad}/get"), json!({}))
        .await;
    assert_eq!(ok(&x)["state"], "resolution_error");
    assert_eq!(ok(&x)["errors"][0]["path"], "/spec/nodes");
    let n = plat
        .command(&format!("entities/{gone}/get"), json!({}))
        .await;
    assert_eq!(code(&n), "not_found");
    // The type was rebuilt from the store and is still in use; the sealed secret still opens
    // (a resolve validates it, and answers `internal` if it cannot).
    let ext = b.client("extension").await;
    assert_eq!(
        code(&register(&ext, json!([cluster_type("1.0.0", 3)])).await),
        "conflict"
    );
    let r = plat
        .command(&format!("entities/{good}/resolve"), json!({}))
        .await;
    assert_eq!(ok(&r)["state"], "resolved");
    let r = create(&plat, "new", json!({"spec": {"nodes": 1}})).await;
    assert_eq!(ok(&r)["state"], "resolved");
    let q = plat.command("entities/query", json!({"org": "acme"})).await;
    assert_eq!(ok(&q)["entities"].as_array().unwrap().len(), 3);
}
