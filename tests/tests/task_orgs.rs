//! Org limits on blocking tasks over real MQTT: a platform, operator and observer limited to
//! `acme` cannot submit for, see, resolve or hear about a task of `globex`, while the same
//! commands on their own org's task succeed (so every refusal here could have been an accept).

use extbus_schema::topics;
use extbus_schema::Role;
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(400);

struct World {
    b: TestBroker,
    admin: Arc<BusClient>,
    /// Limited to acme.
    plat: Arc<BusClient>,
    op: Arc<BusClient>,
    obs: Arc<BusClient>,
    /// The globex platform and its task.
    globex: Arc<BusClient>,
    theirs: Value,
    /// A task of acme, submitted by the acme platform.
    ours: Value,
}

async fn submit(p: &BusClient, request_id: &str, org: &str) -> Value {
    p.command(
        "tasks/submit",
        json!({"request_id": request_id, "operation": "vm.create", "org": org}),
    )
    .await
}

fn id(t: &Value) -> String {
    t["id"].as_str().expect("task id").to_string()
}

async fn world() -> World {
    let b = TestBroker::start().await;
    b.add_principal("plat-acme", &[Role::Platform], &["acme"]);
    b.add_principal("plat-globex", &[Role::Platform], &["globex"]);
    b.add_principal("op-acme", &[Role::Operator], &["acme"]);
    b.add_principal("obs-acme", &[Role::Observer], &["acme"]);
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let admin = b.client("admin").await;
    let plat = b.client("plat-acme").await;
    let op = b.client("op-acme").await;
    let obs = b.client("obs-acme").await;
    let globex = b.client("plat-globex").await;
    assert_eq!(op.subscribe(topics::TASKS_ALL).await, vec![1]);
    assert_eq!(
        obs.subscribe(&topics::events_org_filter("acme")).await,
        vec![1]
    );
    let theirs = submit(&globex, "g-1", "globex").await;
    assert_eq!(theirs["result"]["state"], "blocked", "{theirs}");
    let ours = submit(&plat, "a-1", "acme").await;
    assert_eq!(ours["result"]["state"], "blocked", "{ours}");
    World {
        b,
        admin,
        plat,
        op,
        obs,
        globex,
        theirs: theirs["result"].clone(),
        ours: ours["result"].clone(),
    }
}

async fn state_of(admin: &BusClient, t: &Value) -> Value {
    let g = admin
        .command(&format!("tasks/{}/get", id(t)), json!({}))
        .await;
    g["result"]["state"].clone()
}

