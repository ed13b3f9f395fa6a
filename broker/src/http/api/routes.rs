//! The HTTP API's route rows: each maps (method, path pattern) to a bus command suffix and says
//! where the command's body comes from. The handler, the OpenAPI document and the tests read
//! these rows only; a command family adds rows here and nothing else in the HTTP layer.

use axum::http::Method;
use serde_json::{Map, Value};

/// Where a route's command body comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The query string: each parameter becomes a body field (integers where the command's
    /// schema says so; anything else is left to the schema to refuse).
    Query,
    /// The request body, a JSON object (empty means `{}`).
    Json,
}

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One bus command, submitted to the coordinator.
    Command,
    /// `GET /api/events/stream`: replay, then live, as Server-Sent Events.
    Stream,
    /// `GET /api/openapi.json`: the document made from these rows.
    OpenApi,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// Path pattern with `{parameter}` segments, as OpenAPI writes it.
    pub path: &'static str,
    /// Command suffix pattern; its `{parameter}`s are the path's.
    pub command: &'static str,
    pub input: Input,
    pub kind: Kind,
    /// Status of a successful answer (201 for creates).
    pub ok: u16,
    pub summary: &'static str,
}

const fn command(
    method: Method,
    path: &'static str,
    command: &'static str,
    input: Input,
    ok: u16,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        command,
        input,
        kind: Kind::Command,
        ok,
        summary,
    }
}

/// Every route, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    command(
        Method::GET,
        "/api/tasks",
        "tasks/query",
        Input::Query,
        200,
        "List tasks",
    ),
    command(
        Method::POST,
        "/api/tasks",
        "tasks/submit",
        Input::Json,
        201,
        "Submit an operation (platform)",
    ),
    command(
        Method::GET,
        "/api/tasks/{task_id}",
        "tasks/{task_id}/get",
        Input::Query,
        200,
        "One task with its history",
    ),
    command(
        Method::POST,
        "/api/tasks/{task_id}/resume",
        "tasks/{task_id}/resume",
        Input::Json,
        200,
        "Let the operation continue",
    ),
    command(
        Method::POST,
        "/api/tasks/{task_id}/cancel",
        "tasks/{task_id}/cancel",
        Input::Json,
        200,
        "Stop the operation and roll it back",
    ),
    command(
        Method::POST,
        "/api/tasks/{task_id}/abort",
        "tasks/{task_id}/abort",
        Input::Json,
        200,
        "Stop the operation as failed",
    ),
    command(
        Method::POST,
        "/api/tasks/{task_id}/extend",
        "tasks/{task_id}/extend",
        Input::Json,
        200,
        "Move the task's deadline",
    ),
    command(
        Method::GET,
        "/api/events",
        "events/replay",
        Input::Query,
        200,
        "A page of stored events",
    ),
    command(
        Method::POST,
        "/api/events",
        "events",
        Input::Json,
        201,
        "Emit an audit event (platform)",
    ),
    command(
        Method::GET,
        "/api/registrations",
        "registrations/query",
        Input::Query,
        200,
        "Every registration with its presence",
    ),
    command(
        Method::GET,
        "/api/entities",
        "entities/query",
        Input::Query,
        200,
        "List entities",
    ),
    command(
        Method::POST,
        "/api/entities",
        "entities/create",
        Input::Json,
        201,
        "Create an entity",
    ),
    command(
        Method::GET,
        "/api/entities/{entity_id}",
        "entities/{entity_id}/get",
        Input::Query,
        200,
        "One entity with its history",
    ),
    command(
        Method::GET,
        "/api/entities/{entity_id}/secrets",
        "entities/{entity_id}/secrets",
        Input::Query,
        200,
        "The entity's secure values (the type's own extension only)",
    ),
    command(
        Method::PUT,
        "/api/entities/{entity_id}",
        "entities/{entity_id}/update",
        Input::Json,
        200,
        "Replace an entity's content at its current revision",
    ),
    command(
        Method::POST,
        "/api/entities/{entity_id}/resolve",
        "entities/{entity_id}/resolve",
        Input::Json,
        200,
        "Validate an entity again",
    ),
    command(
        Method::POST,
        "/api/entities/{entity_id}/behaviors/{behavior}",
        "entities/{entity_id}/behaviors/{behavior}",
        Input::Json,
        202,
        "Invoke a behavior: the reply is its blocking task",
    ),
    command(
        Method::DELETE,
        "/api/entities/{entity_id}",
        "entities/{entity_id}/delete",
        Input::Query,
        200,
        "Delete an entity",
    ),
    command(
        Method::GET,
        "/api/entity-types",
        "entities/types",
        Input::Query,
        200,
        "The registered entity types with their schemas",
    ),
    command(
        Method::GET,
        "/api/actions",
        "actions/query",
        Input::Query,
        200,
        "The actions the caller may run",
    ),
    command(
        Method::POST,
        "/api/actions/{extension}/{name}",
        "actions/{extension}/{name}/invoke",
        Input::Json,
        200,
        "Run an action and wait for its answer",
    ),
    command(
        Method::GET,
        "/api/ui-plugins",
        "ui-plugins/query",
        Input::Query,
        200,
        "UI plugins of enabled registrations",
    ),
    command(
        Method::GET,
        "/api/metadata/{object_id}",
        "metadata/{object_id}/get",
        Input::Query,
        200,
        "The metadata entries of an entity or task that the caller may see",
    ),
    command(
        Method::PUT,
        "/api/metadata/{object_id}",
        "metadata/{object_id}/set",
        Input::Json,
        200,
        "Add or replace metadata entries",
    ),
    command(
        Method::DELETE,
        "/api/metadata/{object_id}",
        "metadata/{object_id}/delete",
        Input::Query,
        200,
        "Remove one metadata entry",
    ),
    Route {
        method: Method::GET,
        path: "/api/events/stream",
        command: "events/replay",
        input: Input::Query,
        kind: Kind::Stream,
        ok: 200,
        summary:
            "Stored events from from_seq (or after Last-Event-ID), then live, as Server-Sent Events",
    },
    Route {
        method: Method::GET,
        path: "/api/openapi.json",
        command: "",
        input: Input::Query,
        kind: Kind::OpenApi,
        ok: 200,
        summary: "This document",
    },
];

