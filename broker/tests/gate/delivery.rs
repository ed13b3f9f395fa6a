//! What passes through the gate still behaves like MQTT: QoS 1/2 flows, retained messages,
//! MQTT 5 properties, wills, blocked-task filtering, oversized commands and UNSUBACKs.

use super::*;

#[tokio::test]
async fn qos_retain_and_properties_pass_through() {
    let mut b = bus().await;
    let mut op4 = c4(&b, "op").await;
    let mut op5 = c5(&b, "op").await;
    assert_eq!(
        op4.sub(&["extbus/out/op/#"], Q2).await,
        [m4::SubscribeReasonCode::Success(Q2)]
    );
    assert_eq!(
        op5.sub(&["extbus/out/op/#"], P2).await,
        [p5::SubscribeReasonCode::Success(P2)]
    );
    let mut admin = c4(&b, "admin").await;
    for (qos, done) in [(Q1, "PubAck"), (Q2, "PubComp")] {
        admin
            .send("extbus/out/op/replies", qos, format!("{qos:?}"))
            .await;
        loop {
            let p = format!("{:?}", admin.packet().await);
            if p.starts_with(done) {
                break;
            }
        }
        let p = op4.publish().await;
        // rumqttd delivers at the subscription's QoS, whatever the publisher used.
        assert_eq!(
            (p.qos, p.payload.to_vec()),
            (Q2, format!("{qos:?}").into_bytes())
        );
        assert_eq!(op5.publish().await.payload, format!("{qos:?}").as_bytes());
    }
    // The receiving QoS 2 flows complete (PUBREC, PUBREL, PUBCOMP through the gate).
    loop {
        if let m4::Event::Outgoing(m4::Outgoing::PubComp(_)) = op4.event().await.unwrap() {
            break;
        }
    }
    // Client QoS 2 into its inbox reaches the coordinator once.
    op5.send("extbus/in/op/tasks/query", P2, "{}").await;
    loop {
        if let p5::Packet::PubComp(_) = op5.packet().await {
            break;
        }
    }
    assert_eq!(b.inbound().await.topic, "extbus/in/op/tasks/query");
    // MQTT 5 properties: correlation data in, user properties and correlation data out.
    let props = p5::PublishProperties {
        correlation_data: Some("c-17".into()),
        ..Default::default()
    };
    op5.cl
        .publish_with_properties("extbus/in/op/tasks/query", P1, false, "{}", props)
        .await
        .unwrap();
    let m = b.inbound().await;
    assert_eq!(m.correlation_data.as_deref(), Some(&b"c-17"[..]));
    let props = PublishProps {
        user_properties: vec![("ce_type".into(), "task.blocked".into())],
        correlation_data: Some("c-17".into()),
        content_type: Some("application/json".into()),
    };
    b.tx.publish("extbus/out/op/replies", "{}".into(), props)
        .unwrap();
    let p = op5.publish().await;
    let got = p.properties.unwrap();
    assert_eq!(got.correlation_data.as_deref(), Some(&b"c-17"[..]));
    assert_eq!(
        got.user_properties,
        vec![("ce_type".to_string(), "task.blocked".to_string())]
    );
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(op4.publish().await.payload, "{}".as_bytes());
    // Retained: stored through the gate, delivered to a later subscriber.
    let mut admin5 = c5(&b, "admin").await;
    admin5
        .cl
        .publish("extbus/events/acme/vapp/instantiate", P1, true, "kept")
        .await
        .unwrap();
    assert_eq!(admin5.puback().await, p5::PubAckReason::Success);
    let mut obs = c4(&b, "obs").await;
    obs.sub(&["extbus/events/acme/#"], Q1).await;
    let p = obs.publish().await;
    assert!(p.retain);
    assert_eq!(p.payload, "kept".as_bytes());
}

