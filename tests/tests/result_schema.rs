//! `result_schema` on callout rules over real MQTT: a resume whose result does not fit its
//! stage's schema is `schema_violation` and the task stays blocked at that stage; a fitting one
//! passes; the history keeps each stage's own result beside the merged one; a schema that does
//! not compile is refused at register.

use extbus_schema::Role;
use extbus_tests::TestBroker;
use serde_json::{json, Value};

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

#[tokio::test]
async fn each_stage_result_must_fit_its_rule_and_is_kept_in_history() {
    let b = TestBroker::start().await;
    b.add_principal("placer", &[Role::Extension], &["acme"]);
    let approver = b.client("extension").await;
    let placer = b.client("placer").await;
    let bad = approver
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "result_schema": {"type": 12}}]}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation", "{bad}");
    assert_eq!(bad["error"]["details"][0]["path"], "/rules/0/result_schema");
    ok(&approver
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "priority": 60, "result_schema": {
                "type": "object", "required": ["approved_by"],
                "properties": {"approved_by": {"type": "string"}}}}]}),
        )
        .await);
    ok(&placer
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "priority": 50, "result_schema": {
                "type": "object", "required": ["host"],
                "properties": {"host": {"type": "string", "pattern": "^h[0-9]+$"}}}}]}),
        )
        .await);
    let plat = b.client("platform").await;
    let t = ok(&plat
        .command(
            "tasks/submit",
            json!({"request_id": "r1", "operation": "vm.create", "org": "acme", "data": {}}),
        )
        .await)
    .clone();
    let id = t["id"].as_str().unwrap().to_string();
    let resume = |who: &str, result: Value| {
        let c = if who == "placer" {
            placer.clone()
        } else {
            approver.clone()
        };
        let path = format!("tasks/{id}/resume");
        async move { c.command(&path, json!({"result": result})).await }
    };

    for wrong in [json!({"approved_by": 7}), json!(null), json!("yes")] {
        let r = resume("extension", wrong).await;
        assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    }
    let r = resume("extension", json!({"approved_by": 3})).await;
    assert_eq!(
        r["error"]["details"][0]["path"], "/result/approved_by",
        "{r}"
    );
    let got = ok(&plat.command(&format!("tasks/{id}/get"), json!({})).await).clone();
    assert_eq!(
        (got["state"].clone(), got["stage"].clone()),
        (json!("blocked"), json!(0))
    );

    let r = resume("extension", json!({"approved_by": "alice", "note": "fine"})).await;
    assert_eq!(ok(&r)["stage"], 1);
    let r = resume("placer", json!({"host": "rack-1"})).await;
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    let r = resume("placer", json!({"host": "h7"})).await;
    let done = ok(&r).clone();
    assert_eq!(done["state"], "resumed");
    assert_eq!(
        done["result"],
        json!({"approved_by": "alice", "note": "fine", "host": "h7"})
    );
    let got = ok(&plat.command(&format!("tasks/{id}/get"), json!({})).await).clone();
    let resumes: Vec<(Value, Value)> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "resume")
        .map(|h| (h["by"].clone(), h["result"].clone()))
        .collect();
    assert_eq!(
        resumes,
        vec![
            (
                json!("extension"),
                json!({"approved_by": "alice", "note": "fine"})
            ),
            (json!("placer"), json!({"host": "h7"})),
        ]
    );
    b.stop().await;
}
