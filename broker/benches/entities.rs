//! Defined-entity benchmarks against the real binary (figures printed, nothing asserted, every
//! reply checked): creates/s (create + resolve, durable) with 64 in flight; `get` p50/p99 with
//! N entities stored, one at a time; RSS and store size with N entities of ~1 KiB; and the
//! time from start to serving them. Clients at default socket options.
//! Run: `cargo bench -p extbus --bench entities` (BENCH_ENTITIES, default 20,000;
//! BENCH_GETS, default 2,000; BENCH_ENTITIES_DIR keeps the store there and, when it already
//! holds one, measures the restart and gets on it without creating again).

mod common;

use common::{
    client, dir_size, env_usize, pct, recv_within, store_root, until_serving, Broker, Client, Sock,
};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Instant;

const CREATE: &str = "extbus/in/platform/entities/create";
const REPLIES: &str = "extbus/out/platform/replies";
const TYPE_ID: &str = "urn:extbus:type:acme:bench:1.0.0";
const IN_FLIGHT: usize = 64;
const STALL_SECS: u64 = 30;

fn parse(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("a reply that is not JSON")
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
        "schema": {"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "properties": {"nodes": {"type": "integer", "minimum": 1},
                                                      "blob": {"type": "string"}}},
            "password": {"type": "string", "x-extbus-secure": true}}},
        "access": {"read": ["platform"], "write": ["platform"]}}]});
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
    let r = parse(&p);
    assert_eq!(r["ok"], true, "{r}");
}

/// ~1 KiB of content, one secure field.
fn body(i: usize) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"type": TYPE_ID, "org": "acme", "name": format!("e{i}"),
        "entity": {"spec": {"nodes": 3, "blob": "x".repeat(900)}, "password": "p"},
        "correlation_id": i}),
    )
    .unwrap()
}

/// Creates `n` entities with `IN_FLIGHT` outstanding; returns their ids and creates/s.
async fn create_all(p: &mut Client, n: usize) -> (Vec<String>, f64) {
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut sent = 0;
    while sent < n.min(IN_FLIGHT) {
        p.client
            .publish(CREATE, QoS::AtLeastOnce, false, body(sent))
            .await
            .unwrap();
        sent += 1;
    }
    while ids.len() < n {
        let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, "create replies").await;
        if topic != REPLIES {
            continue;
        }
        let r = parse(&payload);
        assert!(
            r["ok"] == true && r["result"]["state"] == "resolved",
            "create failed: {r}"
        );
        ids.push(r["result"]["id"].as_str().unwrap().to_string());
        if sent < n {
            p.client
                .publish(CREATE, QoS::AtLeastOnce, false, body(sent))
                .await
                .unwrap();
            sent += 1;
        }
    }
    (ids, n as f64 / t.elapsed().as_secs_f64())
}

/// `gets` sequential gets of random stored entities; p50 and p99 in ms.
async fn get_latency(p: &mut Client, ids: &[String], gets: usize) -> (f64, f64) {
    let mut lat = Vec::with_capacity(gets);
    for i in 0..gets {
        let id = &ids[rand::random::<usize>() % ids.len()];
        let t = Instant::now();
        let q = serde_json::to_vec(&json!({"correlation_id": format!("g{i}")})).unwrap();
        p.client
            .publish(
                format!("extbus/in/platform/entities/{id}/get"),
                QoS::AtLeastOnce,
                false,
                q,
            )
            .await
            .unwrap();
        loop {
            let (topic, payload) = recv_within(&mut p.rx, STALL_SECS, "get reply").await;
            let r = parse(&payload);
            if topic == REPLIES && r["correlation_id"] == format!("g{i}") {
                assert_eq!(r["ok"], true, "{r}");
                break;
            }
        }
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    (pct(&lat, 50.0), pct(&lat, 99.0))
}

fn main() {
    let n = env_usize("BENCH_ENTITIES", 20_000);
    let gets = env_usize("BENCH_GETS", 2_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = store_root("BENCH_ENTITIES_DIR", &tmp);
    let data = root.join("data");
    let id_file = root.join("ids.txt");
    let ids: Vec<String> = match std::fs::read_to_string(&id_file) {
        Ok(text) => {
            let ids: Vec<String> = text.lines().map(str::to_string).collect();
            println!(
                "entities: reusing the store in {} ({} entities)",
                root.display(),
                ids.len()
            );
            ids
        }
        Err(_) => {
            let broker = Broker::start(&data, "");
            let port = broker.mqtt;
            let (ids, rate) = rt.block_on(async {
                register(port).await;
                let mut p = client(port, "platform", &[REPLIES], Sock::Default).await;
                create_all(&mut p, n).await
            });
            println!(
                "entities: create+resolve, durable, {IN_FLIGHT} in flight: {rate:.0}/s ({n} entities)"
            );
            let rss = broker.rss_mib();
            drop(broker);
            println!("entities: {n} stored: RSS {rss:.0} MiB");
            std::fs::write(&id_file, ids.join("\n")).unwrap();
            ids
        }
    };
    let n = ids.len();
    println!(
        "entities: {n} stored: store {:.1} MiB",
        dir_size(&data) as f64 / (1 << 20) as f64
    );
    // Start counts until the first `get` is answered, not until the ports are bound.
    let t = Instant::now();
    let broker = Broker::start(&data, "");
    let port = broker.mqtt;
    let (start, p50, p99) = rt.block_on(async {
        until_serving(port, 300).await;
        let mut p = client(port, "platform", &[REPLIES], Sock::Default).await;
        get_latency(&mut p, &ids, 1).await;
        let start = t.elapsed();
        let (p50, p99) = get_latency(&mut p, &ids, gets).await;
        (start, p50, p99)
    });
    println!(
        "entities: start with {n} stored: {:.2} s",
        start.as_secs_f64()
    );
    println!("entities: get with {n} stored: p50 {p50:.2} ms, p99 {p99:.2} ms ({gets} gets)");
    println!("entities: RSS after gets {:.0} MiB", broker.rss_mib());
}
