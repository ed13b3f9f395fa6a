//! The state machine against the protocol (docs/protocol.md): every row of the state table, stages, idempotent submit
//! and resolve, conflict, forbidden, extend and its clamp, and paged queries.

mod common;

use common::{code, req, rule, Fx, RENOTIFY, T0};
use extbus_callouts::{
    TASK_ABORTED, TASK_BLOCKED, TASK_EXTENDED, TASK_RESUMED, TASK_STAGE_ADVANCED,
};
use extbus_schema::tasks::{DefaultAction, TaskAction, TaskQuery, TaskState};
use extbus_schema::ErrorCode;
use serde_json::json;

const OP: &str = "vapp.instantiate";

fn one_stage() -> Fx {
    Fx::new(vec![rule(
        OP,
        "approver",
        50,
        60_000,
        600_000,
        DefaultAction::Abort,
    )])
}

fn two_stages() -> Fx {
    Fx::new(vec![
        rule(OP, "approver", 50, 60_000, 600_000, DefaultAction::Abort),
        rule(OP, "placer", 10, 10_000, 20_000, DefaultAction::Resume),
    ])
}

#[test]
fn new_to_resumed_when_no_rule_matches_and_nothing_is_stored() {
    let fx = one_stage();
    let (t, fx_) = fx.submit("r1", "vapp.delete", T0);
    assert_eq!(t.state, TaskState::Resumed);
    assert!(t.stages.is_empty() && t.resolved_by.is_none() && t.deadline.is_none());
    assert_eq!(t.history.len(), 1);
    assert_eq!(t.history[0].action, "submit");
    assert!(fx_.is_empty());
    assert_eq!(fx.store.get(&t.id).unwrap(), None);
    assert!(fx.store.query(&TaskQuery::default()).unwrap().is_empty());
    assert_eq!(fx.store.next_wakeup().unwrap(), None);
}

#[test]
fn new_to_blocked_is_stored_indexed_and_announced() {
    let fx = one_stage();
    let (t, effects) = fx.submit("r1", OP, T0);
    assert_eq!(t.state, TaskState::Blocked);
    assert_eq!(t.stages, vec![vec!["approver".to_string()]]);
    assert_eq!(t.deadline, Some(T0 + 60_000));
    assert_eq!(t.default_action, DefaultAction::Abort);
    assert_eq!(t.submitted_by, "platform-1");
    assert_eq!(effects.blocked, vec![t.clone()]);
    assert_eq!(effects.events[0].0, TASK_BLOCKED);
    assert_eq!(fx.store.get(&t.id).unwrap(), Some(t.clone()));
    let idx = fx.store.index_entries(&t.id).unwrap();
    assert_eq!(idx.deadlines, vec![T0 + 60_000]);
    assert_eq!(idx.renotify, vec![T0 + RENOTIFY]);
    assert!(idx.blocked);
    assert_eq!(fx.store.next_wakeup().unwrap(), Some(T0 + RENOTIFY));
    fx.assert_consistent();
}

#[test]
fn blocked_to_resumed_cancelled_aborted_by_resolution() {
    for (action, state, event) in [
        (TaskAction::Resume, TaskState::Resumed, TASK_RESUMED),
        (TaskAction::Cancel, TaskState::Cancelled, "task.cancelled"),
        (TaskAction::Abort, TaskState::Aborted, TASK_ABORTED),
    ] {
        let fx = one_stage();
        let (t, _) = fx.submit("r1", OP, T0);
        let msg = Some("because".to_string());
        let (done, effects) = fx
            .batch(|e, txn| {
                e.resolve(
                    txn,
                    "approver",
                    false,
                    &t.id,
                    action,
                    msg,
                    Some(json!({"k": 1})),
                    T0 + 5,
                )
            })
            .unwrap();
        assert_eq!(done.state, state);
        assert_eq!(done.resolved_by.as_deref(), Some("approver"));
        assert_eq!(done.message.as_deref(), Some("because"));
        assert_eq!(done.deadline, None);
        assert_eq!(effects.resolved, vec![done.clone()]);
        assert_eq!(effects.events.len(), 1);
        assert_eq!(effects.events[0].0, event);
        let last = done.history.last().unwrap();
        assert_eq!(
            (last.by.as_str(), last.action.as_str(), last.stage),
            ("approver", action.as_str(), Some(0))
        );
        let expect_result = if action == TaskAction::Resume {
            json!({"k": 1})
        } else {
            json!(null)
        };
        assert_eq!(done.result, expect_result);
        assert_eq!(fx.store.get(&t.id).unwrap(), Some(done.clone()));
        assert_eq!(fx.store.index_entries(&t.id).unwrap(), Default::default());
        assert_eq!(fx.store.next_wakeup().unwrap(), None);
        fx.assert_consistent();
    }
}

