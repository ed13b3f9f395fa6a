//! Presence over real MQTT: a service whose extension has no connection is answered 503 at
//! once, over HTTP and over MQTT, saying so; once the extension is back it is served again.

use extbus_tests::http::{basic, request};
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

const PATH: &str = "/ext/acme/greeter/hello";

#[tokio::test]
async fn a_service_without_a_connected_extension_answers_503_at_once() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
                                 "url_patterns": ["^/ext/acme/greeter/.*"]}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    ext.disconnect().await;
    // Gone once the gate has closed its connection (the gauge drops after presence is updated).
    let mut gone = false;
    for _ in 0..100 {
        let m = request(b.http, "GET", "/metrics", &[], b"").await;
        if String::from_utf8_lossy(&m.body).contains("\nextbus_connections_open 0\n") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the extension's connection never closed");

    let auth = basic("observer", "observer");
    let started = std::time::Instant::now();
    let r = request(b.http, "GET", PATH, &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 503);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(
        body["error"]["message"],
        "no extension connected for service acme/greeter/1.0.0"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );

    let obs = b.client("observer").await;
    let r = obs
        .command(
            "services/acme/greeter/1.0.0",
            json!({"method": "GET", "path": PATH}),
        )
        .await;
    assert_eq!(r["result"]["status"], 503, "{r}");
    assert_eq!(
        r["result"]["json"]["error"]["message"],
        "no extension connected for service acme/greeter/1.0.0"
    );

    // Back online: the request reaches it.
    let ext =
        extbus_tests::BusClient::connect(&b, extbus_tests::Proto::V5, "extension", "extension")
            .await
            .unwrap();
    assert_eq!(
        ext.subscribe("extbus/services/acme/greeter/1.0.0/requests")
            .await,
        vec![1]
    );
    let answer = {
        let ext = ext.clone();
        tokio::spawn(async move {
            let m = ext
                .expect_on("extbus/services/acme/greeter/1.0.0/requests")
                .await
                .json();
            ext.command(
                "services/responses",
                json!({"id": m["id"], "status": 200, "json": {"hello": "back"}}),
            )
            .await
        })
    };
    let r = request(b.http, "GET", PATH, &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(answer.await.unwrap()["ok"], true);
    b.stop().await;
}
