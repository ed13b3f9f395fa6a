//! Registered rules: a registration replaces the owner's earlier rules (in memory at once, in
//! the store on commit), is forced to name its owner, feeds the ACL registrations, and never
//! changes tasks already blocked.

mod common;

use common::{rule, Fx, T0};
use extbus_callouts::Rules;
use extbus_schema::tasks::{DefaultAction, TaskAction, TaskState};

#[test]
fn register_replaces_the_owners_rules_and_forces_the_owner() {
    let mut fx = Fx::new(vec![rule(
        "vm.create",
        "cfg-ext",
        50,
        1_000,
        2_000,
        DefaultAction::Abort,
    )]);
    let mut txn = fx.store.txn();
    let specs = vec![
        rule(
            "vm.create",
            "someone-else",
            10,
            1_000,
            2_000,
            DefaultAction::Resume,
        ),
        rule("vm.delete", "", 10, 1_000, 2_000, DefaultAction::Resume),
    ];
    let stored = fx.engine.register(&mut txn, "ext-a", specs).unwrap();
    assert!(stored
        .iter()
        .all(|r| r.extension.as_deref() == Some("ext-a")));
    // Visible to the same batch at once.
    let (t, _) = fx
        .engine
        .submit(&mut txn, "p", common::req("r1", "vm.create"), T0)
        .unwrap();
    assert_eq!(
        t.stages,
        vec![vec!["cfg-ext".to_string()], vec!["ext-a".to_string()]]
    );
    txn.commit().unwrap();
    fx.store.flush().unwrap();
    let regs = fx.engine.rules().registrations();
    assert_eq!(regs["ext-a"].len(), 2);
    assert!(regs["cfg-ext"].contains("vm.create"));
    let mine = fx.engine.rules().registered_by("ext-a");
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.iter().all(|r| r.extension.as_deref() == Some("ext-a")));

    let mut txn = fx.store.txn();
    fx.engine
        .register(
            &mut txn,
            "ext-a",
            vec![rule(
                "vm.stop",
                "x",
                10,
                1_000,
                2_000,
                DefaultAction::Resume,
            )],
        )
        .unwrap();
    txn.commit().unwrap();
    fx.store.flush().unwrap();
    let regs = fx.engine.rules().registrations();
    assert_eq!(regs["ext-a"].iter().collect::<Vec<_>>(), vec!["vm.stop"]);
    assert!(fx.engine.rules().stages("vm.delete", "acme").is_empty());
    // What is stored is what is in memory.
    let reloaded = Rules::load(&fx.store, Vec::new()).unwrap();
    assert_eq!(reloaded.registered_by("ext-a").len(), 1);
    assert_eq!(
        reloaded.registered_by("ext-a"),
        fx.engine.rules().registered_by("ext-a")
    );

    // The blocked task keeps its stages although ext-a no longer has a rule for it.
    let (t1, _) = fx
        .act("cfg-ext", &t.id, TaskAction::Resume, T0 + 1)
        .unwrap();
    assert_eq!(t1.stage, 1);
    let (t2, _) = fx.act("ext-a", &t.id, TaskAction::Resume, T0 + 2).unwrap();
    assert_eq!(t2.state, TaskState::Resumed);

    // An empty registration removes everything the owner registered.
    let mut txn = fx.store.txn();
    fx.engine.register(&mut txn, "ext-a", Vec::new()).unwrap();
    txn.commit().unwrap();
    assert!(!fx.engine.rules().registrations().contains_key("ext-a"));
    assert!(Rules::load(&fx.store, Vec::new())
        .unwrap()
        .registered_by("ext-a")
        .is_empty());
    fx.assert_consistent();
}

#[test]
fn register_refuses_a_bad_owner_name() {
    let mut fx = Fx::new(Vec::new());
    let mut txn = fx.store.txn();
    let err = fx
        .engine
        .register(&mut txn, "bad\0name", Vec::new())
        .unwrap_err();
    assert_eq!(err.code, extbus_schema::ErrorCode::InvalidName);
    assert!(txn.is_empty());
}

#[test]
fn org_limited_rules_block_only_their_orgs() {
    let mut r = rule("vm.create", "ext", 50, 1_000, 2_000, DefaultAction::Abort);
    r.orgs = vec!["globex".into()];
    let fx = Fx::new(vec![r]);
    let (t, _) = fx.submit("r1", "vm.create", T0); // org acme
    assert_eq!(t.state, TaskState::Resumed);
    let mut other = common::req("r2", "vm.create");
    other.org = "globex".into();
    let (t, _) = fx.batch(|e, txn| e.submit(txn, "p", other, T0)).unwrap();
    assert_eq!(t.state, TaskState::Blocked);
}
