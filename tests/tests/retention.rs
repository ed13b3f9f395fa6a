//! Task retention over real MQTT on the manual clock: a finished task is removed
//! `tasks.retention_ms` after it ended, with its idempotency key (the same request id then
//! submits a new task); a task still blocked is never removed, however old. Retention runs
//! once a second, so the clock is moved past the limit by that much.

use extbus_tests::http::request;
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

const KEEP_MS: u64 = 60_000;

async fn get(b: &TestBroker, id: &str) -> Value {
    b.client("operator")
        .await
        .command(&format!("tasks/{id}/get"), json!({}))
        .await
}

/// Polls `tasks/<id>/get` until `done(reply)`, for at most 10 s of real time.
async fn wait_for(b: &TestBroker, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let op = b.client("operator").await;
    for _ in 0..200 {
        let r = op.command(&format!("tasks/{id}/get"), json!({})).await;
        if done(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never reached the expected state");
}

#[tokio::test]
async fn finished_tasks_are_removed_after_retention_and_blocked_ones_kept() {
    let b = TestBroker::start_with(|c| c.tasks.retention_ms = KEEP_MS).await;
    let (ext, p) = blocking_world(&b).await;
    let submit = |rid: &'static str| {
        let p = p.clone();
        async move {
            let r = p
                .command(
                    "tasks/submit",
                    json!({"request_id": rid, "operation": "vm.create", "org": "acme"}),
                )
                .await;
            assert_eq!(r["result"]["state"], "blocked", "{r}");
            r["result"]["id"].as_str().unwrap().to_string()
        }
    };
    let waiting = submit("waiting").await;
    let done = submit("done").await;
    let r = ext
        .command(&format!("tasks/{done}/resume"), json!({"message": "ok"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");

    // One millisecond short of the retention: still there.
    b.clock.advance(KEEP_MS - 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&b, &done).await["result"]["state"], "resumed");

    // Retention looks once a second: within a second of passing it, the task is gone.
    b.clock.advance(1_000);
    let gone = wait_for(&b, &done, |r| r["ok"] == false).await;
    assert_eq!(gone["error"]["code"], "not_found", "{gone}");
    // The blocked task is older than the retention and stays.
    assert_eq!(get(&b, &waiting).await["result"]["state"], "blocked");

    // The request id is free again: the same submit makes a new task.
    let again = submit("done").await;
    assert_ne!(again, done);
    // While the waiting one is still the same task.
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": "waiting", "operation": "vm.create", "org": "acme"}),
        )
        .await;
    assert_eq!(r["result"]["id"], waiting.as_str());

    let metrics = request(b.http, "GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(metrics.contains("extbus_tasks_purged_total 1"), "{metrics}");
    b.stop().await;
}

#[tokio::test]
async fn a_purged_task_takes_its_metadata_and_index_keys_with_it() {
    let b = TestBroker::start_with(|c| c.tasks.retention_ms = KEEP_MS).await;
    let (ext, p) = blocking_world(&b).await;
    let entry = json!({"namespace": "billing", "key": "cost-center",
                       "value": {"type": "string", "value": "cc-42"}});
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": "r1", "operation": "vm.create", "org": "acme", "metadata": [entry]}),
        )
        .await;
    let id = r["result"]["id"].as_str().expect("task id").to_string();
    let r = ext.command(&format!("tasks/{id}/resume"), json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    let search = || async {
        let r = p
            .command("tasks/query", json!({"metadata": "cost-center=='cc-42'"}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        r["result"].clone()
    };
    let before = search().await;
    assert_eq!(before["tasks"][0]["id"], id.as_str(), "{before}");
    assert_eq!(before["plan"]["candidates"], 1, "{before}");

    b.clock.advance(KEEP_MS + 1_000);
    wait_for(&b, &id, |r| r["ok"] == false).await;
    // No entry is left for the id, and the index walk finds no candidate (a stale index key
    // would still be one, filtered out only because its task is gone).
    let r = p.command(&format!("metadata/{id}/get"), json!({})).await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    let after = search().await;
    assert_eq!(after["tasks"], json!([]), "{after}");
    assert_eq!(after["plan"]["candidates"], 0, "{after}");
    b.stop().await;
}

/// Registers a long-lived rule and returns the extension and platform clients.
async fn blocking_world(
    b: &TestBroker,
) -> (
    std::sync::Arc<extbus_tests::BusClient>,
    std::sync::Arc<extbus_tests::BusClient>,
) {
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 3_600_000, "max_timeout_ms": 3_600_000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    (ext, b.client("platform").await)
}

/// Submits `request_id` and resumes it at once; returns the task id.
async fn finished(
    ext: &extbus_tests::BusClient,
    p: &extbus_tests::BusClient,
    request_id: String,
) -> String {
    let r = p
        .command(
            "tasks/submit",
            json!({"request_id": request_id, "operation": "vm.create", "org": "acme"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let r = ext.command(&format!("tasks/{id}/resume"), json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    id
}

async fn purged_total(b: &TestBroker) -> u64 {
    let m = request(b.http, "GET", "/metrics", &[], b"").await;
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| l.strip_prefix("extbus_tasks_purged_total ")?.parse().ok())
        .expect("extbus_tasks_purged_total on /metrics")
}

#[tokio::test]
async fn retention_waits_a_full_second_after_a_pass() {
    let b = TestBroker::start_with(|c| c.tasks.retention_ms = KEEP_MS).await;
    let (ext, p) = blocking_world(&b).await;
    let first = finished(&ext, &p, "first".into()).await;
    b.clock.advance(500);
    let second = finished(&ext, &p, "second".into()).await;

    // A pass at KEEP + 100 ms removes the first task (ended at 0), not the second (at 500).
    b.clock.advance(KEEP_MS - 400);
    wait_for(&b, &first, |r| r["ok"] == false).await;
    assert_eq!(get(&b, &second).await["result"]["state"], "resumed");

    // At KEEP + 600 ms the second is past its retention too, but the next pass is due only a
    // second after the last one: several batches later it is still there.
    b.clock.advance(500);
    for _ in 0..3 {
        assert_eq!(get(&b, &second).await["result"]["state"], "resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly a second after the pass, it goes.
    b.clock.advance(500);
    let gone = wait_for(&b, &second, |r| r["ok"] == false).await;
    assert_eq!(gone["error"]["code"], "not_found", "{gone}");
    assert_eq!(purged_total(&b).await, 2);
    b.stop().await;
}

#[tokio::test]
async fn a_backlog_bigger_than_one_pass_is_removed_without_waiting_a_second() {
    // One more than a pass removes (2,048): the rest goes in the next batch, not a second later.
    const TASKS: usize = 2_049;
    let b = TestBroker::start_with(|c| c.tasks.retention_ms = KEEP_MS).await;
    let (ext, p) = blocking_world(&b).await;
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (ext, p) = (ext.clone(), p.clone());
        set.spawn(async move {
            for i in (worker..TASKS).step_by(16) {
                finished(&ext, &p, format!("r{i}")).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("submit worker");
    }
    b.clock.advance(KEEP_MS);
    // The clock stands still from here: only batches (these scrapes' commands) move retention.
    let op = b.client("operator").await;
    let mut total = 0;
    for _ in 0..100 {
        op.command("tasks/query", json!({"limit": 1})).await;
        total = purged_total(&b).await;
        if total == TASKS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        total, TASKS as u64,
        "all finished tasks removed at one instant"
    );
    b.stop().await;
}
