//! A property test of the entity lifecycle against a model: random sequences of create,
//! update (current or stale revision, valid or invalid content), resolve, delete and get over
//! real MQTT, with a restart now and then; every reply's outcome, state and revision must be
//! the model's, and at the end a query lists exactly the model's entities.

use extbus_tests::{BusClient, TestBroker};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const TYPE_ID: &str = "urn:extbus:type:acme:box:1.0.0";

#[derive(Debug, Clone)]
enum Op {
    Create {
        nodes: i64,
    },
    Update {
        pick: usize,
        stale: bool,
        nodes: i64,
    },
    Resolve {
        pick: usize,
    },
    Delete {
        pick: usize,
        stale: Option<bool>,
    },
    Get {
        pick: usize,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (-1i64..4).prop_map(|nodes| Op::Create { nodes }),
        4 => (any::<usize>(), any::<bool>(), -1i64..4)
            .prop_map(|(pick, stale, nodes)| Op::Update { pick, stale, nodes }),
        1 => any::<usize>().prop_map(|pick| Op::Resolve { pick }),
        2 => (any::<usize>(), proptest::option::of(any::<bool>()))
            .prop_map(|(pick, stale)| Op::Delete { pick, stale }),
        2 => any::<usize>().prop_map(|pick| Op::Get { pick }),
        1 => Just(Op::Restart),
    ]
}

/// What the model knows of one entity.
#[derive(Debug, Clone)]
struct Model {
    revision: u64,
    nodes: i64,
}

impl Model {
    fn state(&self) -> &'static str {
        if self.nodes >= 1 {
            "resolved"
        } else {
            "resolution_error"
        }
    }
}

async fn start(b: Option<TestBroker>) -> (TestBroker, Arc<BusClient>) {
    let b = match b {
        Some(b) => b.restart().await,
        None => {
            let b = TestBroker::start().await;
            let ext = b.client("extension").await;
            let r = ext
                .command(
                    "register",
                    json!({"entity_types": [{"vendor": "acme", "nss": "box",
                    "version": "1.0.0", "schema": {"type": "object", "required": ["nodes"],
                    "properties": {"nodes": {"type": "integer", "minimum": 1}}},
                    "access": {"read": ["platform"], "write": ["platform"]}}]}),
                )
                .await;
            assert_eq!(r["ok"], true, "{r}");
            b
        }
    };
    let p = b.client("platform").await;
    (b, p)
}

fn check(r: &Value, want: Option<(&str, u64)>, code: &str) -> Result<(), TestCaseError> {
    match want {
        Some((state, revision)) => {
            prop_assert_eq!(&r["ok"], &json!(true), "{}", r);
            prop_assert_eq!(&r["result"]["state"], &json!(state), "{}", r);
            prop_assert_eq!(&r["result"]["revision"], &json!(revision), "{}", r);
        }
        None => {
            prop_assert_eq!(&r["ok"], &json!(false), "{}", r);
            prop_assert_eq!(&r["error"]["code"], &json!(code), "{}", r);
        }
    }
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (mut b, mut p) = start(None).await;
    let mut model: BTreeMap<String, Model> = BTreeMap::new();
    // Ids ever created, deleted ones included (they must stay not_found).
    let mut ids: Vec<String> = Vec::new();
    for op in ops {
        let pick = |i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()].clone());
        match op {
            Op::Create { nodes } => {
                let r = p
                    .command(
                        "entities/create",
                        json!({"type": TYPE_ID, "org": "acme",
                        "name": "n", "entity": {"nodes": nodes}}),
                    )
                    .await;
                let m = Model { revision: 1, nodes };
                check(&r, Some((m.state(), 1)), "")?;
                let id = r["result"]["id"].as_str().unwrap_or_default().to_string();
                ids.push(id.clone());
                model.insert(id, m);
            }
            Op::Update {
                pick: i,
                stale,
                nodes,
            } => {
                let Some(id) = pick(i) else { continue };
                let current = model.get(&id).map_or(1, |m| m.revision);
                let rev = if stale {
                    current.saturating_sub(1)
                } else {
                    current
                };
                let r = p
                    .command(
                        &format!("entities/{id}/update"),
                        json!({"revision": rev, "entity": {"nodes": nodes}}),
                    )
                    .await;
                match model.get_mut(&id) {
                    None => check(&r, None, "not_found")?,
                    Some(_) if stale => check(&r, None, "conflict")?,
                    Some(m) => {
                        m.revision += 1;
                        m.nodes = nodes;
                        check(&r, Some((m.state(), m.revision)), "")?;
                    }
                }
            }
            Op::Resolve { pick: i } => {
                let Some(id) = pick(i) else { continue };
                let r = p
                    .command(&format!("entities/{id}/resolve"), json!({}))
                    .await;
                match model.get(&id) {
                    None => check(&r, None, "not_found")?,
                    Some(m) => check(&r, Some((m.state(), m.revision)), "")?,
                }
            }
            Op::Delete { pick: i, stale } => {
                let Some(id) = pick(i) else { continue };
                let current = model.get(&id).map_or(1, |m| m.revision);
                let body = match stale {
                    None => json!({}),
                    Some(true) => json!({"revision": current + 1}),
                    Some(false) => json!({"revision": current}),
                };
                let r = p.command(&format!("entities/{id}/delete"), body).await;
                match model.get(&id) {
                    None => check(&r, None, "not_found")?,
                    Some(_) if stale == Some(true) => check(&r, None, "conflict")?,
                    Some(m) => {
                        check(&r, Some(("in_deletion", m.revision)), "")?;
                        model.remove(&id);
                    }
                }
            }
            Op::Get { pick: i } => {
                let Some(id) = pick(i) else { continue };
                let r = p.command(&format!("entities/{id}/get"), json!({})).await;
                match model.get(&id) {
                    None => check(&r, None, "not_found")?,
                    Some(m) => {
                        check(&r, Some((m.state(), m.revision)), "")?;
                        prop_assert_eq!(&r["result"]["entity"]["nodes"], &json!(m.nodes));
                    }
                }
            }
            Op::Restart => {
                drop(p);
                (b, p) = start(Some(b)).await;
            }
        }
    }
    let q = p.command("entities/query", json!({"limit": 1000})).await;
    let listed: Vec<String> = q["result"]["entities"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let want: Vec<String> = model.keys().cloned().collect();
    prop_assert_eq!(listed, want, "query lists the model's entities in id order");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn entities_follow_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(run(ops))?;
    }
}
