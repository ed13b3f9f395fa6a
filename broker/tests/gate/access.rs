//! Authentication and rights: credentials at CONNECT, every row of the protocol's role table over
//! 3.1.1 and MQTT 5, spoofed publishes, org limits, shared subscriptions and topic aliases.

use super::*;

#[tokio::test]
async fn credentials_are_checked_at_connect() {
    let b = bus().await;
    for (who, secret) in [("plat", "wrong"), ("nobody", SECRET)] {
        let mut c = C4::spawn(opts4(b.addr, who, Some(secret)));
        let e = c.closed().await;
        assert!(
            matches!(
                e,
                m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
            ),
            "{e:?}"
        );
        let mut c = C5::spawn(opts5(b.addr, who, Some(secret)));
        let e = c.closed().await;
        assert!(
            matches!(
                e,
                m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::BadUserNamePassword)
            ),
            "{e:?}"
        );
    }
    let e = C4::spawn(opts4(b.addr, "plat", None)).closed().await;
    assert!(matches!(
        e,
        m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
    ));
    let e = C5::spawn(opts5(b.addr, "plat", None)).closed().await;
    assert!(matches!(
        e,
        m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::BadUserNamePassword)
    ));
    let mut reserved = opts5(b.addr, "plat", Some(SECRET));
    reserved.set_client_id("extbus-coordinator".into());
    let e = C5::spawn(reserved).closed().await;
    assert!(matches!(
        e,
        m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::ClientIdentifierNotValid)
    ));
    let refused = |reason| {
        b.metrics
            .get("extbus_connect_refused_total", &[("reason", reason)])
    };
    assert_eq!(refused("bad_credentials"), 4);
    assert_eq!(refused("no_credentials"), 2);
    assert_eq!(refused("reserved_client_id"), 1);
    let _ok4 = c4(&b, "plat").await;
    let _ok5 = c5(&b, "plat").await;
    assert_eq!(b.metrics.get("extbus_connections_open", &[]), 2);
    assert_eq!(b.metrics.get("extbus_connections_total", &[]), 2);
}

/// One row of the protocol's role table, as the gate must apply it.
struct Row {
    who: &'static str,
    pub_ok: &'static str,
    pub_no: Option<&'static str>,
    sub_ok: &'static str,
    /// A topic `sub_ok` matches, published by the coordinator.
    sample: &'static str,
    sub_no: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        who: "plat",
        pub_ok: "extbus/in/plat/tasks/submit",
        pub_no: Some("extbus/in/ext/tasks/submit"),
        sub_ok: "extbus/out/plat/#",
        sample: "extbus/out/plat/replies",
        sub_no: "extbus/events/acme/#",
    },
    Row {
        who: "ext",
        pub_ok: "extbus/in/ext/register",
        pub_no: Some("extbus/services/acme/greeter/1.0.0/requests"),
        sub_ok: "extbus/services/acme/greeter/+/requests",
        sample: "extbus/services/acme/greeter/1.0.0/requests",
        sub_no: "extbus/services/acme/billing/#",
    },
    Row {
        who: "ext",
        pub_ok: "extbus/in/ext/services/responses",
        pub_no: Some("extbus/out/plat/replies"),
        sub_ok: "extbus/events/acme/#",
        sample: "extbus/events/acme/vapp/instantiate",
        sub_no: "extbus/tasks/#",
    },
    Row {
        who: "op",
        pub_ok: "extbus/in/op/tasks/t1/resume",
        pub_no: Some("extbus/tasks/resolved/vapp/instantiate"),
        sub_ok: "extbus/tasks/#",
        sample: "extbus/tasks/resolved/vapp/instantiate",
        sub_no: "extbus/out/plat/#",
    },
    Row {
        who: "op",
        pub_ok: "extbus/in/op/tasks/query",
        pub_no: Some("extbus/in/obs/tasks/query"),
        sub_ok: "extbus/events/#",
        sample: "extbus/events/beta/vapp/delete",
        sub_no: "extbus/services/acme/greeter/#",
    },
    Row {
        who: "obs",
        pub_ok: "extbus/in/obs/tasks/query",
        pub_no: Some("extbus/events/acme/vapp/instantiate"),
        sub_ok: "extbus/events/acme/#",
        sample: "extbus/events/acme/vapp/instantiate",
        sub_no: "extbus/events/#",
    },
    Row {
        who: "obs",
        pub_ok: "extbus/in/obs/events/replay",
        pub_no: Some("$SYS/x"),
        sub_ok: "extbus/out/obs/replies",
        sample: "extbus/out/obs/replies",
        sub_no: "#",
    },
    Row {
        who: "admin",
        pub_ok: "extbus/in/plat/events",
        pub_no: None,
        sub_ok: "#",
        sample: "anything/at/all",
        sub_no: "$SYS/#",
    },
];

