//! Registrations per (principal, component): a component's `register` replaces only its own
//! rules and says what it added and removed; switching a principal or a component off takes its
//! rules out of matching; rules stored before components load as component `default`.

mod common;

use common::{rule, Fx, T0};
use extbus_callouts::{Rules, TreeId, DEFAULT_COMPONENT};
use extbus_schema::tasks::{DefaultAction, TaskState};

fn approve(op: &str) -> extbus_schema::tasks::RuleSpec {
    rule(op, "", 50, 1_000, 2_000, DefaultAction::Abort)
}

#[test]
fn components_of_one_principal_keep_their_own_rules() {
    let mut fx = Fx::new(Vec::new());
    let mut txn = fx.store.txn();
    let a = fx
        .engine
        .register_component(&mut txn, "ext", "approver", vec![approve("vm.create")])
        .unwrap();
    assert_eq!(a.added.len(), 1);
    assert!(a.removed.is_empty());
    let g = fx
        .engine
        .register_component(&mut txn, "ext", "greeter", vec![approve("vm.greet")])
        .unwrap();
    assert_eq!(g.stored[0].extension.as_deref(), Some("ext"));
    txn.commit().unwrap();
    // Both stay in force.
    assert_eq!(fx.engine.rules().stages("vm.create", "acme").len(), 1);
    assert_eq!(fx.engine.rules().stages("vm.greet", "acme").len(), 1);

    // Re-registering the approver with another rule removes only its own old rule.
    let mut txn = fx.store.txn();
    let again = fx
        .engine
        .register_component(&mut txn, "ext", "approver", vec![approve("vm.delete")])
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(again.added[0].operation, "vm.delete");
    assert_eq!(again.removed[0].operation, "vm.create");
    assert!(fx.engine.rules().stages("vm.create", "acme").is_empty());
    assert_eq!(fx.engine.rules().stages("vm.greet", "acme").len(), 1);

    let reloaded = Rules::load(&fx.store, Vec::new()).unwrap();
    let comps: Vec<_> = reloaded
        .components()
        .map(|(o, c, r)| (o.to_string(), c.to_string(), r.len()))
        .collect();
    assert_eq!(
        comps,
        [
            ("ext".to_string(), "approver".to_string(), 1),
            ("ext".to_string(), "greeter".to_string(), 1)
        ]
    );
    fx.assert_consistent();
}

#[test]
fn disabled_registrations_match_nothing_new() {
    let mut fx = Fx::new(vec![rule(
        "vm.stop",
        "ext",
        50,
        1_000,
        2_000,
        DefaultAction::Abort,
    )]);
    let mut txn = fx.store.txn();
    fx.engine
        .register_component(&mut txn, "ext", "approver", vec![approve("vm.create")])
        .unwrap();
    txn.commit().unwrap();
    let (waiting, _) = fx.submit("r0", "vm.create", T0);
    assert_eq!(waiting.state, TaskState::Blocked);

    fx.engine.set_disabled("ext", Some("approver"), true);
    assert!(fx.engine.rules().is_disabled("ext", Some("approver")));
    assert!(!fx.engine.rules().is_disabled("ext", None));
    let (t, _) = fx.submit("r1", "vm.create", T0);
    assert_eq!(
        t.state,
        TaskState::Resumed,
        "a disabled component blocks nothing"
    );
    assert_eq!(fx.submit("r2", "vm.stop", T0).0.state, TaskState::Blocked);

    // The whole principal: its config rules too.
    fx.engine.set_disabled("ext", None, true);
    assert_eq!(fx.submit("r3", "vm.stop", T0).0.state, TaskState::Resumed);
    // The ACL still knows its operations: waiting tasks stay visible to it.
    assert!(fx.engine.rules().registrations()["ext"].contains("vm.create"));

    fx.engine.set_disabled("ext", None, false);
    fx.engine.set_disabled("ext", Some("approver"), false);
    assert_eq!(fx.submit("r4", "vm.create", T0).0.state, TaskState::Blocked);
    // The task blocked before the switch is still waiting.
    let w = fx.store.get(&waiting.id).unwrap().unwrap();
    assert_eq!(w.state, TaskState::Blocked);
}

#[test]
fn rules_stored_before_components_become_component_default() {
    let fx = Fx::new(Vec::new());
    let mut spec = approve("vm.create");
    spec.extension = Some("old-ext".into());
    let mut key = b"r/old-ext\0".to_vec();
    key.extend_from_slice(&0u32.to_be_bytes());
    fx.store
        .trees()
        .tree(TreeId::Callouts)
        .insert(key.clone(), serde_json::to_vec(&spec).unwrap())
        .unwrap();
    let fx = fx.reopen();
    let rules = fx.engine.rules();
    assert_eq!(rules.registered_in("old-ext", DEFAULT_COMPONENT).len(), 1);
    assert!(
        fx.store
            .trees()
            .tree(TreeId::Callouts)
            .get(&key)
            .unwrap()
            .is_none(),
        "migrated"
    );
    assert_eq!(rules.stages("vm.create", "acme").len(), 1);
    // Re-registering `default` replaces the migrated rules.
    let mut fx = fx;
    let mut txn = fx.store.txn();
    fx.engine.register(&mut txn, "old-ext", Vec::new()).unwrap();
    txn.commit().unwrap();
    let reloaded = Rules::load(&fx.store, Vec::new()).unwrap();
    assert!(reloaded.registered_by("old-ext").is_empty());
}
