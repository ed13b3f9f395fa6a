//! The planner over a real sled store against a naive filter over every object: the same
//! objects for every random query, hidden entries included, after sets and deletes.

use super::*;
use crate::metadata::{load, store};
use extbus_callouts::Trees;
use extbus_schema::query::{parse, Selectors};
use proptest::prelude::*;

fn entry(domain: Domain, ns: &str, key: &str, v: TypedValue) -> Entry {
    Entry {
        domain,
        namespace: ns.into(),
        key: key.into(),
        value: v,
        read_only: false,
    }
}

fn value() -> impl Strategy<Value = TypedValue> {
    prop_oneof![
        (-3i32..4).prop_map(|n| TypedValue::Number(n as f64 / 2.0)),
        prop::sample::select(vec!["a", "ab", "b", "", "a\u{0}b"])
            .prop_map(|s| TypedValue::String(s.into())),
        any::<bool>().prop_map(TypedValue::Boolean),
    ]
}

/// Entries of one object, unique on (domain, namespace, key).
fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let one = (
        any::<bool>(),
        prop::sample::select(vec!["x", "y"]),
        prop::sample::select(vec!["k", "m"]),
        value(),
    )
        .prop_map(|(p, ns, k, v)| {
            let d = if p { Domain::Provider } else { Domain::Tenant };
            entry(d, ns, k, v)
        });
    prop::collection::vec(one, 0..5).prop_map(|mut v| {
        let mut seen = Vec::new();
        v.retain(|e| {
            let id = (e.domain, e.namespace.clone(), e.key.clone());
            let fresh = !seen.contains(&id);
            seen.push(id);
            fresh
        });
        v
    })
}

fn query() -> impl Strategy<Value = String> {
    let clause = (
        prop::sample::select(vec!["", "x|", "y|"]),
        prop::sample::select(vec!["k", "m"]),
        prop::sample::select(vec!["==", "!=", "=lt=", "=le=", "=gt=", "=ge="]),
        prop::sample::select(vec!["0", "-1", "0.5", "'a'", "'b'", "''", "true", "false"]),
        prop::sample::select(vec!["", "'a*'", "'*'"]),
    )
        .prop_map(|(ns, k, op, v, pre)| {
            // A prefix takes == or != only.
            if !pre.is_empty() && (op == "==" || op == "!=") {
                format!("{ns}{k}{op}{pre}")
            } else {
                format!("{ns}{k}{op}{v}")
            }
        });
    prop::collection::vec((clause, prop::sample::select(vec![";", ","])), 1..4).prop_map(|cs| {
        let mut q = String::new();
        for (i, (c, sep)) in cs.iter().enumerate() {
            if i > 0 {
                q.push_str(sep);
            }
            q.push_str(c);
        }
        q
    })
}

