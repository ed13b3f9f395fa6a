//! Metadata benchmarks against the real binary (figures printed, nothing asserted, every reply
//! checked): durable `metadata/<id>/set` throughput in entries/s (5 entries a set, 64 sets in
//! flight); then N entities with 5 entries each, bulk-loaded into the store while the broker
//! is stopped (through the same `entities::put` / `metadata::store` the coordinator uses),
//! and query p50/p99 over MQTT one at a time: an equality returning 50, and a range returning
//! 50; and the index's space overhead.
//! Run: `cargo bench -p extbus --bench metadata` (BENCH_METADATA_ENTITIES, default 200,000;
//! BENCH_METADATA_QUERIES, default 500; BENCH_METADATA_SETS, default 4,000;
//! BENCH_METADATA_DIR keeps the store there and, when it already holds a bulk load, measures
//! the queries on it without loading again).

mod common;

use common::{
    client, dir_size, env_usize, pct, recv_within, store_root, until_serving, Broker, Client, Sock,
};
use extbus::entities::Stored;
use extbus_callouts::{TreeId, Trees, Txn};
use extbus_schema::entities::{entity_id, Entity, EntityState};
use extbus_schema::metadata::{Domain, Entry};
use extbus_schema::query::TypedValue;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

const REPLIES: &str = "extbus/out/platform/replies";
const TYPE_ID: &str = "urn:extbus:type:acme:bench:1.0.0";
const IN_FLIGHT: usize = 64;
const STALL_SECS: u64 = 60;
/// Objects per equality value, and the width of a range query.
const HITS: usize = 50;

fn parse(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("a reply that is not JSON")
}

async fn call(p: &mut Client, suffix: &str, mut body: Value, corr: &str) -> Value {
    body["correlation_id"] = json!(corr);
    p.client
        .publish(
            format!("extbus/in/platform/{suffix}"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
    loop {
        let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, "reply").await;
        let r = parse(&payload);
        if topic == REPLIES && r["correlation_id"] == corr {
            assert_eq!(r["ok"], true, "{r}");
            return r;
        }
    }
}

async fn register(port: u16) {
    let mut ext = client(
        port,
        "extension",
        &["extbus/out/extension/replies"],
        Sock::Default,
    )
    .await;
    let manifest = json!({"entity_types": [{"vendor": "acme", "nss": "bench", "version": "1.0.0",
        "schema": {"type": "object"}, "access": {"read": ["platform"], "write": ["platform"]}}]});
    ext.client
        .publish(
            "extbus/in/extension/register",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await
        .unwrap();
    let (_, p) = recv_within(&mut ext.rx, STALL_SECS, "register reply").await;
    assert_eq!(parse(&p)["ok"], true);
}

/// The five entries of entity number `i` of `n`.
fn entries(i: usize, n: usize) -> Vec<Entry> {
    let e = |ns: &str, key: &str, value| Entry {
        domain: Domain::Tenant,
        namespace: ns.into(),
        key: key.into(),
        value,
        read_only: false,
    };
    vec![
        // HITS entities share each cost center.
        e(
            "billing",
            "cost-center",
            TypedValue::String(format!("cc-{}", i % (n / HITS).max(1))),
        ),
        e("ops", "seq", TypedValue::Number(i as f64)),
        e(
            "ops",
            "tier",
            TypedValue::String(["gold", "silver", "bronze"][i % 3].into()),
        ),
        e("ops", "managed", TypedValue::Boolean(i.is_multiple_of(2))),
        e(
            "owner",
            "team",
            TypedValue::String(format!("team-{}", i % 100)),
        ),
    ]
}

/// Durable sets of 5 entries on `ids`, `IN_FLIGHT` outstanding; entries/s.
async fn set_rate(p: &mut Client, ids: &[String], sets: usize) -> f64 {
    let body = |k: usize| {
        // Their own namespaces, so the query phase finds only the bulk-loaded entities.
        let es: Vec<Entry> = entries(k, ids.len())
            .into_iter()
            .map(|mut e| {
                e.namespace = format!("set-{}", e.namespace);
                e
            })
            .collect();
        serde_json::to_vec(&json!({"entries": es, "correlation_id": k})).unwrap()
    };
    let t = Instant::now();
    let (mut sent, mut done) = (0, 0);
    let send = |k: usize| format!("extbus/in/platform/metadata/{}/set", ids[k % ids.len()]);
    while sent < sets.min(IN_FLIGHT) {
        p.client
            .publish(send(sent), QoS::AtLeastOnce, false, body(sent))
            .await
            .unwrap();
        sent += 1;
    }
    while done < sets {
        let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, "set replies").await;
        if topic != REPLIES {
            continue;
        }
        let r = parse(&payload);
        assert_eq!(r["ok"], true, "{r}");
        done += 1;
        if sent < sets {
            p.client
                .publish(send(sent), QoS::AtLeastOnce, false, body(sent))
                .await
                .unwrap();
            sent += 1;
        }
    }
    (sets * 5) as f64 / t.elapsed().as_secs_f64()
}

/// Writes `n` entities with their entries straight into the stopped broker's store.
fn bulk_load(data: &Path, n: usize) -> Vec<String> {
    let db = sled::Config::new()
        .path(data.join("store"))
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .unwrap();
    let trees = Trees::open(&db).unwrap();
    let mut ids = Vec::with_capacity(n);
    let now = 1_795_341_600_000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let mut txn = Txn::new(trees.clone());
        for &i in chunk {
            let id = entity_id(&uuid::Uuid::now_v7().to_string());
            let e = Entity {
                id: id.clone(),
                type_id: TYPE_ID.into(),
                org: "acme".into(),
                name: format!("e{i}"),
                state: EntityState::Resolved,
                revision: 1,
                owner: "platform".into(),
                created_at: now,
                updated_at: now,
                entity: json!({"spec": {"n": i}}),
                errors: Vec::new(),
                history: Vec::new(),
                hook: None,
            };
            extbus::entities::put(
                &mut txn,
                None,
                &Stored {
                    entity: e,
                    sealed: None,
                },
            )
            .unwrap();
            extbus::metadata::store(&mut txn, &id, &[], &entries(i, n)).unwrap();
            ids.push(id);
        }
        txn.commit().unwrap();
    }
    db.flush().unwrap();
    let bytes = |t: TreeId| -> (usize, usize) {
        trees
            .tree(t)
            .iter()
            .flatten()
            .fold((0, 0), |(c, b), (k, v)| (c + 1, b + k.len() + v.len()))
    };
    let (ik, ib) = bytes(TreeId::MetadataIndex);
    let (_, mb) = bytes(TreeId::Metadata);
    let (_, eb) = bytes(TreeId::Entities);
    println!(
        "metadata: index {ik} keys, {:.1} MiB ({:.0} B an entry), entries {:.1} MiB, entities {:.1} MiB: index = {:.0}% of entries + entities",
        ib as f64 / (1 << 20) as f64,
        ib as f64 / (n * 5) as f64,
        mb as f64 / (1 << 20) as f64,
        eb as f64 / (1 << 20) as f64,
        100.0 * ib as f64 / (mb + eb) as f64
    );
    ids
}

