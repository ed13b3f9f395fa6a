//! The Rust cluster sample driven end to end against a real broker: a platform creates a
//! cluster, the sample's `post_create` hook fills its status, `scale` resizes it and answers
//! the sizes as the behavior's result, and the history shows who changed what.

use extbus_samples::{cluster, Opts};
use extbus_schema::{topics, Role};
use extbus_tests::TestBroker;
use serde_json::{json, Value};

#[tokio::test]
async fn the_cluster_sample_answers_its_hook_and_behavior() {
    let b = TestBroker::start().await;
    b.add_principal("clusters", &[Role::Extension], &["*"]);
    let owner = cluster::ClusterOwner::start(&Opts::new(b.mqtt, "clusters", "clusters"))
        .await
        .expect("sample starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(owner.serve(async {
        let _ = stopped.await;
    }));
    let plat = b.client("platform").await;
    let outcomes = topics::outcomes("platform");

    let r = plat
        .command(
            "entities/create",
            json!({"type": cluster::TYPE_ID, "org": "acme", "name": "prod",
                   "entity": {"spec": {"nodes": 3, "admin_password": "do-not-show"}}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let e = r["result"].clone();
    let id = e["id"].as_str().unwrap().to_string();
    let hook = e["hook"]["task"].as_str().unwrap().to_string();
    plat.expect(|m| m.topic == outcomes && m.json()["id"] == hook.as_str())
        .await;
    let get = |plat: std::sync::Arc<extbus_tests::BusClient>, id: String| async move {
        plat.command(&format!("entities/{id}/get"), json!({})).await["result"].clone()
    };
    let got: Value = get(plat.clone(), id.clone()).await;
    assert_eq!(got["state"], "resolved", "{got}");
    assert_eq!(got["entity"]["status"]["phase"], "ready");
    assert_eq!(
        got["entity"]["status"]["endpoint"],
        "https://prod.clusters.example"
    );
    assert!(!got.to_string().contains("do-not-show"));

    let bad = plat
        .command(
            &format!("entities/{id}/behaviors/scale"),
            json!({"arguments": {"nodes": 500}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation", "{bad}");
    let t = plat
        .command(
            &format!("entities/{id}/behaviors/scale"),
            json!({"arguments": {"nodes": 5}}),
        )
        .await;
    let task = t["result"]["id"].as_str().expect("a task").to_string();
    let o = plat
        .expect(|m| m.topic == outcomes && m.json()["id"] == task.as_str())
        .await
        .json();
    assert_eq!(o["state"], "resumed", "{o}");
    assert_eq!(
        (o["result"]["from"].clone(), o["result"]["to"].clone()),
        (json!(3), json!(5))
    );
    let got: Value = get(plat.clone(), id.clone()).await;
    assert_eq!(got["entity"]["spec"]["nodes"], 5);
    assert_eq!(got["entity"]["status"]["phase"], "scaled");
    let who: Vec<(String, String)> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap().into(),
                h["by"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("create", "platform"),
        ("post_create.resumed", "clusters"),
        ("behavior:scale", "platform"),
        ("update", "clusters"),
        ("behavior:scale.resumed", "clusters"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(who, want);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    b.stop().await;
}
