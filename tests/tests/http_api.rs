//! The HTTP API over a real broker: every command route, the SPEC's status codes (400, 401,
//! 403, 404, 409, 413, 503) with the `{"error": {code, message, details}}` body, role and org
//! limits as over MQTT, state changes seen by MQTT clients, and the OpenAPI document.

use extbus_schema::Role;
use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::TestBroker;
use serde_json::{json, Value};

async fn call(b: &TestBroker, who: &str, method: &str, target: &str, body: &Value) -> HttpResponse {
    let auth = basic(who, who);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, &[("authorization", &auth)], &body).await
}

/// The answer's status, and its error code when it has one.
fn code(r: &HttpResponse) -> (u16, String) {
    let j = r.json();
    let c = j["error"]["code"].as_str().unwrap_or("").to_string();
    if !c.is_empty() {
        assert!(j["error"]["message"].is_string(), "{j}");
        assert!(j["error"]["details"].is_array(), "{j}");
    }
    (r.status, c)
}

/// A broker whose `extension` blocks `vm.create`, with principals limited to `acme`.
async fn broker() -> TestBroker {
    let b = TestBroker::start().await;
    b.add_principal("plat-acme", &[Role::Platform], &["acme"]);
    b.add_principal("op-acme", &[Role::Operator], &["acme"]);
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    b
}

async fn submit(b: &TestBroker, who: &str, request_id: &str, org: &str) -> HttpResponse {
    let body = json!({"request_id": request_id, "operation": "vm.create", "org": org});
    call(b, who, "POST", "/api/tasks", &body).await
}

