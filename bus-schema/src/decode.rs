//! The one pipeline every inbound command goes through: size, command, JSON, schema, then the
//! checks a schema cannot make (names, filters, manifests). The first failing step answers.
//! Never trusts the payload for identity: the sender is whoever owns the inbox topic.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::commands::Command;
use crate::entities::{
    CreateEntity, DeleteEntity, EntityAction, EntityQuery, InvokeBehavior, UpdateEntity,
};
use crate::errors::{CommandError, ErrorCode, ErrorDetail};
use crate::events::{EventDraft, ReplayRequest};
use crate::metadata::MetadataAction;
use crate::names::{valid_name, valid_version, NameCheck, NameKind};
use crate::query::Selectors;
use crate::register::Manifest;
use crate::reply::Reply;
use crate::services::{ServiceCall, ServiceResponse};
use crate::tasks::{ExtendRequest, ResolveRequest, SubmitRequest, TaskQuery};
use crate::topics::valid_filter;
use crate::validate::validate;

/// SPEC.md default of the largest command payload.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;

/// The payload field a client correlates replies with.
pub const CORRELATION_ID: &str = "correlation_id";

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub command: Command,
    /// The payload's `correlation_id` (a string or a number), to echo in the reply.
    pub correlation_id: Option<Value>,
    /// The payload object without `correlation_id`.
    pub body: Value,
    /// The body as the command's message type, parsed once while checking it.
    pub typed: Body,
}

/// A command's body as its message type (which one follows from the command).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Event(Box<EventDraft>),
    Replay(ReplayRequest),
    Submit(Box<SubmitRequest>),
    Resolve(ResolveRequest),
    Extend(ExtendRequest),
    /// `tasks/<id>/get` carries nothing but its correlation id.
    Get,
    Query(Box<TaskQuery>),
    Register(Box<Manifest>),
    RegistrationsQuery(crate::registrations::RegistrationsQuery),
    Switch(crate::registrations::SwitchRequest),
    ServiceResponse(Box<ServiceResponse>),
    ServiceCall(Box<ServiceCall>),
    EntityCreate(Box<CreateEntity>),
    /// `entities/<id>/get` and `resolve` carry nothing but their correlation id.
    EntityEmpty,
    EntityUpdate(Box<UpdateEntity>),
    EntityDelete(DeleteEntity),
    EntityQuery(Box<EntityQuery>),
    ActionInvoke(Box<crate::actions::ActionInvoke>),
    ActionResponse(Box<crate::actions::ActionResponse>),
    /// `actions/query` and `ui-plugins/query` carry nothing but their correlation id.
    ListQuery,
    /// `metadata/<id>/get` carries nothing but its correlation id.
    MetadataGet,
    MetadataSet(Box<crate::metadata::SetMetadata>),
    MetadataDelete(Box<crate::metadata::DeleteMetadata>),
    EntityBehavior(Box<InvokeBehavior>),
}

/// A command that failed a check, with whatever correlation id could be recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub correlation_id: Option<Value>,
    pub error: CommandError,
}

/// `body` as message type `T` of `command`.
fn parse_as<T: DeserializeOwned>(command: &Command, body: &Value) -> Result<T, CommandError> {
    T::deserialize(body).map_err(|e| {
        CommandError::new(
            ErrorCode::SchemaViolation,
            format!("payload of '{}' does not fit: {e}", command.kind()),
        )
    })
}

impl Decoded {
    /// The body as the command's message type.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, CommandError> {
        parse_as(&self.command, &self.body)
    }

    /// The success reply to this command.
    pub fn ok(&self, result: Value) -> Reply {
        Reply::ok(self.command.suffix(), self.correlation_id.clone(), result)
    }

    /// The failure reply to this command.
    pub fn err(&self, error: CommandError) -> Reply {
        Reply::err(self.command.suffix(), self.correlation_id.clone(), error)
    }
}

