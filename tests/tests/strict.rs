//! Closed command bodies over real MQTT: an unknown field is a `schema_violation` that names
//! it (with a suggestion when one is close), changes nothing, and the broker keeps serving.

use extbus_tests::TestBroker;
use serde_json::json;

#[tokio::test]
async fn a_manifest_typo_is_refused_by_name_and_registers_nothing() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"callouts": [{"operation": "vm.create", "timeout_ms": 600_000}]}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "schema_violation", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("unknown field `callouts`"), "{msg}");
    assert!(msg.contains("did you mean `rules`?"), "{msg}");

    // Nothing was registered: the operation does not block.
    let p = b.client("platform").await;
    let submit = json!({"request_id": "r1", "operation": "vm.create", "org": "acme"});
    let s = p.command("tasks/submit", submit.clone()).await;
    assert_eq!(s["result"]["state"], "resumed", "{s}");

    // An unknown field on a task command is refused the same way; the right form still works.
    let bad = p
        .command(
            "tasks/submit",
            json!({"request_id": "r2", "operation": "vm.create", "org": "acme", "orgs": ["acme"]}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "schema_violation", "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `org`?"),
        "{bad}"
    );
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600_000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let s = p
        .command(
            "tasks/submit",
            json!({"request_id": "r3", "operation": "vm.create", "org": "acme"}),
        )
        .await;
    assert_eq!(s["result"]["state"], "blocked", "{s}");
    b.stop().await;
}
