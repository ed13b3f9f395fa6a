//! External bus mode against a real Mosquitto 2 with dynamic security: commands and replies,
//! a callout end to end, events to an observer, refusals by Mosquitto itself, a registration
//! in force in Mosquitto before its reply, a Mosquitto restart under load that loses nothing
//! acknowledged, `bus sync` repairing drift, a removed principal's client going, and an HTTP
//! service call answered over Mosquitto.

use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::mosquitto::Mosquitto;
use extbus_tests::{BusClient, Proto, TestBroker};
use serde_json::{json, Value};
use std::time::Duration;

async fn world() -> (Mosquitto, TestBroker) {
    let m = Mosquitto::start().await;
    let b = TestBroker::start_external(&m, |_| {}).await;
    (m, b)
}

fn submit_body(request_id: &str, operation: &str) -> Value {
    json!({"request_id": request_id, "operation": operation, "org": "acme", "subject": "urn:acme:vm:1", "data": {"cpu": 2}})
}

#[tokio::test]
async fn a_command_and_its_reply_go_through_mosquitto() {
    let (m, b) = world().await;
    let p = b.client("platform").await;
    let r = p.command("tasks/query", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["tasks"], json!([]));
    // No rule: resumed at once, answered on the platform's replies through Mosquitto.
    let r = p
        .command("tasks/submit", submit_body("r-1", "vm.create"))
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    b.stop().await;
    drop(m);
}

