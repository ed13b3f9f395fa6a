//! The JSON Schema (draft 2020-12) files of `schemas/`, embedded at build time and compiled once,
//! and `validate`, which turns every failing location into a `schema_violation` detail.
//! Schemas check shape and bounds only; name rules stay in `names` so they answer `invalid_name`.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};

/// Most details one `schema_violation` carries.
pub const MAX_DETAILS: usize = 20;

/// Which way a payload travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A command body a client publishes under `extbus/in/<principal>/`.
    Inbound,
    /// A payload the broker publishes.
    Outbound,
}

/// One schema file: `schemas/<name>.json`.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    pub name: &'static str,
    pub direction: Direction,
    pub source: &'static str,
}

impl SchemaFile {
    /// The file name, `<name>.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.name)
    }

    /// The schema as JSON.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.source).unwrap_or(Value::Null)
    }
}

/// A `SchemaFile` for `schemas/<name>.json`, embedded at build time.
macro_rules! schema {
    ($name:literal, $dir:ident) => {
        $crate::validate::SchemaFile {
            name: $name,
            direction: $crate::validate::Direction::$dir,
            source: include_str!(concat!("../schemas/", $name, ".json")),
        }
    };
}
pub(crate) use schema;

/// The schemas of what the broker publishes; command schemas live in their `Spec` rows.
pub const OUTBOUND: &[SchemaFile] = &[
    schema!("cloud-event", Outbound),
    schema!("task", Outbound),
    schema!("outcome", Outbound),
    schema!("reply", Outbound),
    schema!("service-request", Outbound),
    schema!("action-request", Outbound),
];

static SCHEMAS: LazyLock<Vec<SchemaFile>> = LazyLock::new(|| {
    let mut all: Vec<SchemaFile> = Vec::new();
    for s in crate::spec::all() {
        if !all.iter().any(|f| f.name == s.schema.name) {
            all.push(s.schema);
        }
    }
    all.extend_from_slice(OUTBOUND);
    all
});

/// Every schema file, commands first (in `FAMILIES` order), each once.
pub fn schemas() -> &'static [SchemaFile] {
    &SCHEMAS
}

/// The absolute `$id` every schema file carries: `urn:extbus:schema:1:<name>` (contract 1).
pub fn schema_id(name: &str) -> String {
    format!("urn:extbus:schema:1:{name}")
}

/// The schema file named `name`.
pub fn schema_file(name: &str) -> Option<&'static SchemaFile> {
    schemas().iter().find(|s| s.name == name)
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compile(file: &SchemaFile) -> Result<Compiled, String> {
    let schema: Value =
        serde_json::from_str(file.source).map_err(|e| format!("{}: {e}", file.file_name()))?;
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("{}: {e}", file.file_name()))?;
    Ok(Compiled { schema, validator })
}

static COMPILED: LazyLock<HashMap<&'static str, Result<Compiled, String>>> =
    LazyLock::new(|| schemas().iter().map(|f| (f.name, compile(f))).collect());

/// Describes one failure without echoing large client values back.
fn describe(e: &jsonschema::ValidationError<'_>, schema: &Value) -> String {
    use jsonschema::error::ValidationErrorKind;
    if let ValidationErrorKind::AdditionalProperties { unexpected } = e.kind() {
        return crate::unknown_fields::describe(unexpected, schema, e.schema_path().as_str());
    }
    if let ValidationErrorKind::Not { .. } = e.kind() {
        let at = e.schema_path().as_str();
        let parent = at.strip_suffix("/not").unwrap_or(at);
        if let Some(d) = schema
            .pointer(parent)
            .and_then(|s| s.get("description"))
            .and_then(Value::as_str)
        {
            return d.to_string();
        }
        return "this value is not allowed here".to_string();
    }
    let small = match e.instance().as_ref() {
        Value::Object(_) | Value::Array(_) => false,
        Value::String(s) => s.chars().count() <= 64,
        _ => true,
    };
    if small {
        e.to_string()
    } else {
        e.masked_with("the value").to_string()
    }
}

/// Every failing location of `value` under `validator` (compiled from `schema`), at most
/// `MAX_DETAILS`, with the total count. Where `masked(path)` holds, the message does not show
/// the value (secure fields).
pub fn violations(
    validator: &jsonschema::Validator,
    schema: &Value,
    value: &Value,
    masked: &dyn Fn(&str) -> bool,
) -> (Vec<ErrorDetail>, usize) {
    let mut details = Vec::new();
    let mut total = 0usize;
    for e in validator.iter_errors(value).take(1000) {
        total += 1;
        if details.len() < MAX_DETAILS {
            let path = e.instance_path().as_str().to_string();
            let message = if masked(&path) {
                e.masked_with("the value").to_string()
            } else {
                describe(&e, schema)
            };
            details.push(ErrorDetail {
                path,
                message: clip(&message, 200),
            });
        }
    }
    (details, total)
}

