//! The console's Entities page in a real browser against a real broker: an entity created over
//! MQTT is listed under its type and found by a metadata search (its entries shown), its content is edited as JSON (text that is not JSON is
//! refused before sending; content the type's schema refuses is stored as
//! `resolution_error` with its errors shown), the new revision is what MQTT clients read, and
//! an `entity-action` UI plugin's button on the entity mounts it with the entity as context.

use base64::Engine as _;
use extbus_tests::console::{assert_clean_log, scroll_to, shot, sign_in};
use extbus_tests::webdriver::Browser;
use extbus_tests::TestBroker;
use serde_json::json;
use std::time::Duration;

const TYPE: &str = "urn:extbus:type:acme:vm:1.0.0";

const PLUGIN_HTML: &str = r#"<!doctype html><meta charset="utf-8"><title>VM card</title>
<p id="ctx">waiting</p>
<script>
addEventListener('message', e => {
  if (e.data && e.data.type === 'extbus.context')
    document.getElementById('ctx').textContent = e.data.point + ' ' + (e.data.object && e.data.object.id);
});
</script>"#;

#[tokio::test]
async fn entities_are_browsed_edited_and_carry_their_plugin_buttons() {
    let broker = TestBroker::start().await;
    let ext = broker.client("extension").await;
    let manifest = json!({
        "entity_types": [{"vendor": "acme", "nss": "vm", "version": "1.0.0", "name": "VM",
            "schema": {"type": "object", "required": ["cpus"],
                       "properties": {"cpus": {"type": "integer", "minimum": 1}}},
            "access": {"read": ["operator", "platform"], "write": ["operator", "platform"]}}],
        "services": [{"vendor": "acme", "name": "vm-card", "version": "1.0.0",
                      "url_patterns": ["^/ext/acme/vm-card/.*"]}],
        "ui_plugins": [{"name": "vm-card", "title": "VM card", "entry": "/ext/acme/vm-card/index.html",
            "extension_points": [{"type": "entity-action", "entity_type": TYPE}]}]
    });
    let r = ext.command("register", manifest).await;
    assert_eq!(r["ok"], true, "{r}");
    ext.subscribe("extbus/services/acme/vm-card/1.0.0/requests")
        .await;
    let serving = {
        let ext = ext.clone();
        tokio::spawn(async move {
            loop {
                let Some(m) = ext
                    .next_within(Duration::from_secs(1), |m| m.topic.contains("vm-card"))
                    .await
                else {
                    continue;
                };
                let body = base64::engine::general_purpose::STANDARD.encode(PLUGIN_HTML);
                let resp = json!({"id": m.json()["id"], "status": 200,
                    "headers": {"content-type": "text/html"}, "body": body});
                ext.command("services/responses", resp).await;
            }
        })
    };
    let platform = broker.client("platform").await;
    let r = platform
        .command(
            "entities/create",
            json!({"type": TYPE, "org": "acme", "name": "web-1", "entity": {"cpus": 2}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resolved", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    let other = platform
        .command(
            "entities/create",
            json!({"type": TYPE, "org": "acme", "name": "web-2", "entity": {"cpus": 1}}),
        )
        .await;
    assert_eq!(other["ok"], true, "{other}");
    let entry = json!({"entries": [{"namespace": "billing", "key": "cost-center",
                                    "value": {"type": "string", "value": "cc-42"}}]});
    let r = platform.command(&format!("metadata/{id}/set"), entry).await;
    assert_eq!(r["ok"], true, "{r}");

    let b = Browser::start(1280, 800).await;
    sign_in(&b, &broker, "operator").await;
    b.click(&b.find("a[data-page=entities]").await).await;
    // Everything the operator may read is listed at first; then one type in one org.
    b.wait_for("#entity-list tbody tr", |t| t.contains("web-1"))
        .await;
    b.wait_for("#entity-list", |t| t.contains("web-2")).await;
    b.keys(&b.find("#entity-type").await, TYPE).await;
    b.keys(
        &b.find("#entity-search").await,
        "billing|cost-center=='cc-42'",
    )
    .await;
    b.keys(&b.find("#entity-org").await, "acme\u{E007}").await;
    // The metadata search leaves only the entity carrying the entry.
    b.wait_for("#entity-list", |t| {
        t.contains("web-1") && !t.contains("web-2")
    })
    .await;
    let row = b
        .wait_for("#entity-list tbody tr", |t| t.contains("web-1"))
        .await;
    b.click(&row).await;
    let editor = b.find("#entity-json").await;
    b.wait_for("#entity-detail h2", |t| t.contains("resolved"))
        .await;
    b.wait_for("#entity-detail .metadata tbody tr", |t| t.contains("cc-42"))
        .await;

    b.clear(&editor).await;
    b.keys(&editor, "{\"cpus\": ").await;
    b.click(&b.find("#entity-detail button[type=submit]").await)
        .await;
    b.wait_for("#entity-json-error", |t| t.contains("Not valid JSON"))
        .await;

    // Refused by the type's schema: stored as resolution_error, with the error shown.
    b.clear(&editor).await;
    b.keys(&editor, r#"{"cpus": 0}"#).await;
    b.click(&b.find("#entity-detail button[type=submit]").await)
        .await;
    b.wait_for("#entity-detail h2", |t| t.contains("resolution_error"))
        .await;
    b.wait_for("#entity-detail ul.error li", |t| t.starts_with("/cpus"))
        .await;

    let editor = b.find("#entity-json").await;
    b.clear(&editor).await;
    b.keys(&editor, r#"{"cpus": 8}"#).await;
    b.click(&b.find("#entity-detail button[type=submit]").await)
        .await;
    b.wait_for("#entity-detail .muted", |t| t.contains("revision 3"))
        .await;
    let got = platform
        .command(&format!("entities/{id}/get"), json!({}))
        .await;
    assert_eq!(got["result"]["entity"], json!({"cpus": 8}), "{got}");
    assert_eq!(got["result"]["state"], "resolved");

    let button = b
        .wait_for("button[data-plugin='extension/vm-card']", |t| {
            t == "VM card"
        })
        .await;
    b.click(&button).await;
    let frame = b.find("iframe.plugin").await;
    b.frame(Some(&frame)).await;
    b.wait_for("#ctx", |t| t == format!("entity-action {id}"))
        .await;
    b.frame(None).await;
    scroll_to(&b, "#entity-detail").await;
    b.screenshot(&shot("entities")).await;
    assert_clean_log(&b, &[]).await;
    serving.abort();
    b.quit().await;
    broker.stop().await;
}
