//! Connection churn: clients that leave while others arrive never take a newcomer's
//! session with them. (The embedded broker reuses a departed connection's id; a late end of
//! the old connection once closed whichever client had just been given that id.)

use extbus_schema::topics;
use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROUNDS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_leaving_while_others_arrive_leave_the_newcomers_connected() {
    let b = TestBroker::start().await;
    // A stream of events keeps the leavers' connections busy as they go, which is when
    // their end used to reach the broker late.
    let flooding = Arc::new(AtomicBool::new(true));
    let p = b.client("platform").await;
    let flood = tokio::spawn({
        let (p, flooding) = (p.clone(), flooding.clone());
        async move {
            let topic = topics::inbox("platform", "events");
            let body = json!({"type": "vm.create", "org": "acme"}).to_string();
            while flooding.load(Ordering::Relaxed) {
                p.publish(&topic, body.clone()).await;
            }
        }
    });
    let mut stayed = Vec::new();
    for round in 0..ROUNDS {
        let proto = if round % 2 == 0 { Proto::V4 } else { Proto::V5 };
        let leaving = BusClient::connect(&b, proto, "observer", "observer")
            .await
            .unwrap();
        leaving.subscribe(topics::EVENTS_ALL).await;
        // The newcomer's CONNECT races the leaver's DISCONNECT and hang-up.
        let (_, newcomer) = tokio::join!(
            leaving.disconnect(),
            BusClient::connect(&b, proto, "operator", "operator")
        );
        stayed.push(newcomer.unwrap());
    }
    flooding.store(false, Ordering::Relaxed);
    flood.await.unwrap();
    for (i, c) in stayed.iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(10), c.command("tasks/query", json!({})))
            .await
            .unwrap_or_else(|_| panic!("client {i} of {ROUNDS} lost its session: no reply"));
        assert_eq!(r["ok"], true, "client {i}: {r}");
    }
    b.stop().await;
}