fn ids(q: &Value) -> Vec<String> {
    q["result"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {q}"))
        .iter()
        .map(id)
        .collect()
}

#[tokio::test]
async fn an_org_limited_platform_may_not_submit_for_another_org() {
    let w = world().await;
    let r = submit(&w.plat, "a-2", "globex").await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    // Nothing stored: only the two tasks of the setup exist.
    let q = w.admin.command("tasks/query", json!({})).await;
    let mut all = ids(&q);
    all.sort();
    let mut want = vec![id(&w.theirs), id(&w.ours)];
    want.sort();
    assert_eq!(all, want);
    // The same request id for its own org is accepted: the refusal was about the org.
    let ok = submit(&w.plat, "a-2", "acme").await;
    assert_eq!(ok["result"]["state"], "blocked", "{ok}");
    w.b.stop().await;
}

#[tokio::test]
async fn another_orgs_task_is_not_found_for_get_and_query() {
    let w = world().await;
    for c in [&w.plat, &w.op, &w.obs] {
        let g = c
            .command(&format!("tasks/{}/get", id(&w.theirs)), json!({}))
            .await;
        assert_eq!(g["error"]["code"], "not_found", "{}: {g}", c.name);
        let g = c
            .command(&format!("tasks/{}/get", id(&w.ours)), json!({}))
            .await;
        assert_eq!(g["result"]["id"], w.ours["id"], "{}: {g}", c.name);
        let q = c.command("tasks/query", json!({})).await;
        assert_eq!(ids(&q), vec![id(&w.ours)], "{}", c.name);
        let q = c.command("tasks/query", json!({"org": "globex"})).await;
        assert_eq!(ids(&q), Vec::<String>::new(), "{}", c.name);
    }
    // Its own platform sees it.
    let g = w
        .globex
        .command(&format!("tasks/{}/get", id(&w.theirs)), json!({}))
        .await;
    assert_eq!(g["result"]["id"], w.theirs["id"], "{g}");
    w.b.stop().await;
}

#[tokio::test]
async fn an_org_limited_operator_cannot_resolve_another_orgs_task() {
    let w = world().await;
    let theirs = id(&w.theirs);
    for (action, body) in [
        ("resume", json!({})),
        ("cancel", json!({})),
        ("abort", json!({})),
        ("extend", json!({"extend_ms": 1000})),
    ] {
        let r =
            w.op.command(&format!("tasks/{theirs}/{action}"), body)
                .await;
        assert_eq!(r["error"]["code"], "not_found", "{action}: {r}");
    }
    assert_eq!(state_of(&w.admin, &w.theirs).await, "blocked");
    let g = w
        .admin
        .command(&format!("tasks/{theirs}/get"), json!({}))
        .await;
    assert_eq!(
        g["result"]["history"].as_array().map(Vec::len),
        Some(1),
        "nothing added to its history: {g}"
    );
    // On its own org's task the same operator is obeyed.
    let r =
        w.op.command(&format!("tasks/{}/cancel", id(&w.ours)), json!({}))
            .await;
    assert_eq!(r["result"]["state"], "cancelled", "{r}");
    w.b.stop().await;
}

#[tokio::test]
async fn outcomes_notices_and_events_stay_in_their_org() {
    let w = world().await;
    // The acme operator hears about its own org's task.
    let n = w
        .op
        .expect(|m| m.topic == topics::tasks_blocked("vm.create") && m.json()["id"] == w.ours["id"])
        .await;
    assert_eq!(n.json()["org"], "acme");
    // ...and the globex task is resolved; its outcome reaches only its platform.
    let r = w
        .admin
        .command(&format!("tasks/{}/abort", id(&w.theirs)), json!({}))
        .await;
    assert_eq!(r["result"]["state"], "aborted", "{r}");
    let out = w.globex.expect_on(&topics::outcomes("plat-globex")).await;
    assert_eq!(out.json()["id"], w.theirs["id"]);
    let r = w
        .admin
        .command(&format!("tasks/{}/resume", id(&w.ours)), json!({}))
        .await;
    assert_eq!(r["result"]["state"], "resumed", "{r}");
    let out = w.plat.expect_on(&topics::outcomes("plat-acme")).await;
    assert_eq!(out.json()["id"], w.ours["id"]);
    let leaked = w
        .plat
        .collect(QUIET, |m| m.json()["id"] == w.theirs["id"])
        .await;
    assert!(leaked.is_empty(), "globex outcome reached acme: {leaked:?}");
    // The acme observer gets acme's task events and no globex ones, and may not ask for them.
    let ev = w
        .obs
        .expect(|m| m.topic == topics::events("acme", "task.resumed"))
        .await;
    assert_eq!(ev.json()["org"], "acme");
    let other = w.obs.collect(QUIET, |m| m.json()["org"] == "globex").await;
    assert!(other.is_empty(), "globex events reached acme: {other:?}");
    assert_eq!(w.obs.subscribe("extbus/events/globex/#").await, vec![0x87]);
    let replay = w.obs.command("events/replay", json!({"from_seq": 0})).await;
    let orgs: Vec<&str> = replay["result"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{replay}"))
        .iter()
        .map(|e| e["org"].as_str().unwrap_or_default())
        .collect();
    assert!(!orgs.is_empty(), "acme's own task events replay: {replay}");
    assert!(orgs.iter().all(|o| *o == "acme"), "{orgs:?}");
    w.b.stop().await;
}

#[tokio::test]
async fn org_limited_operators_and_extensions_hear_no_task_of_another_org() {
    let w = world().await;
    let blocked = "extbus/tasks/blocked/vm/create";
    // globex's task was announced first; only acme's reaches the acme operator.
    let heard: Vec<Value> =
        w.op.collect(QUIET, |m| m.topic == blocked)
            .await
            .iter()
            .map(|m| m.json()["id"].clone())
            .collect();
    assert_eq!(
        heard,
        vec![w.ours["id"].clone()],
        "notices to the acme operator"
    );
    // An acme extension answering vm.create (for acme) hears nothing of globex's next task.
    w.b.add_principal("ext-acme", &[Role::Extension], &["acme"]);
    let ext = w.b.client("ext-acme").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "orgs": ["acme"]}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(ext.subscribe(topics::TASKS_BLOCKED_ALL).await, vec![1]);
    let g2 = submit(&w.globex, "g-2", "globex").await;
    let a2 = submit(&w.plat, "a-2", "acme").await;
    let n = ext.expect_on(blocked).await.json();
    assert_eq!(n["id"], a2["result"]["id"], "first notice is acme's: {n}");
    let leaked = ext
        .collect(QUIET, |m| m.json()["id"] == g2["result"]["id"])
        .await;
    assert!(leaked.is_empty(), "globex notice reached ext-acme");
    // Resolutions too: the operator hears acme's, not globex's.
    for (t, action) in [(&w.theirs, "abort"), (&w.ours, "cancel")] {
        let r = w
            .admin
            .command(&format!("tasks/{}/{action}", id(t)), json!({}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let resolved: Vec<Value> =
        w.op.collect(QUIET, |m| m.topic == topics::tasks_resolved("vm.create"))
            .await
            .iter()
            .map(|m| m.json()["id"].clone())
            .collect();
    assert_eq!(
        resolved,
        vec![w.ours["id"].clone()],
        "resolutions to the acme operator"
    );
    w.b.stop().await;
}
