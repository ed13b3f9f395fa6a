//! vm-tools, a sample of custom actions and a UI plugin: registers two actions (`snapshot`,
//! with a parameter form and a password field, and `inventory`, answered with a table), the
//! UI plugin `vm-ui`, and the service `acme/vm-tools/1.0.0` that serves the plugin's page at
//! `/ext/acme/vm-tools/ui/index.html` through the broker's HTTP gateway. Action runs arrive on
//! `extbus/actions/<user>/requests` and are answered with `actions/responses`.

use crate::{Bus, Msg, Opts};
use anyhow::Result;
use base64::Engine as _;
use extbus_client::wire::topics;
use serde_json::{json, Value};
use std::future::Future;

/// The plugin page, compiled in.
pub const PAGE: &str = include_str!("../ui/vm-tools.html");
/// Where the page is served.
pub const ENTRY: &str = "/ext/acme/vm-tools/ui/index.html";

/// The service's request topic.
pub fn service_requests() -> String {
    topics::service_requests("acme", "vm-tools", "1.0.0")
}

/// The manifest: the page's service, two actions and the plugin.
pub fn manifest() -> Value {
    json!({"component": "vm-tools",
        "services": [{"vendor": "acme", "name": "vm-tools", "version": "1.0.0",
            "url_patterns": ["^/ext/acme/vm-tools/"], "timeout_ms": 5000}],
        "actions": [
            {"name": "snapshot", "title": "Take a snapshot", "resource": "task:vm.create",
             "roles": ["operator"], "timeout_ms": 10000,
             "parameters": {"type": "object", "required": ["label"], "additionalProperties": false,
                "properties": {
                    "label": {"type": "string", "minLength": 1, "maxLength": 64},
                    "quiesce": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"},
                    "mode": {"enum": ["fast", "safe"]},
                    "keep": {"type": "integer", "minimum": 1, "maximum": 30},
                    "password": {"type": "string", "format": "password"}}},
             "success_message": "Snapshot {{label}} of {{resource}} taken"},
            {"name": "inventory", "title": "List the VMs", "roles": ["operator", "observer"],
             "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"org": {"type": "string"}}}}],
        "ui_plugins": [{"name": "vm-ui", "title": "VM tools", "entry": ENTRY,
            "extension_points": [{"type": "navigation"},
                {"type": "task-action", "operation": "vm.create"}]}]})
}

/// The answer to one action run (`{id, action, arguments, ...}` -> `actions/responses` body).
pub fn answer(run: &Value) -> Value {
    let id = &run["id"];
    let args = &run["arguments"];
    match run["action"].as_str() {
        Some("snapshot") if args["mode"] == "fast" && args["quiesce"] == true => json!({"id": id,
            "status": "error", "message": "a fast snapshot cannot quiesce; pick mode safe"}),
        Some("snapshot") => json!({"id": id, "status": "success",
            "message": {"snapshot": format!("snap-{}", args["label"].as_str().unwrap_or("")),
                "protected": args["password"].is_string()}}),
        Some("inventory") => {
            let org = args["org"].as_str().unwrap_or("acme");
            json!({"id": id, "status": "success", "message": [
                {"name": format!("{org}-web-1"), "state": "running", "cpu": 2},
                {"name": format!("{org}-db-1"), "state": "stopped", "cpu": 8}]})
        }
        _ => json!({"id": id, "status": "error", "message": "unknown action"}),
    }
}

/// The service's response: the plugin page, or 404.
pub fn respond(req: &Value) -> Value {
    if req["method"] == "GET" && req["path"] == ENTRY {
        let body = base64::engine::general_purpose::STANDARD.encode(PAGE);
        return json!({"id": req["id"], "status": 200, "body": body,
            "headers": {"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"}});
    }
    json!({"id": req["id"], "status": 404, "json": {"error": "no such page"}})
}

/// Connects, registers and subscribes to its action runs and page requests.
pub async fn start(opts: &Opts) -> Result<(Bus, tokio::sync::mpsc::UnboundedReceiver<Msg>)> {
    let (bus, rx) = Bus::connect(opts).await?;
    bus.register(manifest()).await?;
    bus.subscribe(&topics::action_requests(&opts.user)).await?;
    bus.subscribe(&service_requests()).await?;
    println!("vm-tools ready: actions snapshot, inventory; plugin at {ENTRY}");
    Ok((bus, rx))
}

/// Answers runs and page requests until `shutdown` resolves.
pub async fn serve(
    bus: Bus,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let actions = topics::action_requests(&bus.user);
    tokio::pin!(shutdown);
    let r = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            m = rx.recv() => match m {
                Some(m) => if let Some(req) = m.json() {
                    let (suffix, body) = if m.topic == actions {
                        ("actions/responses", answer(&req))
                    } else {
                        ("services/responses", respond(&req))
                    };
                    if let Err(e) = bus.command(suffix, body).await {
                        eprintln!("request {}: {e}", req["id"]);
                    }
                },
                None => break Err(anyhow::anyhow!("connection closed")),
            },
        }
    };
    bus.disconnect().await;
    r
}

/// Starts and serves until `shutdown` resolves.
pub async fn run(opts: &Opts, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (bus, rx) = start(opts).await?;
    serve(bus, rx, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_runs_and_serves_the_page() {
        let r = answer(&json!({"id": "r", "action": "snapshot", "arguments": {"label": "n"}}));
        assert_eq!(r["message"]["snapshot"], "snap-n");
        let r = answer(&json!({"id": "r", "action": "snapshot",
            "arguments": {"label": "n", "mode": "fast", "quiesce": true}}));
        assert_eq!(r["status"], "error");
        let r = answer(&json!({"id": "r", "action": "inventory", "arguments": {}}));
        assert_eq!(r["message"][1]["name"], "acme-db-1");
        let p = respond(&json!({"id": "q", "method": "GET", "path": ENTRY}));
        assert_eq!(p["status"], 200);
        let p = respond(&json!({"id": "q", "method": "GET", "path": "/ext/acme/vm-tools/x"}));
        assert_eq!(p["status"], 404);
    }
}
