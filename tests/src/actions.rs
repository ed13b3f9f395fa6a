//! Shared by the custom-action tests: a manifest with two actions and a UI plugin, a broker
//! where the `extension` registered it and listens to its requests, and helpers to invoke
//! actions (MQTT in the background, HTTP) and answer runs as the extension.

use crate::http::{basic, request, HttpResponse};
use crate::{BusClient, TestBroker};
use serde_json::{json, Value};
use std::sync::Arc;

pub const SECRET: &str = "Sup3r-Secret-Value";
pub const REQUESTS: &str = "extbus/actions/extension/requests";

pub fn manifest() -> Value {
    json!({"component": "vm-tools",
        "actions": [
            {"name": "snapshot", "title": "Take a snapshot", "resource": "urn:extbus:type:acme:vm:1.0.0",
             "roles": ["operator"], "timeout_ms": 5000,
             "parameters": {"type": "object", "required": ["label"], "additionalProperties": false,
                "properties": {"label": {"type": "string", "minLength": 1}, "quiesce": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"}, "mode": {"enum": ["fast", "safe"]},
                    "owner": {"type": "string", "format": "email"},
                    "password": {"type": "string", "format": "password"}}},
             "success_message": "Snapshot {{label}} of {{resource}} taken"},
            {"name": "audit", "roles": ["observer"], "parameters": {"type": "object"}}],
        "services": [{"vendor": "acme", "name": "vm-ui", "version": "1.0.0",
            "url_patterns": ["^/ext/acme/vm-ui/"]}],
        "ui_plugins": [{"name": "vm-ui", "title": "VM tools", "entry": "/ext/acme/vm-ui/index.html",
            "extension_points": [{"type": "navigation"},
                {"type": "task-action", "operation": "vm.create"}]}]})
}

pub async fn registered() -> (TestBroker, Arc<BusClient>) {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let r = ext.command("register", manifest()).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["result"]["added"]["actions"],
        json!(["snapshot", "audit"])
    );
    assert_eq!(r["result"]["added"]["ui_plugins"], json!(["vm-ui"]));
    assert_eq!(ext.subscribe(REQUESTS).await, vec![1]);
    (b, ext)
}

pub async fn http(
    b: &TestBroker,
    who: &str,
    method: &str,
    target: &str,
    body: &Value,
) -> HttpResponse {
    let auth = basic(who, who);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, &[("authorization", &auth)], &body).await
}

/// The extension answers the next request with `status` and `message`; returns the request.
pub async fn answer(ext: &BusClient, status: &str, message: Value) -> Value {
    let req = ext.expect_on(REQUESTS).await.json();
    let r = ext
        .command(
            "actions/responses",
            json!({"id": req["id"], "status": status, "message": message}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["delivered"], true);
    req
}

pub fn spawn_invoke(
    c: &Arc<BusClient>,
    action: &str,
    body: Value,
) -> tokio::task::JoinHandle<Value> {
    let (c, suffix) = (c.clone(), format!("actions/extension/{action}/invoke"));
    tokio::spawn(async move { c.command(&suffix, body).await })
}