#[test]
fn two_stages_pass_in_priority_order_and_merge_results() {
    let fx = two_stages();
    let (t, _) = fx.submit("r1", OP, T0);
    assert_eq!(
        t.stages,
        vec![vec!["approver".to_string()], vec!["placer".to_string()]]
    );
    assert_eq!(
        code(fx.act("placer", &t.id, TaskAction::Resume, T0)),
        ErrorCode::Forbidden
    );

    let (t1, effects) = fx
        .resume_with("approver", &t.id, json!({"a": 1, "b": 1}), T0 + 100)
        .unwrap();
    assert_eq!((t1.state, t1.stage), (TaskState::Blocked, 1));
    assert_eq!(t1.deadline, Some(T0 + 100 + 10_000));
    assert_eq!(t1.stage_started_at, T0 + 100);
    assert_eq!(t1.default_action, DefaultAction::Resume);
    assert_eq!(effects.blocked, vec![t1.clone()]);
    assert_eq!(effects.events[0].0, TASK_STAGE_ADVANCED);
    assert!(effects.resolved.is_empty());
    let idx = fx.store.index_entries(&t.id).unwrap();
    assert_eq!(idx.deadlines, vec![T0 + 100 + 10_000]);
    assert_eq!(idx.renotify, vec![T0 + 100 + RENOTIFY]);
    fx.assert_consistent();

    // The first stage's principal repeating its resume is acknowledged again, unchanged.
    let (again, effects) = fx
        .act("approver", &t.id, TaskAction::Resume, T0 + 200)
        .unwrap();
    assert_eq!(again, t1);
    assert!(effects.is_empty());
    // ... but it may not decide the second stage otherwise.
    assert_eq!(
        code(fx.act("approver", &t.id, TaskAction::Abort, T0 + 200)),
        ErrorCode::Forbidden
    );

    let (t2, effects) = fx
        .resume_with("placer", &t.id, json!({"b": 2, "c": 3}), T0 + 300)
        .unwrap();
    assert_eq!(t2.state, TaskState::Resumed);
    assert_eq!(t2.resolved_by.as_deref(), Some("placer"));
    assert_eq!(t2.result, json!({"a": 1, "b": 2, "c": 3}));
    assert_eq!(effects.resolved.len(), 1);
    let stages: Vec<_> = t2
        .history
        .iter()
        .map(|h| (h.action.as_str(), h.stage))
        .collect();
    assert_eq!(
        stages,
        [("submit", None), ("resume", Some(0)), ("resume", Some(1))]
    );
    let (again, effects) = fx
        .act("approver", &t.id, TaskAction::Resume, T0 + 400)
        .unwrap();
    assert_eq!(
        (again.state, effects.is_empty()),
        (TaskState::Resumed, true)
    );
    fx.assert_consistent();
}

