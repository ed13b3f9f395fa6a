//! The Rust samples in `sample-extensions/` driven end to end against a real broker: approver
//! and placer answer the platform simulator's operations in two stages; the event logger
//! catches up after a restart without losing or repeating an event; the greeter answers
//! service requests over MQTT and HTTP.

use extbus_samples::{approver, event_logger, greeter, placer, platform_sim, Opts};
use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::oneshot;

fn stopper() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn approver_and_placer_answer_the_simulated_platform() {
    let b = TestBroker::start().await;
    b.add_principal("approver", &[Role::Extension], &["*"]);
    b.add_principal("placer", &[Role::Extension], &["*"]);

    let a = approver::Approver::start(
        &Opts::new(b.mqtt, "approver", "approver"),
        approver::Policy::default(),
    )
    .await
    .unwrap();
    let (stop_a, sa) = stopper();
    let ha = tokio::spawn(a.serve(sa));
    let p = placer::Placer::default();
    let (bus, rx) = placer::start(&Opts::new(b.mqtt, "placer", "placer"), &p)
        .await
        .unwrap();
    let (stop_p, sp) = stopper();
    let hp = tokio::spawn(placer::serve(bus, rx, p, sp));

    let sim = platform_sim::Sim {
        count: 4,
        rate: 100.0,
        wait: Duration::from_secs(20),
        ..Default::default()
    };
    let report = platform_sim::run(&Opts::new(b.mqtt, "platform", "platform"), sim)
        .await
        .unwrap();
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(report.events, 4);
    assert_eq!(report.by_state.get("resumed"), Some(&2), "{report:?}");
    assert_eq!(report.by_state.get("aborted"), Some(&2), "{report:?}");
    for o in &report.outcomes {
        if o["state"] == "resumed" {
            // Approved first (priority 60), then placed (40): the result carries both.
            assert_eq!(o["resolved_by"], "placer", "{o}");
            assert_eq!(o["result"]["approved_by"], "approver", "{o}");
            assert!(
                o["result"]["placement"]["host"]
                    .as_str()
                    .unwrap()
                    .starts_with("host-"),
                "{o}"
            );
        } else {
            assert_eq!(o["resolved_by"], "approver", "{o}");
            assert!(
                o["message"].as_str().unwrap().contains("exceed the limit"),
                "{o}"
            );
        }
    }
    let _ = stop_a.send(());
    let _ = stop_p.send(());
    ha.await.unwrap().unwrap();
    hp.await.unwrap().unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn approver_answers_tasks_that_were_waiting_before_it_started() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "priority": 60}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let p = b.client("platform").await;
    let r = p
        .command("tasks/submit", json!({"request_id": "early", "operation": "vm.create", "org": "acme", "data": {"cpu": 1}}))
        .await;
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let (stop, s) = stopper();
    let h = tokio::spawn(async move {
        approver::run(
            &Opts::new(b.mqtt, "extension", "extension"),
            approver::Policy::default(),
            s,
        )
        .await
    });
    let m = p
        .expect(|m| m.topic == topics::outcomes("platform") && m.json()["id"] == id.as_str())
        .await;
    assert_eq!(m.json()["state"], "resumed");
    let _ = stop.send(());
    h.await.unwrap().unwrap();
}

async fn emit(p: &extbus_tests::BusClient, n: u64) -> u64 {
    let r = p
        .command(
            "events",
            json!({"type": "vm.create", "org": "acme", "subject": format!("urn:acme:vm:{n}")}),
        )
        .await;
    r["result"]["seq"].as_u64().unwrap()
}

/// The complete lines of the log so far (a line without its newline is still being written).
fn logged(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_logged(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let l = logged(path);
        if l.len() >= n {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("only {} events logged, expected {n}", logged(path).len());
}

#[tokio::test(flavor = "multi_thread")]
async fn event_logger_keeps_its_place_across_restarts() {
    let b = TestBroker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = event_logger::Config {
        org: "acme".into(),
        log: dir.path().join("events.jsonl"),
        state: dir.path().join("state.json"),
    };
    let opts = Opts::new(b.mqtt, "observer", "observer");
    let p = b.client("platform").await;
    let mut seqs = vec![emit(&p, 1).await, emit(&p, 2).await];
    let other = p
        .command("events", json!({"type": "vm.create", "org": "beta"}))
        .await;
    assert_eq!(other["ok"], true);

    let (stop, s) = stopper();
    let h = tokio::spawn({
        let (o, c) = (opts.clone(), cfg.clone());
        async move { event_logger::run(&o, c, s).await }
    });
    wait_logged(&cfg.log, 2).await;
    seqs.push(emit(&p, 3).await); // live
    wait_logged(&cfg.log, 3).await;
    let _ = stop.send(());
    h.await.unwrap().unwrap();

    // Missed while stopped, then replayed; then live again.
    seqs.push(emit(&p, 4).await);
    seqs.push(emit(&p, 5).await);
    let (stop, s) = stopper();
    let h = tokio::spawn({
        let (o, c) = (opts.clone(), cfg.clone());
        async move { event_logger::run(&o, c, s).await }
    });
    wait_logged(&cfg.log, 5).await;
    seqs.push(emit(&p, 6).await);
    let all = wait_logged(&cfg.log, 6).await;
    let _ = stop.send(());
    h.await.unwrap().unwrap();
    let got: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, seqs, "each acme event once, in order");
    assert!(all.iter().all(|e| e["org"] == "acme"));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&cfg.state).unwrap()).unwrap();
    assert_eq!(state["next_seq"], seqs[5] + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn greeter_answers_service_requests() {
    let b = TestBroker::start().await;
    let (stop, s) = stopper();
    let opts = Opts::new(b.mqtt, "extension", "extension");
    // Registered and subscribed once `start` returns.
    let (bus, rx) = greeter::start(&opts).await.unwrap();
    let h = tokio::spawn(greeter::serve(bus, rx, s));
    let admin = b.client("admin").await;
    let reply = admin
        .command(
            "services/acme/greeter/1.0.0",
            json!({"method": "GET", "path": "/ext/acme/greeter/Ada", "query": "lang=fr"}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["status"], 200, "{reply}");
    assert_eq!(
        reply["result"]["json"]["greeting"], "Bonjour, Ada",
        "{reply}"
    );

    let auth = extbus_tests::http::basic("admin", "admin");
    let r = extbus_tests::http::request(
        b.http,
        "POST",
        "/ext/acme/greeter/hello",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        br#"{"name": "Grace"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["greeting"], "Hello, Grace");
    let _ = stop.send(());
    h.await.unwrap().unwrap();
}
