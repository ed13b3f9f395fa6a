//! Audit events over real MQTT: CloudEvents stamping, gap-free ordering with several
//! publishers, replay (filters, paging, across a restart), idempotent re-send, refused drafts
//! that are never logged, retention by count and age, MQTT 5 user properties.

use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::{json, Value};
use std::time::Duration;

fn draft(org: &str, kind: &str, n: usize) -> Value {
    json!({"type": kind, "org": org, "subject": format!("urn:{org}:vm:{n}"), "outcome": "succeeded", "data": {"n": n}})
}

async fn emit(p: &BusClient, body: Value) -> Value {
    let r = p.command("events", body).await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"].clone()
}

async fn replay(c: &BusClient, body: Value) -> Value {
    let r = c.command("events/replay", body).await;
    assert_eq!(r["ok"], true, "{r}");
    r["result"].clone()
}

#[tokio::test]
async fn events_are_stamped_as_cloudevents_and_fanned_out() {
    let b = TestBroker::start().await;
    let obs = BusClient::connect(&b, Proto::V5, "observer", "observer")
        .await
        .unwrap();
    let obs4 = BusClient::connect(&b, Proto::V4, "observer", "observer")
        .await
        .unwrap();
    obs.subscribe(&topics::events_org_filter("acme")).await;
    obs4.subscribe(&topics::events_org_filter("acme")).await;
    let p = b.client("platform").await;
    let r = emit(&p, draft("acme", "vapp.instantiate", 1)).await;
    let m = obs
        .expect_on(&topics::events("acme", "vapp.instantiate"))
        .await;
    let ev = m.json();
    assert_eq!(ev["specversion"], "1.0");
    assert_eq!(ev["source"], "extbus://platform");
    assert_eq!(ev["type"], "vapp.instantiate");
    assert_eq!(ev["subject"], "urn:acme:vm:1");
    assert_eq!(ev["datacontenttype"], "application/json");
    assert_eq!(ev["org"], "acme");
    assert_eq!(ev["outcome"], "succeeded");
    assert_eq!(ev["data"], json!({"n": 1}));
    assert_eq!(ev["seq"], r["seq"]);
    assert!(extbus_schema::time_fmt::parse_ms(ev["time"].as_str().unwrap()).is_ok());
    // MQTT 5 subscribers also get the CloudEvents attributes as user properties.
    let props: std::collections::HashMap<_, _> = m.user_properties.iter().cloned().collect();
    assert_eq!(
        props.get("type").map(String::as_str),
        Some("vapp.instantiate")
    );
    assert_eq!(props.get("specversion").map(String::as_str), Some("1.0"));
    // A 3.1.1 subscriber gets the same structured JSON.
    assert_eq!(
        obs4.expect_on(&topics::events("acme", "vapp.instantiate"))
            .await
            .json(),
        ev
    );
    b.stop().await;
}

#[tokio::test]
async fn several_publishers_give_one_gap_free_sequence() {
    let b = TestBroker::start().await;
    b.add_principal("platform-2", &[Role::Platform], &["*"]);
    let obs = b.client("observer").await;
    obs.subscribe(&topics::events_org_filter("acme")).await;
    let p1 = b.client("platform").await;
    let p2 = b.client("platform-2").await;
    let send = |p: std::sync::Arc<BusClient>| async move {
        for i in 0..40 {
            p.publish(
                &format!("extbus/in/{}/events", p.name),
                serde_json::to_vec(&draft("acme", "vm.create", i)).unwrap(),
            )
            .await;
        }
    };
    tokio::join!(send(p1.clone()), send(p2.clone()));
    let mut seqs = Vec::new();
    while seqs.len() < 80 {
        let m = obs
            .expect(|m| m.topic == topics::events("acme", "vm.create"))
            .await;
        seqs.push(m.json()["seq"].as_u64().unwrap());
    }
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + 80).collect::<Vec<_>>(),
        "in order, no gaps"
    );
    b.stop().await;
}

