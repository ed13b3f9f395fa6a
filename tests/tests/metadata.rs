//! Object metadata over real MQTT and HTTP: three principals (all orgs, one org, another org)
//! and what each may see, write and find; task metadata at submit and on resume; every bad
//! input refused with its code and nothing changed; `metadata.changed` events by domain.

use extbus_schema::Role;
use extbus_tests::http::{basic, request};
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

const TYPE_ID: &str = "urn:extbus:type:acme:vm:1.0.0";

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

fn code(r: &Value) -> String {
    assert_eq!(r["ok"], false, "{r}");
    r["error"]["code"].as_str().unwrap_or_default().to_string()
}

fn s(ns: &str, key: &str, v: &str) -> Value {
    json!({"namespace": ns, "key": key, "value": {"type": "string", "value": v}})
}

fn names(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = ok(r)["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn setup() -> (TestBroker, Vec<String>) {
    let b = TestBroker::start().await;
    b.add_principal("plat-acme", &[Role::Platform], &["acme"]);
    b.add_principal("op-globex", &[Role::Operator], &["globex"]);
    let ext = b.client("extension").await;
    let ty = json!({"vendor": "acme", "nss": "vm", "version": "1.0.0",
        "schema": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "access": {"read": ["platform", "operator"], "write": ["platform", "operator"]}});
    ok(&ext
        .command(
            "register",
            json!({"entity_types": [ty], "rules": [{"operation": "vm.create", "orgs": ["*"]}]}),
        )
        .await);
    let plat = b.client("plat-acme").await;
    let mut ids = Vec::new();
    for (i, name) in ["a1", "a2", "a3"].iter().enumerate() {
        let r = plat
            .command(
                "entities/create",
                json!({"type": TYPE_ID, "org": "acme", "name": name, "entity": {"size": i + 1}}),
            )
            .await;
        ids.push(ok(&r)["id"].as_str().unwrap().to_string());
    }
    (b, ids)
}

#[tokio::test]
async fn three_principals_see_write_and_find_only_what_they_may() {
    let (b, ids) = setup().await;
    let (admin, plat, other) = (
        b.client("admin").await,
        b.client("plat-acme").await,
        b.client("op-globex").await,
    );
    admin.subscribe("extbus/events/+/metadata/changed").await;
    let set = |i: usize| format!("metadata/{}/set", ids[i]);

    // Tenant entries by the org's platform.
    ok(&plat
        .command(
            &set(0),
            json!({"entries": [s("billing", "cost-center", "cc-42")]}),
        )
        .await);
    ok(&plat
        .command(
            &set(1),
            json!({"entries": [s("billing", "cost-center", "cc-7"),
        {"namespace": "ops", "key": "cpu", "value": {"type": "number", "value": 8}}]}),
        )
        .await);
    ok(&plat
        .command(
            &set(2),
            json!({"entries": [
        {"namespace": "ops", "key": "cpu", "value": {"type": "number", "value": 16}}]}),
        )
        .await);
    // Provider and read_only entries need all orgs.
    let mut p = s("ops", "tier", "gold");
    p["domain"] = json!("provider");
    assert_eq!(
        code(&plat.command(&set(0), json!({"entries": [p.clone()]})).await),
        "forbidden"
    );
    let mut ro = s("billing", "locked", "yes");
    ro["read_only"] = json!(true);
    assert_eq!(
        code(
            &plat
                .command(&set(0), json!({"entries": [ro.clone()]}))
                .await
        ),
        "forbidden"
    );
    // The provider puts a hidden entry with the same name and value as a tenant one on a2.
    ok(&admin.command(&set(0), json!({"entries": [p, ro]})).await);
    let mut hidden = s("billing", "cost-center", "cc-42");
    hidden["domain"] = json!("provider");
    ok(&admin.command(&set(1), json!({"entries": [hidden]})).await);

    // get: the org's platform sees only tenant entries; the other org's operator nothing.
    let g = plat
        .command(&format!("metadata/{}/get", ids[0]), json!({}))
        .await;
    let entries = ok(&g)["metadata"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{g}");
    assert!(entries.iter().all(|e| e["domain"] == "tenant"));
    let g = admin
        .command(&format!("metadata/{}/get", ids[0]), json!({}))
        .await;
    assert_eq!(ok(&g)["metadata"].as_array().unwrap().len(), 3);
    let e = plat
        .command(&format!("entities/{}/get", ids[0]), json!({}))
        .await;
    assert_eq!(ok(&e)["metadata"].as_array().unwrap().len(), 2);
    for cmd in ["get", "set", "delete"] {
        let body = match cmd {
            "set" => json!({"entries": [s("x", "y", "z")]}),
            "delete" => json!({"namespace": "billing", "key": "cost-center"}),
            _ => json!({}),
        };
        let r = other
            .command(&format!("metadata/{}/{cmd}", ids[0]), body)
            .await;
        assert_eq!(code(&r), "not_found", "{cmd}");
    }
    // An id that exists nowhere answers the same.
    let r = plat
        .command("metadata/urn:extbus:entity:nope/get", json!({}))
        .await;
    assert_eq!(code(&r), "not_found");

    // Search: a hidden entry neither matches nor leaks through !=.
    let q = |m: &str| json!({"metadata": m});
    let r = plat
        .command("entities/query", q("billing|cost-center=='cc-42'"))
        .await;
    assert_eq!(names(&r), ["a1"]);
    assert_eq!(ok(&r)["plan"]["served_by"], "metadata-index");
    // One clause is exactly its walk: no candidate is checked again.
    assert_eq!(ok(&r)["plan"]["filtered"], "none: the walk is the query");
    let r = admin
        .command("entities/query", q("billing|cost-center=='cc-42'"))
        .await;
    assert_eq!(names(&r), ["a1", "a2"]);
    assert_eq!(
        names(&plat.command("entities/query", q("tier!='silver'")).await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&admin.command("entities/query", q("tier!='silver'")).await),
        ["a1"]
    );
    assert_eq!(
        names(&other.command("entities/query", q("cpu=ge=0")).await),
        Vec::<String>::new()
    );
    // Numbers as numbers, prefixes, and/or precedence, content filters.
    assert_eq!(
        names(&plat.command("entities/query", q("ops|cpu=gt=10")).await),
        ["a3"]
    );
    assert_eq!(
        names(
            &plat
                .command("entities/query", q("cost-center=='cc*'"))
                .await
        ),
        ["a1", "a2"]
    );
    let r = plat
        .command("entities/query", q("cpu==8;cost-center=='cc-7',cpu==16"))
        .await;
    assert_eq!(names(&r), ["a2", "a3"]);
    // A range is one walk and exact; an `and` of other clauses walks one of its sides and
    // checks the candidates against the rest.
    let r = plat
        .command("entities/query", q("ops|cpu=ge=8;ops|cpu=lt=16"))
        .await;
    assert_eq!(names(&r), ["a2"]);
    assert_eq!(
        ok(&r)["plan"]["walked"],
        json!(["ops|cpu=ge=8;ops|cpu=lt=16"])
    );
    assert_eq!(ok(&r)["plan"]["filtered"], "none: the walk is the query");
    let r = plat
        .command("entities/query", q("cpu==8;cost-center=='cc-7',cpu==16"))
        .await;
    assert_eq!(
        ok(&r)["plan"]["filtered"],
        "every candidate against the whole query"
    );
    let r = plat
        .command(
            "entities/query",
            json!({"metadata": "cpu=ge=8", "filter": "entity.size=le=2"}),
        )
        .await;
    assert_eq!(names(&r), ["a2"]);
    let r = plat
        .command(
            "entities/query",
            json!({"type": TYPE_ID, "filter": "name=='a*';entity.size!=2"}),
        )
        .await;
    assert_eq!(names(&r), ["a1", "a3"]);
    assert_eq!(ok(&r)["plan"]["served_by"], "type-index");

    // Delete: a provider entry does not exist for the org's platform; read_only needs all orgs.
    let del = format!("metadata/{}/delete", ids[0]);
    let r = plat
        .command(
            &del,
            json!({"domain": "provider", "namespace": "ops", "key": "tier"}),
        )
        .await;
    assert_eq!(code(&r), "not_found");
    let r = plat
        .command(&del, json!({"namespace": "billing", "key": "locked"}))
        .await;
    assert_eq!(code(&r), "forbidden");
    ok(&plat
        .command(&del, json!({"namespace": "billing", "key": "cost-center"}))
        .await);
    let r = plat
        .command("entities/query", q("billing|cost-center=='cc-42'"))
        .await;
    assert_eq!(names(&r), Vec::<String>::new());
    // Deleting the entity takes its entries out of the index.
    ok(&plat
        .command(&format!("entities/{}/delete", ids[2]), json!({}))
        .await);
    assert_eq!(
        names(&admin.command("entities/query", q("cpu==16")).await),
        Vec::<String>::new()
    );

    // Events: tenant entries in the object's org, provider entries in the system org.
    let evs = admin
        .collect(Duration::from_millis(500), |m| {
            m.topic.ends_with("metadata/changed")
        })
        .await;
    let orgs: Vec<(String, String)> = evs
        .iter()
        .map(|m| {
            (
                m.topic.clone(),
                m.json()["data"]["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let acme = orgs.iter().filter(|(t, _)| t.contains("/acme/")).count();
    let system = orgs.iter().filter(|(t, _)| t.contains("/system/")).count();
    assert_eq!((acme, system), (5, 2), "{orgs:?}");
}

#[tokio::test]
async fn bad_inputs_are_refused_and_change_nothing() {
    let (b, ids) = setup().await;
    let plat = b.client("plat-acme").await;
    let set = format!("metadata/{}/set", ids[0]);
    ok(&plat
        .command(&set, json!({"entries": [s("n", "k", "v")]}))
        .await);
    let many: Vec<Value> = (0..49).map(|i| s("n", &format!("k{i}"), "v")).collect();
    ok(&plat.command(&set, json!({"entries": many})).await);
    let cases = [
        (json!({"entries": [s("n", "k50", "v")]}), "schema_violation"),
        (
            json!({"entries": [s("m", "a", "1"), s("m", "a", "2")]}),
            "schema_violation",
        ),
        (
            json!({"entries": [{"namespace": "n", "key": "k", "value": {"type": "number", "value": 1}}]}),
            "schema_violation",
        ),
        (json!({"entries": [s("Bad", "k", "v")]}), "invalid_name"),
        (
            json!({"entries": [s("n", &"k".repeat(129), "v")]}),
            "invalid_name",
        ),
        (
            json!({"entries": [s("n", "k", &"v".repeat(4097))]}),
            "schema_violation",
        ),
        (
            json!({"entries": [{"namespace": "n", "key": "k", "value": {"type": "number", "value": "1"}}]}),
            "schema_violation",
        ),
        (
            json!({"entries": [s("n", "k", "v")], "extra": 1}),
            "schema_violation",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            code(&plat.command(&set, body.clone()).await),
            want,
            "{body}"
        );
    }
    let g = plat
        .command(&format!("metadata/{}/get", ids[0]), json!({}))
        .await;
    assert_eq!(ok(&g)["metadata"].as_array().unwrap().len(), 50);
    assert_eq!(ok(&g)["metadata"][0]["value"]["value"], "v");
    for (m, pos) in [
        ("k=='open", "at position 3"),
        ("k=~=1", "at position 1"),
        ("k==3*", "at position 4"),
    ] {
        let r = plat.command("entities/query", json!({"metadata": m})).await;
        assert_eq!(code(&r), "schema_violation");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains("/metadata") && msg.contains(pos), "{msg}");
    }
    let r = plat
        .command("tasks/query", json!({"metadata": "k=lt='a*'"}))
        .await;
    assert_eq!(code(&r), "schema_violation");
    let r = plat
        .command("entities/query", json!({"filter": "entity.size=="}))
        .await;
    assert_eq!(r["error"]["details"][0]["path"], "/filter");
    // The broker keeps serving.
    ok(&plat
        .command(&format!("metadata/{}/get", ids[0]), json!({}))
        .await);
}

#[tokio::test]
async fn tasks_carry_metadata_from_submit_and_resume_over_mqtt_and_http() {
    let (b, _) = setup().await;
    let plat = b.client("plat-acme").await;
    let ext = b.client("extension").await;
    let submit = |rid: &str, cc: &str| {
        json!({"request_id": rid, "operation": "vm.create", "org": "acme",
               "metadata": [s("billing", "cost-center", cc)]})
    };
    let t1 = ok(&plat.command("tasks/submit", submit("r1", "cc-1")).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&plat.command("tasks/submit", submit("r2", "cc-2")).await);
    // A resume adds the placement the extension chose.
    let r = ext
        .command(
            &format!("tasks/{t1}/resume"),
            json!({"metadata": [s("placement", "zone", "eu-1")]}),
        )
        .await;
    ok(&r);
    let r = plat
        .command(
            "tasks/query",
            json!({"metadata": "placement|zone=='eu-1';cost-center=='cc-1'"}),
        )
        .await;
    let found: Vec<&str> = ok(&r)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [t1.as_str()]);
    assert_eq!(ok(&r)["plan"]["served_by"], "metadata-index");
    // `tasks/<id>/get` shows the task's entries, as an entity's `get` does.
    let g = plat.command(&format!("tasks/{t1}/get"), json!({})).await;
    let mut keys: Vec<&str> = ok(&g)["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["cost-center", "zone"]);
    let r = plat
        .command(
            "tasks/query",
            json!({"metadata": "cost-center=='cc*'", "state": "blocked"}),
        )
        .await;
    assert_eq!(ok(&r)["tasks"].as_array().unwrap().len(), 1);
    // A bad entry at submit refuses the submit: no task.
    let bad = json!({"request_id": "r3", "operation": "vm.create", "org": "acme", "metadata": [s("BAD", "k", "v")]});
    assert_eq!(
        code(&plat.command("tasks/submit", bad).await),
        "invalid_name"
    );
    let r = plat.command("tasks/query", json!({})).await;
    assert_eq!(ok(&r)["tasks"].as_array().unwrap().len(), 2);

    // HTTP: GET/PUT/DELETE /api/metadata/<id> and ?metadata= on the lists.
    let auth = basic("plat-acme", "plat-acme");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let path = format!("/api/metadata/{t1}");
    let put = serde_json::to_vec(&json!({"entries": [s("ops", "owner", "team-a")]})).unwrap();
    let r = request(b.http, "PUT", &path, &h, &put).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = request(b.http, "GET", &path, &h, b"").await;
    assert_eq!(r.json()["metadata"].as_array().unwrap().len(), 3);
    let r = request(
        b.http,
        "GET",
        "/api/tasks?metadata=ops%7Cowner%3D%3D%27team-a%27",
        &h,
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["tasks"][0]["id"], t1.as_str());
    let r = request(b.http, "GET", "/api/entities?metadata=k%3D%3D", &h, b"").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "schema_violation");
    let r = request(
        b.http,
        "DELETE",
        &format!("{path}?namespace=ops&key=owner"),
        &h,
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = request(
        b.http,
        "DELETE",
        &format!("{path}?namespace=ops&key=owner"),
        &h,
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    let globex = basic("op-globex", "op-globex");
    let r = request(
        b.http,
        "GET",
        &path,
        &[("authorization", globex.as_str())],
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_declared_content_index_serves_filters_and_follows_updates_and_deletes() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let ty = json!({"vendor": "acme", "nss": "disk", "version": "1.0.0",
        "schema": {"type": "object", "properties": {
            "size": {"type": "integer", "x-extbus-index": true},
            "label": {"type": "string"}}},
        "access": {"read": ["platform"], "write": ["platform"]}});
    ok(&ext.command("register", json!({"entity_types": [ty]})).await);
    let t = "urn:extbus:type:acme:disk:1.0.0";
    let plat = b.client("platform").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = json!({"type": t, "org": "acme", "name": format!("d{i}"),
                          "entity": {"size": i, "label": if i % 2 == 0 { "even" } else { "odd" }}});
        ids.push(
            ok(&plat.command("entities/create", body).await)["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let q = |f: &str| json!({"type": t, "filter": f});
    let r = plat.command("entities/query", q("entity.size=ge=7")).await;
    assert_eq!(names(&r), ["d7", "d8", "d9"]);
    assert_eq!(ok(&r)["plan"]["served_by"], "content-index");
    assert_eq!(ok(&r)["plan"]["candidates"], 3);
    // The indexed clause is walked, the other one checked on its candidates.
    let r = plat
        .command("entities/query", q("entity.label=='odd';entity.size=lt=4"))
        .await;
    assert_eq!(names(&r), ["d1", "d3"]);
    assert_eq!(ok(&r)["plan"]["candidates"], 4);
    // A filter on an undeclared path scans what the type index selects.
    let r = plat
        .command("entities/query", q("entity.label=='even'"))
        .await;
    assert_eq!(ok(&r)["plan"]["served_by"], "type-index");
    assert_eq!(names(&r).len(), 5);
    // Updates move the entity in the index; deletes take it out.
    let upd = json!({"revision": 1, "entity": {"size": 100, "label": "odd"}});
    ok(&plat
        .command(&format!("entities/{}/update", ids[9]), upd)
        .await);
    ok(&plat
        .command(&format!("entities/{}/delete", ids[8]), json!({}))
        .await);
    let r = plat
        .command("entities/query", q("entity.size=ge=7;entity.size=lt=50"))
        .await;
    assert_eq!(names(&r), ["d7"]);
    assert_eq!(ok(&r)["plan"]["candidates"], 1);
    let r = plat.command("entities/query", q("entity.size==100")).await;
    assert_eq!(names(&r), ["d9"]);
}
