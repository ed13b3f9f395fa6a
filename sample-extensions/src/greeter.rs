//! The greeter, an extension service: registers `acme/greeter/1.0.0` for the HTTP paths
//! `/ext/acme/greeter/...`, takes requests from its (shared) requests topic, and answers each
//! with `services/responses`: `{"greeting": "Hello, <name>"}` in the language of `?lang=`.

use crate::{Bus, Msg, Opts};
use anyhow::Result;
use base64::Engine as _;
use extbus_client::wire::topics;
use serde_json::{json, Value};
use std::future::Future;

/// The service's request topic.
pub fn requests() -> String {
    topics::service_requests("acme", "greeter", "1.0.0")
}

/// The manifest: one service, reached over HTTP under /ext/acme/greeter/.
pub fn manifest() -> Value {
    json!({"component": "greeter", "services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
        "url_patterns": ["^/ext/acme/greeter/.*"], "timeout_ms": 5000}]})
}

/// The response to one request (service request -> response).
pub fn respond(req: &Value) -> Value {
    let body = base64::engine::general_purpose::STANDARD
        .decode(req["body"].as_str().unwrap_or(""))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    // The name comes from the JSON body, else from the last path segment.
    let name = body["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            req["path"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        });
    let name = if name.is_empty() {
        "world".to_string()
    } else {
        name
    };
    let lang = req["query"]
        .as_str()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("lang="));
    let hello = match lang {
        Some("fr") => "Bonjour",
        Some("de") => "Hallo",
        _ => "Hello",
    };
    json!({"id": req["id"], "status": 200, "headers": {"content-type": "application/json"},
           "json": {"greeting": format!("{hello}, {name}"), "caller": req["principal"]}})
}

/// Registers and answers requests until `shutdown`. Replicas share the load (`$share`).
/// Connects, registers the service and subscribes to its requests; once this returns,
/// requests reach the greeter.
pub async fn start(opts: &Opts) -> Result<(Bus, tokio::sync::mpsc::UnboundedReceiver<Msg>)> {
    let (bus, rx) = Bus::connect(opts).await?;
    bus.register(manifest()).await?;
    bus.subscribe(&topics::shared("greeters", &requests()))
        .await?;
    println!("greeter ready on {}", requests());
    Ok((bus, rx))
}

/// Answers requests until `shutdown` resolves.
pub async fn serve(
    bus: Bus,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let r = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            m = rx.recv() => match m {
                Some(m) => if let Some(req) = m.json() {
                    if let Err(e) = bus.command("services/responses", respond(&req)).await {
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
    fn greets_by_body_or_path_in_the_asked_language() {
        let body = base64::engine::general_purpose::STANDARD.encode(br#"{"name":"Ada"}"#);
        let r = respond(
            &json!({"id": "r1", "path": "/ext/acme/greeter/hello", "query": "lang=fr", "body": body}),
        );
        assert_eq!(r["id"], "r1");
        assert_eq!(r["json"]["greeting"], "Bonjour, Ada");
        let r = respond(&json!({"id": "r2", "path": "/ext/acme/greeter/Bob", "query": ""}));
        assert_eq!(r["json"]["greeting"], "Hello, Bob");
    }
}