#[tokio::test]
async fn task_routes_apply_commands_and_map_their_replies() {
    let b = broker().await;
    let op = b.client("operator").await;
    assert_eq!(op.subscribe("extbus/tasks/resolved/#").await, vec![1]);

    let r = submit(&b, "platform", "r-1", "acme").await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["state"], "blocked");

    let r = call(
        &b,
        "observer",
        "GET",
        &format!("/api/tasks/{id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], id.as_str());
    let r = call(
        &b,
        "observer",
        "GET",
        "/api/tasks?state=blocked&limit=10",
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.json().to_string().contains(&id));

    let extend = format!("/api/tasks/{id}/extend");
    let r = call(&b, "operator", "POST", &extend, &json!({"extend_ms": 1000})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());

    let resume = format!("/api/tasks/{id}/resume");
    // An observer may read but not resolve.
    let r = call(&b, "observer", "POST", &resume, &json!({})).await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = call(
        &b,
        "operator",
        "POST",
        &resume,
        &json!({"message": "ok", "result": {"a": 1}}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["state"], "resumed");
    // The same state change as an MQTT resume: announced on the bus.
    let m = op.expect_on("extbus/tasks/resolved/vm/create").await;
    assert_eq!(m.json()["id"], id.as_str());
    // Resolved already.
    for verb in ["cancel", "abort"] {
        let r = call(
            &b,
            "operator",
            "POST",
            &format!("/api/tasks/{id}/{verb}"),
            &json!({}),
        )
        .await;
        assert_eq!(code(&r), (409, "conflict".into()), "{verb}");
    }
    let r = call(
        &b,
        "operator",
        "POST",
        "/api/tasks/nosuch/abort",
        &Value::Null,
    )
    .await;
    assert_eq!(code(&r), (404, "not_found".into()));
    b.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_specs_status_codes() {
    let b = TestBroker::start_with(|c| {
        c.auth.free_failures = 1;
        c.mqtt.max_payload = 4096;
    })
    .await;
    let auth = basic("platform", "platform");
    let h = [("authorization", auth.as_str())];
    let post = |t: &'static str, body: &'static [u8]| request(b.http, "POST", t, &h, body);

    let r = post("/api/tasks", b"{not json").await;
    assert_eq!(code(&r), (400, "bad_json".into()));
    let r = post(
        "/api/tasks",
        br#"{"request_id": "r", "operation": "vm.create", "org": "acme", "callout": 1}"#,
    )
    .await;
    assert_eq!(code(&r), (400, "schema_violation".into()));
    assert!(r.json().to_string().contains("callout"), "{:?}", r.json());
    let r = post(
        "/api/tasks",
        br#"{"request_id": "r", "operation": "VM.create", "org": "acme"}"#,
    )
    .await;
    assert_eq!(code(&r), (400, "invalid_name".into()));
    let r = call(
        &b,
        "platform",
        "GET",
        "/api/events?from_seq=x",
        &Value::Null,
    )
    .await;
    assert_eq!(code(&r), (400, "schema_violation".into()));
    let r = call(&b, "platform", "GET", "/api/tasks?nosuch=1", &Value::Null).await;
    assert_eq!(code(&r), (400, "schema_violation".into()));
    let big = vec![b' '; 5000];
    let r = request(b.http, "POST", "/api/events", &h, &big).await;
    assert_eq!(code(&r), (413, "payload_too_large".into()));
    // Unknown API paths answer 404 here, not through the services gateway.
    let r = call(&b, "platform", "GET", "/api/nothing/here", &Value::Null).await;
    assert_eq!(code(&r), (404, "not_found".into()));
    let r = call(&b, "platform", "DELETE", "/api/tasks", &Value::Null).await;
    assert_eq!(code(&r), (404, "not_found".into()));

    let r = request(b.http, "GET", "/api/tasks", &[], b"").await;
    assert_eq!(code(&r), (401, "forbidden".into()));
    assert!(r.header("www-authenticate").is_some());
    let wrong = basic("platform", "wrong");
    let wrong = [("authorization", wrong.as_str())];
    let r = request(b.http, "GET", "/api/tasks", &wrong, b"").await;
    assert_eq!(r.status, 401);
    // Throttled after one failure: refused at once, whatever the credentials.
    let r = request(b.http, "GET", "/api/tasks", &wrong, b"").await;
    assert_eq!(code(&r), (503, "overloaded".into()));
    assert!(r.header("retry-after").is_some());
    b.stop().await;
}

#[tokio::test]
async fn org_limits_hold_as_over_mqtt() {
    let b = broker().await;
    let r = submit(&b, "plat-acme", "g-1", "globex").await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let theirs = submit(&b, "platform", "g-1", "globex").await.json()["id"].clone();
    let ours = submit(&b, "plat-acme", "a-1", "acme").await.json()["id"].clone();
    let list = call(&b, "op-acme", "GET", "/api/tasks", &Value::Null).await;
    assert_eq!(list.status, 200);
    let text = list.json().to_string();
    assert!(text.contains(ours.as_str().unwrap()), "{text}");
    assert!(!text.contains(theirs.as_str().unwrap()), "{text}");
    let t = theirs.as_str().unwrap();
    let r = call(
        &b,
        "op-acme",
        "POST",
        &format!("/api/tasks/{t}/resume"),
        &json!({}),
    )
    .await;
    assert!(matches!(r.status, 403 | 404), "{:?}", r.json());
    let r = call(
        &b,
        "op-acme",
        "GET",
        &format!("/api/tasks/{t}"),
        &Value::Null,
    )
    .await;
    assert!(matches!(r.status, 403 | 404), "{:?}", r.json());

    // Events: emitted for its own org only, and replayed only from its orgs.
    let ev = |org: &str| json!({"type": "vm.create", "org": org, "data": {}});
    let r = call(&b, "plat-acme", "POST", "/api/events", &ev("globex")).await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = call(&b, "platform", "POST", "/api/events", &ev("globex")).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let r = call(&b, "plat-acme", "POST", "/api/events", &ev("acme")).await;
    assert_eq!(r.status, 201);
    let seq = r.json()["seq"].as_u64().unwrap();
    let r = call(
        &b,
        "op-acme",
        "GET",
        "/api/events?from_seq=0&filter=extbus/events/%2B/vm/%23",
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let events = r.json()["events"].as_array().unwrap().clone();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["org"] == "acme"), "{events:?}");
    assert!(events.iter().any(|e| e["seq"] == seq));
    b.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let b = TestBroker::start().await;
    let r = call(&b, "observer", "GET", "/api/openapi.json", &Value::Null).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in extbus::http::api::routes::ROUTES {
        let m = route.method.as_str().to_ascii_lowercase();
        assert!(
            doc["paths"][route.path][&m]["responses"].is_object(),
            "{m} {}",
            route.path
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn entity_and_registration_routes_apply_their_commands() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"component": "clusters", "entity_types": [{"vendor": "acme", "nss": "cluster",
                "version": "1.0.0", "name": "Cluster",
                "schema": {"type": "object", "required": ["nodes"],
                           "properties": {"nodes": {"type": "integer", "minimum": 1}}},
                "access": {"read": ["platform", "operator"], "write": ["platform"]}}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ty = "urn:extbus:type:acme:cluster:1.0.0";
    let created = call(
        &b,
        "platform",
        "POST",
        "/api/entities",
        &json!({"type": ty, "org": "acme", "name": "prod-1", "entity": {"nodes": 3}}),
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let e = created.json();
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(
        (e["state"].as_str(), e["revision"].as_u64()),
        (Some("resolved"), Some(1))
    );
    let got = call(
        &b,
        "operator",
        "GET",
        &format!("/api/entities/{id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(
        (got.status, got.json()["entity"]["nodes"].as_u64()),
        (200, Some(3))
    );
    let put = call(
        &b,
        "platform",
        "PUT",
        &format!("/api/entities/{id}"),
        &json!({"revision": 1, "entity": {"nodes": 5}}),
    )
    .await;
    assert_eq!(
        (put.status, put.json()["revision"].as_u64()),
        (200, Some(2))
    );
    // A stale revision changes nothing.
    let stale = call(
        &b,
        "platform",
        "PUT",
        &format!("/api/entities/{id}"),
        &json!({"revision": 1, "entity": {"nodes": 9}}),
    )
    .await;
    assert_eq!(code(&stale), (409, "conflict".into()));
    let list = call(
        &b,
        "operator",
        "GET",
        &format!("/api/entities?type={ty}&limit=5"),
        &Value::Null,
    )
    .await;
    assert_eq!(list.json()["entities"][0]["entity"]["nodes"], 5);
    // Writing needs a role in the type's access.write.
    let denied = call(
        &b,
        "operator",
        "PUT",
        &format!("/api/entities/{id}"),
        &json!({"revision": 2, "entity": {"nodes": 1}}),
    )
    .await;
    assert_eq!(code(&denied), (403, "forbidden".into()));
    let del = call(
        &b,
        "platform",
        "DELETE",
        &format!("/api/entities/{id}?revision=2"),
        &Value::Null,
    )
    .await;
    assert_eq!(del.status, 200, "{}", String::from_utf8_lossy(&del.body));
    let gone = call(
        &b,
        "operator",
        "GET",
        &format!("/api/entities/{id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(code(&gone), (404, "not_found".into()));
    let regs = call(&b, "observer", "GET", "/api/registrations", &Value::Null).await;
    assert_eq!(regs.status, 200);
    let items = regs.json()["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .any(|i| i["principal"] == "extension" && i["component"] == "clusters"),
        "{items:?}"
    );
}

/// A call with extra headers.
async fn call_with(
    b: &TestBroker,
    who: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> HttpResponse {
    let auth = basic(who, who);
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, &all, &body).await
}

#[tokio::test]
async fn entity_revisions_are_etags_and_if_match_preconditions() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"entity_types": [{"vendor": "acme", "nss": "cluster", "version": "1.0.0",
                "schema": {"type": "object", "properties": {"nodes": {"type": "integer"}}},
                "behaviors": [{"name": "scale"}],
                "access": {"read": ["platform"], "write": ["platform"]}}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let ty = "urn:extbus:type:acme:cluster:1.0.0";
    let created = call(
        &b,
        "platform",
        "POST",
        "/api/entities",
        &json!({"type": ty, "org": "acme", "name": "e", "entity": {"nodes": 1}}),
    )
    .await;
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.json()["id"].as_str().unwrap().to_string();
    let at = format!("/api/entities/{id}");
    let got = call(&b, "platform", "GET", &at, &Value::Null).await;
    assert_eq!((got.status, got.header("etag")), (200, Some("\"1\"")));

    // If-Match stands in for the body revision.
    let put = call_with(
        &b,
        "platform",
        "PUT",
        &at,
        &[("if-match", "\"1\"")],
        &json!({"entity": {"nodes": 2}}),
    )
    .await;
    assert_eq!(
        (put.status, put.header("etag")),
        (200, Some("\"2\"")),
        "{}",
        put.json()
    );
    // Stale: 412, nothing changed.
    let stale = call_with(
        &b,
        "platform",
        "PUT",
        &at,
        &[("if-match", "\"1\"")],
        &json!({"entity": {"nodes": 9}}),
    )
    .await;
    assert_eq!(code(&stale), (412, "conflict".into()));
    let del = call_with(
        &b,
        "platform",
        "DELETE",
        &at,
        &[("if-match", "\"1\"")],
        &Value::Null,
    )
    .await;
    assert_eq!(code(&del), (412, "conflict".into()));
    let got = call(&b, "platform", "GET", &at, &Value::Null).await;
    assert_eq!(
        (got.json()["entity"]["nodes"].as_u64(), got.header("etag")),
        (Some(2), Some("\"2\""))
    );
    // A header and a body that disagree, or a header that is no revision, are refused.
    let both = call_with(
        &b,
        "platform",
        "PUT",
        &at,
        &[("if-match", "\"2\"")],
        &json!({"revision": 1, "entity": {"nodes": 3}}),
    )
    .await;
    assert_eq!(code(&both), (400, "schema_violation".into()));
    let junk = call_with(
        &b,
        "platform",
        "PUT",
        &at,
        &[("if-match", "*x")],
        &json!({"entity": {"nodes": 3}}),
    )
    .await;
    assert_eq!(code(&junk), (400, "schema_violation".into()));
    // The body revision keeps working, and a stale one without the header stays 409.
    let old = call(
        &b,
        "platform",
        "PUT",
        &at,
        &json!({"revision": 1, "entity": {"nodes": 3}}),
    )
    .await;
    assert_eq!(code(&old), (409, "conflict".into()));
    // A behavior answers its task.
    let t = call(
        &b,
        "platform",
        "POST",
        &format!("{at}/behaviors/scale"),
        &json!({"arguments": {}}),
    )
    .await;
    assert_eq!(
        (t.status, t.json()["operation"].as_str()),
        (202, Some("cluster.scale"))
    );
    let del = call_with(
        &b,
        "platform",
        "DELETE",
        &at,
        &[("if-match", "\"2\"")],
        &Value::Null,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.json());
    b.stop().await;
}
