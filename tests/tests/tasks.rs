//! Blocking tasks over real MQTT: every row of the protocol's state table, two stages,
//! idempotent submit and resolve, conflict, forbidden, extend (and beyond max), timeouts with
//! each default action on the manual clock, renotify, and deadlines that pass while stopped.

use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn register(ext: &BusClient, rules: Value) {
    let r = ext.command("register", json!({ "rules": rules })).await;
    assert_eq!(r["ok"], true, "register: {r}");
}

async fn submit(p: &BusClient, request_id: &str, operation: &str) -> Value {
    let r = p.command("tasks/submit", json!({"request_id": request_id, "operation": operation, "org": "acme", "subject": "urn:acme:vm:1", "data": {"cpu": 2}})).await;
    assert_eq!(r["ok"], true, "submit: {r}");
    r["result"].clone()
}

fn id(task: &Value) -> String {
    task["id"].as_str().expect("task id").to_string()
}

struct World {
    b: TestBroker,
    platform: Arc<BusClient>,
    ext: Arc<BusClient>,
    operator: Arc<BusClient>,
}

async fn world(rule: Value) -> World {
    let b = TestBroker::start().await;
    let platform = b.client("platform").await;
    let ext = b.client("extension").await;
    let operator = b.client("operator").await;
    assert_eq!(operator.subscribe(topics::TASKS_ALL).await, vec![1]);
    register(&ext, json!([rule])).await;
    World {
        b,
        platform,
        ext,
        operator,
    }
}

#[tokio::test]
async fn no_rule_resumes_at_once_and_stores_nothing() {
    let w = world(json!({"operation": "vapp.instantiate"})).await;
    let t = submit(&w.platform, "r-1", "vm.create").await;
    assert_eq!(t["state"], "resumed");
    let q = w.platform.command("tasks/query", json!({})).await;
    assert_eq!(q["result"]["tasks"], json!([]));
    let g = w
        .platform
        .command(&format!("tasks/{}/get", id(&t)), json!({}))
        .await;
    assert_eq!(g["error"]["code"], "not_found");
    w.b.stop().await;
}

