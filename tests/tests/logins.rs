//! Logins under load, over a real broker and raw MQTT/HTTP sockets: known-good credentials
//! pass while the verification queue is full, a full queue refuses at once as busy, clients
//! that hang up are not hashed, failures throttle their address or principal (manual clock),
//! and a nameless Bearer secret costs at most one argon2 check. Hash counts come from
//! `/metrics`. A principal with a deliberately slow argon2 hash keeps a worker busy for as
//! long as a scenario needs; every wait is bounded.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use extbus_schema::Role;
use extbus_tests::http::{basic, request};
use extbus_tests::TestBroker;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);
const LO1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A CONNECT for MQTT 3.1.1 or 5 with a name and password.
fn connect_frame(v5: bool, client_id: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        if v5 { 5 } else { 4 },
        0xC2,
        0,
        60,
    ];
    if v5 {
        body.push(0); // no properties
    }
    for s in [client_id, user, pass] {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let mut frame = vec![0x10];
    let mut n = body.len();
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        frame.push(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    frame.extend_from_slice(&body);
    frame
}

/// Opens a connection from `from` (any 127/8 address is loopback) and sends a CONNECT.
async fn send_connect(
    from: Ipv4Addr,
    to: SocketAddr,
    v5: bool,
    user: &str,
    pass: &str,
) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind((from, 0).into()).unwrap();
    let mut s = timeout(WAIT, sock.connect(to)).await.unwrap().unwrap();
    let id = format!("c{}", uuid::Uuid::new_v4().simple());
    s.write_all(&connect_frame(v5, &id, user, pass))
        .await
        .unwrap();
    s
}

/// The CONNACK's return code (3.1.1) or reason code (5): 0 is accepted.
async fn connack(s: &mut TcpStream) -> u8 {
    let mut head = [0u8; 4];
    timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("no CONNACK in time")
        .expect("connection closed before its CONNACK");
    assert_eq!(head[0], 0x20, "not a CONNACK: {head:?}");
    head[3]
}

async fn login(from: Ipv4Addr, to: SocketAddr, v5: bool, user: &str, pass: &str) -> u8 {
    let mut s = send_connect(from, to, v5, user, pass).await;
    connack(&mut s).await
}

