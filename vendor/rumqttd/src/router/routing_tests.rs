//! Router state of a filter is freed when its last subscriber leaves, and the publish topic
//! cache stays bounded. Drives a real `Router` through its event handlers, without threads.

use super::*;
use crate::protocol::{Filter as SubFilter, RetainForwardRule, Subscribe, Unsubscribe};
use crate::router::iobufs::{Incoming, Outgoing};
use crate::router::logs::MAX_CACHED_TOPICS;
use crate::router::shared_subs::Strategy;

fn router() -> Router {
    Router::new(
        0,
        RouterConfig {
            max_connections: 10,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        },
    )
}

/// Connects `client_id`; returns its connection id.
fn connect(r: &mut Router, client_id: &str, clean: bool) -> ConnectionId {
    let connection = Connection::new(None, client_id.to_string(), clean, false);
    let incoming = Incoming::new(client_id.to_string());
    let (outgoing, _rx) = Outgoing::new(client_id.to_string());
    r.events(
        0,
        Event::Connect {
            connection,
            incoming,
            outgoing,
        },
    );
    r.connection_map[client_id]
}

fn send(r: &mut Router, id: ConnectionId, packets: Vec<Packet>) {
    r.ibufs[id].buffer.lock().extend(packets);
    r.events(id, Event::DeviceData);
    // Let every connection read what is ready, so requests end up parked.
    for _ in 0..10 {
        r.consume();
    }
}

fn subscribe(filters: &[&str]) -> Packet {
    let filters = filters
        .iter()
        .map(|f| SubFilter {
            path: f.to_string(),
            qos: QoS::AtMostOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::Never,
        })
        .collect();
    Packet::Subscribe(Subscribe { pkid: 1, filters }, None)
}

fn unsubscribe(filters: &[&str]) -> Packet {
    let filters = filters.iter().map(|f| f.to_string()).collect();
    Packet::Unsubscribe(Unsubscribe { pkid: 2, filters }, None)
}

fn publish(topic: &str) -> Packet {
    Packet::Publish(Publish::new(topic.to_string(), "x".to_string(), false), None)
}

/// Topics of the publishes waiting in a connection's outgoing buffer.
fn forwarded(r: &Router, id: ConnectionId) -> Vec<String> {
    r.obufs[id]
        .data_buffer
        .lock()
        .iter()
        .filter_map(|n| match n {
            Notification::Forward(f) => Some(String::from_utf8_lossy(&f.publish.topic).into()),
            _ => None,
        })
        .collect()
}

#[test]
fn last_unsubscribe_frees_the_filter_and_its_topic_cache_entries() {
    let mut r = router();
    let a = connect(&mut r, "a", true);
    send(&mut r, a, vec![subscribe(&["a/1", "a/+"]), publish("a/1")]);
    assert_eq!(r.datalog.filter_count(), 2);
    assert_eq!(r.datalog.cached_topic_count(), 1);

    send(&mut r, a, vec![unsubscribe(&["a/1"])]);
    assert_eq!(r.datalog.filter_count(), 1);
    assert!(r.datalog.filter_idx("a/1").is_none());
    assert!(!r.subscription_map.contains_key("a/1"));

    send(&mut r, a, vec![unsubscribe(&["a/+"])]);
    assert_eq!(r.datalog.filter_count(), 0);
    assert_eq!(r.datalog.cached_topic_count(), 0);
    assert!(r.subscription_map.is_empty());
}

#[test]
fn a_filter_is_kept_while_another_connection_subscribes() {
    let mut r = router();
    let a = connect(&mut r, "a", true);
    let b = connect(&mut r, "b", true);
    send(&mut r, a, vec![subscribe(&["s/#"])]);
    send(&mut r, b, vec![subscribe(&["s/#"])]);
    send(&mut r, a, vec![unsubscribe(&["s/#"])]);
    assert_eq!(r.datalog.filter_count(), 1);

    // The remaining subscriber still gets data.
    send(&mut r, a, vec![publish("s/x")]);
    assert_eq!(forwarded(&r, b), ["s/x"]);
    assert!(forwarded(&r, a).is_empty());

    r.events(b, Event::Disconnect);
    assert_eq!(r.datalog.filter_count(), 0);
    assert!(r.subscription_map.is_empty());
}