impl Failure {
    fn new(correlation_id: Option<Value>, error: CommandError) -> Failure {
        Failure {
            correlation_id,
            error,
        }
    }

    /// The reply to the command that arrived on inbox suffix `suffix`.
    pub fn reply(&self, suffix: &str) -> Reply {
        Reply::err(suffix, self.correlation_id.clone(), self.error.clone())
    }
}

/// A correlation id worth echoing: a string or a number.
fn correlation_of(obj: &Map<String, Value>) -> Option<Value> {
    obj.get(CORRELATION_ID)
        .filter(|v| v.is_string() || v.is_number())
        .cloned()
}

/// Runs the inbound pipeline on a command that arrived on `extbus/in/<principal>/<suffix>`:
/// `payload_too_large`, then `unknown_command`, `bad_json` (the payload must be a JSON object),
/// `schema_violation`, and `invalid_name`. The correlation id is recovered whenever the payload
/// parses as an object, so every reply after the size check can carry it.
pub fn decode(suffix: &str, payload: &[u8], max_payload: usize) -> Result<Decoded, Failure> {
    if payload.len() > max_payload {
        // Not parsed, as the gate does it: the correlation id is looked for in the first
        // `max_payload` bytes, so the refusal still reaches a requester waiting on it.
        let head = &payload[..max_payload];
        let id = crate::correlation_scan::correlation_id_in_prefix(head);
        return Err(too_large(payload.len(), max_payload, id));
    }
    decode_parsed(suffix, serde_json::from_slice::<Value>(payload))
}

/// `decode` for a body already in memory (commands from inside the broker): the same checks
/// and answers, without writing the body out and parsing it back. Its size is that of its JSON.
pub fn decode_value(suffix: &str, body: Value, max_payload: usize) -> Result<Decoded, Failure> {
    if json_len(&body) > max_payload {
        // Cold path: written out so the correlation id is found where `decode` finds it.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        return decode(suffix, &bytes, max_payload);
    }
    decode_parsed(suffix, Ok(body))
}

fn too_large(len: usize, max_payload: usize, correlation_id: Option<Value>) -> Failure {
    Failure::new(
        correlation_id,
        CommandError::new(
            ErrorCode::PayloadTooLarge,
            format!("payload of {len} bytes is larger than the limit of {max_payload} bytes"),
        ),
    )
}

