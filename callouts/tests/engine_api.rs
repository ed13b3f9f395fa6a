//! Engine entry points and edges that the scenario and model tests do not reach: committed
//! reads through the engine, submitter names, extend exactly to the max, `Effects::extend`,
//! task ids carrying their submit time.

mod common;

use common::{req, rule, Fx, T0};
use extbus_callouts::Effects;
use extbus_schema::tasks::{DefaultAction, TaskQuery, TaskState};
use extbus_schema::ErrorCode;

#[test]
fn get_and_query_through_the_engine_see_committed_tasks() {
    let fx = Fx::new(vec![rule(
        "vm.create",
        "ext",
        50,
        10_000,
        60_000,
        DefaultAction::Abort,
    )]);
    let (t, _) = fx.submit("r-1", "vm.create", T0);
    let got = fx.engine.get(&fx.store, &t.id).unwrap().expect("stored");
    assert_eq!(got.id, t.id);
    assert_eq!(got.state, TaskState::Blocked);
    assert!(fx.engine.get(&fx.store, "no-such-task").unwrap().is_none());
    let all = fx.engine.query(&fx.store, &TaskQuery::default()).unwrap();
    assert_eq!(all.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), [t.id]);
}

#[test]
fn an_empty_or_nul_submitter_is_an_invalid_name_and_stores_nothing() {
    let fx = Fx::new(vec![rule(
        "vm.create",
        "ext",
        50,
        10_000,
        60_000,
        DefaultAction::Abort,
    )]);
    for who in ["", "a\0b"] {
        let r = fx.batch(|e, t| e.submit(t, who, req("r", "vm.create"), T0));
        match r {
            Err(e) => assert_eq!(e.code, ErrorCode::InvalidName, "{who:?}"),
            Ok((t, _)) => panic!("{who:?} accepted: {t:?}"),
        }
    }
    assert!(fx
        .engine
        .query(&fx.store, &TaskQuery::default())
        .unwrap()
        .is_empty());
    fx.assert_consistent();
}

#[test]
fn extending_exactly_to_the_max_is_not_a_clamp() {
    let fx = Fx::new(vec![rule(
        "vm.create",
        "ext",
        50,
        10_000,
        60_000,
        DefaultAction::Abort,
    )]);
    let (t, _) = fx.submit("r", "vm.create", T0);
    let (t2, _) = fx.extend("ext", &t.id, 60_000, T0).unwrap();
    assert_eq!(t2.deadline, Some(T0 + 60_000));
    assert_eq!(t2.history.last().unwrap().message, None, "exactly the max");
    let (t3, _) = fx.extend("ext", &t.id, 60_001, T0).unwrap();
    assert_eq!(t3.deadline, Some(T0 + 60_000));
    assert!(
        t3.history
            .last()
            .unwrap()
            .message
            .as_deref()
            .is_some_and(|m| m.contains("clamped")),
        "{:?}",
        t3.history.last()
    );
}

#[test]
fn effects_extend_appends_in_order() {
    let fx = Fx::new(vec![rule(
        "vm.create",
        "ext",
        50,
        10_000,
        60_000,
        DefaultAction::Abort,
    )]);
    let (_, mut a) = fx.submit("a", "vm.create", T0);
    let (_, b) = fx.submit("b", "vm.create", T0);
    let (ta, tb) = (a.blocked[0].id.clone(), b.blocked[0].id.clone());
    let (ea, eb) = (a.events.len(), b.events.len());
    a.extend(b);
    let ids: Vec<&str> = a.blocked.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [ta.as_str(), tb.as_str()]);
    assert_eq!(a.events.len(), ea + eb);
    assert_eq!(a.events.last().unwrap().1.id, tb);
    let mut r = Effects::default();
    r.extend(a.clone());
    assert_eq!(r.resolved.len(), a.resolved.len());
    assert_eq!(r.blocked.len(), 2);
}

#[test]
fn task_ids_are_uuid_v7_of_the_submit_time() {
    let fx = Fx::new(vec![rule(
        "vm.create",
        "ext",
        50,
        10_000,
        60_000,
        DefaultAction::Abort,
    )]);
    for (i, now) in [T0 + 123, T0 + 98_765].into_iter().enumerate() {
        let (t, _) = fx.submit(&format!("r-{i}"), "vm.create", now);
        // UUID v7: the first 48 bits are the Unix time in milliseconds, then version 7.
        let hex: String = t.id.chars().filter(|c| *c != '-').collect();
        assert_eq!(
            u64::from_str_radix(&hex[..12], 16).unwrap(),
            now,
            "{}",
            t.id
        );
        assert_eq!(&hex[12..13], "7", "{}", t.id);
    }
}
