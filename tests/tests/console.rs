//! The operator console in a real browser (headless chromium through chromedriver) against a
//! real broker: sign in with the keyboard, a task submitted over MQTT appears without reload,
//! a bad result is refused before sending, resuming with a result reaches the platform over
//! MQTT, the other pages render at desktop and phone widths, sign-out ends the session; an
//! action runs through its generated form (errors next to their fields, from the browser and
//! from the broker) and a UI plugin's button on a matching task mounts it with its context.
//! The browser log must stay free of errors. Screenshots go to `target/console-shots/`.

use base64::Engine as _;
use extbus_tests::console::{assert_clean_log, assert_fits, scroll_to, shot, sign_in};
use extbus_tests::http::request;
use extbus_tests::webdriver::Browser;
use extbus_tests::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// One browser at a time: two chromiums at once starve small machines.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn broker_with_rule() -> (TestBroker, Arc<BusClient>) {
    let broker = TestBroker::start().await;
    let ext = broker.client("extension").await;
    let r = ext
        .command(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout_ms": 600000}]}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    (broker, ext)
}

#[tokio::test]
async fn tasks_appear_live_and_resolve_with_a_result_then_sign_out() {
    let _one = BROWSER.lock().await;
    let (broker, _ext) = broker_with_rule().await;
    let platform = broker.client("platform").await;
    assert_eq!(
        platform.subscribe("extbus/out/platform/outcomes").await,
        vec![1]
    );
    let b = Browser::start(1280, 800).await;
    b.goto(&format!("http://{}/console/", broker.http)).await;
    b.find("#signin").await;
    b.screenshot(&shot("signin")).await;
    sign_in(&b, &broker, "operator").await;
    b.wait_for("#task-live", |t| t.starts_with("live")).await;
    b.wait_for("#task-list", |t| t.contains("No tasks")).await;

    // Submitted over MQTT, shown without a reload.
    let r = platform
        .command(
            "tasks/submit",
            json!({"request_id": "r-1", "operation": "vm.create", "org": "acme",
                   "subject": "urn:acme:vm:7"}),
        )
        .await;
    assert_eq!(r["result"]["state"], "blocked", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let row = b
        .wait_for("#task-list tbody tr", |t| t.contains("vm.create"))
        .await;
    b.click(&row).await;
    let result = b.find("#resolve-result").await;
    b.screenshot(&shot("tasks")).await;

    // Not JSON: refused next to the field, nothing sent.
    b.keys(&result, "{oops").await;
    b.click(&b.find("#resolve-submit").await).await;
    b.wait_for("#resolve-result-error", |t| t.contains("not valid JSON"))
        .await;
    let auth = extbus_tests::http::basic("admin", "admin");
    let t = request(
        broker.http,
        "GET",
        &format!("/api/tasks/{id}"),
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(t.json()["state"], "blocked");

    b.clear(&result).await;
    b.keys(&result, r#"{"approved_by": "console", "slot": 3}"#)
        .await;
    b.keys(&b.find("#resolve-message").await, "looks fine")
        .await;
    b.click(&b.find("#resolve-submit").await).await;
    let out = platform
        .expect(|m| m.topic == "extbus/out/platform/outcomes")
        .await
        .json();
    assert_eq!(out["id"], id.as_str());
    assert_eq!(out["state"], "resumed");
    assert_eq!(out["resolved_by"], "operator");
    assert_eq!(out["message"], "looks fine");
    assert_eq!(out["result"], json!({"approved_by": "console", "slot": 3}));
    // The outcome reaches the page through the stream too.
    b.wait_for("#task-detail h2", |t| t.contains("resumed"))
        .await;

    b.click(&b.find("a[data-page=events]").await).await;
    b.wait_for("#events-live", |t| t == "live").await;
    b.click(&b.find("#events-older").await).await;
    b.wait_for("tbody tr", |t| t.contains("task.resumed")).await;
    b.screenshot(&shot("events")).await;
    b.click(&b.find("a[data-page=extensions]").await).await;
    b.wait_for("#extensions tbody tr", |t| t.contains("extension"))
        .await;
    b.screenshot(&shot("extensions")).await;
    b.click(&b.find("a[data-page=entities]").await).await;
    b.find("#entity-list").await;
    b.screenshot(&shot("entities")).await;

    // Phone width: everything still fits.
    b.resize(390, 844).await;
    b.click(&b.find("a[data-page=tasks]").await).await;
    b.wait_for("#task-live", |t| t.starts_with("live")).await;
    assert_fits(&b).await;
    b.screenshot(&shot("tasks-phone")).await;
    b.resize(1280, 800).await;

    // Sign-out ends the session: its cookie no longer works.
    let cookie = b.cookie("extbus_session").await.expect("session cookie");
    let header = format!("extbus_session={cookie}");
    let before = request(
        broker.http,
        "GET",
        "/api/tasks",
        &[("cookie", &header)],
        b"",
    )
    .await;
    assert_eq!(before.status, 200);
    b.click(&b.find("#signout").await).await;
    b.wait_for("#signin-error", |t| t.contains("Signed out"))
        .await;
    let after = request(
        broker.http,
        "GET",
        "/api/tasks",
        &[("cookie", &header)],
        b"",
    )
    .await;
    assert_eq!(after.status, 401);
    assert_clean_log(&b, &[]).await;
    b.quit().await;
    broker.stop().await;
}

const PLUGIN_HTML: &str = r#"<!doctype html><meta charset="utf-8"><title>VM tools</title>
<p id="ctx">waiting</p><p id="api"></p>
<script>
addEventListener('message', e => {
  const d = e.data;
  if (!d || d.type !== 'extbus.context') return;
  document.getElementById('ctx').textContent = JSON.stringify({point: d.point,
    id: d.object && d.object.id, operation: d.object && d.object.operation,
    token: typeof d.token === 'string' && d.token.length > 10, api: d.api});
  parent.postMessage({type: 'extbus.notify', level: 'info', text: 'context for ' + d.point}, '*');
  if (d.object) fetch(d.api + '/tasks/' + d.object.id, {headers: {Authorization: 'Bearer ' + d.token}})
    .then(r => r.json()).then(t => { document.getElementById('api').textContent = 'state ' + t.state; });
});
</script>"#;

/// Answers the plugin's service requests with its page, and the action's runs.
fn answer(ext: Arc<BusClient>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wanted = |m: &extbus_tests::Msg| {
                m.topic.starts_with("extbus/services/acme/vm-ui/")
                    || m.topic == "extbus/actions/extension/requests"
            };
            let Some(m) = ext.next_within(Duration::from_secs(1), wanted).await else {
                continue;
            };
            let req = m.json();
            if m.topic.starts_with("extbus/services/") {
                let body = base64::engine::general_purpose::STANDARD.encode(PLUGIN_HTML);
                let resp = json!({"id": req["id"], "status": 200,
                    "headers": {"content-type": "text/html; charset=utf-8"}, "body": body});
                ext.command("services/responses", resp).await;
            } else {
                let rows =
                    json!([{"disk": "root", "size_gb": 20}, {"disk": "data", "size_gb": 100}]);
                let resp = json!({"id": req["id"], "status": "success", "message": rows});
                ext.command("actions/responses", resp).await;
            }
        }
    })
}

