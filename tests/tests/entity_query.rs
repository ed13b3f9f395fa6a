//! `entities/query` over real MQTT: pages in id (creation) order, by type and by org, each
//! page continuing after the last entity of the one before.

use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};

const TYPE_ID: &str = "urn:extbus:type:acme:cluster:1.0.0";

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

fn id_of(e: &Value) -> String {
    e["id"].as_str().expect("entity id").to_string()
}

async fn create(p: &BusClient, name: &str, entity: Value) -> Value {
    p.command(
        "entities/create",
        json!({"type": TYPE_ID, "org": "acme", "name": name, "entity": entity}),
    )
    .await
}

async fn setup() -> (
    TestBroker,
    std::sync::Arc<BusClient>,
    std::sync::Arc<BusClient>,
) {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"entity_types": [{"vendor": "acme", "nss": "cluster", "version": "1.0.0",
                "schema": {"type": "object"},
                "access": {"read": ["platform"], "write": ["platform"]}}]}),
        )
        .await;
    ok(&r);
    let plat = b.client("platform").await;
    (b, ext, plat)
}

#[tokio::test]
async fn query_pages_in_id_order() {
    let (_b, _ext, plat) = setup().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = create(&plat, &format!("e{i}"), json!({"spec": {"nodes": 1}})).await;
        ids.push(id_of(ok(&e)));
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = plat
            .command(
                "entities/query",
                json!({"type": TYPE_ID, "limit": 2, "after": after}),
            )
            .await;
        let page = ok(&q);
        seen.extend(page["entities"].as_array().unwrap().iter().map(id_of));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    // By org, in one page: the same order.
    let q = plat.command("entities/query", json!({"org": "acme"})).await;
    let by_org: Vec<String> = ok(&q)["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(by_org, ids);
    assert!(ok(&q)["next"].is_null());
}
