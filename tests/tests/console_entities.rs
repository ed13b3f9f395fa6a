//! The console's Entities page in a real browser against a real broker: an entity created over
//! MQTT is listed under its type and found by a metadata search (its entries shown), its
//! content is edited as JSON (text that is not JSON is refused before sending; content the
//! type's schema refuses is stored as `resolution_error` with its errors shown), the new
//! revision is what MQTT clients read, and an `entity-action` UI plugin's button on the entity
//! mounts it with the entity as context. The form made from the type's schema edits an
//! entity too: controls by type, prefilled except the write-only secure field, errors beside
//! their field before anything is sent, the Form and JSON views kept in step (JSON the form
//! cannot show as it is stays JSON), a stale revision refused with the broker's message.

use base64::Engine as _;
use extbus_tests::console::{assert_clean_log, scroll_to, shot, sign_in};
use extbus_tests::webdriver::Browser;
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

const TYPE: &str = "urn:extbus:type:acme:vm:1.0.0";
const DB: &str = "urn:extbus:type:acme:db:1.0.0";

/// One browser at a time: two chromiums at once starve small machines.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _one = BROWSER.lock().await;
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
    // The form is the default view; this test edits the JSON.
    b.click(&b.find("#entity-view-json").await).await;
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

/// The value property of the element `css`.
async fn value(b: &Browser, css: &str) -> String {
    let v = b.property(&b.find(css).await, "value").await;
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn entities_are_edited_through_the_form_made_from_their_schema() {
    let _one = BROWSER.lock().await;
    let broker = TestBroker::start().await;
    let ext = broker.client("extension").await;
    let manifest = json!({"entity_types": [{"vendor": "acme", "nss": "db", "version": "1.0.0",
        "name": "Database",
        "schema": {"type": "object", "required": ["cpus"], "properties": {
            "cpus": {"type": "integer", "minimum": 1, "maximum": 64},
            "label": {"type": "string", "not": {"const": "reserved"}},
            "tier": {"enum": ["gold", "silver"]},
            "backup": {"type": "boolean"},
            "owner": {"type": "string", "format": "email"},
            "network": {"type": "object", "properties": {
                "vlan": {"type": "integer"}, "cidr": {"type": "string"}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "password": {"type": "string", "x-extbus-secure": true},
            "layout": {"oneOf": [{"type": "string"}, {"type": "object"}]}}},
        "access": {"read": ["operator", "platform"], "write": ["operator", "platform"]}}]});
    let r = ext.command("register", manifest).await;
    assert_eq!(r["ok"], true, "{r}");
    let platform = broker.client("platform").await;
    let content = json!({"cpus": 2, "tier": "gold", "network": {"vlan": 10}, "tags": ["a"],
        "password": "hunter2", "layout": {"rows": 2}, "note": "kept"});
    let r = platform
        .command(
            "entities/create",
            json!({"type": DB, "org": "acme", "name": "db-1", "entity": content}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resolved", "{r}");
    let id = r["result"]["id"].as_str().unwrap().to_string();
    // Stored although the schema refuses it: the form could not show it as it is.
    let r = platform
        .command(
            "entities/create",
            json!({"type": DB, "org": "acme", "name": "db-2", "entity": {"cpus": "many"}}),
        )
        .await;
    assert_eq!(r["result"]["state"], "resolution_error", "{r}");
    let get = |id: String| {
        let platform = platform.clone();
        async move {
            let r = platform
                .command(&format!("entities/{id}/get"), json!({}))
                .await;
            r["result"].clone()
        }
    };

    let b = Browser::start(1280, 900).await;
    sign_in(&b, &broker, "operator").await;
    b.click(&b.find("a[data-page=entities]").await).await;
    let row = b
        .wait_for("#entity-list tbody tr", |t| t.contains("db-1"))
        .await;
    b.click(&row).await;

    // The form is the default view, one control per property, filled from the content.
    b.find("#entity-form").await;
    let json_view = b.find_now("#entity-json").await.unwrap();
    assert!(!b.displayed(&json_view).await, "the JSON view is hidden");
    let cpus = b.find("#entity-field-cpus").await;
    assert_eq!(b.property(&cpus, "type").await, "number");
    assert_eq!(b.property(&cpus, "min").await, "1");
    assert_eq!(b.property(&cpus, "max").await, "64");
    assert_eq!(value(&b, "#entity-field-cpus").await, "2");
    let tier = b.find("#entity-field-tier").await;
    assert_eq!(b.property(&tier, "tagName").await, "SELECT");
    assert_eq!(value(&b, "#entity-field-tier").await, "\"gold\"");
    let backup = b.find("#entity-field-backup").await;
    assert_eq!(b.property(&backup, "type").await, "checkbox");
    assert_eq!(b.attribute(&backup, "role").await, "switch");
    assert_eq!(
        b.property(&b.find("#entity-field-owner").await, "type")
            .await,
        "email"
    );
    let network = b.find("#entity-field-network").await;
    assert_eq!(b.property(&network, "tagName").await, "FIELDSET");
    assert_eq!(value(&b, "#entity-field-network-vlan").await, "10");
    assert_eq!(value(&b, "#entity-field-tags-0").await, "a");
    assert_eq!(
        b.property(&b.find("#entity-field-layout").await, "tagName")
            .await,
        "TEXTAREA"
    );
    // The secure field is write-only: masked and never filled.
    let password = b.find("#entity-field-password").await;
    assert_eq!(b.property(&password, "type").await, "password");
    assert_eq!(value(&b, "#entity-field-password").await, "");
    let html = b
        .script("return document.documentElement.outerHTML", json!([]))
        .await;
    assert!(!html.as_str().unwrap().contains("hunter2"));

    // Checked in the browser: the error beside its field, nothing sent.
    b.clear(&cpus).await;
    b.keys(&cpus, "0").await;
    b.keys(&b.find("#entity-field-owner").await, "not-an-address")
        .await;
    // Text the browser cannot read as a number is an error, not an omitted field.
    let vlan = b.find("#entity-field-network-vlan").await;
    b.clear(&vlan).await;
    b.keys(&vlan, "1e").await;
    b.click(&b.find("#entity-save").await).await;
    b.wait_for("#entity-field-cpus-error", |t| t.contains("at least 1"))
        .await;
    b.wait_for("#entity-field-network-vlan-error", |t| {
        t.contains("whole number")
    })
    .await;
    b.wait_for("#entity-field-owner-error", |t| t.contains("email"))
        .await;
    assert_eq!(b.attribute(&cpus, "aria-invalid").await, "true");
    b.screenshot(&shot("entities-form-errors")).await;
    assert_eq!(get(id.clone()).await["revision"], 1);

    // Edited through the form: a number, a nested field, a list item added, the switch on.
    b.clear(&cpus).await;
    b.keys(&cpus, "4").await;
    b.clear(&b.find("#entity-field-owner").await).await;
    let vlan = b.find("#entity-field-network-vlan").await;
    b.clear(&vlan).await;
    b.keys(&vlan, "20").await;
    b.click(&b.find("#entity-field-tags-add").await).await;
    b.keys(&b.find("#entity-field-tags-1").await, "b").await;
    b.click(&backup).await;
    b.click(&b.find("#entity-save").await).await;
    b.wait_for("#entity-detail .muted", |t| t.contains("revision 2"))
        .await;
    let e = get(id.clone()).await;
    assert_eq!(e["state"], "resolved", "{e}");
    assert_eq!(
        e["entity"],
        json!({"cpus": 4, "tier": "gold", "backup": true, "network": {"vlan": 20},
               "tags": ["a", "b"], "layout": {"rows": 2}, "note": "kept"})
    );
    b.script(
        "document.querySelector('#entity-detail').scrollIntoView({block: 'start'})",
        json!([]),
    )
    .await;
    b.screenshot(&shot("entities-form")).await;
    let last = |e: &Value| e["history"].as_array().unwrap().last().unwrap().clone();
    assert!(!last(&e)["paths"].to_string().contains("password"), "{e}");
    assert_eq!(value(&b, "#entity-field-password").await, "");

    // Form to JSON and back: the same value; a secret typed in the form is never shown.
    b.keys(&b.find("#entity-field-password").await, "s3cret-2")
        .await;
    b.click(&b.find("#entity-view-json").await).await;
    let editor = b.find("#entity-json").await;
    assert!(
        !b.displayed(&b.find_now("#entity-form").await.unwrap())
            .await
    );
    let text = value(&b, "#entity-json").await;
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown, e["entity"]);
    assert!(!text.contains("s3cret"));
    // What the form cannot show as it is keeps the JSON view, with the reason.
    b.clear(&editor).await;
    b.keys(&editor, r#"{"cpus": "many"}"#).await;
    b.click(&b.find("#entity-view-form").await).await;
    b.wait_for("#entity-json-error", |t| t.contains("cannot show /cpus"))
        .await;
    b.clear(&editor).await;
    b.keys(&editor, "[1]").await;
    b.click(&b.find("#entity-view-form").await).await;
    b.wait_for("#entity-json-error", |t| t.contains("edits a JSON object"))
        .await;
    assert!(b.displayed(&editor).await);
    b.clear(&editor).await;
    let mut changed = e["entity"].clone();
    changed["cpus"] = json!(6);
    b.keys(&editor, &changed.to_string()).await;
    b.click(&b.find("#entity-view-form").await).await;
    b.find("#entity-form").await;
    assert_eq!(value(&b, "#entity-field-cpus").await, "6");
    assert_eq!(
        b.attribute(&b.find("#entity-view-form").await, "aria-pressed")
            .await,
        "true"
    );
    b.click(&b.find("#entity-save").await).await;
    b.wait_for("#entity-detail .muted", |t| t.contains("revision 3"))
        .await;
    let e = get(id.clone()).await;
    assert_eq!(e["entity"]["cpus"], 6);
    // The typed secret was sent (its path is in the change), and is still not shown.
    assert!(last(&e)["paths"].to_string().contains("/password"), "{e}");
    assert_eq!(value(&b, "#entity-field-password").await, "");

    // Refused by the type's schema (a rule the browser does not check): stored as
    // resolution_error, the broker's error beside its field.
    b.keys(&b.find("#entity-field-label").await, "reserved")
        .await;
    b.click(&b.find("#entity-save").await).await;
    b.wait_for("#entity-detail h2", |t| t.contains("resolution_error"))
        .await;
    b.wait_for("#entity-field-label-error", |t| !t.is_empty())
        .await;
    assert_eq!(get(id.clone()).await["revision"], 4);

    // Changed elsewhere meanwhile: the broker's conflict is shown, nothing is stored.
    let r = platform
        .command(
            &format!("entities/{id}/update"),
            json!({"revision": 4, "entity": {"cpus": 8}}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let cpus = b.find("#entity-field-cpus").await;
    b.clear(&cpus).await;
    b.keys(&cpus, "12").await;
    b.click(&b.find("#entity-save").await).await;
    b.wait_for("#entity-error", |t| {
        t.contains("revision 4 is not the current revision 5")
    })
    .await;
    assert_eq!(get(id.clone()).await["entity"], json!({"cpus": 8}));
    // An entity whose content the form cannot show opens as JSON, saying why.
    let row = b
        .wait_for("#entity-list tbody tr", |t| t.contains("db-2"))
        .await;
    b.click(&row).await;
    b.wait_for("#entity-json-error", |t| t.contains("cannot show /cpus"))
        .await;
    assert!(b.displayed(&b.find("#entity-json").await).await);
    // The refused write is the one failed request.
    assert_clean_log(&b, &["409 (Conflict)"]).await;
    b.quit().await;
    broker.stop().await;
}
