//! Subscription caps over the network: the filter past the per-connection cap (default 100)
//! or the per-principal cap gets SUBACK 0x97 Quota exceeded (3.1.1: 0x80) and never reaches
//! the broker; unsubscribing or disconnecting frees the slot.

use super::*;
use extbus::config::SubscriptionLimits;

const GRANTED5: p5::SubscribeReasonCode = p5::SubscribeReasonCode::Success(P1);
const GRANTED4: m4::SubscribeReasonCode = m4::SubscribeReasonCode::Success(Q1);

fn filter(i: usize) -> String {
    format!("extbus/events/acme/e{i}/#")
}

/// Waits (bounded) until the gate counts `n` open connections.
async fn connections(b: &Bus, n: u64) {
    timeout(WAIT, async {
        while b.metrics.get("extbus_connections_open", &[]) != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("connection count did not settle");
}

fn refused(b: &Bus, cap: &str) -> u64 {
    b.metrics
        .get("extbus_gate_subscriptions_refused_total", &[("cap", cap)])
}

#[tokio::test]
async fn the_101st_filter_gets_quota_exceeded_and_unsubscribing_frees_a_slot() {
    let b = bus().await;
    let mut c = c5(&b, "obs").await;
    let first: Vec<String> = (0..100).map(filter).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(c.sub(&first, P1).await, vec![GRANTED5; 100]);

    // Over the cap, next to a filter the role table refuses and one already held.
    let extra = filter(100);
    let codes = c.sub(&["extbus/events/#", &extra, &filter(7)], P1).await;
    assert_eq!(
        codes,
        [
            p5::SubscribeReasonCode::NotAuthorized,
            p5::SubscribeReasonCode::QuotaExceeded,
            GRANTED5,
        ]
    );
    assert_eq!(refused(&b, "connection"), 1);

    // The refused filter never reached the broker: only the marker arrives.
    b.publish("extbus/events/acme/e100/x", "refused");
    b.publish("extbus/events/acme/e0/x", "marker");
    assert_eq!(c.publish().await.payload, "marker".as_bytes());

    c.cl.unsubscribe(filter(0)).await.unwrap();
    assert!(matches!(c.packet().await, p5::Packet::UnsubAck(_)));
    assert_eq!(c.sub(&[&extra], P1).await, [GRANTED5]);
    b.publish("extbus/events/acme/e100/x", "granted");
    assert_eq!(c.publish().await.payload, "granted".as_bytes());
    // Full again.
    assert_eq!(
        c.sub(&[&filter(101)], P1).await,
        [p5::SubscribeReasonCode::QuotaExceeded]
    );
    assert_eq!(refused(&b, "connection"), 2);
}

#[tokio::test]
async fn the_principal_cap_spans_connections_and_a_closed_connection_gives_slots_back() {
    let limits = SubscriptionLimits {
        max_per_connection: 2,
        max_per_principal: 3,
    };
    let b = start(
        MqttSettings {
            subscriptions: limits,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut one = c4(&b, "obs").await;
    let mut two = c4(&b, "obs").await;
    let mut other = c4(&b, "ext").await;
    assert_eq!(one.sub(&[&filter(0), &filter(1)], Q1).await, [GRANTED4; 2]);
    assert_eq!(
        two.sub(&[&filter(0), &filter(1)], Q1).await,
        [GRANTED4, m4::SubscribeReasonCode::Failure]
    );
    assert_eq!(refused(&b, "principal"), 1);
    // Another principal counts on its own.
    let own = "extbus/out/ext/#";
    assert_eq!(
        other.sub(&[own, "extbus/out/ext/x"], Q1).await,
        [GRANTED4; 2]
    );

    one.task.abort();
    drop(one);
    connections(&b, 2).await;
    assert_eq!(two.sub(&[&filter(1)], Q1).await, [GRANTED4]);
    b.publish("extbus/events/acme/e1/x", "after");
    assert_eq!(two.publish().await.payload, "after".as_bytes());
}
