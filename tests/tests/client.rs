//! The `extbus-client` crate over a real broker: replies matched by correlation id (also when
//! many are in flight), refusals carrying their protocol error code, typed notices, reconnecting and
//! resubscribing across a broker restart on the same port and data dir, and TLS.

use extbus_client::{Client, Error, ErrorCode, Link, Notice, Options, Tls};
use extbus_tests::TestBroker;
use serde_json::json;
use std::time::Duration;

fn opts(b: &TestBroker, name: &str) -> Options {
    Options::addr(b.mqtt, name, name).timeout(Duration::from_secs(20))
}

async fn connect(b: &TestBroker, name: &str) -> Client {
    Client::connect(&opts(b, name))
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"))
}

fn submit(request_id: &str) -> serde_json::Value {
    json!({"request_id": request_id, "operation": "vm.create", "org": "acme",
           "subject": "urn:acme:vm:1", "data": {"cpu": 2}})
}

#[tokio::test]
async fn a_request_gets_its_reply() {
    let b = TestBroker::start().await;
    let p = connect(&b, "platform").await;
    let task = p.request("tasks/submit", submit("r-1")).await.unwrap();
    assert_eq!(task["request_id"], "r-1");
    assert_eq!(task["state"], "resumed", "no rule matches: {task}");
    p.close().await;
    let after = p.request("tasks/submit", submit("r-2")).await.unwrap_err();
    assert!(matches!(after, Error::Closed), "{after}");
}

#[tokio::test]
async fn concurrent_requests_are_matched_by_correlation_id() {
    let b = TestBroker::start().await;
    let p = connect(&b, "platform").await;
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.request("tasks/submit", submit(&format!("c-{i}"))).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let task = call
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(task["request_id"], format!("c-{i}"));
    }
    p.close().await;
}

#[tokio::test]
async fn a_refusal_carries_its_code() {
    let b = TestBroker::start().await;
    let obs = connect(&b, "observer").await;
    let e = obs.request("tasks/submit", submit("x")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");
    let e = obs.request("no-such-command", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownCommand), "{e}");
    assert!(e.to_string().starts_with("unknown_command: "), "{e}");
    let e = obs.request("events/replay", json!([])).await.unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e}");
    // Outside the principal's rights: refused at SUBACK, and the connection stays usable.
    let e = obs.subscribe("extbus/out/platform/#").await.err().unwrap();
    assert!(matches!(e, Error::SubscribeRefused { .. }), "{e}");
    assert!(obs.request("tasks/query", json!({})).await.is_ok());

    let bad = Client::connect(&Options::addr(b.mqtt, "operator", "wrong")).await;
    assert!(matches!(bad, Err(Error::BadCredentials { .. })));
}

#[tokio::test]
async fn notices_arrive_typed_and_tasks_resolve() {
    let b = TestBroker::start().await;
    let ext = connect(&b, "extension").await;
    ext.register(json!({"rules": [{"operation": "vm.create"}]}))
        .await
        .unwrap();
    let mut blocked = ext.subscribe_blocked("vm.create").await.unwrap();
    let p = connect(&b, "platform").await;
    let mut outcomes = p.subscribe_outcomes().await.unwrap();
    let task = p.request("tasks/submit", submit("n-1")).await.unwrap();
    assert_eq!(task["state"], "blocked");

    let Notice::Blocked(t) = blocked.next_notice().await.unwrap() else {
        panic!("a blocked-task notice")
    };
    assert_eq!(t.request_id, "n-1");
    assert!(ext.waits_on_me(&t));
    assert_eq!(ext.blocked_on_me("vm.create").await.unwrap().len(), 1);
    ext.resume(&t.id, Some("fine")).await.unwrap();
    let Notice::Outcome(o) = outcomes.next_notice().await.unwrap() else {
        panic!("an outcome")
    };
    assert_eq!(
        (o.id.as_str(), o.message.as_deref()),
        (t.id.as_str(), Some("fine"))
    );
}

#[tokio::test]
async fn reconnects_and_resubscribes_after_a_broker_restart() {
    let b = TestBroker::start().await;
    let ext = connect(&b, "extension").await;
    ext.register(json!({"rules": [{"operation": "vm.create"}]}))
        .await
        .unwrap();
    let mut blocked = ext.subscribe_blocked("vm.create").await.unwrap();
    let mut link = ext.link();

    let b = b.restart_in_place().await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while ext.reconnects() == 0 || *link.borrow_and_update() != Link::Up {
            link.changed().await.unwrap();
        }
    })
    .await
    .expect("reconnected");
    // The renewed subscriptions (replies and notices) are in place once a request answers.
    ext.request("tasks/query", json!({})).await.unwrap();
    let p = connect(&b, "platform").await;
    p.request("tasks/submit", submit("after-restart"))
        .await
        .unwrap();
    let Notice::Blocked(t) = blocked.next_notice().await.unwrap() else {
        panic!("a blocked-task notice")
    };
    assert_eq!(t.request_id, "after-restart");
    ext.resume(&t.id, None).await.unwrap();
}

#[tokio::test]
async fn a_client_without_reconnect_reports_the_loss() {
    let b = TestBroker::start().await;
    let c = Client::connect(&opts(&b, "observer").reconnect(false))
        .await
        .unwrap();
    let mut events = c.subscribe_events(None).await.unwrap();
    b.stop().await;
    let e = events.next().await.unwrap_err();
    assert!(matches!(e, Error::Lost(_)), "{e}");
    let e = c.request("tasks/query", json!({})).await.unwrap_err();
    assert!(matches!(e, Error::Lost(_)), "{e}");
}

#[tokio::test]
async fn connects_over_tls_with_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, LEAF_PEM).unwrap();
    std::fs::write(&key, LEAF_KEY).unwrap();
    std::fs::write(&ca, CA_PEM).unwrap();
    let b = TestBroker::start_with(|c| {
        c.mqtt.tls = Some(extbus::config::TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: cert.clone(),
            key: key.clone(),
        })
    })
    .await;
    let addr = b.mqtt_tls.expect("a TLS listener");
    let o = Options::new("localhost", addr.port(), "platform", "platform").tls(Tls::CaFile(ca));
    let p = Client::connect(&o).await.expect("connects over TLS");
    let task = p.request("tasks/submit", submit("tls-1")).await.unwrap();
    assert_eq!(task["request_id"], "tls-1");
    p.close().await;

    // A server certificate nobody vouches for is refused.
    let o = Options::new("localhost", addr.port(), "platform", "platform")
        .tls(Tls::CaPem(LEAF_PEM.as_bytes().to_vec()))
        .timeout(Duration::from_secs(5));
    assert!(Client::connect(&o).await.is_err());
    let o = o.tls(Tls::CaPem(b"not pem".to_vec()));
    assert!(matches!(Client::connect(&o).await, Err(Error::Tls(_))));
}

// Test-only certificates (the same as the broker's TLS transport test): a CA, and a leaf it
// signed for `localhost` and 127.0.0.1.
const CA_PEM: &str = include_str!("../../broker/tests/certs/ca.pem");

/// Signed by `CA_PEM`, for `localhost` and 127.0.0.1; a test-only key.
const LEAF_PEM: &str = include_str!("../../broker/tests/certs/leaf.pem");

const LEAF_KEY: &str = include_str!("../../broker/tests/certs/leaf.key");