#[tokio::test]
async fn replay_pages_filters_and_survives_restart() {
    let b = TestBroker::start().await;
    let p = b.client("platform").await;
    let mut seqs = Vec::new();
    for i in 0..30 {
        let (org, kind) = if i % 3 == 0 {
            ("beta", "vm.delete")
        } else {
            ("acme", "vm.create")
        };
        seqs.push(emit(&p, draft(org, kind, i)).await["seq"].as_u64().unwrap());
    }
    let op = b.client("operator").await;
    let page = replay(&op, json!({"from_seq": seqs[0], "limit": 7})).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 7);
    assert_eq!(page["more"], true);
    let mut all: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut next = page["next_seq"].as_u64().unwrap();
    loop {
        let page = replay(&op, json!({"from_seq": next, "limit": 7})).await;
        all.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        next = page["next_seq"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(all, seqs);
    let f = replay(
        &op,
        json!({"from_seq": 0, "filter": "extbus/events/beta/#"}),
    )
    .await;
    assert_eq!(f["events"].as_array().unwrap().len(), 10);
    let f = replay(
        &op,
        json!({"from_seq": seqs[20], "filter": "extbus/events/+/vm/create"}),
    )
    .await;
    assert!(f["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "vm.create" && e["seq"].as_u64().unwrap() >= seqs[20]));
    let bad = op
        .command("events/replay", json!({"from_seq": 0, "filter": "a/#/b"}))
        .await;
    assert_eq!(bad["ok"], false);

    // An observer limited to acme never sees beta's events, whatever its filter says.
    b.add_principal("acme-app", &[Role::Observer], &["acme"]);
    let app = b.client("acme-app").await;
    let mine = replay(&app, json!({"from_seq": 0, "filter": "#"})).await;
    assert_eq!(mine["events"].as_array().unwrap().len(), 20);
    assert!(mine["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["org"] == "acme"));

    drop((p, op, app));
    let b = b.restart().await;
    let op = b.client("operator").await;
    let again = replay(&op, json!({"from_seq": 0, "limit": 100})).await;
    let after: Vec<u64> = again["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(after, seqs);
    // Numbering continues after the restart without a gap.
    let p = b.client("platform").await;
    assert_eq!(
        emit(&p, draft("acme", "vm.create", 99)).await["seq"]
            .as_u64()
            .unwrap(),
        seqs[29] + 1
    );
    b.stop().await;
}

#[tokio::test]
async fn a_resent_draft_with_the_same_id_is_logged_once() {
    let b = TestBroker::start().await;
    let obs = b.client("observer").await;
    obs.subscribe(&topics::events_org_filter("acme")).await;
    let p = b.client("platform").await;
    let mut d = draft("acme", "vm.create", 1);
    d["id"] = "platform-evt-1".into();
    let first = emit(&p, d.clone()).await;
    let second = emit(&p, d).await;
    assert_eq!(first["seq"], second["seq"]);
    assert_eq!(second["duplicate"], true);
    let got = obs
        .collect(Duration::from_millis(500), |m| {
            m.topic.starts_with("extbus/events/acme/")
        })
        .await;
    assert_eq!(got.len(), 1, "published once");
    assert_eq!(got[0].json()["id"], "platform-evt-1");
    b.stop().await;
}

#[tokio::test]
async fn refused_drafts_are_not_logged() {
    let b = TestBroker::start().await;
    let p = b.client("platform").await;
    let before = emit(&p, draft("acme", "vm.create", 0)).await["seq"]
        .as_u64()
        .unwrap();
    let r = p.command("events", json!({"type": "vm.create"})).await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    let r = p
        .command("events", json!({"type": "vm.create", "org": "ACME!"}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_name", "{r}");
    let r = p
        .command("events", json!({"type": "vm", "org": "acme"}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_name", "{r}");
    let obs = b.client("observer").await;
    let r = obs.command("events", draft("acme", "vm.create", 1)).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let after = emit(&p, draft("acme", "vm.create", 2)).await["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 1);
    b.stop().await;
}

#[tokio::test]
async fn retention_bounds_the_log_by_count_and_age() {
    let b = TestBroker::start_with(|c| {
        c.events.retention_max_count = 10;
        c.events.retention_max_age_ms = 3_600_000;
    })
    .await;
    let p = b.client("platform").await;
    let mut last = 0;
    for i in 0..25 {
        last = emit(&p, draft("acme", "vm.create", i)).await["seq"]
            .as_u64()
            .unwrap();
    }
    let op = b.client("operator").await;
    let r = replay(&op, json!({"from_seq": 0, "limit": 100})).await;
    let seqs: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    // Exactly the newest ten: retention runs after every batch, before the replay is read.
    assert_eq!(seqs, ((last - 9)..=last).collect::<Vec<_>>(), "count bound");
    assert_eq!(r["first_seq"], last - 9);
    // An hour later everything older than the hour goes.
    b.clock.advance(3_600_001);
    let fresh = emit(&p, draft("acme", "vm.create", 99)).await["seq"]
        .as_u64()
        .unwrap();
    let r = replay(&op, json!({"from_seq": 0, "limit": 100})).await;
    let seqs: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![fresh], "age bound");
    assert_eq!(r["first_seq"], fresh);
    b.stop().await;
}

/// A consumer that tracks its position by seq must never see a number again: after
/// retention has emptied the log and the broker restarted, numbering goes on.
#[tokio::test]
async fn numbering_survives_an_emptied_log_and_a_restart() {
    const AGE: u64 = 60_000;
    let b = TestBroker::start_with(|c| c.events.retention_max_age_ms = AGE).await;
    let p = b.client("platform").await;
    let mut last = 0;
    for i in 0..3 {
        last = emit(&p, draft("acme", "vm.create", i)).await["seq"]
            .as_u64()
            .unwrap();
    }
    b.clock.advance(AGE + 1_000);
    // Retention runs about once a second: wait (bounded) until the log is empty.
    let op = b.client("operator").await;
    let mut emptied = false;
    for _ in 0..100 {
        let r = replay(&op, json!({"from_seq": 0})).await;
        if r["events"].as_array().is_some_and(|e| e.is_empty()) {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(emptied, "retention never emptied the log");
    let b = b.restart().await;
    let p = b.client("platform").await;
    let next = emit(&p, draft("acme", "vm.create", 9)).await["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(next, last + 1);
    b.stop().await;
}

#[tokio::test]
async fn principal_changes_and_refusals_are_logged_as_broker_events() {
    let b = TestBroker::start().await;
    let admin = b.client("admin").await;
    admin.subscribe(&topics::events_org_filter("system")).await;
    b.add_principal("newcomer", &[Role::Observer], &["acme"]);
    b.clock.advance(1_000);
    let added = admin
        .expect_on(&topics::events("system", "principal.added"))
        .await
        .json();
    assert_eq!(added["data"]["name"], "newcomer");
    assert_eq!(added["source"], "extbus://broker");
    assert!(!added.to_string().contains("secret_hash"));
    // On an external broker refusals are the broker's own.
    extbus_tests::embedded_only!();

    // A refused publish is recorded as security.denied, and never reaches a subscriber.
    let obs = BusClient::connect(&b, Proto::V5, "observer", "observer")
        .await
        .unwrap();
    let spy = b.client("admin").await;
    spy.subscribe("extbus/in/platform/#").await;
    obs.publish(
        "extbus/in/platform/events",
        serde_json::to_vec(&draft("acme", "vm.create", 1)).unwrap(),
    )
    .await;
    let denied = admin
        .expect_on("extbus/events/system/security/denied")
        .await
        .json();
    assert_eq!(denied["data"]["principal"], "observer");
    assert_eq!(denied["data"]["topic"], "extbus/in/platform/events");
    assert!(spy
        .collect(Duration::from_millis(300), |m| m
            .topic
            .starts_with("extbus/in/platform/"))
        .await
        .is_empty());
    let r = admin
        .command(
            "events/replay",
            json!({"from_seq": 0, "filter": "extbus/events/system/#"}),
        )
        .await;
    let kinds: Vec<&str> = r["result"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"principal.added") && kinds.contains(&"security.denied"),
        "{kinds:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_stalled_subscriber_holds_nobody_back_and_recovers_by_replay() {
    let b = TestBroker::start().await;
    // A subscriber that stops reading its socket right after SUBACK.
    let mut o = rumqttc::MqttOptions::new("stalled", b.mqtt.ip().to_string(), b.mqtt.port());
    o.set_credentials("observer", "observer")
        .set_keep_alive(Duration::from_secs(60));
    let (stalled, mut el) = rumqttc::AsyncClient::new(o, 16);
    stalled
        .subscribe("extbus/events/acme/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    let fast = b.client("observer").await;
    fast.subscribe(&topics::events_org_filter("acme")).await;
    let p = b.client("platform").await;
    let n = 3000;
    let first = emit(&p, draft("acme", "vm.create", 0)).await["seq"]
        .as_u64()
        .unwrap();
    let big = "y".repeat(2000);
    for i in 1..n {
        let mut d = draft("acme", "vm.create", i);
        d["data"]["pad"] = big.clone().into();
        p.publish("extbus/in/platform/events", serde_json::to_vec(&d).unwrap())
            .await;
    }
    let mut seen = 0;
    let mut expected = first;
    while seen < n {
        let m = fast
            .expect(|m| m.topic == topics::events("acme", "vm.create"))
            .await;
        assert_eq!(
            m.json()["seq"].as_u64().unwrap(),
            expected,
            "fast subscriber in order, no gaps"
        );
        expected += 1;
        seen += 1;
    }
    // Whatever the stalled one missed is in the log.
    let mut next = first;
    let mut got = 0;
    loop {
        let page = replay(&fast, json!({"from_seq": next, "limit": 500})).await;
        got += page["events"].as_array().unwrap().len();
        next = page["next_seq"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(got, n);
    drop(el);
    b.stop().await;
}