/// Validates `value` against schema `schema_name`: `schema_violation` with one detail per failing
/// location (`path` is the JSON Pointer of the instance, `""` for the root), at most
/// `MAX_DETAILS`. An unknown or broken schema is `internal`.
pub fn validate(schema_name: &str, value: &Value) -> Result<(), CommandError> {
    let compiled = match COMPILED.get(schema_name) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(CommandError::internal(format!("broken schema {e}"))),
        None => {
            return Err(CommandError::internal(format!(
                "no schema named '{}'",
                clip(schema_name, 64)
            )))
        }
    };
    if compiled.validator.is_valid(value) {
        return Ok(());
    }
    let (details, total) = violations(&compiled.validator, &compiled.schema, value, &|_| false);
    let first = details.first().map_or_else(String::new, |d| {
        if d.path.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.path, d.message)
        }
    });
    let message = match total {
        1 => format!("payload does not satisfy schema '{schema_name}': {first}"),
        n => format!(
            "payload does not satisfy schema '{schema_name}': {first} (and {} more)",
            n - 1
        ),
    };
    Err(CommandError::new(ErrorCode::SchemaViolation, message).with_details(details))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_file_is_listed_and_compiles() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = schemas().iter().map(|s| s.file_name()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for f in schemas() {
            let c = COMPILED[f.name].as_ref().unwrap();
            assert_eq!(
                c.schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                f.name
            );
            // An absolute id, so a copy resolves wherever it is read from.
            assert_eq!(c.schema["$id"], schema_id(f.name), "{}", f.name);
            assert!(c.schema["title"].is_string(), "{}", f.name);
            assert!(c.schema["description"].is_string(), "{}", f.name);
            assert!(jsonschema::meta::is_valid(&c.schema), "{}", f.name);
            assert_eq!(schema_file(f.name).unwrap().value(), c.schema);
        }
    }

    #[test]
    fn command_schemas_carry_correlation_ids_and_no_name_patterns() {
        fn walk(v: &Value, found: &mut Vec<String>, at: &str) {
            match v {
                Value::Object(o) => {
                    for (k, x) in o {
                        if k == "pattern" {
                            found.push(at.to_string());
                        }
                        walk(x, found, &format!("{at}/{k}"));
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, found, at)),
                _ => {}
            }
        }
        for f in schemas()
            .iter()
            .filter(|f| f.direction == Direction::Inbound)
        {
            let v = f.value();
            assert_eq!(
                v["properties"]["correlation_id"]["type"],
                json!(["string", "number"]),
                "{}",
                f.name
            );
            // Closed: an unknown field is refused by name.
            assert_eq!(v["additionalProperties"], json!(false), "{}", f.name);
            let mut patterns = Vec::new();
            walk(&v, &mut patterns, "");
            for p in patterns {
                // Only base64 bodies and the service-call path carry patterns.
                assert!(
                    p.ends_with("/body") || p.ends_with("/path"),
                    "{}: pattern at {p}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn violations_name_each_location() {
        let e = validate(
            "tasks-submit",
            &json!({"request_id": 7, "org": "acme", "subject": {"a": 1}}),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaViolation);
        let mut paths: Vec<_> = e.details.iter().map(|d| d.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["", "/request_id", "/subject"]);
        let root = e.details.iter().find(|d| d.path.is_empty()).unwrap();
        assert!(root.message.contains("\"operation\""), "{}", root.message);
        let subject = e.details.iter().find(|d| d.path == "/subject").unwrap();
        assert!(
            subject.message.starts_with("the value"),
            "{}",
            subject.message
        );
        assert!(e.message.contains("(and 2 more)"), "{}", e.message);
    }

    #[test]
    fn bounds_are_checked() {
        let e = validate("task-extend", &json!({"extend_ms": 0})).unwrap_err();
        assert_eq!(e.details[0].path, "/extend_ms");
        assert_eq!(e.details[0].message, "0 is less than the minimum of 1");
        assert_eq!(
            e.message,
            "payload does not satisfy schema 'task-extend': /extend_ms: 0 is less than the minimum of 1"
        );
        validate("task-extend", &json!({"extend_ms": 1})).unwrap();
        for bad in [json!(0), json!(1001), json!(2.5), json!("10")] {
            let e = validate("tasks-query", &json!({"limit": bad})).unwrap_err();
            assert_eq!(e.details[0].path, "/limit", "{bad}");
        }
        validate("tasks-query", &json!({"limit": 1000})).unwrap();
        let e = validate(
            "register",
            &json!({"services": [{"vendor": "a", "name": "b", "version": "1", "timeout_ms": 0, "priority": 1.5}]}),
        )
        .unwrap_err();
        let mut paths: Vec<_> = e.details.iter().map(|d| d.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["/services/0/priority", "/services/0/timeout_ms"]);
    }

    #[test]
    fn details_are_capped() {
        let rules: Vec<Value> = (0..50).map(|_| json!({"operation": 1})).collect();
        let e = validate("register", &json!({ "rules": rules })).unwrap_err();
        assert_eq!(e.details.len(), MAX_DETAILS);
        assert!(e.message.contains("(and 49 more)"), "{}", e.message);
    }

    #[test]
    fn not_rules_use_their_description() {
        let e = validate(
            "service-response",
            &json!({"id": "r", "status": 200, "body": "aGk=", "json": {}}),
        )
        .unwrap_err();
        assert_eq!(e.details[0].path, "/body");
        assert_eq!(e.details[0].message, "Only one of body and json.");
        validate(
            "service-response",
            &json!({"id": "r", "status": 200, "body": null, "json": {}}),
        )
        .unwrap();
        let e = validate(
            "service-response",
            &json!({"id": "r", "status": 200, "body": "a"}),
        )
        .unwrap_err();
        assert_eq!(e.details[0].path, "/body");
    }

    #[test]
    fn every_spec_command_example_satisfies_its_schema() {
        for (suffix, body) in crate::examples::commands() {
            let cmd = crate::commands::Command::parse(&suffix).unwrap();
            validate(cmd.schema_name(), &body).unwrap_or_else(|e| panic!("{suffix}: {e:?}"));
        }
    }

    #[test]
    fn outbound_types_satisfy_their_schemas() {
        use crate::events::{CloudEvent, EventDraft};
        use crate::reply::Reply;
        use crate::services::ServiceRequest;
        use crate::tasks::{Task, TaskState};

        let task: Task = serde_json::from_value(crate::examples::task()).unwrap();
        let task_json = serde_json::to_value(&task).unwrap();
        assert_eq!(task_json, crate::examples::task());
        validate("task", &task_json).unwrap();
        validate("task", &task.announcement()).unwrap();
        let mut done = task.clone();
        done.state = TaskState::Resumed;
        done.resolved_by = Some("timeout".into());
        done.deadline = None;
        validate("task", &serde_json::to_value(&done).unwrap()).unwrap();
        validate("outcome", &serde_json::to_value(done.outcome()).unwrap()).unwrap();

        let draft: EventDraft = serde_json::from_value(crate::examples::command("events")).unwrap();
        let ev = CloudEvent::stamp(draft, "platform-1", 1042, 1_795_341_600_123, "g".into());
        validate("cloud-event", &serde_json::to_value(&ev).unwrap()).unwrap();

        let ok = Reply::ok("tasks/submit", Some(json!("c")), task_json);
        validate("reply", &serde_json::to_value(&ok).unwrap()).unwrap();
        let err = Reply::err("x", None, CommandError::conflict("already resumed"));
        validate("reply", &serde_json::to_value(&err).unwrap()).unwrap();

        let req = ServiceRequest {
            id: "req-uuid".into(),
            method: "POST".into(),
            path: "/ext/acme/greeter/hello".into(),
            query: String::new(),
            headers: Default::default(),
            body: String::new(),
            principal: "alice".into(),
            orgs: vec!["acme".into()],
            deadline: 1_795_341_610_000,
        };
        validate("service-request", &serde_json::to_value(&req).unwrap()).unwrap();
    }

    #[test]
    fn outbound_schemas_refuse_wrong_shapes() {
        let both = json!({"command": "x", "ok": true, "result": 1, "error": {"code": "internal", "message": "m"}});
        assert!(validate("reply", &both).is_err());
        let no_error = json!({"command": "x", "ok": false});
        assert!(validate("reply", &no_error).is_err());
        let bad_code =
            json!({"command": "x", "ok": false, "error": {"code": "oops", "message": "m"}});
        assert_eq!(
            validate("reply", &bad_code).unwrap_err().details[0].path,
            "/error/code"
        );
        let mut ev = json!({"specversion": "1.0", "id": "i", "source": "extbus://p", "type": "a.b",
                            "time": "2026-11-22T10:00:00.123Z", "datacontenttype": "application/json",
                            "seq": 1, "org": "o"});
        validate("cloud-event", &ev).unwrap();
        ev["time"] = json!("yesterday");
        assert_eq!(
            validate("cloud-event", &ev).unwrap_err().details[0].path,
            "/time"
        );
    }

    #[test]
    fn unknown_schemas_are_internal() {
        let e = validate("nope", &json!({})).unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
    }
}