#[tokio::test]
async fn role_table_over_v4() {
    let mut b = bus().await;
    for r in ROWS {
        let mut c = c4(&b, r.who).await;
        let codes = c.sub(&[r.sub_ok, r.sub_no], Q1).await;
        assert_eq!(
            codes,
            [
                m4::SubscribeReasonCode::Success(Q1),
                m4::SubscribeReasonCode::Failure
            ],
            "{}",
            r.sub_no
        );
        b.publish(r.sample, "sample");
        assert_eq!(topic4(&c.publish().await), r.sample);
        c.send(r.pub_ok, Q1, "ok").await;
        assert_eq!(b.inbound().await.topic, r.pub_ok);
        let mut expected = vec![("subscribe", r.sub_no.to_string())];
        if let Some(no) = r.pub_no {
            c.send(no, Q1, "spoof").await;
            c.closed().await;
            // Nothing of the refused publish reached the bus before this marker.
            let marker = format!("extbus/in/{}/marker", r.who);
            c4(&b, r.who).await.send(&marker, Q1, "m").await;
            assert_eq!(b.inbound().await.topic, marker, "{no}");
            expected.push(("publish", no.to_string()));
        }
        assert_eq!(b.denied(), expected);
    }
    assert!(
        b.metrics
            .get("extbus_gate_denied_total", &[("action", "subscribe")])
            >= ROWS.len() as u64
    );
}

#[tokio::test]
async fn role_table_over_v5() {
    let mut b = bus().await;
    for r in ROWS {
        let mut c = c5(&b, r.who).await;
        let codes = c.sub(&[r.sub_no, r.sub_ok], P1).await;
        assert_eq!(
            codes,
            [
                p5::SubscribeReasonCode::NotAuthorized,
                p5::SubscribeReasonCode::Success(P1)
            ]
        );
        b.publish(r.sample, "sample");
        assert_eq!(topic5(&c.publish().await), r.sample);
        c.send(r.pub_ok, P1, "ok").await;
        assert_eq!(c.puback().await, p5::PubAckReason::Success);
        assert_eq!(b.inbound().await.topic, r.pub_ok);
        let mut expected = vec![("subscribe", r.sub_no.to_string())];
        if let Some(no) = r.pub_no {
            c.send(no, P1, "spoof").await;
            assert_eq!(c.puback().await, p5::PubAckReason::NotAuthorized, "{no}");
            let marker = format!("extbus/in/{}/marker", r.who);
            c.send(&marker, P1, "m").await;
            assert_eq!(b.inbound().await.topic, marker, "{no}");
            expected.push(("publish", no.to_string()));
        }
        assert_eq!(b.denied(), expected);
    }
}

#[tokio::test]
async fn spoofed_publishes_never_reach_subscribers() {
    let mut b = bus().await;
    let mut admin = c4(&b, "admin").await;
    assert_eq!(
        admin.sub(&["#"], Q1).await,
        [m4::SubscribeReasonCode::Success(Q1)]
    );
    // 3.1.1: the connection is closed.
    let mut a = c4(&b, "plat").await;
    a.send("extbus/in/ext/tasks/submit", Q1, "spoof").await;
    a.closed().await;
    // MQTT 5 QoS 1: PUBACK 0x87 and the connection stays.
    let mut a5 = c5(&b, "plat").await;
    a5.send("extbus/in/ext/tasks/submit", P1, "spoof").await;
    assert_eq!(a5.puback().await, p5::PubAckReason::NotAuthorized);
    // MQTT 5 QoS 2: PUBREC 0x87.
    a5.send("extbus/in/ext/tasks/t/cancel", P2, "spoof").await;
    loop {
        if let p5::Packet::PubRec(r) = a5.packet().await {
            assert_eq!(r.reason, p5::PubRecReason::NotAuthorized);
            break;
        }
    }
    a5.send("extbus/in/plat/marker", P1, "m").await;
    assert_eq!(a5.puback().await, p5::PubAckReason::Success);
    // MQTT 5 QoS 0: DISCONNECT 0x87.
    a5.send(
        "extbus/in/ext/register",
        m5::mqttbytes::QoS::AtMostOnce,
        "spoof",
    )
    .await;
    let e = a5.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::NotAuthorized,
                ..
            })
        ),
        "{e:?}"
    );
    // The coordinator saw only the marker. Commands never reach subscribers (not even an
    // admin on `#`): the first thing the admin sees is its own later publish.
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    admin.send("gate-test/marker", Q1, "m").await;
    assert_eq!(topic4(&admin.publish().await), "gate-test/marker");
    let denied = b.denied();
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(denied
        .iter()
        .all(|(a, t)| *a == "publish" && t.starts_with("extbus/in/ext/")));
}