#[tokio::test]
async fn wills_fire_through_the_gate_and_are_checked() {
    let mut b = bus().await;
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/plat/events",
        "gone-4",
        Q1,
        false,
    ));
    let c = up4(o).await;
    c.task.abort();
    let m = b.inbound().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("extbus/in/plat/events", &b"gone-4"[..])
    );
    let mut o = opts5(b.addr, "plat", Some(SECRET));
    o.set_last_will(p5::LastWill::new(
        "extbus/in/plat/events",
        "gone-5",
        P1,
        false,
        None,
    ));
    let c = up5(o).await;
    c.task.abort();
    assert_eq!(&b.inbound().await.payload[..], b"gone-5");
    // A clean DISCONNECT does not fire the will.
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/plat/events",
        "not-sent",
        Q1,
        false,
    ));
    let mut c = up4(o).await;
    c.cl.disconnect().await.unwrap();
    c.closed().await;
    // A will outside the principal's rights refuses the connection.
    let mut o = opts5(b.addr, "plat", Some(SECRET));
    o.set_last_will(p5::LastWill::new(
        "extbus/in/ext/events",
        "spoof",
        P1,
        false,
        None,
    ));
    let e = C5::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::ConnectionRefused(p5::ConnectReturnCode::NotAuthorized)
        ),
        "{e:?}"
    );
    let mut o = opts4(b.addr, "plat", Some(SECRET));
    o.set_last_will(m4::LastWill::new(
        "extbus/in/ext/events",
        "spoof",
        Q1,
        false,
    ));
    let e = C4::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::NotAuthorized)
        ),
        "{e:?}"
    );
    c4(&b, "plat")
        .await
        .send("extbus/in/plat/marker", Q1, "m")
        .await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    assert_eq!(b.denied().len(), 2);
}

