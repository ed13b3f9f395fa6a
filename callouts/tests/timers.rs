//! Deadlines and renotify through `due` / `renotify_due`, and durability: tasks, indexes and
//! registered rules survive closing and re-opening the store, and deadlines that passed while
//! it was closed are due at the first call.

mod common;

use common::{rule, Fx, RENOTIFY, T0};
use extbus_callouts::{Engine, EngineConfig, Rules, Store, TASK_STAGE_ADVANCED, TASK_TIMED_OUT};
use extbus_schema::tasks::{DefaultAction, TaskAction, TaskState};

const OP: &str = "vapp.instantiate";

#[test]
fn timeout_applies_each_default_action() {
    for (action, state) in [
        (DefaultAction::Abort, TaskState::Aborted),
        (DefaultAction::Cancel, TaskState::Cancelled),
        (DefaultAction::Resume, TaskState::Resumed),
    ] {
        let fx = Fx::new(vec![rule(OP, "ext", 50, 1_000, 5_000, action)]);
        let (t, _) = fx.submit("r1", OP, T0);
        assert!(fx.due(T0 + 999).is_empty(), "not due before the deadline");
        let effects = fx.due(T0 + 1_000);
        assert_eq!(effects.len(), 1);
        let done = &effects[0].resolved[0];
        assert_eq!(done.state, state);
        assert_eq!(done.resolved_by.as_deref(), Some("timeout"));
        let last = done.history.last().unwrap();
        assert_eq!(
            (last.by.as_str(), last.action.as_str(), last.stage),
            ("timeout", "timeout", Some(0))
        );
        let kinds: Vec<_> = effects[0].events.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(kinds, [TASK_TIMED_OUT.to_string(), format!("task.{state}")]);
        assert_eq!(fx.store.get(&t.id).unwrap().as_ref(), Some(done));
        assert_eq!(fx.store.next_wakeup().unwrap(), None);
        assert!(fx.due(T0 + 10_000).is_empty(), "applied once");
        // A late resolution by the extension: the same action is acknowledged, another conflicts.
        let same = match action {
            DefaultAction::Abort => TaskAction::Abort,
            DefaultAction::Cancel => TaskAction::Cancel,
            DefaultAction::Resume => TaskAction::Resume,
        };
        assert!(fx.act("ext", &t.id, same, T0 + 2_000).unwrap().1.is_empty());
        let other = if same == TaskAction::Abort {
            TaskAction::Resume
        } else {
            TaskAction::Abort
        };
        assert!(fx.act("ext", &t.id, other, T0 + 2_000).is_err());
        fx.assert_consistent();
    }
}

#[test]
fn timeout_with_resume_on_a_stage_that_is_not_the_last_starts_the_next() {
    let fx = Fx::new(vec![
        rule(OP, "first", 50, 1_000, 5_000, DefaultAction::Resume),
        rule(OP, "second", 10, 2_000, 5_000, DefaultAction::Cancel),
    ]);
    let (t, _) = fx.submit("r1", OP, T0);
    let effects = fx.due(T0 + 1_500);
    let t1 = &effects[0].blocked[0];
    assert_eq!(
        (t1.state, t1.stage, t1.deadline),
        (TaskState::Blocked, 1, Some(T0 + 3_500))
    );
    let kinds: Vec<_> = effects[0].events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, [TASK_TIMED_OUT, TASK_STAGE_ADVANCED]);
    fx.assert_consistent();
    let effects = fx.due(T0 + 3_500);
    assert_eq!(effects[0].resolved[0].state, TaskState::Cancelled);
    assert_eq!(
        fx.store.get(&t.id).unwrap().unwrap().resolved_by.as_deref(),
        Some("timeout")
    );
    fx.assert_consistent();
}

#[test]
fn due_takes_the_earliest_first_up_to_the_limit() {
    let fx = Fx::new(vec![
        rule(OP, "ext", 50, 1_000, 5_000, DefaultAction::Abort),
        rule("vm.delete", "ext", 50, 500, 5_000, DefaultAction::Abort),
    ]);
    let (a, _) = fx.submit("a", OP, T0); // deadline T0 + 1000
    let (b, _) = fx.submit("b", "vm.delete", T0); // deadline T0 + 500
    let (c, _) = fx.submit("c", OP, T0 + 100); // deadline T0 + 1100
    fx.act("ext", &b.id, TaskAction::Resume, T0 + 1).unwrap();
    assert_eq!(fx.store.next_wakeup().unwrap(), Some(T0 + 1_000));
    let first = fx.batch(|e, txn| e.due(txn, T0 + 5_000, 1)).unwrap();
    assert_eq!(first[0].resolved[0].id, a.id);
    let rest = fx.due(T0 + 5_000);
    assert_eq!(
        rest.iter()
            .map(|e| e.resolved[0].id.clone())
            .collect::<Vec<_>>(),
        vec![c.id]
    );
    fx.assert_consistent();
}