#[test]
fn equal_priorities_form_one_stage_any_member_decides() {
    let fx = Fx::new(vec![
        rule(OP, "quota", 50, 90_000, 600_000, DefaultAction::Resume),
        rule(OP, "approver", 50, 60_000, 100_000, DefaultAction::Cancel),
    ]);
    let (t, _) = fx.submit("r1", OP, T0);
    assert_eq!(
        t.stages,
        vec![vec!["approver".to_string(), "quota".to_string()]]
    );
    assert_eq!(t.deadline, Some(T0 + 60_000));
    assert_eq!(t.default_action, DefaultAction::Cancel);
    let (done, _) = fx.act("quota", &t.id, TaskAction::Resume, T0 + 1).unwrap();
    assert_eq!(done.state, TaskState::Resumed);
}

#[test]
fn submit_is_idempotent_per_submitter_across_and_within_batches() {
    let fx = one_stage();
    let (t, _) = fx.submit("r1", OP, T0);
    let (same, effects) = fx.submit("r1", OP, T0 + 1);
    assert_eq!((same, effects.is_empty()), (t.clone(), true));
    let (aborted, _) = fx
        .act("approver", &t.id, TaskAction::Abort, T0 + 2)
        .unwrap();
    let (now, _) = fx.submit("r1", OP, T0 + 3);
    assert_eq!(now, aborted, "the same task, in whatever state it is now");

    // Two submits with one request id in ONE batch yield one task.
    let (a, b) = fx.batch(|e, txn| {
        let a = e.submit(txn, "platform-1", req("r2", OP), T0).unwrap();
        let b = e.submit(txn, "platform-1", req("r2", OP), T0).unwrap();
        (a, b)
    });
    assert_eq!(a.0.id, b.0.id);
    assert_eq!((a.1.blocked.len(), b.1.is_empty()), (1, true));

    // Another submitter's identical request id is its own task.
    let (other, _) = fx
        .batch(|e, txn| e.submit(txn, "platform-2", req("r2", OP), T0))
        .unwrap();
    assert_ne!(other.id, a.0.id);
    assert_eq!(fx.store.query(&TaskQuery::default()).unwrap().len(), 3);
    fx.assert_consistent();
}

#[test]
fn repeating_a_resolution_is_acknowledged_a_different_one_conflicts() {
    let fx = one_stage();
    let (t, _) = fx.submit("r1", OP, T0);
    let (done, _) = fx
        .act("approver", &t.id, TaskAction::Abort, T0 + 1)
        .unwrap();
    let (again, effects) = fx
        .act("approver", &t.id, TaskAction::Abort, T0 + 2)
        .unwrap();
    assert_eq!((again, effects.is_empty()), (done.clone(), true));
    let err = fx
        .act("approver", &t.id, TaskAction::Resume, T0 + 3)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(
        err.message.contains("aborted by approver"),
        "{}",
        err.message
    );
    assert_eq!(
        code(fx.act("operator", &t.id, TaskAction::Cancel, T0 + 3)),
        ErrorCode::Conflict
    );
    assert_eq!(
        code(fx.extend("approver", &t.id, 1_000, T0 + 3)),
        ErrorCode::Conflict
    );
    assert_eq!(fx.store.get(&t.id).unwrap(), Some(done));
}