/// The length of `v` written as compact JSON, counted without a buffer.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The pipeline after the size check, from the payload as parsed (or not).
fn decode_parsed(
    suffix: &str,
    parsed: Result<Value, serde_json::Error>,
) -> Result<Decoded, Failure> {
    let correlation_id = match &parsed {
        Ok(Value::Object(o)) => correlation_of(o),
        _ => None,
    };
    let fail = |error| Failure::new(correlation_id.clone(), error);

    let command = Command::parse(suffix).map_err(fail)?;
    let mut body = match parsed {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => {
            return Err(fail(CommandError::new(
                ErrorCode::BadJson,
                format!("payload must be a JSON object, not {}", kind_of(&other)),
            )))
        }
        Err(e) => {
            return Err(fail(CommandError::new(
                ErrorCode::BadJson,
                format!("payload is not valid JSON: {e}"),
            )))
        }
    };
    validate(command.schema_name(), &body).map_err(fail)?;
    if let Some(o) = body.as_object_mut() {
        o.remove(CORRELATION_ID);
    }
    let typed = check(&command, &body).map_err(fail)?;
    Ok(Decoded {
        command,
        correlation_id,
        body,
        typed,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the schema cannot check: the body fits the command's type, filters and manifests are
/// well formed (`schema_violation`), and names follow SPEC.md (`invalid_name`).
fn check(command: &Command, body: &Value) -> Result<Body, CommandError> {
    let mut names = NameCheck::new();
    let typed = match command {
        Command::Event => {
            let e: EventDraft = parse_as(command, body)?;
            names.check(NameKind::Operation, "/type", &e.r#type);
            names.check(NameKind::Org, "/org", &e.org);
            Body::Event(Box::new(e))
        }
        Command::EventsReplay => {
            let r: ReplayRequest = parse_as(command, body)?;
            if let Some(f) = r.filter.as_deref().filter(|f| !valid_filter(f)) {
                let message = format!(
                    "'{}' is not a valid MQTT topic filter",
                    crate::errors::clip(f, 80)
                );
                return Err(CommandError::new(
                    ErrorCode::SchemaViolation,
                    format!("/filter: {message}"),
                )
                .with_details(vec![ErrorDetail {
                    path: "/filter".into(),
                    message,
                }]));
            }
            Body::Replay(r)
        }
        Command::TasksSubmit => {
            let s: SubmitRequest = parse_as(command, body)?;
            names.check(NameKind::Operation, "/operation", &s.operation);
            names.check(NameKind::Org, "/org", &s.org);
            crate::metadata::check_entries("/metadata", &s.metadata)?;
            Body::Submit(Box::new(s))
        }
        Command::TaskAction { action, .. } => {
            if *action == crate::tasks::TaskAction::Extend {
                Body::Extend(parse_as(command, body)?)
            } else {
                let r: ResolveRequest = parse_as(command, body)?;
                crate::metadata::check_entries("/metadata", &r.metadata)?;
                Body::Resolve(r)
            }
        }
        Command::TaskGet { .. } => Body::Get,
        Command::TasksQuery => {
            let q: TaskQuery = parse_as(command, body)?;
            if let Some(op) = &q.operation {
                names.check(NameKind::Operation, "/operation", op);
            }
            if let Some(org) = &q.org {
                names.check(NameKind::Org, "/org", org);
            }
            check_query("/metadata", q.metadata.as_deref(), Selectors::Metadata)?;
            Body::Query(Box::new(q))
        }
        Command::Register => {
            let m: Manifest = parse_as(command, body)?;
            m.check()?;
            crate::entity_types::check(&m.entity_types)?;
            Body::Register(Box::new(m))
        }
        Command::RegistrationsQuery => {
            let q: crate::registrations::RegistrationsQuery = parse_as(command, body)?;
            if let Some(p) = &q.principal {
                names.check(NameKind::Name, "/principal", p);
            }
            Body::RegistrationsQuery(q)
        }
        Command::RegistrationSwitch {
            principal,
            component,
            ..
        } => {
            let s = parse_as(command, body)?;
            for (what, value) in std::iter::once(("principal", principal))
                .chain(component.iter().map(|c| ("component", c)))
            {
                if !valid_name(value) {
                    return Err(CommandError::new(
                        ErrorCode::InvalidName,
                        format!(
                            "{what} '{}' in the topic is not a valid name: {}",
                            crate::errors::clip(value, 80),
                            NameKind::Name.rule()
                        ),
                    ));
                }
            }
            Body::Switch(s)
        }
        Command::ServiceResponse => Body::ServiceResponse(Box::new(parse_as(command, body)?)),
        Command::ServiceCall {
            vendor,
            name,
            version,
        } => {
            let call: ServiceCall = parse_as(command, body)?;
            for (what, value, ok) in [
                ("vendor", vendor, valid_name(vendor)),
                ("service name", name, valid_name(name)),
                ("version", version, valid_version(version)),
            ] {
                if !ok {
                    let rule = if what == "version" {
                        NameKind::Version.rule()
                    } else {
                        NameKind::Name.rule()
                    };
                    return Err(CommandError::new(
                        ErrorCode::InvalidName,
                        format!(
                            "{what} '{}' in the topic is not a valid name: {rule}",
                            crate::errors::clip(value, 80)
                        ),
                    ));
                }
            }
            Body::ServiceCall(Box::new(call))
        }
        Command::EntitiesCreate => {
            let c: CreateEntity = parse_as(command, body)?;
            names.check(NameKind::Org, "/org", &c.org);
            Body::EntityCreate(Box::new(c))
        }
        Command::Entity { action, .. } => match action {
            EntityAction::Get | EntityAction::Resolve | EntityAction::Secrets => Body::EntityEmpty,
            EntityAction::Update => Body::EntityUpdate(Box::new(parse_as(command, body)?)),
            EntityAction::Delete => Body::EntityDelete(parse_as(command, body)?),
        },
        Command::EntityBehavior { .. } => Body::EntityBehavior(Box::new(parse_as(command, body)?)),
        Command::EntityTypes => Body::EntityEmpty,
        Command::ActionInvoke { extension, name } => {
            let i: crate::actions::ActionInvoke = parse_as(command, body)?;
            for (what, value) in [("extension", extension), ("action name", name)] {
                if !valid_name(value) {
                    return Err(CommandError::new(
                        ErrorCode::InvalidName,
                        format!(
                            "{what} '{}' in the topic is not a valid name: {}",
                            crate::errors::clip(value, 80),
                            NameKind::Name.rule()
                        ),
                    ));
                }
            }
            Body::ActionInvoke(Box::new(i))
        }
        Command::ActionResponse => Body::ActionResponse(Box::new(parse_as(command, body)?)),
        Command::ActionsQuery | Command::UiPluginsQuery => Body::ListQuery,
        Command::EntitiesQuery => {
            let q: EntityQuery = parse_as(command, body)?;
            if let Some(org) = &q.org {
                names.check(NameKind::Org, "/org", org);
            }
            check_query("/metadata", q.metadata.as_deref(), Selectors::Metadata)?;
            check_query("/filter", q.filter.as_deref(), Selectors::Content)?;
            Body::EntityQuery(Box::new(q))
        }
        Command::Metadata { action, .. } => match action {
            MetadataAction::Get => Body::MetadataGet,
            MetadataAction::Set => {
                let r: crate::metadata::SetMetadata = parse_as(command, body)?;
                crate::metadata::check_entries("/entries", &r.entries)?;
                Body::MetadataSet(Box::new(r))
            }
            MetadataAction::Delete => {
                let r: crate::metadata::DeleteMetadata = parse_as(command, body)?;
                let one = [crate::metadata::Entry {
                    domain: r.domain,
                    namespace: r.namespace.clone(),
                    key: r.key.clone(),
                    value: crate::query::TypedValue::Boolean(false),
                    read_only: false,
                }];
                crate::metadata::check_entries("", &one).map_err(strip_index)?;
                Body::MetadataDelete(Box::new(r))
            }
        },
    };
    names.finish()?;
    Ok(typed)
}

/// A query string that must parse (`schema_violation` with the position otherwise).
fn check_query(field: &str, q: Option<&str>, kind: Selectors) -> Result<(), CommandError> {
    match q {
        Some(text) => crate::query::parse(text, kind)
            .map(|_| ())
            .map_err(|e| e.to_command_error(field)),
        None => Ok(()),
    }
}

/// An entry check's error for a body that is one entry: `/0/key` becomes `/key`.
fn strip_index(mut e: CommandError) -> CommandError {
    for d in &mut e.details {
        d.path = d.path.trim_start_matches("/0").to_string();
    }
    if let Some(d) = e.details.first() {
        e.message = format!("{}: {}", d.path, d.message);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::{command as example, commands as spec_examples};
    use crate::tasks::TaskAction;
    use proptest::prelude::*;
    use serde_json::json;

    const MAX: usize = DEFAULT_MAX_PAYLOAD;

    fn ok(suffix: &str, body: Value) -> Decoded {
        let bytes = serde_json::to_vec(&body).unwrap();
        decode(suffix, &bytes, MAX).unwrap_or_else(|f| panic!("{suffix}: {:?}", f.error))
    }

    fn fail(suffix: &str, payload: &[u8]) -> Failure {
        decode(suffix, payload, MAX).expect_err(suffix)
    }

    fn fail_json(suffix: &str, body: Value) -> Failure {
        fail(suffix, &serde_json::to_vec(&body).unwrap())
    }

    #[test]
    fn a_value_decodes_as_its_bytes_do() {
        let mut inputs = spec_examples();
        inputs.push((
            "tasks/submit".into(),
            json!({"correlation_id": 7, "operation": "Bad"}),
        ));
        inputs.push(("events".into(), json!([1, 2])));
        inputs.push(("no/such".into(), json!({"correlation_id": "c"})));
        for (suffix, body) in &inputs {
            let (suffix, body) = (suffix.as_str(), body.clone());
            let bytes = serde_json::to_vec(&body).unwrap();
            for max in [MAX, bytes.len(), bytes.len() - 1] {
                assert_eq!(
                    decode_value(suffix, body.clone(), max),
                    decode(suffix, &bytes, max),
                    "{suffix} {max}"
                );
            }
        }
    }

    fn with_corr(mut v: Value) -> Value {
        v["correlation_id"] = json!("c-1");
        v
    }

    #[test]
    fn the_default_limit_is_spec_256_kib() {
        // SPEC.md: 256 KiB. Counted in bytes here, not through the constant.
        let body = |n: usize| {
            let frame = br#"{"after":""}"#.len();
            format!(r#"{{"after":"{}"}}"#, "a".repeat(n - frame)).into_bytes()
        };
        assert!(decode("tasks/query", &body(262_144), MAX).is_ok());
        let f = decode("tasks/query", &body(262_145), MAX).expect_err("one byte over");
        assert_eq!(f.error.code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn every_spec_example_decodes() {
        for (suffix, body) in spec_examples() {
            let suffix = suffix.as_str();
            let d = ok(suffix, with_corr(body.clone()));
            assert_eq!(d.command, Command::parse(suffix).unwrap());
            assert_eq!(d.correlation_id, Some(json!("c-1")), "{suffix}");
            assert_eq!(
                d.body, body,
                "{suffix}: correlation_id is taken out of the body"
            );
            let plain = ok(suffix, body);
            assert_eq!(plain.correlation_id, None);
        }
    }

    #[test]
    fn typed_getters_give_the_message_types() {
        let d = |suffix: &str| ok(suffix, example(suffix));
        assert_eq!(d("events").parse::<EventDraft>().unwrap().org, "acme");
        let r: ReplayRequest = d("events/replay").parse().unwrap();
        assert_eq!(r.limit, Some(100));
        let s: SubmitRequest = d("tasks/submit").parse().unwrap();
        assert_eq!(s.request_id, "idem-1");
        let extend = d("tasks/0193f6c2-aa/extend");
        assert_eq!(extend.parse::<ExtendRequest>().unwrap().extend_ms, 60_000);
        let want = Command::TaskAction {
            task_id: "0193f6c2-aa".into(),
            action: TaskAction::Extend,
        };
        assert_eq!(extend.command, want);
        let q: TaskQuery = d("tasks/query").parse().unwrap();
        assert_eq!(q.state, Some(crate::tasks::TaskState::Blocked));
        let m: Manifest = d("register").parse().unwrap();
        assert_eq!(m.services[0].timeout_ms, 10_000);
        let r: ServiceResponse = d("services/responses").parse().unwrap();
        assert_eq!(r.status, 200);
        let call = d("services/acme/greeter/1.0.0");
        assert_eq!(call.parse::<ServiceCall>().unwrap().query, "lang=en");
        let e = call.parse::<SubmitRequest>().unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaViolation);
    }

    #[test]
    fn too_large_comes_first() {
        let body = br#"{"correlation_id":"c","extend_ms":1}"#;
        let f = decode("nonsense", body, body.len() - 1).unwrap_err();
        assert_eq!(f.error.code, ErrorCode::PayloadTooLarge);
        // Found within the first `limit` bytes without parsing the whole body.
        assert_eq!(f.correlation_id, Some(json!("c")));
        assert!(decode("tasks/t/extend", body, body.len()).is_ok());
        // An id past the limit is not looked for.
        let late = br#"{"extend_ms":1,"correlation_id":"c"}"#;
        let f = decode("tasks/t/extend", late, 20).unwrap_err();
        assert_eq!(f.error.code, ErrorCode::PayloadTooLarge);
        assert_eq!(f.correlation_id, None);
    }

    #[test]
    fn unknown_commands_keep_the_correlation_id() {
        let f = fail("tasks/t/delete", br#"{"correlation_id": 42}"#);
        assert_eq!(f.error.code, ErrorCode::UnknownCommand);
        assert_eq!(f.error.message, "unknown command 'tasks/t/delete'");
        assert_eq!(f.correlation_id, Some(json!(42)));
        let f = fail("nope", b"not json either");
        assert_eq!(f.error.code, ErrorCode::UnknownCommand);
        let r = f.reply("nope");
        assert_eq!(r.command, "nope");
        assert!(!r.ok);
    }

    #[test]
    fn bad_json_and_non_objects() {
        for bad in [
            &b"{"[..],
            b"",
            b"   ",
            b"not json",
            b"{\"a\":1,}",
            b"\xff\xfe",
            b"{} {}",
        ] {
            let f = fail("tasks/submit", bad);
            assert_eq!(f.error.code, ErrorCode::BadJson, "{bad:?}");
            assert!(
                f.error.message.starts_with("payload is not valid JSON"),
                "{}",
                f.error.message
            );
            assert_eq!(f.correlation_id, None);
        }
        for (bad, what) in [
            ("[]", "an array"),
            ("\"x\"", "a string"),
            ("null", "null"),
            ("3", "a number"),
        ] {
            let f = fail("tasks/0193/get", bad.as_bytes());
            assert_eq!(f.error.code, ErrorCode::BadJson);
            assert_eq!(
                f.error.message,
                format!("payload must be a JSON object, not {what}")
            );
        }
    }

    #[test]
    fn schema_violations_keep_the_correlation_id() {
        let f = fail_json(
            "tasks/submit",
            json!({"correlation_id": "c-18", "operation": "BAD"}),
        );
        assert_eq!(
            f.error.code,
            ErrorCode::SchemaViolation,
            "schema before names"
        );
        assert_eq!(f.correlation_id, Some(json!("c-18")));
        assert_eq!(f.error.details.len(), 2);
        assert!(f.error.details.iter().all(|d| d.path.is_empty()));

        let f = fail_json(
            "tasks/t/extend",
            json!({"correlation_id": 7, "extend_ms": 0}),
        );
        assert_eq!(f.error.details[0].path, "/extend_ms");
        assert_eq!(f.correlation_id, Some(json!(7)));

        let f = fail_json("tasks/t/get", json!({"correlation_id": true}));
        assert_eq!(f.error.code, ErrorCode::SchemaViolation);
        assert_eq!(f.error.details[0].path, "/correlation_id");
        assert_eq!(
            f.correlation_id, None,
            "only strings and numbers are echoed"
        );

        let f = fail_json(
            "services/responses",
            json!({"id": "r", "status": 200, "body": "not base64!"}),
        );
        assert_eq!(f.error.details[0].path, "/body");
        let f = fail_json("events/replay", json!({"from_seq": -1, "limit": 5000}));
        let paths: Vec<_> = f.error.details.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths.len(), 2);
        assert!(paths.contains(&"/from_seq") && paths.contains(&"/limit"));
    }

    #[test]
    fn checks_beyond_the_schema() {
        // JSON Schema counts 60000.0 as an integer; the message type does not.
        let f = fail_json("tasks/t/extend", json!({"extend_ms": 60000.0}));
        assert_eq!(f.error.code, ErrorCode::SchemaViolation);
        assert!(
            f.error.message.contains("tasks/extend"),
            "{}",
            f.error.message
        );

        let f = fail_json(
            "events/replay",
            json!({"correlation_id": "r", "from_seq": 0, "filter": "a/#/b"}),
        );
        assert_eq!(f.error.code, ErrorCode::SchemaViolation);
        assert_eq!(f.error.details[0].path, "/filter");
        assert_eq!(f.correlation_id, Some(json!("r")));

        let mut m = example("register");
        m["services"][0]["url_patterns"] = json!(["^/ok", "(("]);
        let f = fail_json("register", m);
        assert_eq!(f.error.code, ErrorCode::SchemaViolation);
        assert_eq!(f.error.details[0].path, "/services/0/url_patterns/1");
    }

    #[test]
    fn bad_names_are_invalid_name() {
        #[rustfmt::skip]
        let cases = [
            ("events", json!({"type": "vapp", "org": "acme"}), vec!["/type"]),
            ("events", json!({"type": "vapp.instantiate", "org": "Acme"}), vec!["/org"]),
            ("events", json!({"type": "a.b.c", "org": ""}), vec!["/type", "/org"]),
            ("tasks/submit", json!({"request_id": "r", "operation": "vapp/instantiate", "org": "acme"}), vec!["/operation"]),
            ("tasks/submit", json!({"request_id": "r", "operation": "vapp.instantiate", "org": "*"}), vec!["/org"]),
            ("tasks/query", json!({"org": "a b"}), vec!["/org"]),
            ("tasks/query", json!({"operation": "x"}), vec!["/operation"]),
            ("register", json!({"rules": [{"operation": "nodot"}]}), vec!["/rules/0/operation"]),
            ("register", json!({"services": [{"vendor": "a", "name": "B", "version": "1"}]}), vec!["/services/0/name"]),
        ];
        for (suffix, body, paths) in cases {
            let f = fail_json(suffix, with_corr(body.clone()));
            assert_eq!(f.error.code, ErrorCode::InvalidName, "{suffix} {body}");
            let got: Vec<_> = f.error.details.iter().map(|d| d.path.as_str()).collect();
            assert_eq!(got, paths, "{suffix} {body}");
            assert_eq!(f.correlation_id, Some(json!("c-1")));
        }
        let call = json!({"method": "GET", "path": "/x"});
        for (suffix, word, rule) in [
            (
                "services/ACME/greeter/1.0.0",
                "vendor 'ACME'",
                "[a-z0-9-]{1,64}",
            ),
            (
                "services/acme/great_er/1.0.0",
                "service name 'great_er'",
                "[a-z0-9-]{1,64}",
            ),
            (
                "services/acme/greeter/1.0.0+b",
                "version '1.0.0+b'",
                "[a-z0-9.-]{1,64}",
            ),
        ] {
            let f = fail_json(suffix, call.clone());
            assert_eq!(f.error.code, ErrorCode::InvalidName, "{suffix}");
            assert!(f.error.message.starts_with(word), "{}", f.error.message);
            // Each names the rule its own kind of name must follow.
            assert!(f.error.message.ends_with(rule), "{}", f.error.message);
        }
        // Query fields are optional: null is no filter at all.
        ok(
            "tasks/query",
            json!({"org": null, "operation": null, "state": null}),
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let mut v = example("tasks/submit");
        v["x-trace"] = json!({"span": 1});
        let f = fail_json("tasks/submit", v);
        assert_eq!(f.error.code, ErrorCode::SchemaViolation);
        assert!(
            f.error.message.contains("unknown field `x-trace`"),
            "{}",
            f.error.message
        );
        // A common other name gets a suggestion; nested objects are closed too.
        let f = fail_json("register", json!({"callouts": []}));
        assert!(
            f.error.message.contains("did you mean `rules`?"),
            "{}",
            f.error.message
        );
        let f = fail_json(
            "register",
            json!({"rules": [{"operation": "vm.create", "timeout": 5}]}),
        );
        assert_eq!(f.error.details[0].path, "/rules/0");
        assert!(
            f.error.details[0]
                .message
                .contains("did you mean `timeout_ms`?"),
            "{:?}",
            f.error.details
        );
        // Free-form values stay free-form.
        let mut v = example("tasks/submit");
        v["data"] = json!({"anything": {"at": ["all"]}});
        ok("tasks/submit", v);
    }

    #[test]
    fn replies_from_decoded_commands() {
        let d = ok("tasks/t/get", json!({"correlation_id": "c-9"}));
        let r = d.ok(json!({"id": "t"}));
        assert_eq!(r.command, "tasks/t/get");
        assert_eq!(r.correlation_id, Some(json!("c-9")));
        let r = d.err(CommandError::not_found("no task t"));
        assert_eq!(
            serde_json::to_value(&r).unwrap()["error"]["code"],
            "not_found"
        );
    }

    const DECODE_CODES: [ErrorCode; 5] = [
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownCommand,
        ErrorCode::BadJson,
        ErrorCode::SchemaViolation,
        ErrorCode::InvalidName,
    ];

    fn suffix_strategy() -> impl Strategy<Value = String> {
        let known: Vec<String> = spec_examples().into_iter().map(|(s, _)| s).collect();
        prop_oneof![
            proptest::sample::select(known),
            "[a-z/]{0,24}",
            "\\PC{0,40}",
            "(tasks|services|events)/[A-Za-z0-9._+#-]{0,8}(/[A-Za-z0-9._-]{0,8}){0,3}",
        ]
    }

    fn json_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z.*/#+ -]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let keys = proptest::sample::select(
                "correlation_id type org operation request_id from_seq filter limit extend_ms \
                 message result state rules services vendor name version url_patterns id status \
                 body json method path headers orgs timeout_ms x"
                    .split_whitespace()
                    .collect::<Vec<_>>(),
            );
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    fn assert_sane(suffix: &str, payload: &[u8], max: usize) -> Result<(), TestCaseError> {
        match decode(suffix, payload, max) {
            Ok(d) => {
                prop_assert!(payload.len() <= max);
                prop_assert_eq!(d.command.suffix(), suffix);
                prop_assert!(d.body.is_object());
                prop_assert!(d.body.get(CORRELATION_ID).is_none());
                prop_assert!(validate(d.command.schema_name(), &d.body).is_ok());
            }
            Err(f) => {
                prop_assert!(DECODE_CODES.contains(&f.error.code), "{:?}", f.error);
                prop_assert!(!f.error.message.is_empty());
                prop_assert!(f.error.details.len() <= crate::validate::MAX_DETAILS);
                if let Some(c) = &f.correlation_id {
                    prop_assert!(c.is_string() || c.is_number());
                }
                let r = serde_json::to_value(f.reply(suffix)).unwrap();
                prop_assert!(validate("reply", &r).is_ok(), "{}", r);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(suffix in suffix_strategy(),
                                       payload in proptest::collection::vec(any::<u8>(), 0..256),
                                       max in 0usize..300) {
            assert_sane(&suffix, &payload, max)?;
        }

        #[test]
        fn garbage_is_refused_with_a_spec_code(suffix in suffix_strategy(),
                                              payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            // A byte that cannot start JSON makes the payload garbage whatever follows.
            let mut garbage = vec![b'!'];
            garbage.extend(payload);
            let f = decode(&suffix, &garbage, MAX).unwrap_err();
            let expected = if Command::parse(&suffix).is_ok() {
                ErrorCode::BadJson
            } else {
                ErrorCode::UnknownCommand
            };
            prop_assert_eq!(f.error.code, expected);
        }

        #[test]
        fn arbitrary_json_never_panics(suffix in suffix_strategy(), body in json_strategy()) {
            assert_sane(&suffix, &serde_json::to_vec(&body).unwrap(), MAX)?;
        }
    }
}