#[tokio::test]
async fn actions_run_through_their_form_and_plugins_mount_on_matching_tasks() {
    let _one = BROWSER.lock().await;
    let broker = TestBroker::start().await;
    let ext = broker.client("extension").await;
    let manifest = json!({
        "rules": [{"operation": "vm.create", "timeout_ms": 600000}],
        "services": [{"vendor": "acme", "name": "vm-ui", "version": "1.0.0",
                      "url_patterns": ["^/ext/acme/vm-ui/.*"]}],
        "actions": [{"name": "snapshot", "title": "Take a snapshot", "resource": "none",
            "roles": ["operator"], "timeout_ms": 10000,
            "parameters": {"type": "object", "required": ["label", "copies"], "properties": {
                "label": {"type": "string", "not": {"const": "reserved"}},
                "copies": {"type": "integer", "minimum": 1, "maximum": 5},
                "quiesce": {"type": "boolean"},
                "at": {"type": "string", "format": "date-time"},
                "mode": {"enum": ["fast", "safe"]},
                "notify": {"type": "string", "format": "email"},
                "password": {"type": "string", "format": "password"}}},
            "success_message": "Snapshot {{label}} taken"}],
        "ui_plugins": [{"name": "vm-ui", "title": "VM tools", "entry": "/ext/acme/vm-ui/index.html",
            "extension_points": [{"type": "task-action", "operation": "vm.create"},
                                 {"type": "navigation"}]}]
    });
    let r = ext.command("register", manifest).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        ext.subscribe("extbus/services/acme/vm-ui/1.0.0/requests")
            .await,
        vec![1]
    );
    assert_eq!(
        ext.subscribe("extbus/actions/extension/requests").await,
        vec![1]
    );
    let answering = answer(ext.clone());
    let platform = broker.client("platform").await;
    let b = Browser::start(1280, 800).await;
    sign_in(&b, &broker, "operator").await;

    b.click(&b.find("a[data-page=actions]").await).await;
    let row = b
        .wait_for("#action-list tbody tr", |t| t.contains("Take a snapshot"))
        .await;
    b.click(&row).await;
    let form = b.find("#action-form").await;
    assert_eq!(
        b.property(&b.find("#arg-quiesce").await, "type").await,
        "checkbox"
    );
    assert_eq!(
        b.property(&b.find("#arg-at").await, "type").await,
        "datetime-local"
    );
    assert_eq!(
        b.property(&b.find("#arg-mode").await, "tagName").await,
        "SELECT"
    );
    assert_eq!(
        b.property(&b.find("#arg-password").await, "type").await,
        "password"
    );
    assert_eq!(b.property(&b.find("#arg-copies").await, "max").await, "5");
    let _ = form;

    // Checked in the browser: errors beside their fields.
    b.keys(&b.find("#arg-copies").await, "9").await;
    b.keys(&b.find("#arg-notify").await, "not-an-address").await;
    b.click(&b.find("#action-run").await).await;
    b.wait_for("#arg-label-error", |t| t.contains("required"))
        .await;
    b.wait_for("#arg-copies-error", |t| t.contains("at most 5"))
        .await;
    b.wait_for("#arg-notify-error", |t| t.contains("email"))
        .await;
    b.screenshot(&shot("actions-errors")).await;

    // Checked by the broker: its details land beside the field too.
    b.clear(&b.find("#arg-copies").await).await;
    b.keys(&b.find("#arg-copies").await, "2").await;
    b.clear(&b.find("#arg-notify").await).await;
    b.keys(&b.find("#arg-label").await, "reserved").await;
    b.click(&b.find("#action-run").await).await;
    b.wait_for("#arg-label-error", |t| !t.is_empty()).await;
    let copies = b.find_now("#arg-copies-error").await.unwrap();
    assert_eq!(b.text(&copies).await, "");

    b.clear(&b.find("#arg-label").await).await;
    b.keys(&b.find("#arg-label").await, "nightly").await;
    b.keys(&b.find("#arg-password").await, "s3cret").await;
    b.click(&b.find("#action-run").await).await;
    b.wait_for("#action-result .result-text", |t| {
        t == "Snapshot nightly taken"
    })
    .await;
    b.wait_for("#action-result tbody tr", |t| t.contains("data"))
        .await;
    scroll_to(&b, "#action-result").await;
    b.screenshot(&shot("actions")).await;

    // The plugin's button on a matching task; its frame gets the task and a token.
    let r = platform
        .command(
            "tasks/submit",
            json!({"request_id": "r-9", "operation": "vm.create", "org": "acme"}),
        )
        .await;
    let id = r["result"]["id"].as_str().unwrap().to_string();
    b.click(&b.find("a[data-page=tasks]").await).await;
    let row = b
        .wait_for("#task-list tbody tr", |t| t.contains("vm.create"))
        .await;
    b.click(&row).await;
    let button = b
        .wait_for("button[data-plugin='extension/vm-ui']", |t| t == "VM tools")
        .await;
    b.click(&button).await;
    let frame = b.find("iframe.plugin").await;
    assert_eq!(
        b.attribute(&frame, "sandbox").await,
        "allow-scripts allow-forms"
    );
    b.frame(Some(&frame)).await;
    let ctx = b.wait_for("#ctx", |t| t.starts_with('{')).await;
    let ctx: Value = serde_json::from_str(&b.text(&ctx).await).unwrap();
    assert_eq!(
        ctx,
        json!({"point": "task-action", "id": id, "operation": "vm.create", "token": true, "api": "/api"})
    );
    // The token works from the sandboxed frame.
    b.wait_for("#api", |t| t == "state blocked").await;
    b.frame(None).await;
    b.wait_for(".toast", |t| t.contains("context for task-action"))
        .await;
    scroll_to(&b, "iframe.plugin").await;
    b.screenshot(&shot("plugin")).await;
    b.click(&b.find("a[data-page='plugin/extension/vm-ui']").await)
        .await;
    b.find("iframe.plugin").await;
    // The one refused request was the broker-checked argument above.
    assert_clean_log(
        &b,
        &["/api/actions/extension/snapshot - Failed to load resource: the server responded with a status of 400"],
    )
    .await;
    answering.abort();
    b.quit().await;
    broker.stop().await;
}