async fn metric(b: &TestBroker, key: &str) -> u64 {
    let r = request(b.http, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

async fn wait_metric(b: &TestBroker, key: &str, want: u64) {
    let ok = timeout(WAIT, async {
        while metric(b, key).await != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let now = metric(b, key).await;
    assert!(ok.is_ok(), "{key} stayed {now}, expected {want}");
}

/// Adds `name` (secret = name) with an argon2 hash about 50 times as slow as the default.
fn add_slow(b: &TestBroker, name: &str) {
    b.add_principal(name, &[Role::Platform], &[]);
    let params = Params::new(19 * 1024, 100, 1, None).unwrap();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(name.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let path = b.data_dir().join("principals.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v[name]["secret_hash"] = phc.into();
    let tmp = path.with_extension("slow.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

async fn get(b: &TestBroker, auth: &str) -> extbus_tests::http::HttpResponse {
    request(b.http, "GET", "/ext/none", &[("authorization", auth)], b"").await
}

#[tokio::test(flavor = "multi_thread")]
async fn known_good_logins_pass_while_the_queue_is_full_and_a_full_queue_refuses_at_once() {
    let b = TestBroker::start_with(|c| {
        c.auth.workers = 1;
        c.auth.queue = 2;
        c.auth.free_failures = 1000;
    })
    .await;
    add_slow(&b, "slow");
    assert_eq!(login(LO1, b.mqtt, true, "operator", "operator").await, 0);

    // One bad check running on the only worker, two waiting: the queue is full.
    let mut held = vec![send_connect(LO1, b.mqtt, true, "slow", "wrong").await];
    wait_metric(&b, "extbus_auth_running", 1).await;
    for _ in 0..2 {
        held.push(send_connect(LO1, b.mqtt, true, "slow", "wrong").await);
    }
    wait_metric(&b, "extbus_auth_queue", 2).await;

    // Known-good credentials do not wait behind them, over MQTT and HTTP.
    assert_eq!(login(LO1, b.mqtt, true, "operator", "operator").await, 0);
    assert_eq!(login(LO1, b.mqtt, false, "operator", "operator").await, 0);
    assert_eq!(get(&b, &basic("operator", "operator")).await.status, 404);
    assert_eq!(
        get(&b, "Bearer operator").await.status,
        404,
        "nameless, cached by its index"
    );
    // Anything else is refused at once: MQTT 5 Server busy, 3.1.1 Server unavailable, 503.
    assert_eq!(login(LO1, b.mqtt, true, "observer", "observer").await, 0x89);
    assert_eq!(
        login(LO1, b.mqtt, false, "observer", "observer").await,
        0x03
    );
    let r = get(&b, &basic("observer", "observer")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    // All of that happened while the three bad checks were still undecided.
    assert_eq!(metric(&b, "extbus_auth_queue").await, 2);
    assert_eq!(
        metric(&b, "extbus_auth_checks_total{result=\"bad\"}").await,
        0
    );

    for s in &mut held {
        assert_eq!(connack(s).await, 0x86);
    }
    assert_eq!(
        metric(&b, "extbus_auth_checks_total{result=\"busy\"}").await,
        3
    );
    assert_eq!(
        metric(&b, "extbus_connect_refused_total{reason=\"auth_busy\"}").await,
        2
    );
    // The queue has room again.
    assert_eq!(login(LO1, b.mqtt, true, "observer", "observer").await, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_abandoned_while_waiting_are_not_hashed() {
    let b = TestBroker::start_with(|c| {
        c.auth.workers = 1;
        c.auth.queue = 8;
        c.auth.free_failures = 1000;
    })
    .await;
    add_slow(&b, "slow");
    let hashes = metric(&b, "extbus_auth_hashes_total").await;
    let mut held = send_connect(LO1, b.mqtt, true, "slow", "wrong").await;
    wait_metric(&b, "extbus_auth_running", 1).await;
    for _ in 0..5 {
        drop(send_connect(LO1, b.mqtt, true, "platform", "wrong").await);
    }
    wait_metric(&b, "extbus_connect_refused_total{reason=\"abandoned\"}", 5).await;
    assert_eq!(connack(&mut held).await, 0x86);
    wait_metric(&b, "extbus_auth_checks_total{result=\"abandoned\"}", 5).await;
    assert_eq!(metric(&b, "extbus_auth_running").await, 0);
    assert_eq!(
        metric(&b, "extbus_auth_hashes_total").await,
        hashes + 1,
        "only the check someone waited for was hashed"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_throttle_their_address_and_principal_not_others() {
    let b = TestBroker::start_with(|c| {
        c.auth.free_failures = 2;
        c.auth.penalty_base_ms = 10_000;
        c.auth.penalty_max_ms = 40_000;
    })
    .await;
    let bad = Ipv4Addr::new(127, 0, 0, 2);
    let hashes = metric(&b, "extbus_auth_hashes_total").await;
    assert_eq!(login(bad, b.mqtt, true, "platform", "wrong").await, 0x86);
    assert_eq!(login(bad, b.mqtt, false, "operator", "wrong").await, 0x04);
    // The address is throttled: refused without a check, even with the right secret.
    assert_eq!(login(bad, b.mqtt, true, "observer", "observer").await, 0x9F);
    assert_eq!(
        login(bad, b.mqtt, false, "observer", "observer").await,
        0x03
    );
    assert_eq!(metric(&b, "extbus_auth_hashes_total").await, hashes + 2);
    // Another address is not; nor is a known-good login from the throttled one.
    assert_eq!(login(LO1, b.mqtt, true, "platform", "platform").await, 0);
    assert_eq!(login(bad, b.mqtt, true, "platform", "platform").await, 0);
    assert_eq!(
        metric(&b, "extbus_connect_refused_total{reason=\"throttled\"}").await,
        2
    );

    // After the penalty one probe is heard; another failure doubles the penalty.
    b.clock.advance(10_000);
    assert_eq!(login(bad, b.mqtt, true, "operator", "wrong").await, 0x86);
    assert_eq!(login(bad, b.mqtt, true, "observer", "observer").await, 0x9F);
    b.clock.advance(10_000);
    assert_eq!(login(bad, b.mqtt, true, "observer", "observer").await, 0x9F);
    b.clock.advance(10_000);
    assert_eq!(login(bad, b.mqtt, true, "observer", "observer").await, 0);

    // A principal failing from several addresses is throttled wherever it logs in from.
    for last in [3, 4] {
        let from = Ipv4Addr::new(127, 0, 0, last);
        assert_eq!(login(from, b.mqtt, true, "extension", "wrong").await, 0x86);
    }
    let fresh = Ipv4Addr::new(127, 0, 0, 5);
    assert_eq!(
        login(fresh, b.mqtt, true, "extension", "extension").await,
        0x9F
    );
    let r = get(&b, &basic("extension", "extension")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(login(fresh, b.mqtt, true, "admin", "admin").await, 0);
    b.clock.advance(10_000);
    assert_eq!(
        login(fresh, b.mqtt, true, "extension", "extension").await,
        0
    );
    assert!(metric(&b, "extbus_auth_throttled_total").await >= 3);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nameless_bearer_secret_costs_at_most_one_argon2_check() {
    let b = TestBroker::start().await;
    b.add_principal("late", &[Role::Observer], &[]);
    let hashes = metric(&b, "extbus_auth_hashes_total").await;
    for wrong in ["nobody-has-this", "operator:nope", "platformx"] {
        assert_eq!(get(&b, &format!("Bearer {wrong}")).await.status, 401);
    }
    assert_eq!(
        metric(&b, "extbus_auth_hashes_total").await,
        hashes + 1,
        "only the named form of `operator:nope` was hashed"
    );
    assert_eq!(get(&b, "Bearer observer").await.status, 404);
    assert_eq!(get(&b, "Bearer late").await.status, 404);
    assert_eq!(metric(&b, "extbus_auth_hashes_total").await, hashes + 3);
    assert_eq!(get(&b, "Bearer observer").await.status, 404);
    assert_eq!(get(&b, "Bearer platform:platform").await.status, 404);
    assert_eq!(metric(&b, "extbus_auth_hashes_total").await, hashes + 4);
    b.stop().await;
}
