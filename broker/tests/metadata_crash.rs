//! Metadata under `kill -9`: the real binary takes a pipelined stream of metadata sets and
//! deletes and is killed with SIGKILL mid-stream, several times. After each restart every
//! acknowledged entry is found by search, and the index holds nothing stale: a value that was
//! replaced, or an entry that was deleted, is not in it (the plan's candidate count shows it).

mod support;
use support::session::{session, Session};
use support::{free_port, serve_on, Served};

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TYPE_ID: &str = "urn:extbus:type:acme:box:1.0.0";
const ENTITIES: usize = 20;

fn start(dir: &Path, mqtt: u16, http: u16) -> Served {
    serve_on(
        &["--data-dir", dir.to_str().unwrap()],
        mqtt,
        http,
        Stdio::null(),
    )
}

fn num(ns: &str, key: &str, v: u64) -> Value {
    json!({"namespace": ns, "key": key, "value": {"type": "number", "value": v}})
}

impl Session {
    /// The ids a metadata query finds and its plan's candidate count.
    async fn search(&self, tag: &str, q: &str) -> (Vec<String>, u64) {
        let r = self
            .call("entities/query", tag, json!({"metadata": q, "limit": 1000}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        let ids = r["result"]["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        (ids, r["result"]["plan"]["candidates"].as_u64().unwrap())
    }

    /// One entity's entries as (namespace|key) -> value.
    async fn entries(&self, tag: &str, id: &str) -> HashMap<String, Value> {
        let r = self
            .call(&format!("metadata/{id}/get"), tag, json!({}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        r["result"]["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let k = format!(
                    "{}|{}",
                    e["namespace"].as_str().unwrap(),
                    e["key"].as_str().unwrap()
                );
                (k, e["value"]["value"].clone())
            })
            .collect()
    }
}

/// What was acknowledged, checked against a restarted broker.
#[derive(Default)]
struct Acked {
    /// Entity -> every value of `c|v` acknowledged, in order.
    values: HashMap<String, Vec<u64>>,
    /// Entities whose `d|gone` delete was acknowledged.
    deleted: Vec<String>,
}

async fn check(p: &Session, tag: &str, ids: &[String], acked: &Acked) {
    let mut with_gone = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let now = p.entries(&format!("{tag}-g{i}"), id).await;
        if now.contains_key("d|gone") {
            with_gone.push(id.clone());
        }
        let Some(list) = acked.values.get(id) else {
            continue;
        };
        let cur = now["c|v"].as_u64().expect("an acknowledged entry is there");
        let last = *list.last().unwrap();
        // Later sets may have been stored without their reply; never an older one.
        assert!(cur >= last, "{id}: {cur} < acknowledged {last}");
        let (found, n) = p
            .search(&format!("{tag}-s{i}"), &format!("c|v=={cur}"))
            .await;
        assert_eq!((found, n), (vec![id.clone()], 1), "{id} by its value {cur}");
        // A replaced value is not left in the index.
        for old in list.iter().filter(|v| **v != cur) {
            let (found, n) = p
                .search(&format!("{tag}-o{i}-{old}"), &format!("c|v=={old}"))
                .await;
            assert!(
                found.is_empty() && n == 0,
                "{id}: stale index entry for {old}"
            );
        }
    }
    for id in &acked.deleted {
        assert!(!with_gone.contains(id), "{id}: acknowledged delete undone");
    }
    let (mut found, n) = p.search(&format!("{tag}-gone"), "d|gone=='x'").await;
    found.sort();
    with_gone.sort();
    assert_eq!(found, with_gone);
    assert_eq!(
        n as usize,
        with_gone.len(),
        "stale index entries of deleted entries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_are_found_and_nothing_stale_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mqtt, http) = (free_port(), free_port());
    let mut broker = start(&data, mqtt, http);
    let ext = session("extension", mqtt).await;
    let types = json!({"entity_types": [{"vendor": "acme", "nss": "box", "version": "1.0.0",
        "schema": {"type": "object"}, "access": {"read": ["platform"], "write": ["platform"]}}]});
    assert_eq!(ext.call("register", "reg", types).await["ok"], true);
    let p = session("platform", mqtt).await;
    let mut ids = Vec::new();
    for i in 0..ENTITIES {
        let body = json!({"type": TYPE_ID, "org": "acme", "name": "b", "entity": {}});
        let r = p.call("entities/create", &format!("c{i}"), body).await;
        let id = r["result"]["id"].as_str().unwrap().to_string();
        let gone = json!({"entries": [{"namespace": "d", "key": "gone",
                                       "value": {"type": "string", "value": "x"}}]});
        let r = p
            .call(&format!("metadata/{id}/set"), &format!("d{i}"), gone)
            .await;
        assert_eq!(r["ok"], true, "{r}");
        ids.push(id);
    }
    drop(p);

    let mut acked = Acked::default();
    for round in 0..3u64 {
        let p = session("platform", mqtt).await;
        check(&p, &format!("r{round}-before"), &ids, &acked).await;
        let mut sent = Vec::new();
        for j in 0..400u64 {
            let id = &ids[j as usize % ENTITIES];
            let corr = format!("r{round}-m{j}");
            let v = round * 10_000 + j;
            let body = json!({"entries": [num("c", "v", v), num("c", "w", j)]});
            p.send(&format!("metadata/{id}/set"), &corr, body).await;
            sent.push((corr, id.clone(), Some(v)));
            if round == 0 && j % 20 == 7 {
                let corr = format!("r{round}-del{j}");
                let body = json!({"namespace": "d", "key": "gone"});
                let target = &ids[(j as usize / 20) % ENTITIES];
                p.send(&format!("metadata/{target}/delete"), &corr, body)
                    .await;
                sent.push((corr, target.clone(), None));
            }
            if j == 200 {
                let t = Instant::now();
                while !sent.iter().any(|(c, _, _)| p.reply(c).is_some()) {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "no reply in round {round}"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        drop(broker);
        let mut n_acked = 0;
        for (corr, id, v) in &sent {
            let Some(r) = p.reply(corr) else { continue };
            n_acked += 1;
            match v {
                Some(v) => {
                    assert_eq!(r["ok"], true, "{r}");
                    acked.values.entry(id.clone()).or_default().push(*v);
                }
                // A delete of an entry already gone answers not_found and changes nothing.
                None if r["ok"] == true => acked.deleted.push(id.clone()),
                None => assert_eq!(r["error"]["code"], "not_found", "{r}"),
            }
        }
        assert!(
            n_acked > 0,
            "round {round}: nothing acknowledged before the kill"
        );
        broker = start(&data, mqtt, http);
    }
    let p = session("platform", mqtt).await;
    check(&p, "final", &ids, &acked).await;
    drop(broker);
}
