//! The OpenAPI 3.1 document of the HTTP API, made from the route rows and the bus schemas
//! (JSON Schema 2020-12, which OpenAPI 3.1 takes as is): served at `/api/openapi.json` and
//! written by `extbus schema export` beside the AsyncAPI document.

use super::routes::{Input, Kind, Route, ROUTES};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Statuses a command route may answer besides its own, with SPEC.md's codes.
const ERRORS: &[(&str, &str)] = &[
    ("400", "bad_json, schema_violation or invalid_name"),
    ("401", "no or wrong credentials"),
    (
        "403",
        "forbidden: the principal's roles or orgs do not allow it",
    ),
    ("404", "not_found (or unknown_command)"),
    ("409", "conflict: the task was resolved another way"),
    ("413", "payload_too_large"),
    ("503", "overloaded"),
    ("500", "internal"),
];

/// The bus schema a command suffix pattern's body must satisfy.
fn schema_of(command: &str) -> Option<&'static extbus_schema::validate::SchemaFile> {
    let sample = command.replace("{task_id}", "t");
    let levels: Vec<&str> = sample.split('/').collect();
    extbus_schema::spec::find(&levels).map(|(s, _)| &s.schema)
}

/// `#/$defs/x` inside an embedded schema, pointed at its new place under `components`.
fn rebase(v: &mut Value, name: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match x {
                    Value::String(r) if k == "$ref" && r.starts_with("#/") => {
                        *r = format!("#/components/schemas/{name}/{}", &r[2..]);
                    }
                    _ => rebase(x, name),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rebase(x, name)),
        _ => {}
    }
}

fn operation_id(r: &Route) -> String {
    let path: String = r
        .path
        .trim_start_matches("/api/")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "{}_{}",
        r.method.as_str().to_ascii_lowercase(),
        path.replace("__", "_").trim_end_matches('_')
    )
}

fn parameters(r: &Route) -> Vec<Value> {
    let mut out: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if r.input == Input::Query {
        if let Some(s) = schema_of(r.command).map(|s| s.value()) {
            let required = s["required"].as_array().cloned().unwrap_or_default();
            if let Some(props) = s["properties"].as_object() {
                for (name, schema) in props.iter().filter(|(n, _)| *n != "correlation_id") {
                    let req = r.kind == Kind::Command && required.contains(&json!(name));
                    out.push(
                        json!({"name": name, "in": "query", "required": req, "schema": schema}),
                    );
                }
            }
        }
    }
    if r.kind == Kind::Stream {
        out.push(json!({"name": "Last-Event-ID", "in": "header", "required": false,
            "description": "The seq of the last event received: the stream resumes after it (wins over from_seq).",
            "schema": {"type": "integer", "minimum": 0}}));
    }
    out
}