#[test]
fn shared_and_plain_subscriptions_share_one_log() {
    let mut r = router();
    let a = connect(&mut r, "a", true);
    let b = connect(&mut r, "b", true);
    send(&mut r, a, vec![subscribe(&["$share/g/q/1"])]);
    send(&mut r, b, vec![subscribe(&["q/1"])]);
    assert_eq!(r.datalog.filter_count(), 1);
    send(&mut r, b, vec![unsubscribe(&["q/1"])]);
    assert_eq!(r.datalog.filter_count(), 1, "the shared subscriber still reads it");
    send(&mut r, a, vec![unsubscribe(&["$share/g/q/1"])]);
    assert_eq!(r.datalog.filter_count(), 0);
}

#[test]
fn a_saved_persistent_session_keeps_its_filters() {
    let mut r = router();
    let p = connect(&mut r, "p", false);
    send(&mut r, p, vec![subscribe(&["p/1"])]);
    r.events(p, Event::Disconnect);
    assert_eq!(r.datalog.filter_count(), 1);

    // Data published meanwhile reaches the session when it comes back.
    let a = connect(&mut r, "a", true);
    send(&mut r, a, vec![publish("p/1")]);
    let p = connect(&mut r, "p", false);
    for _ in 0..10 {
        r.consume();
    }
    assert_eq!(forwarded(&r, p), ["p/1"]);
}

#[test]
fn publish_then_unsubscribe_in_one_batch_frees_cleanly_and_indexes_are_reused() {
    let mut r = router();
    let a = connect(&mut r, "a", true);
    let b = connect(&mut r, "b", true);
    send(&mut r, a, vec![subscribe(&["x/1"])]);
    // The publish wakes a's parked request; the unsubscribe right after must drop it.
    send(&mut r, a, vec![publish("x/1"), unsubscribe(&["x/1"])]);
    assert_eq!(r.datalog.filter_count(), 0);
    assert!(r.notifications.is_empty());

    // The freed slab slot is reused by a new filter, which works as a fresh one.
    send(&mut r, b, vec![subscribe(&["y/1"])]);
    assert_eq!(r.datalog.filter_count(), 1);
    send(&mut r, a, vec![publish("x/1"), publish("y/1")]);
    assert_eq!(forwarded(&r, b), ["y/1"]);
}

#[test]
fn topic_cache_is_bounded() {
    let mut r = router();
    let a = connect(&mut r, "a", true);
    send(&mut r, a, vec![subscribe(&["t/#"])]);
    for chunk in 0..(MAX_CACHED_TOPICS + 500) / 500 {
        let batch = (0..500)
            .map(|i| publish(&format!("t/{}", chunk * 500 + i)))
            .collect();
        send(&mut r, a, batch);
        assert!(r.datalog.cached_topic_count() <= MAX_CACHED_TOPICS);
    }
    assert_eq!(r.datalog.filter_count(), 1);
}

/// extbus: a client sends DISCONNECT (the router removes it at once), a new client gets
/// the freed id, and only then the old link's end arrives: the new connection stays.
#[test]
fn a_late_link_end_leaves_the_connection_that_reused_its_id() {
    let mut r = router();
    let old = connect(&mut r, "old", true);
    let old_incarnation = r.connections[old].incarnation;
    let bye = Disconnect {
        reason_code: DisconnectReasonCode::NormalDisconnection,
    };
    send(&mut r, old, vec![Packet::Disconnect(bye, None)]);
    assert!(!r.connection_map.contains_key("old"));

    let new = connect(&mut r, "new", true);
    assert_eq!(new, old, "the slab hands out the freed id");
    r.events(old, Event::LinkGone(old_incarnation));
    assert_eq!(r.connection_map.get("new"), Some(&new));

    let new_incarnation = r.connections[new].incarnation;
    assert_ne!(new_incarnation, old_incarnation);
    r.events(new, Event::LinkGone(new_incarnation));
    assert!(!r.connection_map.contains_key("new"));
}
