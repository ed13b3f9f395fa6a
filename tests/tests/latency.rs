//! Small exchanges never wait on TCP timers. Clients here keep their sockets at the
//! defaults people run (Nagle on, as rumqttc, paho and libmosquitto ship): a command and
//! its reply, back to back, must not wait for a delayed ACK (~40 ms) inside the broker.
//! The bound is far above a healthy round trip and far below 200 stalls, so it does not
//! depend on the machine's speed.

use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::json;
use std::time::{Duration, Instant};

const ROUND_TRIPS: u32 = 200;
/// 200 stalls of 40 ms would take 8 s; a healthy round trip takes well under 1 ms.
const BOUND: Duration = Duration::from_secs(3);

async fn sequential_round_trips(proto: Proto) -> Duration {
    let b = TestBroker::start().await;
    let c = BusClient::connect(&b, proto, "operator", "operator")
        .await
        .expect("operator connects");
    // Warm up: the first exchange may pay for connection set-up.
    let r = c.command("tasks/query", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    let start = Instant::now();
    for i in 0..ROUND_TRIPS {
        let r = c.command("tasks/query", json!({"limit": 1})).await;
        assert_eq!(r["ok"], true, "round trip {i}: {r}");
    }
    let took = start.elapsed();
    c.disconnect().await;
    b.stop().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_round_trips_do_not_wait_on_delayed_acks_v5() {
    let took = sequential_round_trips(Proto::V5).await;
    assert!(
        took < BOUND,
        "{ROUND_TRIPS} sequential MQTT 5 command/reply round trips took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_round_trips_do_not_wait_on_delayed_acks_v311() {
    let took = sequential_round_trips(Proto::V4).await;
    assert!(
        took < BOUND,
        "{ROUND_TRIPS} sequential MQTT 3.1.1 command/reply round trips took {took:?}"
    );
}