#[tokio::test]
async fn blocked_then_resumed_with_result_reaches_everyone() {
    let w = world(json!({"operation": "vm.create", "timeout_ms": 60000})).await;
    let events = w.b.client("observer").await;
    assert_eq!(
        events
            .subscribe(&topics::events_filter("acme", "task/#"))
            .await,
        vec![1]
    );
    w.ext.subscribe(topics::TASKS_BLOCKED_ALL).await;
    let t = submit(&w.platform, "r-1", "vm.create").await;
    assert_eq!(t["state"], "blocked");
    assert_eq!(t["stages"], json!([["extension"]]));
    assert!(t["deadline"].is_string());
    let notice = w
        .ext
        .expect_on(&topics::tasks_blocked("vm.create"))
        .await
        .json();
    assert_eq!(notice["id"], t["id"]);
    assert!(notice.get("history").is_none());

    let r = w
        .ext
        .command(
            &format!("tasks/{}/resume", id(&t)),
            json!({"message": "ok", "result": {"host": "h1"}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["state"], "resumed");
    let outcome = w
        .platform
        .expect_on(&topics::outcomes("platform"))
        .await
        .json();
    assert_eq!(outcome["state"], "resumed");
    assert_eq!(outcome["resolved_by"], "extension");
    assert_eq!(outcome["result"]["host"], "h1");
    assert_eq!(outcome["request_id"], "r-1");
    let resolved = w
        .operator
        .expect_on(&topics::tasks_resolved("vm.create"))
        .await
        .json();
    assert_eq!(resolved["id"], t["id"]);
    let ev = events
        .expect(|m| m.topic == topics::events("acme", "task.resumed"))
        .await
        .json();
    assert_eq!(ev["type"], "task.resumed");
    assert!(ev["seq"].as_u64().unwrap() > 0);

    let g = w
        .operator
        .command(&format!("tasks/{}/get", id(&t)), json!({}))
        .await["result"]
        .clone();
    let actions: Vec<&str> = g["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["submit", "resume"]);
    assert_eq!(g["history"][1]["by"], "extension");
    assert_eq!(g["history"][1]["message"], "ok");
    w.b.stop().await;
}

#[tokio::test]
async fn cancel_and_abort_end_the_task_and_conflict_with_other_resolutions() {
    let w = world(json!({"operation": "vm.create"})).await;
    for (action, state) in [("cancel", "cancelled"), ("abort", "aborted")] {
        let t = submit(&w.platform, &format!("r-{action}"), "vm.create").await;
        let path = format!("tasks/{}/{action}", id(&t));
        let r = w.operator.command(&path, json!({"message": "no"})).await;
        assert_eq!(r["result"]["state"], state, "{r}");
        // Repeating the same resolution is acknowledged again with the same result.
        let again = w.operator.command(&path, json!({"message": "no"})).await;
        assert_eq!(again["ok"], true, "{again}");
        assert_eq!(again["result"]["state"], state);
        // A different one is a conflict and changes nothing.
        let other = w
            .ext
            .command(&format!("tasks/{}/resume", id(&t)), json!({}))
            .await;
        assert_eq!(other["error"]["code"], "conflict", "{other}");
        let ext = w
            .ext
            .command(
                &format!("tasks/{}/extend", id(&t)),
                json!({"extend_ms": 1000}),
            )
            .await;
        assert_eq!(ext["error"]["code"], "conflict", "{ext}");
        let g = w
            .operator
            .command(&format!("tasks/{}/get", id(&t)), json!({}))
            .await;
        assert_eq!(g["result"]["state"], state);
        assert_eq!(g["result"]["resolved_by"], "operator");
    }
    w.b.stop().await;
}

#[tokio::test]
async fn idempotent_submit_returns_the_same_task_in_its_current_state() {
    let w = world(json!({"operation": "vm.create"})).await;
    let a = submit(&w.platform, "same", "vm.create").await;
    let b2 = submit(&w.platform, "same", "vm.create").await;
    assert_eq!(a["id"], b2["id"]);
    w.ext
        .command(&format!("tasks/{}/resume", id(&a)), json!({}))
        .await;
    let c = submit(&w.platform, "same", "vm.create").await;
    assert_eq!(c["id"], a["id"]);
    assert_eq!(c["state"], "resumed");
    let q = w.operator.command("tasks/query", json!({})).await;
    assert_eq!(q["result"]["tasks"].as_array().unwrap().len(), 1);
    w.b.stop().await;
}

#[tokio::test]
async fn only_the_stage_principal_an_operator_or_admin_may_resolve() {
    let w = world(json!({"operation": "vm.create"})).await;
    w.b.add_principal("other-ext", &[Role::Extension], &["*"]);
    let other = w.b.client("other-ext").await;
    let t = submit(&w.platform, "r", "vm.create").await;
    let r = other
        .command(&format!("tasks/{}/resume", id(&t)), json!({}))
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let obs = w.b.client("observer").await;
    let r = obs
        .command(&format!("tasks/{}/abort", id(&t)), json!({}))
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let r = w
        .platform
        .command(&format!("tasks/{}/resume", id(&t)), json!({}))
        .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let g = w
        .operator
        .command(&format!("tasks/{}/get", id(&t)), json!({}))
        .await;
    assert_eq!(g["result"]["state"], "blocked");
    let admin = w.b.client("admin").await;
    let r = admin
        .command(&format!("tasks/{}/resume", id(&t)), json!({}))
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    let missing = w
        .operator
        .command(
            "tasks/00000000-0000-0000-0000-000000000000/resume",
            json!({}),
        )
        .await;
    assert_eq!(missing["error"]["code"], "not_found");
    w.b.stop().await;
}

#[tokio::test]
async fn two_stages_run_highest_priority_first() {
    let b = TestBroker::start().await;
    b.add_principal("approver", &[Role::Extension], &["*"]);
    b.add_principal("placer", &[Role::Extension], &["*"]);
    let approver = b.client("approver").await;
    let placer = b.client("placer").await;
    let platform = b.client("platform").await;
    register(&placer, json!([{"operation": "vm.create", "priority": 10}])).await;
    register(
        &approver,
        json!([{"operation": "vm.create", "priority": 90}]),
    )
    .await;
    placer.subscribe(topics::TASKS_BLOCKED_ALL).await;
    let t = submit(&platform, "r", "vm.create").await;
    assert_eq!(t["stages"], json!([["approver"], ["placer"]]));
    assert_eq!(t["stage"], 0);
    // The second stage cannot act before its turn.
    let early = placer
        .command(&format!("tasks/{}/resume", id(&t)), json!({}))
        .await;
    assert_eq!(early["error"]["code"], "forbidden", "{early}");
    let r = approver
        .command(
            &format!("tasks/{}/resume", id(&t)),
            json!({"result": {"approved": true}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked");
    assert_eq!(r["result"]["stage"], 1);
    // The next stage is announced again.
    let notice = placer
        .expect(|m| m.topic == topics::tasks_blocked("vm.create") && m.json()["stage"] == 1)
        .await;
    assert_eq!(notice.json()["id"], t["id"]);
    // Repeating the first stage's resume is acknowledged, and does not skip a stage.
    let again = approver
        .command(
            &format!("tasks/{}/resume", id(&t)),
            json!({"result": {"approved": true}}),
        )
        .await;
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["result"]["stage"], 1);
    let r = placer
        .command(
            &format!("tasks/{}/resume", id(&t)),
            json!({"result": {"host": "h7"}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resumed");
    let outcome = platform
        .expect_on(&topics::outcomes("platform"))
        .await
        .json();
    assert_eq!(outcome["result"], json!({"approved": true, "host": "h7"}));
    b.stop().await;
}

#[tokio::test]
async fn extend_moves_the_deadline_within_the_max() {
    let w = world(json!({"operation": "vm.create", "timeout_ms": 10000, "max_timeout_ms": 30000}))
        .await;
    let t = submit(&w.platform, "r", "vm.create").await;
    let created = extbus_schema::time_fmt::parse_ms(t["created_at"].as_str().unwrap()).unwrap();
    let r = w
        .ext
        .command(
            &format!("tasks/{}/extend", id(&t)),
            json!({"extend_ms": 20000, "message": "need time"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let d = extbus_schema::time_fmt::parse_ms(r["result"]["deadline"].as_str().unwrap()).unwrap();
    assert_eq!(d, created + 20000);
    let r = w
        .ext
        .command(
            &format!("tasks/{}/extend", id(&t)),
            json!({"extend_ms": 999_999}),
        )
        .await;
    let d = extbus_schema::time_fmt::parse_ms(r["result"]["deadline"].as_str().unwrap()).unwrap();
    assert_eq!(d, created + 30000, "bounded by max_timeout_ms: {r}");
    let bad = w
        .ext
        .command(
            &format!("tasks/{}/extend", id(&t)),
            json!({"extend_ms": -5}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation");
    // The old deadline passes without effect; the extended one applies the default action.
    w.b.clock.advance(25_000);
    let g = w
        .operator
        .command(&format!("tasks/{}/get", id(&t)), json!({}))
        .await;
    assert_eq!(g["result"]["state"], "blocked");
    w.b.clock.advance(5_000);
    let out = w
        .platform
        .expect_on(&topics::outcomes("platform"))
        .await
        .json();
    assert_eq!(out["state"], "aborted");
    assert_eq!(out["resolved_by"], "timeout");
    w.b.stop().await;
}

#[tokio::test]
async fn timeouts_apply_each_default_action() {
    for (action, state) in [
        ("resume", "resumed"),
        ("cancel", "cancelled"),
        ("abort", "aborted"),
    ] {
        let w =
            world(json!({"operation": "vm.create", "timeout_ms": 5000, "default_action": action}))
                .await;
        let t = submit(&w.platform, "r", "vm.create").await;
        assert_eq!(t["default_action"], action);
        w.b.clock.advance(4_999);
        let none = w
            .platform
            .collect(Duration::from_millis(300), |m| {
                m.topic.ends_with("/outcomes")
            })
            .await;
        assert!(none.is_empty(), "no outcome before the deadline");
        w.b.clock.advance(1);
        let out = w
            .platform
            .expect_on(&topics::outcomes("platform"))
            .await
            .json();
        assert_eq!(out["state"], state);
        assert_eq!(out["resolved_by"], "timeout");
        let g = w
            .operator
            .command(&format!("tasks/{}/get", id(&t)), json!({}))
            .await["result"]
            .clone();
        assert_eq!(g["state"], state);
        assert_eq!(
            g["history"].as_array().unwrap().last().unwrap()["by"],
            "timeout"
        );
        w.b.stop().await;
    }
}

#[tokio::test]
async fn waiting_tasks_are_announced_again_every_renotify_interval() {
    // The deadline lies beyond every round below (renotify is 10 minutes).
    let w = world(json!({"operation": "vm.create", "timeout_ms": 3600000})).await;
    let t = submit(&w.platform, "r", "vm.create").await;
    let topic = "extbus/tasks/blocked/vm/create";
    let first = w.operator.expect_on(topic).await;
    assert_eq!(first.json()["id"], t["id"]);
    let every = w.b.config.tasks.renotify_ms;
    let quiet = Duration::from_millis(300);
    let none = |round: &str, got: Vec<extbus_tests::Msg>| {
        assert!(got.is_empty(), "{round}: {} notices too many", got.len());
    };
    // The first comes no earlier than half a period (the task id fixes where, so that tasks
    // blocked together are spread over a period)...
    w.b.clock.advance(every / 2 - 1);
    none(
        "early",
        w.operator.collect(quiet, |m| m.topic == topic).await,
    );
    // ...and within the period after that, once.
    w.b.clock.advance(every);
    let again = w.operator.expect_on(topic).await;
    assert_eq!(again.json()["id"], t["id"]);
    none(
        "first",
        w.operator.collect(quiet, |m| m.topic == topic).await,
    );
    for round in ["second", "third"] {
        // Then every period: not a millisecond early, exactly one notice.
        w.b.clock.advance(every - 1);
        none(round, w.operator.collect(quiet, |m| m.topic == topic).await);
        w.b.clock.advance(1);
        let again = w.operator.expect_on(topic).await;
        assert_eq!(again.json()["id"], t["id"]);
        none(round, w.operator.collect(quiet, |m| m.topic == topic).await);
    }
    // A resolved task is not announced again.
    w.ext
        .command(&format!("tasks/{}/resume", id(&t)), json!({}))
        .await;
    w.b.clock.advance(every * 2);
    let after = w.operator.collect(quiet, |m| m.topic == topic).await;
    assert!(after.is_empty(), "renotified after it was resolved");
    w.b.stop().await;
}

#[tokio::test]
async fn tasks_and_deadlines_survive_a_restart() {
    let w =
        world(json!({"operation": "vm.create", "timeout_ms": 5000, "default_action": "cancel"}))
            .await;
    let keep = submit(&w.platform, "keep", "vm.create").await;
    let done = submit(&w.platform, "done", "vm.create").await;
    w.ext
        .command(
            &format!("tasks/{}/resume", id(&done)),
            json!({"message": "fine"}),
        )
        .await;
    drop((w.platform, w.ext, w.operator));
    let (config, dir, clock) = w.b.stop().await;
    clock.advance(60_000);
    let b = TestBroker::start_again(config, dir, clock).await;
    let op = b.client("operator").await;
    let k = op
        .command(&format!("tasks/{}/get", id(&keep)), json!({}))
        .await["result"]
        .clone();
    assert_eq!(
        k["state"], "cancelled",
        "deadline passed while stopped: {k}"
    );
    assert_eq!(k["resolved_by"], "timeout");
    let d = op
        .command(&format!("tasks/{}/get", id(&done)), json!({}))
        .await["result"]
        .clone();
    assert_eq!(d["state"], "resumed");
    assert_eq!(d["message"], "fine");
    // Registered rules survive too: a new submit still blocks.
    let p = b.client("platform").await;
    let t = submit(&p, "after", "vm.create").await;
    assert_eq!(t["state"], "blocked");
    b.stop().await;
}

#[tokio::test]
async fn query_filters_and_pages() {
    let w = world(json!({"operation": "vm.create"})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id(&submit(&w.platform, &format!("r{i}"), "vm.create").await));
    }
    w.operator
        .command(&format!("tasks/{}/abort", ids[0]), json!({}))
        .await;
    let q = w
        .operator
        .command("tasks/query", json!({"state": "blocked"}))
        .await;
    assert_eq!(q["result"]["tasks"].as_array().unwrap().len(), 4);
    let q = w
        .operator
        .command("tasks/query", json!({"operation": "vm.delete"}))
        .await;
    assert_eq!(q["result"]["tasks"].as_array().unwrap().len(), 0);
    let p1 = w.operator.command("tasks/query", json!({"limit": 2})).await["result"].clone();
    assert_eq!(p1["tasks"].as_array().unwrap().len(), 2);
    let after = p1["next"].as_str().unwrap();
    let p2 = w
        .operator
        .command("tasks/query", json!({"limit": 10, "after": after}))
        .await["result"]
        .clone();
    assert_eq!(p2["tasks"].as_array().unwrap().len(), 3);
    let mut seen: Vec<String> = p1["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["tasks"].as_array().unwrap())
        .map(id)
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    // the protocol's state table, row for row.
    assert_eq!(
        p1["states"],
        json!([
            {"from": null, "to": "blocked", "by": "submit, a rule matched"},
            {"from": null, "to": "resumed", "by": "submit, no rule matched"},
            {"from": "blocked", "to": "blocked", "by": "resume of a stage that is not the last; extend"},
            {"from": "blocked", "to": "resumed", "by": "resume of the last stage; timeout with default resume"},
            {"from": "blocked", "to": "cancelled", "by": "cancel; timeout with default cancel"},
            {"from": "blocked", "to": "aborted", "by": "abort; timeout with default abort"}
        ])
    );
    w.b.stop().await;
}

#[tokio::test]
async fn a_query_page_stops_near_one_mebibyte_and_continues_after_it() {
    let w = world(json!({"operation": "vm.create"})).await;
    // Five tasks of ~240 KB each: four fit in a 1 MiB page, the fifth starts the next one.
    let blob = "x".repeat(240 * 1024);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = w
            .platform
            .command(
                "tasks/submit",
                json!({"request_id": format!("big-{i}"), "operation": "vm.create",
                       "org": "acme", "data": {"blob": blob}}),
            )
            .await;
        assert_eq!(r["result"]["state"], "blocked", "{}", r["error"]);
        ids.push(id(&r["result"]));
    }
    let p1 = w.operator.command("tasks/query", json!({})).await["result"].clone();
    let first: Vec<String> = p1["tasks"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(first.len(), 4, "a page holds what fits in 1 MiB");
    assert_eq!(p1["next"].as_str(), Some(first[3].as_str()), "cut by size");
    let p2 = w
        .operator
        .command("tasks/query", json!({"after": p1["next"]}))
        .await["result"]
        .clone();
    let second: Vec<String> = p2["tasks"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(second.len(), 1);
    assert_eq!(p2["next"], Value::Null, "the last page");
    let mut all: Vec<String> = first.into_iter().chain(second).collect();
    all.sort();
    ids.sort();
    assert_eq!(all, ids);
    w.b.stop().await;
}
