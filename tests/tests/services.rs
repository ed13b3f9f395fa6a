//! Extension services through the HTTP gateway and over MQTT, answered by
//! real extensions on the bus. JSON and binary bodies, 401/404/413/502/504, a late response,
//! a response from a non-owner, replicas sharing a `$share` subscription, restart.

use base64::Engine as _;
use extbus_schema::Role;
use extbus_tests::http::{basic, request, Http, HttpResponse};
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const REQUESTS: &str = "extbus/services/acme/greeter/1.0.0/requests";
const TIMEOUT_MS: u64 = 5_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn manifest() -> Value {
    json!({"services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
        "url_patterns": ["^/ext/acme/greeter/"], "priority": 50, "timeout_ms": TIMEOUT_MS}]})
}

/// Connects `name`, registers the greeter service and subscribes to `filter`.
async fn extension(b: &TestBroker, name: &str, filter: &str) -> Arc<BusClient> {
    let ext = b.client(name).await;
    let r = ext.command("register", manifest()).await;
    assert_eq!(r["ok"], true, "register: {r}");
    assert_eq!(ext.subscribe(filter).await, vec![1], "subscribe {filter}");
    ext
}

/// The answer an echo extension gives: `/json` paths get a JSON description of the request,
/// others their own body back with the request's content type.
fn echo_response(req: &Value, replica: &str) -> Value {
    let path = req["path"].as_str().unwrap_or("");
    let mut headers = json!({"x-replica": replica, "connection": "x-secret", "x-secret": "1"});
    if path.ends_with("/json") {
        json!({"id": req["id"], "status": 201, "headers": headers,
               "json": {"path": path, "method": req["method"], "query": req["query"],
                        "principal": req["principal"], "orgs": req["orgs"],
                        "headers": req["headers"], "deadline": req["deadline"]}})
    } else {
        if let Some(ct) = req["headers"]["content-type"].as_str() {
            headers["content-type"] = ct.into();
        }
        json!({"id": req["id"], "status": 200, "headers": headers, "body": req["body"]})
    }
}

/// An echo extension running in its own task. A failure of the helper (a refused response, or
/// a panic) is kept and raised by `stop`, or by drop, so it is never lost with the task.
struct Echo {
    task: JoinHandle<()>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Records a panic of the helper's task as its failure while it unwinds.
struct PanicNote(Arc<Mutex<Option<String>>>);

impl Drop for PanicNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
            f.get_or_insert_with(|| "the echo helper panicked (message above)".into());
        }
    }
}