#[tokio::test]
async fn a_callout_end_to_end() {
    let (_m, b) = world().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 60000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // The reply came after Mosquitto had the new rights: the notice topic is open now.
    assert_eq!(
        ext.subscribe(&topics::tasks_blocked("vm.create")).await,
        vec![1]
    );
    let p = b.client("platform").await;
    let r = p
        .command("tasks/submit", submit_body("r-1", "vm.create"))
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let notice = ext
        .expect_on(&topics::tasks_blocked("vm.create"))
        .await
        .json();
    assert_eq!(notice["id"], id.as_str());
    let r = ext
        .command(
            &format!("tasks/{id}/resume"),
            json!({"message": "ok", "result": {"host": "h1"}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    let outcome = p.expect_on(&topics::outcomes("platform")).await.json();
    assert_eq!(outcome["state"], "resumed");
    assert_eq!(outcome["result"]["host"], "h1");
    b.stop().await;
}

#[tokio::test]
async fn events_reach_an_observer_of_their_org_only() {
    let (_m, b) = world().await;
    b.add_principal_external("obs-acme", &[Role::Observer], &["acme"])
        .await;
    let obs = b.client("obs-acme").await;
    assert_eq!(
        obs.subscribe(&topics::events_org_filter("acme")).await,
        vec![1]
    );
    // Another org's events are not this observer's: Mosquitto refuses the subscription.
    assert_ne!(
        obs.subscribe(&topics::events_org_filter("globex")).await,
        vec![1]
    );
    let p = b.client("platform").await;
    for org in ["globex", "acme"] {
        let r = p
            .command("events", json!({"type": "vapp.instantiate", "org": org, "subject": "urn:x:vm:1", "outcome": "succeeded", "data": {}}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let ev = obs
        .expect_on(&topics::events("acme", "vapp.instantiate"))
        .await
        .json();
    assert_eq!(ev["org"], "acme");
    assert_eq!(ev["source"], "extbus://platform");
    b.stop().await;
}

#[tokio::test]
async fn mosquitto_itself_refuses_a_principal_without_rights() {
    let (m, b) = world().await;
    let obs = b.client("observer").await;
    // The platform's outbox is not the observer's to read.
    assert_ne!(obs.subscribe("extbus/out/platform/#").await, vec![1]);
    // Publishing into the platform's inbox: Mosquitto drops it, so nothing is applied.
    obs.publish(
        &topics::inbox("platform", "tasks/submit"),
        serde_json::to_vec(&submit_body("forged", "vm.create")).unwrap(),
    )
    .await;
    let p = b.client("platform").await;
    let r = p
        .command("tasks/submit", submit_body("forged", "vm.other"))
        .await;
    // Had the forged submit been applied, this request id would conflict with vm.create.
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["operation"], "vm.other", "{r}");
    // A wrong password and an unknown principal are refused at CONNECT.
    assert!(BusClient::connect(&b, Proto::V5, "platform", "nope")
        .await
        .is_err());
    assert!(BusClient::connect(&b, Proto::V5, "nobody", "nobody")
        .await
        .is_err());
    assert!(
        m.log().contains("Denied PUBLISH from observer-"),
        "{}",
        m.log()
    );
    b.stop().await;
}

#[tokio::test]
async fn a_registered_service_is_subscribable_right_after_the_reply() {
    let (_m, b) = world().await;
    let ext = b.client("extension").await;
    let filter = "extbus/services/acme/greeter/#";
    assert_ne!(ext.subscribe(filter).await, vec![1]);
    let r = ext
        .command("register", json!({"services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0", "url_patterns": ["/greet"]}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(ext.subscribe(filter).await, vec![1]);
    b.stop().await;
}

/// A platform client of its own (persistent session, QoS 1) that records which of its
/// commands Mosquitto acknowledged: PUBACK is what "accepted" means to a publisher.
struct Acked {
    client: rumqttc::v5::AsyncClient,
    acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    sent: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    inflight: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u16, String>>>,
}

impl Acked {
    fn connect(m: &Mosquitto) -> Acked {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{Event, MqttOptions};
        let mut o = MqttOptions::new("platform-acked", "127.0.0.1", m.addr.port());
        o.set_credentials("platform", "platform")
            .set_clean_start(false)
            .set_session_expiry_interval(Some(600))
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 10_000);
        let a = Acked {
            client,
            acked: Default::default(),
            sent: Default::default(),
            inflight: Default::default(),
        };
        let (acked, sent, inflight) = (a.acked.clone(), a.sent.clone(), a.inflight.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    // A first transmission takes the next request id; a resend keeps its own.
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                        let mut f = inflight.lock().unwrap();
                        if let std::collections::hash_map::Entry::Vacant(e) = f.entry(pkid) {
                            if let Some(r) = sent.lock().unwrap().pop_front() {
                                e.insert(r);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(r) = inflight.lock().unwrap().remove(&ack.pkid) {
                            acked.lock().unwrap().push(r);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        a
    }

    async fn submit(&self, request_id: &str) {
        self.sent.lock().unwrap().push_back(request_id.to_string());
        let body = serde_json::to_vec(&submit_body(request_id, "vm.create")).unwrap();
        self.client
            .publish(
                topics::inbox("platform", "tasks/submit"),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .expect("queue publish");
    }
}

/// Every task's request id, page by page.
async fn request_ids(p: &BusClient) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let r = p
            .command("tasks/query", json!({"limit": 1000, "after": after}))
            .await;
        let tasks = r["result"]["tasks"].as_array().cloned().unwrap_or_default();
        let Some(last) = tasks.last() else {
            return out;
        };
        after = last["id"].clone();
        out.extend(
            tasks
                .iter()
                .map(|t| t["request_id"].as_str().unwrap().to_string()),
        );
    }
}

#[tokio::test]
async fn a_mosquitto_restart_under_load_loses_nothing_acknowledged() {
    let (mut m, b) = world().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let p = Acked::connect(&m);
    const N: usize = 300;
    for i in 0..N {
        p.submit(&format!("r-{i}")).await;
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if i == N / 3 {
            m.restart().await;
        }
    }
    // Everything sent is acknowledged once Mosquitto and both clients are back.
    let start = std::time::Instant::now();
    while p.acked.lock().unwrap().len() < N && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = p.acked.lock().unwrap().clone();
    // The publisher resends what was in flight at the restart: in the end all are accepted.
    assert_eq!(acked.len(), N, "acknowledged: {}", acked.len());
    let reader = b.client("platform").await;
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids = request_ids(&reader).await;
        if acked.iter().all(|r| ids.contains(r)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<_> = acked.iter().filter(|r| !ids.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not applied: {missing:?}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a command applied twice");
    b.stop().await;
}

#[tokio::test]
async fn bus_sync_repairs_and_reports_drift_with_registrations_from_the_store() {
    use extbus::external::{dynsec::Dynsec, settings};
    let (m, b) = world().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 60000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let (cfg, _dir, _clock) = b.stop().await;
    let ds = Dynsec::connect(&settings(&cfg).unwrap()).await.unwrap();
    let tamper = ds
        .run(vec![
            // (Not deleteRole: Mosquitto 2.0.11 corrupts the clients of a role deleted under them.)
            json!({"command": "removeClientRole", "username": "observer", "rolename": "extbus:observer"}),
            json!({"command": "modifyRole", "rolename": "extbus:observer", "acls": []}),
            json!({"command": "modifyRole", "rolename": "extbus:extension", "acls": []}),
            json!({"command": "createRole", "rolename": "extbus:gone"}),
        ])
        .await
        .unwrap();
    assert!(tamper.iter().all(|a| a.error.is_none()), "{tamper:?}");
    let report = extbus::external::sync_all(&cfg).await.expect("bus sync");
    assert_eq!(report.drifted, ["extension", "observer"], "{report:?}");
    assert_eq!(report.removed, ["gone"]);
    let role = ds
        .run(vec![
            json!({"command": "getRole", "rolename": "extbus:extension"}),
        ])
        .await
        .unwrap();
    let acls = role[0].data["role"]["acls"].to_string();
    assert!(acls.contains("extbus/tasks/blocked/vm/create"), "{acls}");
    // Nothing left to repair.
    let again = extbus::external::sync_all(&cfg).await.unwrap();
    assert!(
        again.drifted.is_empty() && again.removed.is_empty(),
        "{again:?}"
    );
    // The observer's client has its role back: it may read events again.
    let obs = BusClient::connect_addr(m.addr, Proto::V5, "observer", "observer")
        .await
        .unwrap();
    assert_eq!(obs.subscribe(topics::EVENTS_ALL).await, vec![1]);
}

#[tokio::test]
async fn a_removed_principal_loses_its_mosquitto_client() {
    let (m, b) = world().await;
    b.add_principal_external("temp", &[Role::Platform], &["*"])
        .await;
    let t = b.client("temp").await;
    let r = t.command("tasks/query", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    // Let the once-a-second check see the new principal first.
    b.clock.advance(1_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    extbus::principals::Principals::open(&b.data_dir())
        .unwrap()
        .remove("temp")
        .unwrap();
    // The coordinator's once-a-second check notices and deletes the client and its role.
    let mut refused = false;
    for _ in 0..50 {
        b.clock.advance(1_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if BusClient::connect_addr(m.addr, Proto::V5, "temp", "temp")
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "temp still logs in to Mosquitto");
    b.stop().await;
}

#[tokio::test]
async fn an_http_service_call_is_answered_by_an_extension_on_mosquitto() {
    use extbus_tests::http::{basic, request};
    let (_m, b) = world().await;
    let ext = b.client("extension").await;
    let r = ext
        .command("register", json!({"services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0", "url_patterns": ["^/ext/acme/greeter/"], "timeout_ms": 5000}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let requests = "extbus/services/acme/greeter/1.0.0/requests";
    assert_eq!(ext.subscribe(requests).await, vec![1]);
    let answer = {
        let ext = ext.clone();
        tokio::spawn(async move {
            let req = ext.expect_on(requests).await.json();
            let r = ext
                .command(
                    "services/responses",
                    json!({"id": req["id"], "status": 200, "json": {"hello": req["principal"]}}),
                )
                .await;
            assert_eq!(r["ok"], true, "{r}");
        })
    };
    let auth = basic("platform", "platform");
    let resp = request(
        b.http,
        "GET",
        "/ext/acme/greeter/hi",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["hello"], "platform");
    answer.await.unwrap();
    b.stop().await;
}