#[test]
fn strangers_are_forbidden_operators_may_resolve() {
    let fx = one_stage();
    let (t, _) = fx.submit("r1", OP, T0);
    assert_eq!(
        code(fx.act("stranger", &t.id, TaskAction::Resume, T0)),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(fx.extend("stranger", &t.id, 5, T0)),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(fx.act("approver", "no-such-task", TaskAction::Resume, T0)),
        ErrorCode::NotFound
    );
    let (done, _) = fx
        .act("operator", &t.id, TaskAction::Cancel, T0 + 1)
        .unwrap();
    assert_eq!(
        (done.state, done.resolved_by.as_deref()),
        (TaskState::Cancelled, Some("operator"))
    );
    assert_eq!(
        code(fx.act("stranger", &t.id, TaskAction::Cancel, T0)),
        ErrorCode::Forbidden
    );
    let err = fx
        .batch(|e, txn| {
            e.resolve(
                txn,
                "approver",
                false,
                &t.id,
                TaskAction::Extend,
                None,
                None,
                T0,
            )
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaViolation);
}

#[test]
fn extend_moves_the_deadline_and_clamps_at_the_max() {
    let fx = two_stages();
    let (t, _) = fx.submit("r1", OP, T0);
    let (e1, effects) = fx.extend("approver", &t.id, 300_000, T0 + 1_000).unwrap();
    assert_eq!(
        (e1.state, e1.deadline),
        (TaskState::Blocked, Some(T0 + 301_000))
    );
    assert_eq!(effects.events[0].0, TASK_EXTENDED);
    assert!(effects.blocked.is_empty() && effects.resolved.is_empty());
    assert_eq!(
        fx.store.index_entries(&t.id).unwrap().deadlines,
        vec![T0 + 301_000]
    );
    // Shorter is allowed too: the deadline is now + extend_ms.
    let (e2, _) = fx.extend("approver", &t.id, 10, T0 + 2_000).unwrap();
    assert_eq!(e2.deadline, Some(T0 + 2_010));
    // Beyond the max (600 s from the stage's start): clamped, and the clamp is in history.
    let (e3, _) = fx
        .extend("approver", &t.id, 10_000_000, T0 + 3_000)
        .unwrap();
    assert_eq!(e3.deadline, Some(T0 + 600_000));
    let last = e3.history.last().unwrap();
    assert_eq!((last.action.as_str(), last.stage), ("extend", Some(0)));
    assert!(last.message.as_deref().unwrap().contains("clamped"));
    assert_eq!(
        fx.store.index_entries(&t.id).unwrap().deadlines,
        vec![T0 + 600_000]
    );
    fx.assert_consistent();
    // The max of the second stage counts from that stage's start.
    fx.act("approver", &t.id, TaskAction::Resume, T0 + 50_000)
        .unwrap();
    let (e4, _) = fx.extend("placer", &t.id, u64::MAX, T0 + 51_000).unwrap();
    assert_eq!(e4.deadline, Some(T0 + 50_000 + 20_000));
    fx.assert_consistent();
}

#[test]
fn query_filters_and_pages_in_creation_order() {
    let fx = Fx::new(vec![
        rule(OP, "approver", 50, 60_000, 600_000, DefaultAction::Abort),
        rule(
            "vm.delete",
            "approver",
            50,
            60_000,
            600_000,
            DefaultAction::Abort,
        ),
    ]);
    let mut ids = Vec::new();
    for i in 0..7u64 {
        let op = if i % 2 == 0 { OP } else { "vm.delete" };
        ids.push(fx.submit(&format!("r{i}"), op, T0 + i).0.id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort by creation");
    fx.act("approver", &ids[0], TaskAction::Abort, T0 + 10)
        .unwrap();
    fx.act("approver", &ids[3], TaskAction::Resume, T0 + 10)
        .unwrap();

    let all = fx.store.query(&TaskQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|t| &t.id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    let blocked = |after: Option<String>, limit| TaskQuery {
        state: Some(TaskState::Blocked),
        limit: Some(limit),
        after,
        ..Default::default()
    };
    let page1 = fx.store.query(&blocked(None, 2)).unwrap();
    assert_eq!(
        page1.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[2].clone()]
    );
    let page2 = fx.store.query(&blocked(Some(ids[2].clone()), 10)).unwrap();
    assert_eq!(
        page2.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[5].clone(), ids[6].clone()]
    );
    let q = TaskQuery {
        operation: Some("vm.delete".into()),
        ..Default::default()
    };
    assert_eq!(fx.store.query(&q).unwrap().len(), 3);
    let q = TaskQuery {
        state: Some(TaskState::Aborted),
        org: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(fx.store.query(&q).unwrap()[0].id, ids[0]);
    let q = TaskQuery {
        org: Some("globex".into()),
        ..Default::default()
    };
    assert!(fx.store.query(&q).unwrap().is_empty());
}