#[test]
fn renotify_announces_waiting_tasks_again_and_reschedules() {
    let fx = Fx::new(vec![rule(
        OP,
        "ext",
        50,
        600_000,
        900_000,
        DefaultAction::Abort,
    )]);
    let (t, _) = fx.submit("r1", OP, T0);
    let (u, _) = fx.submit("r2", OP, T0 + 10);
    fx.act("ext", &u.id, TaskAction::Abort, T0 + 20).unwrap();
    let renotify = |now| fx.batch(|e, txn| e.renotify_due(txn, now, 100)).unwrap();
    assert!(renotify(T0 + RENOTIFY - 1).is_empty());
    let again = renotify(T0 + RENOTIFY + 7);
    assert_eq!(again, vec![fx.store.get(&t.id).unwrap().unwrap()]);
    assert_eq!(
        fx.store.index_entries(&t.id).unwrap().renotify,
        vec![T0 + 2 * RENOTIFY + 7]
    );
    assert_eq!(fx.store.next_wakeup().unwrap(), Some(T0 + 2 * RENOTIFY + 7));
    assert!(renotify(T0 + RENOTIFY + 8).is_empty());
    assert_eq!(renotify(T0 + 2 * RENOTIFY + 7).len(), 1);
    fx.assert_consistent();
    // Resolving removes the renotify entry.
    fx.act("ext", &t.id, TaskAction::Resume, T0 + 100_000)
        .unwrap();
    assert!(renotify(T0 + 10 * RENOTIFY).is_empty());
    fx.assert_consistent();
}

#[test]
fn renotify_off_schedules_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rules = Rules::new(vec![rule(
        OP,
        "ext",
        50,
        1_000,
        5_000,
        DefaultAction::Abort,
    )])
    .unwrap();
    let engine = Engine::new(
        rules,
        EngineConfig {
            renotify_ms: 0,
            ..EngineConfig::default()
        },
    );
    let mut txn = store.txn();
    let (t, _) = engine
        .submit(&mut txn, "p", common::req("r", OP), T0)
        .unwrap();
    txn.commit().unwrap();
    assert!(store.index_entries(&t.id).unwrap().renotify.is_empty());
    assert_eq!(store.next_wakeup().unwrap(), Some(T0 + 1_000));
    assert_eq!(engine.next_wakeup(&store), Some(T0 + 1_000));
    assert!(store.verify().unwrap().is_empty());
    // An explicit period still works for callers that pass their own.
    let mut txn = store.txn();
    assert!(engine
        .renotify_due_every(&mut txn, T0 + 10_000, 500, 10)
        .unwrap()
        .is_empty());
    assert!(!txn.commit().unwrap(), "nothing to write");
}

#[test]
fn tasks_indexes_and_rules_survive_reopen_and_missed_deadlines_fire() {
    let mut fx = Fx::new(vec![rule(
        OP,
        "ext",
        50,
        1_000,
        5_000,
        DefaultAction::Cancel,
    )]);
    let (t, _) = fx.submit("r1", OP, T0);
    let (done, _) = fx.submit("r2", OP, T0);
    fx.act("ext", &done.id, TaskAction::Abort, T0 + 1).unwrap();
    let mut txn = fx.store.txn();
    let late = rule("vm.delete", "ignored", 5, 700, 800, DefaultAction::Resume);
    fx.engine
        .register(&mut txn, "late-ext", vec![late])
        .unwrap();
    txn.commit().unwrap();
    fx.store.flush().unwrap();
    let before = fx.store.get(&t.id).unwrap();
    let fx = fx.reopen();
    assert_eq!(fx.store.get(&t.id).unwrap(), before);
    assert_eq!(
        fx.store.get(&done.id).unwrap().unwrap().state,
        TaskState::Aborted
    );
    assert_eq!(
        fx.store.index_entries(&t.id).unwrap().deadlines,
        vec![T0 + 1_000]
    );
    assert_eq!(fx.store.next_wakeup().unwrap(), Some(T0 + 1_000));
    assert!(fx.engine.rules().registrations()["late-ext"].contains("vm.delete"));
    fx.assert_consistent();
    // The broker was down past the deadline: the first call applies it.
    let effects = fx.due(T0 + 3_600_000);
    assert_eq!(effects[0].resolved[0].id, t.id);
    assert_eq!(effects[0].resolved[0].state, TaskState::Cancelled);
    // Idempotency keys survive too.
    assert_eq!(fx.submit("r1", OP, T0 + 3_600_001).0.id, t.id);
    let fx = fx.reopen();
    assert_eq!(fx.store.next_wakeup().unwrap(), None);
    fx.assert_consistent();
}

#[test]
fn spread_renotify_spreads_a_burst_over_one_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rules = Rules::new(vec![rule(
        "vm.create",
        "ext",
        50,
        600_000,
        600_000,
        DefaultAction::Abort,
    )])
    .unwrap();
    let period = 10_000;
    let engine = Engine::new(
        rules,
        EngineConfig {
            renotify_ms: period,
            renotify_spread: true,
        },
    );
    let mut txn = store.txn();
    let mut ids = Vec::new();
    for n in 0..1000 {
        let (t, _) = engine
            .submit(
                &mut txn,
                "p",
                common::req(&format!("r{n}"), "vm.create"),
                T0,
            )
            .unwrap();
        ids.push(t.id);
    }
    txn.commit().unwrap();
    let mut buckets = [0usize; 10];
    for id in &ids {
        let at = store.index_entries(id).unwrap().renotify[0];
        let offset = at - T0;
        assert!(
            (period / 2..period / 2 + period).contains(&offset),
            "{offset}"
        );
        buckets[((offset - period / 2) * 10 / period) as usize] += 1;
    }
    // 100 expected per tenth of the period; none is empty or holds a burst.
    assert!(
        buckets.iter().all(|b| (50..=150).contains(b)),
        "{buckets:?}"
    );
}