fn id(kind: Kind, i: usize) -> String {
    match kind {
        Kind::Entity => format!("urn:extbus:entity:{i:04}"),
        Kind::Task | Kind::Content => format!("task-{i:04}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_index_finds_what_a_naive_filter_finds(
        objects in prop::collection::vec(entries(), 1..12),
        rewrites in prop::collection::vec((0usize..12, entries()), 0..4),
        queries in prop::collection::vec(query(), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let trees = Trees::open(&db).unwrap();
        // Entities and tasks with the same entries: a query of one kind never finds the other.
        let mut txn = Txn::new(trees.clone());
        for (i, es) in objects.iter().enumerate() {
            for kind in [Kind::Entity, Kind::Task] {
                store(&mut txn, &id(kind, i), &[], es).unwrap();
            }
        }
        txn.commit().unwrap();
        // Later batches replace some objects' entries (an empty list deletes them all).
        let mut truth: Vec<Vec<Entry>> = objects.clone();
        for (i, es) in &rewrites {
            if *i >= truth.len() { continue; }
            let mut txn = Txn::new(trees.clone());
            let oid = id(Kind::Entity, *i);
            let old = load(&txn, &oid).unwrap();
            store(&mut txn, &oid, &old, es).unwrap();
            txn.commit().unwrap();
            truth[*i] = es.clone();
        }
        let txn = Txn::new(trees.clone());
        for q in &queries {
            let e = parse(q, Selectors::Metadata).unwrap();
            for all_orgs in [false, true] {
                let sight = Sight { kind: Kind::Entity, all_orgs };
                let planned = plan(&txn, sight, &e).unwrap();
                let found: Vec<String> = planned.ids.iter()
                    .filter(|oid| matches(sight, &e, &load(&txn, oid).unwrap()))
                    .cloned().collect();
                let want: Vec<String> = truth.iter().enumerate()
                    .filter(|(_, es)| {
                        let visible: Vec<Entry> = es.iter()
                            .filter(|x| all_orgs || x.domain == Domain::Tenant).cloned().collect();
                        e.eval(&|ns: Option<&str>, key: &str| visible.iter()
                            .filter(|x| x.key == key && ns.is_none_or(|n| n == x.namespace))
                            .map(|x| &x.value).collect())
                    })
                    .map(|(i, _)| id(Kind::Entity, i))
                    .collect();
                prop_assert_eq!(&found, &want, "{} all_orgs={}", q, all_orgs);
                if planned.exact {
                    let all: Vec<String> = planned.ids.iter().cloned().collect();
                    prop_assert_eq!(&all, &want, "exact walk of {} all_orgs={}", q, all_orgs);
                }
                // Every candidate is an entity, and candidates never include a hidden-only match.
                prop_assert!(planned.ids.iter().all(|i| i.starts_with("urn:extbus:entity:")));
            }
        }
    }
}

#[test]
fn an_equality_walks_only_its_own_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let trees = Trees::open(&db).unwrap();
    let mut txn = Txn::new(trees);
    for i in 0..100 {
        let es = [
            entry(
                Domain::Tenant,
                "billing",
                "cc",
                TypedValue::String(format!("cc-{}", i % 10)),
            ),
            entry(
                Domain::Tenant,
                "ops",
                "tier",
                TypedValue::Number((i % 2) as f64),
            ),
        ];
        store(&mut txn, &id(Kind::Entity, i), &[], &es).unwrap();
    }
    let sight = Sight {
        kind: Kind::Entity,
        all_orgs: false,
    };
    let e = parse("ops|tier==1;billing|cc=='cc-3'", Selectors::Metadata).unwrap();
    let p = plan(&txn, sight, &e).unwrap();
    // The cost-center clause (10 objects) is walked, not the tier one (50).
    assert_eq!(p.ids.len(), 10);
    assert_eq!(p.plan["walked"], json!(["billing|cc=='cc-3'"]));
}

#[test]
fn a_lower_and_an_upper_bound_walk_one_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let trees = Trees::open(&db).unwrap();
    let mut txn = Txn::new(trees);
    for i in 0..1000 {
        let es = [entry(
            Domain::Tenant,
            "ops",
            "seq",
            TypedValue::Number(i as f64),
        )];
        store(&mut txn, &id(Kind::Entity, i), &[], &es).unwrap();
    }
    let sight = Sight {
        kind: Kind::Entity,
        all_orgs: false,
    };
    let e = parse("ops|seq=ge=100;ops|seq=lt=150", Selectors::Metadata).unwrap();
    let p = plan(&txn, sight, &e).unwrap();
    assert_eq!(p.ids.len(), 50);
    assert_eq!(p.plan["walked"], json!(["ops|seq=ge=100;ops|seq=lt=150"]));
    assert!(p
        .ids
        .iter()
        .all(|i| matches(sight, &e, &load(&txn, i).unwrap())));
}

#[test]
fn a_range_holds_on_one_value_and_is_exactly_its_walk() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let trees = Trees::open(&db).unwrap();
    let mut txn = Txn::new(trees);
    let n = TypedValue::Number;
    // Values on both sides of [2, 5): in two domains, and in two namespaces.
    let split_domains = [
        entry(Domain::Tenant, "ops", "seq", n(1.0)),
        entry(Domain::Provider, "ops", "seq", n(10.0)),
    ];
    let split_namespaces = [
        entry(Domain::Tenant, "ops", "seq", n(1.0)),
        entry(Domain::Tenant, "dev", "seq", n(10.0)),
    ];
    let inside = [entry(Domain::Tenant, "dev", "seq", n(3.0))];
    for (i, es) in [&split_domains[..], &split_namespaces, &inside]
        .iter()
        .enumerate()
    {
        store(&mut txn, &id(Kind::Entity, i), &[], es).unwrap();
    }
    for (q, all_orgs) in [
        ("ops|seq=ge=2;ops|seq=lt=5", true),
        ("seq=ge=2;seq=lt=5", false),
        ("seq=ge=2;seq=lt=5", true),
    ] {
        let sight = Sight {
            kind: Kind::Entity,
            all_orgs,
        };
        let e = parse(q, Selectors::Metadata).unwrap();
        let p = plan(&txn, sight, &e).unwrap();
        let want: Vec<String> = if q.starts_with("ops") {
            vec![]
        } else {
            vec![id(Kind::Entity, 2)]
        };
        assert!(p.exact, "{q}");
        assert_eq!(p.ids.iter().cloned().collect::<Vec<_>>(), want, "{q}");
        // The evaluator agrees object by object.
        for i in 0..3 {
            let oid = id(Kind::Entity, i);
            assert_eq!(
                matches(sight, &e, &load(&txn, &oid).unwrap()),
                want.contains(&oid),
                "{q} on {oid}"
            );
        }
    }
}