/// A task notice of org acme, told apart by `tag`.
fn task(tag: &str) -> String {
    format!(r#"{{"id":"{tag}","org":"acme"}}"#)
}

#[tokio::test]
async fn extensions_receive_only_their_blocked_tasks() {
    let b = bus().await;
    let mut ext4 = c4(&b, "ext").await;
    let mut ext5 = c5(&b, "ext").await;
    let mut extop = c5(&b, "extop").await;
    assert_eq!(
        ext4.sub(&["extbus/tasks/blocked/#"], Q1).await,
        [m4::SubscribeReasonCode::Success(Q1)]
    );
    assert_eq!(
        ext5.sub(&["extbus/tasks/blocked/+/+"], P2).await,
        [p5::SubscribeReasonCode::Success(P2)]
    );
    assert_eq!(
        extop.sub(&["extbus/tasks/blocked/#"], P1).await,
        [p5::SubscribeReasonCode::Success(P1)]
    );
    // More than the broker's 100 in-flight messages: a dropped notice must still be acked.
    const N: usize = 300;
    for i in 0..N {
        let op = if i % 2 == 0 { "instantiate" } else { "delete" };
        b.publish(
            &format!("extbus/tasks/blocked/vapp/{op}"),
            &task(&i.to_string()),
        );
    }
    b.publish("extbus/tasks/blocked/vapp", "malformed");
    b.publish("extbus/tasks/blocked/vapp/instantiate", &task("end"));
    let expected: Vec<String> = (0..N)
        .step_by(2)
        .map(|i| task(&i.to_string()))
        .chain([task("end")])
        .collect();
    let mut got4 = Vec::new();
    while got4.len() < expected.len() {
        let p = ext4.publish().await;
        assert_eq!(topic4(&p), "extbus/tasks/blocked/vapp/instantiate");
        got4.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    assert_eq!(got4, expected);
    let mut got5 = Vec::new();
    while got5.len() < expected.len() {
        got5.push(String::from_utf8(ext5.publish().await.payload.to_vec()).unwrap());
    }
    assert_eq!(got5, expected);
    let mut all = 0;
    while all < N + 2 {
        extop.publish().await;
        all += 1;
    }
    // Still connected and acking in order: another notice arrives.
    b.publish("extbus/tasks/blocked/vapp/instantiate", &task("after"));
    assert_eq!(ext4.publish().await.payload, task("after").as_bytes());
    assert_eq!(ext5.publish().await.payload, task("after").as_bytes());
    // `ext` is limited to acme: another org's notice is dropped (and acked), the next passes.
    b.publish(
        "extbus/tasks/blocked/vapp/instantiate",
        r#"{"id":"g","org":"globex"}"#,
    );
    b.publish("extbus/tasks/blocked/vapp/instantiate", &task("acme again"));
    assert_eq!(ext4.publish().await.payload, task("acme again").as_bytes());
    assert_eq!(ext5.publish().await.payload, task("acme again").as_bytes());
    // A registration takes effect at once, on open connections.
    b.registry.add_operation("ext", "vapp.delete");
    b.publish("extbus/tasks/blocked/vapp/delete", &task("now mine"));
    assert_eq!(
        topic4(&ext4.publish().await),
        "extbus/tasks/blocked/vapp/delete"
    );
    assert_eq!(ext5.publish().await.payload, task("now mine").as_bytes());
}

#[tokio::test]
async fn oversized_commands_get_a_notice_not_a_delivery() {
    let mut b = bus().await;
    let big = vec![b'x'; 300 * 1024];
    let mut admin = c5(&b, "admin").await;
    admin.sub(&["#"], P1).await;
    let mut plat = c5(&b, "plat").await;
    let props = p5::PublishProperties {
        correlation_data: Some("c-9".into()),
        ..Default::default()
    };
    plat.cl
        .publish_with_properties("extbus/in/plat/tasks/submit", P1, false, big.clone(), props)
        .await
        .unwrap();
    assert_eq!(
        plat.puback().await,
        p5::PubAckReason::ImplementationSpecificError
    );
    let mut plat4 = c4(&b, "plat").await;
    plat4.send("extbus/in/plat/events", Q2, big.clone()).await;
    loop {
        if let m4::Packet::PubComp(_) = plat4.packet().await {
            break;
        }
    }
    plat4.send("extbus/in/plat/marker", Q1, "m").await;
    assert_eq!(b.inbound().await.topic, "extbus/in/plat/marker");
    // Commands, oversized or not, never reach subscribers: the admin's first delivery is
    // its own later publish.
    admin.send("gate-test/marker", P1, "m").await;
    assert_eq!(topic5(&admin.publish().await), "gate-test/marker");
    let notices = b.notices();
    assert_eq!(
        notices,
        [
            GateNotice::Oversized {
                principal: "plat".into(),
                suffix: "tasks/submit".into(),
                size: big.len(),
                limit: 256 * 1024,
                correlation_data: Some(b"c-9".to_vec()),
                correlation_id: None,
            },
            GateNotice::Oversized {
                principal: "plat".into(),
                suffix: "events".into(),
                size: big.len(),
                limit: 256 * 1024,
                correlation_data: None,
                correlation_id: None,
            },
        ]
    );
    // Payloads up to the limit pass.
    plat4
        .send("extbus/in/plat/events", Q1, vec![b'y'; 256 * 1024])
        .await;
    assert_eq!(b.inbound().await.payload.len(), 256 * 1024);
}

#[tokio::test]
async fn every_unsubscribe_gets_one_unsuback() {
    let b = bus().await;
    let mut c4c = c4(&b, "obs").await;
    let mut c5c = c5(&b, "obs").await;
    c4c.sub(&["extbus/events/acme/#", "extbus/events/#"], Q1)
        .await;
    c5c.sub(&["extbus/events/acme/#", "extbus/events/#"], P1)
        .await;
    // rumqttd alone would answer nothing for the refused filter and twice for two filters.
    c4c.cl.unsubscribe("extbus/events/#").await.unwrap();
    c5c.cl.unsubscribe("extbus/events/#").await.unwrap();
    assert!(matches!(c4c.packet().await, m4::Packet::UnsubAck(_)));
    assert!(matches!(c5c.packet().await, p5::Packet::UnsubAck(a) if a.reasons.len() == 1));
    b.publish("extbus/events/acme/x/y", "still subscribed");
    assert_eq!(c4c.publish().await.payload, "still subscribed".as_bytes());
    assert_eq!(c5c.publish().await.payload, "still subscribed".as_bytes());
    c5c.cl.unsubscribe("extbus/events/acme/#").await.unwrap();
    let a = loop {
        if let p5::Packet::UnsubAck(a) = c5c.packet().await {
            break a;
        }
    };
    assert_eq!(a.reasons.len(), 1);
    // Unsubscribed: the next event goes only to the 3.1.1 client.
    b.publish("extbus/events/acme/x/y", "after");
    assert_eq!(c4c.publish().await.payload, "after".as_bytes());
    c5c.sub(&["extbus/out/obs/#"], P1).await;
    b.publish("extbus/out/obs/replies", "marker");
    assert_eq!(topic5(&c5c.publish().await), "extbus/out/obs/replies");
}