/// A matched route with its path parameters.
pub struct Matched {
    pub route: &'static Route,
    pub params: Vec<(&'static str, String)>,
}

impl Matched {
    /// The command suffix with the path's values in it.
    pub fn suffix(&self) -> String {
        let mut s = self.route.command.to_string();
        for (name, value) in &self.params {
            s = s.replace(&format!("{{{name}}}"), value);
        }
        s
    }
}

/// The parameters of `path` if it fits `pattern`.
fn captures(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let want: Vec<&'static str> = pattern.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    if want.len() != got.len() {
        return None;
    }
    let mut params = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) if !g.is_empty() => params.push((name, g.to_string())),
            Some(_) => return None,
            None if w != g => return None,
            None => {}
        }
    }
    Some(params)
}

/// The route for `method` and `path`: `Err(true)` if the path is known under other methods.
pub fn find(method: &Method, path: &str) -> Result<Matched, bool> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut known = false;
    for route in ROUTES {
        if let Some(params) = captures(route.path, path) {
            if route.method == *method {
                return Ok(Matched { route, params });
            }
            known = true;
        }
    }
    Err(known)
}

/// Query parameters as a command body: a field each, integers where `schema` types the field
/// as one. A parameter given twice is refused.
pub fn query_body(pairs: Vec<(String, String)>, schema: &Value) -> Result<Value, String> {
    let mut body = Map::new();
    for (k, v) in pairs {
        let integer = schema["properties"][&k]["type"]
            .as_array()
            .map_or(schema["properties"][&k]["type"] == "integer", |t| {
                t.iter().any(|t| t == "integer")
            });
        let value = match v.parse::<u64>() {
            Ok(n) if integer => Value::from(n),
            _ => Value::String(v),
        };
        if body.insert(k.clone(), value).is_some() {
            return Err(format!("query parameter '{}' is given twice", clip(&k)));
        }
    }
    Ok(Value::Object(body))
}

pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_match_their_rows_and_fill_the_suffix() {
        let m = find(&Method::POST, "/api/tasks/t-1/resume").ok().unwrap();
        assert_eq!(m.suffix(), "tasks/t-1/resume");
        let m = find(&Method::GET, "/api/tasks/t-1").ok().unwrap();
        assert_eq!(m.suffix(), "tasks/t-1/get");
        assert_eq!(
            find(&Method::GET, "/api/tasks/").ok().unwrap().suffix(),
            "tasks/query"
        );
        assert!(matches!(find(&Method::DELETE, "/api/tasks"), Err(true)));
        assert!(matches!(find(&Method::GET, "/api/nothing"), Err(false)));
        assert!(matches!(
            find(&Method::GET, "/api/tasks//resume"),
            Err(false)
        ));
    }

    #[test]
    fn every_command_row_names_a_bus_command() {
        for r in ROUTES.iter().filter(|r| r.kind != Kind::OpenApi) {
            let sample = r.command.replace("{task_id}", "t-1");
            let levels: Vec<&str> = sample.split('/').collect();
            assert!(
                extbus_schema::spec::find(&levels).is_some(),
                "{}",
                r.command
            );
        }
    }

    #[test]
    fn every_route_is_in_the_protocol_doc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for r in ROUTES {
            let row = format!("`{} {}`", r.method, r.path);
            assert!(doc.contains(&row), "docs/protocol.md lacks {row}");
        }
    }

    #[test]
    fn query_values_are_typed_by_the_schema() {
        let schema = json!({"properties": {"limit": {"type": ["integer", "null"]}, "org": {"type": "string"}}});
        let q = |p: &[(&str, &str)]| {
            let pairs = p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            query_body(pairs, &schema)
        };
        assert_eq!(
            q(&[("limit", "5"), ("org", "7")]).unwrap(),
            json!({"limit": 5, "org": "7"})
        );
        assert_eq!(q(&[("limit", "x")]).unwrap(), json!({"limit": "x"}));
        assert!(q(&[("org", "a"), ("org", "b")])
            .unwrap_err()
            .contains("twice"));
    }
}