/// `queries` sequential queries made by `q(k)`, each expecting `HITS` entities; p50, p99 ms.
async fn latency(p: &mut Client, queries: usize, q: impl Fn(usize) -> String) -> (f64, f64) {
    let mut lat = Vec::with_capacity(queries);
    for k in 0..queries {
        let t = Instant::now();
        let r = call(
            p,
            "entities/query",
            json!({"metadata": q(k), "limit": 100}),
            &format!("q{k}"),
        )
        .await;
        lat.push(t.elapsed().as_micros() as u64);
        let got = r["result"]["entities"].as_array().unwrap().len();
        assert_eq!(got, HITS, "{}: {}", q(k), r["result"]["plan"]);
    }
    lat.sort_unstable();
    (pct(&lat, 50.0), pct(&lat, 99.0))
}

/// The set phase, then the bulk load of `n` entities into the stopped broker's store.
fn fill(rt: &tokio::runtime::Runtime, data: &Path, n: usize, sets: usize) {
    // Durable set throughput on 1,000 entities made over the bus.
    let broker = Broker::start(data, "");
    let rate = rt.block_on(async {
        register(broker.mqtt).await;
        let mut p = client(broker.mqtt, "platform", &[REPLIES], Sock::Default).await;
        let mut ids = Vec::new();
        for i in 0..1_000 {
            let body = json!({"type": TYPE_ID, "org": "acme", "name": "s", "entity": {}});
            let r = call(&mut p, "entities/create", body, &format!("c{i}")).await;
            ids.push(r["result"]["id"].as_str().unwrap().to_string());
        }
        set_rate(&mut p, &ids, sets).await
    });
    println!("metadata: set, durable, {IN_FLIGHT} sets of 5 in flight: {rate:.0} entries/s ({sets} sets)");
    drop(broker);

    let t = Instant::now();
    bulk_load(data, n);
    println!(
        "metadata: bulk-loaded {n} entities x 5 entries in {:.1} s; store {:.1} MiB",
        t.elapsed().as_secs_f64(),
        dir_size(data) as f64 / (1 << 20) as f64
    );
}

fn main() {
    let n = env_usize("BENCH_METADATA_ENTITIES", 200_000).max(HITS * 2);
    let queries = env_usize("BENCH_METADATA_QUERIES", 500);
    let sets = env_usize("BENCH_METADATA_SETS", 4_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = store_root("BENCH_METADATA_DIR", &tmp);
    let data = root.join("data");
    let loaded = root.join("loaded");
    let n = match std::fs::read_to_string(&loaded) {
        Ok(text) => {
            let n = text.trim().parse().expect("a count in the loaded marker");
            println!(
                "metadata: reusing the store in {} ({n} entities)",
                root.display()
            );
            n
        }
        Err(_) => {
            fill(&rt, &data, n, sets);
            std::fs::write(&loaded, n.to_string()).unwrap();
            n
        }
    };
    let broker = Broker::start(&data, "");
    let groups = (n / HITS).max(1);
    let (ep50, ep99, rp50, rp99) = rt.block_on(async {
        let opened = until_serving(broker.mqtt, 600).await;
        println!(
            "metadata: serving {:.1} s after the ports were bound",
            opened.as_secs_f64()
        );
        let mut p = client(broker.mqtt, "platform", &[REPLIES], Sock::Default).await;
        let (ep50, ep99) = latency(&mut p, queries, |_| {
            format!(
                "billing|cost-center=='cc-{}'",
                rand::random::<usize>() % groups
            )
        })
        .await;
        let (rp50, rp99) = latency(&mut p, queries, |_| {
            let lo = rand::random::<usize>() % (n - HITS);
            format!("ops|seq=ge={lo};ops|seq=lt={}", lo + HITS)
        })
        .await;
        (ep50, ep99, rp50, rp99)
    });
    println!("metadata: equality returning {HITS} of {n}: p50 {ep50:.2} ms, p99 {ep99:.2} ms ({queries} queries)");
    println!("metadata: range returning {HITS} of {n}: p50 {rp50:.2} ms, p99 {rp99:.2} ms ({queries} queries)");
    println!("metadata: RSS after queries {:.0} MiB", broker.rss_mib());
}
