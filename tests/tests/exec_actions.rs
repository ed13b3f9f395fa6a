//! Executable extensions answering custom actions end to end: a real script run by a real
//! broker as `<exe> action <payload_file> <timeout>` for a run invoked over HTTP and MQTT; its
//! answer becomes the run's result, an `error` answer or a failing exit is an `error` run that
//! never shows the script's stderr, and its actions are listed like registered ones.

use extbus::exec::ExecConfig;
use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::path::Path;

const SECRET: &str = "exec-Secret-42";

/// An entry `vmctl` running `path` with actions `reboot` (operator) and `report` (observer).
fn entry(path: &Path) -> ExecConfig {
    let mut e = ExecConfig::new("vmctl", path);
    e.timeout_ms = 20_000;
    e.actions = serde_json::from_value(json!([
        {"name": "reboot", "roles": ["operator"], "timeout_ms": 20000,
         "parameters": {"type": "object", "required": ["mode"], "properties": {
            "mode": {"enum": ["soft", "hard", "fail", "crash"]},
            "password": {"type": "string", "format": "password"}}},
         "success_message": "Rebooted {{resource}} ({{mode}})"},
        {"name": "report", "roles": ["observer"]}]))
    .unwrap();
    e
}

async fn invoke(b: &TestBroker, who: &str, action: &str, body: Value) -> HttpResponse {
    let auth = basic(who, who);
    let target = format!("/api/actions/vmctl/{action}");
    request(
        b.http,
        "POST",
        &target,
        &[("authorization", &auth)],
        body.to_string().as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_answers_actions() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let body = format!(
        r#"echo "$1 $3 $(stat -c %a "$2") $2" > {seen}
cp "$2" {seen}.json
mode=$(grep -o '"mode":"[^"]*"' "$2" | cut -d'"' -f4)
case "$mode" in
  soft) echo '{{"status":"success","message":"rebooted softly"}}' ;;
  hard) echo '{{"status":"success","result":[{{"step":"stop"}},{{"step":"start"}}]}}' ;;
  fail) echo '{{"status":"error","message":"the VM is locked"}}' ;;
  *) echo "boom {SECRET}" >&2; exit 3 ;;
esac"#,
        seen = seen.display()
    );
    let path = extbus_tests::write_script(dir.path(), "vmctl", &body);
    let b = TestBroker::start_with(|c| c.exec = vec![entry(&path)]).await;

    let r = invoke(
        &b,
        "operator",
        "reboot",
        json!({"resource_id": "vm-9",
        "arguments": {"mode": "soft", "password": SECRET}}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let j = r.json();
    assert_eq!(
        (j["status"].clone(), j["message"].clone()),
        (json!("success"), json!("rebooted softly"))
    );
    assert_eq!(j["text"], "Rebooted vm-9 (soft)");
    assert_eq!(j["action"], "vmctl/reboot");
    // Run as `<exe> action <payload_file> <timeout_seconds>`, the file private and removed after.
    let line = std::fs::read_to_string(&seen).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[0], "action", "{line}");
    assert_eq!(parts[1], "20", "{line}");
    assert_eq!(parts[2], "600", "{line}");
    assert!(!Path::new(parts[3]).exists(), "payload file left behind");
    let payload: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.json", seen.display())).unwrap())
            .unwrap();
    assert_eq!(payload["action"], "reboot");
    assert_eq!(payload["resource_id"], "vm-9");
    assert_eq!(payload["arguments"]["password"], SECRET);
    assert_eq!(payload["principal"], "operator");

    let r = invoke(
        &b,
        "operator",
        "reboot",
        json!({"arguments": {"mode": "hard"}}),
    )
    .await;
    assert_eq!(
        r.json()["message"],
        json!([{"step": "stop"}, {"step": "start"}])
    );
    let r = invoke(
        &b,
        "operator",
        "reboot",
        json!({"arguments": {"mode": "fail"}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.json()["status"].clone(), r.json()["message"].clone()),
        (json!("error"), json!("the VM is locked"))
    );
    assert_eq!(r.json()["text"], Value::Null);
    let r = invoke(
        &b,
        "operator",
        "reboot",
        json!({"arguments": {"mode": "crash"}}),
    )
    .await;
    let j = r.json();
    assert_eq!(j["status"], "error", "{j}");
    assert!(j["message"].as_str().unwrap().contains("status 3"), "{j}");
    assert!(!j.to_string().contains(SECRET), "{j}");
    // Checked before the program runs: a bad argument, a wrong role.
    let r = invoke(
        &b,
        "operator",
        "reboot",
        json!({"arguments": {"mode": "sideways"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["details"][0]["path"].clone()),
        (400, json!("/mode"))
    );
    let r = invoke(
        &b,
        "observer",
        "reboot",
        json!({"arguments": {"mode": "soft"}}),
    )
    .await;
    assert_eq!(r.status, 403);

    // Over MQTT too; listed as the entry's `config` component.
    let op = b.client("operator").await;
    let r = op
        .command(
            "actions/vmctl/reboot/invoke",
            json!({"arguments": {"mode": "soft"}}),
        )
        .await;
    assert_eq!(r["result"]["message"], "rebooted softly", "{r}");
    let list = op.command("actions/query", json!({})).await;
    assert_eq!(
        list["result"]["actions"].as_array().unwrap().len(),
        1,
        "{list}"
    );
    assert_eq!(list["result"]["actions"][0]["component"], "config");
    let regs = op
        .command("registrations/query", json!({"principal": "vmctl"}))
        .await;
    assert_eq!(regs["result"]["items"][0]["component"], "config", "{regs}");
    assert_eq!(
        regs["result"]["items"][0]["actions"],
        json!(["reboot", "report"])
    );
    // An observer may run `report`; the script answers any other mode with a failing exit.
    let r = invoke(&b, "observer", "report", json!({})).await;
    assert_eq!(r.json()["status"], "error");
    // The events carry the outcome, never the secret.
    let replay = op
        .command("events/replay", json!({"from_seq": 0, "limit": 100}))
        .await;
    let text = replay.to_string();
    assert!(
        text.contains("action.succeeded") && text.contains("action.failed"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    b.stop().await;
}