#[tokio::test]
async fn org_limits_and_shared_subscriptions() {
    let mut b = bus().await;
    let mut obs = c5(&b, "obs").await;
    let codes = obs
        .sub(
            &[
                "extbus/events/acme/#",
                "extbus/events/beta/#",
                "extbus/events/#",
                "#",
                "extbus/events/+/vapp/x",
            ],
            P1,
        )
        .await;
    use p5::SubscribeReasonCode::{NotAuthorized as No, Success};
    assert_eq!(codes, [Success(P1), No, No, No, No]);
    b.publish("extbus/events/beta/vapp/x", "other org");
    b.publish("extbus/events/acme/vapp/x", "mine");
    let p = obs.publish().await;
    assert_eq!(
        (topic5(&p).as_str(), &p.payload[..]),
        ("extbus/events/acme/vapp/x", &b"mine"[..])
    );
    // An extension may share its own service's requests, not another's.
    let mut ext = c4(&b, "ext").await;
    let codes = ext
        .sub(
            &[
                "$share/workers/extbus/services/acme/billing/1.0.0/requests",
                "$share/workers/extbus/services/acme/greeter/1.0.0/requests",
                "$share/workers/extbus/services/+/greeter/1.0.0/requests",
            ],
            Q1,
        )
        .await;
    use m4::SubscribeReasonCode::{Failure, Success as Ok4};
    assert_eq!(codes, [Failure, Ok4(Q1), Failure]);
    b.publish("extbus/services/acme/billing/1.0.0/requests", "not yours");
    b.publish("extbus/services/acme/greeter/1.0.0/requests", "yours");
    assert_eq!(&ext.publish().await.payload[..], b"yours");
    let denied: Vec<String> = b.denied().into_iter().map(|(_, t)| t).collect();
    assert_eq!(denied.len(), 6, "{denied:?}");
    assert!(
        denied.contains(&"$share/workers/extbus/services/acme/billing/1.0.0/requests".to_string())
    );
}

#[tokio::test]
async fn topic_aliases_cannot_hide_a_topic() {
    let mut b = bus().await;
    let mut c = c5(&b, "plat").await;
    let alias = |a| p5::PublishProperties {
        topic_alias: Some(a),
        ..Default::default()
    };
    c.cl.publish_with_properties("extbus/in/plat/a", P1, false, "1", alias(1))
        .await
        .unwrap();
    c.cl.publish_with_properties("", P1, false, "2", alias(1))
        .await
        .unwrap();
    for payload in ["1", "2"] {
        let m = b.inbound().await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            ("extbus/in/plat/a", payload.as_bytes())
        );
    }
    // Re-pointing the alias at someone else's inbox is refused...
    c.cl.publish_with_properties("extbus/in/ext/register", P1, false, "3", alias(1))
        .await
        .unwrap();
    loop {
        if let p5::Packet::PubAck(a) = c.packet().await {
            if a.reason == p5::PubAckReason::NotAuthorized {
                break;
            }
        }
    }
    // ...and the alias is gone: using it is a protocol error, not a publish anywhere.
    c.cl.publish_with_properties("", P1, false, "4", alias(1))
        .await
        .unwrap();
    let e = c.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::ProtocolError,
                ..
            })
        ),
        "{e:?}"
    );
    c4(&b, "plat")
        .await
        .send("extbus/in/plat/marker", Q1, "m")
        .await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    assert_eq!(
        b.denied(),
        [("publish", "extbus/in/ext/register".to_string())]
    );
}