fn operation(r: &Route) -> Value {
    let ok = match r.kind {
        Kind::Stream => {
            json!({"description": "Server-Sent Events: `id:` seq, `event:` type, `data:` the CloudEvent; `event: cut` (data `{resume_from}`) ends a stream whose reader fell behind",
            "content": {"text/event-stream": {"schema": {"type": "string"}}}})
        }
        Kind::OpenApi => {
            json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}})
        }
        Kind::Command => {
            let task = r.command.starts_with("tasks/") && r.command != "tasks/query";
            let schema = if task {
                json!({"$ref": "#/components/schemas/task"})
            } else {
                json!({"type": "object"})
            };
            json!({"description": format!("the `result` of the `{}` reply", r.command),
                "content": {"application/json": {"schema": schema}}})
        }
    };
    let mut responses = Map::new();
    responses.insert(r.ok.to_string(), ok);
    if r.kind != Kind::OpenApi {
        for (status, _) in ERRORS {
            responses.insert(
                status.to_string(),
                json!({"$ref": format!("#/components/responses/e{status}")}),
            );
        }
    }
    let mut op = json!({
        "operationId": operation_id(r),
        "summary": r.summary,
        "parameters": parameters(r),
        "responses": responses,
    });
    if !r.command.is_empty() {
        op["description"] = json!(format!("Bus command `{}`.", r.command));
    }
    if r.input == Input::Json {
        if let Some(s) = schema_of(r.command) {
            op["requestBody"] = json!({"required": false, "content": {"application/json":
                {"schema": {"$ref": format!("#/components/schemas/{}", s.name)}}}});
        }
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = operation(r);
    }
    paths.extend(session_paths());
    let mut schemas = Map::new();
    for s in extbus_schema::validate::schemas() {
        let mut v = s.value();
        if let Value::Object(o) = &mut v {
            o.remove("$schema");
        }
        rebase(&mut v, s.name);
        schemas.insert(s.name.to_string(), v);
    }
    schemas.insert("error".into(), json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "details"],
            "properties": {
                "code": {"enum": extbus_schema::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}},
    }));
    let responses: Map<String, Value> = ERRORS
        .iter()
        .map(|(status, d)| {
            (
                format!("e{status}"),
                json!({"description": d,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}}}),
            )
        })
        .collect();
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "extbus HTTP API",
            "version": "2",
            "description": "Every bus command as an HTTP call (SPEC.md \"HTTP API\"): the same principals, roles, org limits, schemas and error codes as over MQTT.",
            "license": {"name": "Apache-2.0"},
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "the default HTTP listener"}],
        "security": [{"basic": []}, {"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "principal name and secret"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "a principal's secret, or <name>:<secret>, or a token from POST /api/session/token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "extbus_session", "description": "the console's session; writes also need its X-CSRF-Token header"},
            },
        },
    })
}

/// The console's session endpoints (not bus commands; `http/signin.rs`).
fn session_paths() -> Map<String, Value> {
    let err = |s: &str| json!({"$ref": format!("#/components/responses/e{s}")});
    let ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let csrf = json!([{"name": "X-CSRF-Token", "in": "header", "required": true, "schema": {"type": "string"}}]);
    let session = json!([{"session": []}]);
    let mut m = Map::new();
    m.insert("/api/session".into(), json!({
        "post": {"operationId": "post_session", "summary": "Sign in: a session cookie and its CSRF token", "security": [],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["name", "secret"], "additionalProperties": false,
                "properties": {"name": {"type": "string"}, "secret": {"type": "string"}}}}}},
            "responses": {"201": ok("{principal, roles, orgs, csrf_token, idle_secs, token_secs}; Set-Cookie extbus_session"),
                "400": err("400"), "401": err("401"), "503": err("503")}},
        "get": {"operationId": "get_session", "summary": "The signed-in principal, or {\"principal\": null}", "security": session,
            "responses": {"200": ok("the session, or {\"principal\": null}")}},
        "delete": {"operationId": "delete_session", "summary": "Sign out", "security": session, "parameters": csrf,
            "responses": {"200": ok("{\"signed_out\": true}; the cookie cleared"), "401": err("401"), "403": err("403")}},
    }));
    m.insert("/api/session/token".into(), json!({
        "post": {"operationId": "post_session_token", "summary": "A short-lived bearer token for UI plugins", "security": session, "parameters": csrf,
            "responses": {"201": ok("{token, principal, expires_at}"), "401": err("401"), "403": err("403")}},
    }));
    m
}

/// Writes `dir/openapi.json`; returns its path.
pub fn export(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("openapi.json");
    let mut text = serde_json::to_string_pretty(&document()).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_and_every_ref_resolves() {
        let doc = document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", r.method, r.path);
        }
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(o) => o.iter().for_each(|(k, x)| match x {
                    Value::String(r) if k == "$ref" => out.push(r.clone()),
                    _ => refs(x, out),
                }),
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let target = doc.pointer(r.trim_start_matches('#'));
            assert!(target.is_some_and(|t| !t.is_null()), "{r} does not resolve");
        }
    }
}
