//! The HTTP listener's connection limits over real sockets: a request whose headers or body
//! stall is cut after `header_read_timeout_ms`, an idle keep-alive connection after
//! `idle_timeout_ms` (and not sooner), and connections over the per-address or total limit
//! get 503 `overloaded` while other addresses are still served. Timeouts are configured
//! short; every wait is bounded.

use extbus_tests::http::{basic, Http};
use extbus_tests::TestBroker;
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const HEADER_MS: u64 = 300;
const IDLE_MS: u64 = 1_500;
/// Far longer than any timeout under test: reaching it means the connection was kept.
const BOUND: Duration = Duration::from_secs(10);

async fn metric(b: &TestBroker, line: &str) -> u64 {
    let mut c = Http::connect(b.http).await.unwrap();
    let r = c.send("GET", "/metrics", &[], b"").await.unwrap();
    let text = String::from_utf8_lossy(&r.body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

async fn short_timeouts() -> TestBroker {
    TestBroker::start_with(|c| {
        c.http.header_read_timeout_ms = HEADER_MS;
        c.http.idle_timeout_ms = IDLE_MS;
    })
    .await
}

#[tokio::test]
async fn half_sent_headers_are_cut_after_the_header_timeout() {
    let b = short_timeouts().await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut c = Http::connect(b.http).await.unwrap();
        c.write_raw(b"GET /healthz HTTP/1.1\r\nhost: extbus\r\nx-slow: ")
            .await
            .unwrap();
        conns.push(c);
    }
    let started = Instant::now();
    for c in &mut conns {
        assert!(
            c.closed_within(BOUND).await,
            "a slow header kept its socket"
        );
    }
    // All closed by the header timeout, long before the idle one.
    assert!(
        started.elapsed() < Duration::from_millis(IDLE_MS),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(&b, "extbus_http_closed_total{reason=\"header_timeout\"}").await,
        20
    );
    // The listener still serves.
    let mut c = Http::connect(b.http).await.unwrap();
    assert_eq!(
        c.send("GET", "/healthz", &[], b"").await.unwrap().status,
        200
    );
    b.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_only() {
    let b = short_timeouts().await;
    let mut c = Http::connect(b.http).await.unwrap();
    assert_eq!(
        c.send("GET", "/healthz", &[], b"").await.unwrap().status,
        200
    );
    // Idle for longer than the header timeout: still open, still serving.
    tokio::time::sleep(Duration::from_millis(HEADER_MS * 2)).await;
    assert_eq!(
        c.send("GET", "/healthz", &[], b"").await.unwrap().status,
        200
    );
    let answered = Instant::now();
    assert!(c.closed_within(BOUND).await, "idle connection kept");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(IDLE_MS - 100),
        "closed after {idle:?}"
    );
    assert_eq!(
        metric(&b, "extbus_http_closed_total{reason=\"idle_timeout\"}").await,
        1
    );
    b.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_the_header_timeout() {
    let b = short_timeouts().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"services": [{"vendor": "acme", "name": "sink", "version": "1.0.0",
                "url_patterns": ["^/ext/sink"], "priority": 50, "timeout_ms": 60_000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let mut c = Http::connect(b.http).await.unwrap();
    let auth = basic("operator", "operator");
    let head = format!(
        "POST /ext/sink HTTP/1.1\r\nhost: extbus\r\nauthorization: {auth}\r\ncontent-length: 100\r\n\r\n0123456789"
    );
    c.write_raw(head.as_bytes()).await.unwrap();
    assert!(
        c.closed_within(BOUND).await,
        "a stalled body kept its socket"
    );
    assert_eq!(
        metric(&b, "extbus_http_closed_total{reason=\"body_timeout\"}").await,
        1
    );
    b.stop().await;
}

#[tokio::test]
async fn connections_over_a_limit_get_503_while_others_are_served() {
    let b = TestBroker::start_with(|c| {
        c.http.max_connections = 3;
        c.http.max_connections_per_address = 2;
    })
    .await;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let open = |from: &'static str| {
        let addr = b.http;
        async move {
            let mut c = Http::connect_from(addr, ip(from)).await.unwrap();
            let r = c.send("GET", "/healthz", &[], b"").await.unwrap();
            (c, r)
        }
    };
    let (a1, r) = open("127.0.0.1").await;
    assert_eq!(r.status, 200);
    let (_a2, r) = open("127.0.0.1").await;
    assert_eq!(r.status, 200);
    // A third from the same address is refused, with the documented code.
    let (mut a3, r) = open("127.0.0.1").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "overloaded", "{:?}", r.json());
    assert!(a3.closed_within(BOUND).await);
    // Another address is still served, up to the total.
    let (_b1, r) = open("127.0.0.2").await;
    assert_eq!(r.status, 200);
    let (_, r) = open("127.0.0.3").await;
    assert_eq!(r.status, 503);
    // A closed connection gives its place back (once the server has seen it go).
    drop(a1);
    let mut served = false;
    for _ in 0..100 {
        if open("127.0.0.1").await.1.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the closed connection's place was never given back");
    drop((_a2, _b1));
    // /metrics itself needs a place: wait for the others to be seen closed.
    let mut refused = (0, 0);
    for _ in 0..100 {
        let mut c = match Http::connect(b.http).await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let r = c.send("GET", "/metrics", &[], b"").await.unwrap();
        if r.status == 200 {
            let text = String::from_utf8_lossy(&r.body).to_string();
            let get = |reason: &str| {
                let key = format!("extbus_http_refused_total{{reason=\"{reason}\"}}");
                text.lines()
                    .find_map(|l| {
                        l.strip_prefix(key.as_str())
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0)
            };
            refused = (get("address_limit"), get("connection_limit"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused.0 >= 1 && refused.1 >= 1, "{refused:?}");
    b.stop().await;
}