impl Echo {
    fn failed(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the helper; panics with its failure if it had one.
    async fn stop(mut self) {
        self.task.abort();
        if let Err(e) = (&mut self.task).await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        if let Some(f) = self.failed() {
            panic!("echo helper failed: {f}");
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(f) = self.failed() {
            if std::thread::panicking() {
                eprintln!("echo helper failed: {f}");
            } else {
                panic!("echo helper failed: {f}");
            }
        }
    }
}

/// Answers every request `ext` receives until stopped.
fn echo(ext: Arc<BusClient>, replica: &'static str) -> Echo {
    let failure = Arc::new(Mutex::new(None));
    let note = PanicNote(failure.clone());
    let task = tokio::spawn(async move {
        let note = note;
        loop {
            // Idle is normal: wait again rather than fail.
            let Some(m) = ext
                .next_within(Duration::from_secs(5), |m| m.topic == REQUESTS)
                .await
            else {
                continue;
            };
            let r = ext
                .command("services/responses", echo_response(&m.json(), replica))
                .await;
            if r["ok"] != true {
                let mut f = note.0.lock().unwrap_or_else(|e| e.into_inner());
                *f = Some(format!("response refused: {r}"));
                return;
            }
        }
    });
    Echo { task, failure }
}

fn auth(name: &str) -> String {
    basic(name, name)
}

async fn get(b: &TestBroker, target: &str, who: &str) -> HttpResponse {
    request(b.http, "GET", target, &[("authorization", &auth(who))], b"").await
}

async fn metrics(b: &TestBroker) -> String {
    let r = request(b.http, "GET", "/metrics", &[], b"").await;
    String::from_utf8(r.body).unwrap()
}

#[tokio::test]
async fn json_and_binary_bodies_round_trip() {
    let b = TestBroker::start().await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let server = echo(ext, "r1");
    let mut http = Http::connect(b.http).await.unwrap();

    let a = auth("observer");
    let r = http
        .send(
            "POST",
            "/ext/acme/greeter/hello/json?lang=en&x=1",
            &[
                ("authorization", &a),
                ("content-type", "application/json"),
                ("x-custom", "yes"),
                ("connection", "keep-alive"),
            ],
            br#"{"name":"ada"}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-replica"), Some("r1"));
    // Hop-by-hop headers of the response (and those its Connection names) are dropped.
    assert_eq!(r.header("x-secret"), None);
    let seen = r.json();
    assert_eq!(seen["path"], "/ext/acme/greeter/hello/json");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["query"], "lang=en&x=1");
    assert_eq!(seen["principal"], "observer");
    assert_eq!(seen["orgs"], json!(["*"]));
    assert_eq!(seen["headers"]["x-custom"], "yes");
    assert_eq!(seen["headers"]["content-type"], "application/json");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert!(seen["headers"].get("connection").is_none(), "{seen}");
    assert!(seen["deadline"].as_str().unwrap().ends_with('Z'));

    // Binary bodies pass byte for byte, on the same keep-alive connection.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let r = http
        .send(
            "PUT",
            "/ext/acme/greeter/blob",
            &[
                ("authorization", &a),
                ("content-type", "application/octet-stream"),
            ],
            &bytes,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, bytes);

    // An empty body works too.
    let r = get(&b, "/ext/acme/greeter/empty", "platform").await;
    assert_eq!((r.status, r.body.len()), (200, 0));

    let text = metrics(&b).await;
    assert!(
        text.contains("extbus_service_requests_total{status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("extbus_service_request_duration_seconds_count 3"),
        "{text}"
    );
    assert!(text.contains("extbus_service_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
    server.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn callers_must_authenticate_and_bearer_forms_work() {
    let b = TestBroker::start().await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let server = echo(ext, "r1");
    let target = "/ext/acme/greeter/json";
    for headers in [
        vec![],
        vec![("authorization", basic("observer", "wrong"))],
        vec![("authorization", basic("nobody", "nobody"))],
        vec![("authorization", "Bearer wrong".to_string())],
        vec![("authorization", "Digest x".to_string())],
        vec![("authorization", "Basic %%%".to_string())],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request(b.http, "GET", target, &h, b"").await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json()["error"]["code"], "forbidden", "{headers:?}");
        let challenges = r.headers_named("www-authenticate");
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic")),
            "{challenges:?}"
        );
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer")),
            "{challenges:?}"
        );
    }
    // Unauthenticated callers learn nothing about which paths exist.
    let r = request(b.http, "GET", "/nothing/here", &[], b"").await;
    assert_eq!(r.status, 401);

    for bearer in [
        "Bearer operator",
        "Bearer operator",
        "bearer operator:operator",
    ] {
        let r = request(b.http, "GET", target, &[("authorization", bearer)], b"").await;
        assert_eq!(r.status, 201, "{bearer}");
        assert_eq!(r.json()["principal"], "operator");
    }
    server.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn unmatched_paths_are_404_and_big_bodies_413() {
    let b = TestBroker::start_with(|c| c.mqtt.max_payload = 4096).await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let server = echo(ext, "r1");
    let r = get(&b, "/ext/acme/other/x", "observer").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");

    let a = auth("observer");
    let big = vec![b'x'; 4097];
    let r = request(
        b.http,
        "POST",
        "/ext/acme/greeter/x",
        &[("authorization", &a)],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    // At the limit it goes through (answered with a small JSON body: the extension's own
    // response must fit the payload limit on its inbox).
    let r = request(
        b.http,
        "POST",
        "/ext/acme/greeter/x/json",
        &[("authorization", &a)],
        &big[1..],
    )
    .await;
    assert_eq!(r.status, 201);
    server.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn silent_extension_is_504_and_its_late_response_is_dropped_and_counted() {
    let b = TestBroker::start().await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let addr = b.http;
    let a = auth("observer");
    let call = tokio::spawn(async move {
        request(
            addr,
            "GET",
            "/ext/acme/greeter/slow",
            &[("authorization", &a)],
            b"",
        )
        .await
    });
    let req = ext.expect_on(REQUESTS).await.json();
    let deadline = req["deadline"].as_str().unwrap().to_string();
    // Nothing happens until the broker's clock passes the service's timeout.
    b.clock.advance(TIMEOUT_MS - 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!call.is_finished());
    b.clock.advance(1);
    let r = call.await.unwrap();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert!(!deadline.is_empty());

    let late = ext
        .command(
            "services/responses",
            json!({"id": req["id"], "status": 200}),
        )
        .await;
    assert_eq!(late["ok"], false);
    assert_eq!(late["error"]["code"], "not_found", "{late}");
    let unknown = ext
        .command(
            "services/responses",
            json!({"id": "no-such-id", "status": 200}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], "not_found");
    let text = metrics(&b).await;
    assert!(
        text.contains("extbus_service_late_responses_total 1"),
        "{text}"
    );
    assert!(
        text.contains("extbus_service_requests_total{status=\"504\"} 1"),
        "{text}"
    );
    assert!(text.contains("extbus_service_requests_pending 0"), "{text}");
    b.stop().await;
}

#[tokio::test]
async fn malformed_responses_are_502() {
    let b = TestBroker::start().await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let addr = b.http;
    let bad_responses = [
        // Fails the schema: the extension hears why, the caller gets 502 at once.
        (json!({"status": 200, "body": "not base64!"}), false),
        (json!({"status": 99}), false),
        // Valid on the bus, impossible in HTTP.
        (json!({"status": 200, "headers": {"bad header": "1"}}), true),
    ];
    for (bad, accepted) in bad_responses {
        let a = auth("observer");
        let call = tokio::spawn(async move {
            request(
                addr,
                "GET",
                "/ext/acme/greeter/x",
                &[("authorization", &a)],
                b"",
            )
            .await
        });
        let req = ext.expect_on(REQUESTS).await.json();
        let mut resp = bad.clone();
        resp["id"] = req["id"].clone();
        let reply = ext.command("services/responses", resp).await;
        assert_eq!(reply["ok"], accepted, "{bad}: {reply}");
        if !accepted {
            assert_eq!(reply["error"]["code"], "schema_violation");
        }
        let r = call.await.unwrap();
        assert_eq!(r.status, 502, "{bad}");
        assert_eq!(r.json()["error"]["code"], "internal", "{bad}");
    }
    b.stop().await;
}

#[tokio::test]
async fn only_the_owner_may_answer() {
    let b = TestBroker::start().await;
    b.add_principal("intruder", &[Role::Extension], &["*"]);
    let ext = extension(&b, "extension", REQUESTS).await;
    let intruder = b.client("intruder").await;
    let addr = b.http;
    let a = auth("observer");
    let call = tokio::spawn(async move {
        request(
            addr,
            "GET",
            "/ext/acme/greeter/json",
            &[("authorization", &a)],
            b"",
        )
        .await
    });
    let req = ext.expect_on(REQUESTS).await.json();
    let forged = intruder
        .command(
            "services/responses",
            json!({"id": req["id"], "status": 200, "json": {"forged": true}}),
        )
        .await;
    assert_eq!(forged["error"]["code"], "forbidden", "{forged}");
    // Nor may a non-extension answer at all.
    let observer = b.client("observer").await;
    let r = observer
        .command(
            "services/responses",
            json!({"id": req["id"], "status": 200}),
        )
        .await;
    assert_eq!(r["error"]["code"], "forbidden");
    let ok = ext
        .command("services/responses", echo_response(&req, "owner"))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    let r = call.await.unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-replica"), Some("owner"));
    b.stop().await;
}

#[tokio::test]
async fn replicas_share_the_load_through_a_shared_subscription() {
    let b = TestBroker::start().await;
    let filter = format!("$share/greeters/{REQUESTS}");
    let one = extension(&b, "extension", &filter).await;
    let two = b.client("extension").await;
    assert_eq!(two.subscribe(&filter).await, vec![1]);
    let servers = [echo(one, "one"), echo(two, "two")];
    let a = auth("observer");
    let mut http = Http::connect(b.http).await.unwrap();
    let mut counts = std::collections::HashMap::new();
    for i in 0..20 {
        let r = http
            .send(
                "GET",
                &format!("/ext/acme/greeter/{i}"),
                &[("authorization", &a)],
                b"",
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "request {i}");
        *counts
            .entry(r.header("x-replica").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.values().sum::<i32>(), 20);
    assert!(counts.get("one").copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get("two").copied().unwrap_or(0) > 0, "{counts:?}");
    for s in servers {
        s.stop().await;
    }
    b.stop().await;
}

#[tokio::test]
async fn mqtt_native_calls_are_answered_as_replies() {
    let b = TestBroker::start().await;
    let ext = extension(&b, "extension", REQUESTS).await;
    let server = echo(ext.clone(), "r1");
    let caller = b.client("observer").await;
    let r = caller
        .command(
            "services/acme/greeter/1.0.0",
            json!({"method": "POST", "path": "/ext/acme/greeter/hi/json", "query": "a=1",
                   "json": {"hello": "bus"}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["command"], "services/acme/greeter/1.0.0");
    let result = &r["result"];
    assert_eq!(result["status"], 201);
    assert_eq!(result["headers"]["x-replica"], "r1");
    assert_eq!(result["json"]["principal"], "observer");
    assert_eq!(result["json"]["query"], "a=1");
    assert_eq!(
        result["json"]["headers"]["content-type"],
        "application/json"
    );

    let r = caller
        .command(
            "services/acme/greeter/1.0.0",
            json!({"method": "PUT", "path": "/anything", "body": B64.encode(b"\x00\x01raw")}),
        )
        .await;
    assert_eq!(r["result"]["status"], 200);
    assert_eq!(
        B64.decode(r["result"]["body"].as_str().unwrap()).unwrap(),
        b"\x00\x01raw"
    );

    let r = caller
        .command(
            "services/acme/nobody/1.0.0",
            json!({"method": "GET", "path": "/"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    let r = caller
        .command(
            "services/acme/greeter/1.0.0",
            json!({"method": "GET", "path": "no-slash"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    server.stop().await;

    // A silent service: the reply mirrors the HTTP 504.
    let c = caller.clone();
    let pending = tokio::spawn(async move {
        c.command(
            "services/acme/greeter/1.0.0",
            json!({"method": "GET", "path": "/slow"}),
        )
        .await
    });
    let _ = ext.expect_on(REQUESTS).await;
    b.clock.advance(TIMEOUT_MS);
    let r = pending.await.unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["status"], 504);
    assert_eq!(r["result"]["json"]["error"]["code"], "overloaded");
    b.stop().await;
}

#[tokio::test]
async fn services_survive_a_restart() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    assert_eq!(ext.command("register", manifest()).await["ok"], true);
    ext.disconnect().await;
    let b = b.restart().await;
    let ext = b.client("extension").await;
    // The gate still knows the extension serves the greeter, and the router its patterns.
    assert_eq!(ext.subscribe(REQUESTS).await, vec![1]);
    let server = echo(ext, "again");
    let r = get(&b, "/ext/acme/greeter/json", "admin").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-replica"), Some("again"));
    server.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn services_declared_in_the_config_are_routed_without_a_manifest() {
    let b = TestBroker::start_with(|c| {
        c.services.declared.push(extbus::config::DeclaredService {
            extension: "extension".into(),
            vendor: "acme".into(),
            name: "greeter".into(),
            version: "1.0.0".into(),
            url_patterns: vec!["^/ext/acme/greeter/".into()],
            priority: 50,
            timeout_ms: None,
        });
    })
    .await;
    // No register: the config makes `extension` the owner, so it may subscribe and answer.
    let ext = b.client("extension").await;
    assert_eq!(ext.subscribe(REQUESTS).await, vec![1]);
    let server = echo(ext.clone(), "cfg");
    let r = get(&b, "/ext/acme/greeter/x/json", "observer").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["principal"], "observer");
    // Registering callout rules alone keeps the declared service routed.
    let reg = ext
        .command("register", json!({"rules": [{"operation": "vm.create"}]}))
        .await;
    assert_eq!(reg["ok"], true, "{reg}");
    assert_eq!(
        get(&b, "/ext/acme/greeter/y/json", "observer").await.status,
        201
    );
    server.stop().await;
    b.stop().await;
}
