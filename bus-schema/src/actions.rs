//! Custom actions of SPEC.md v2 "Custom actions": the manifest's action declaration, the invoke
//! body, the request delivered to the extension, its response, the checks a declaration must pass
//! beyond its JSON Schema, password redaction and `success_message` templates, with the command
//! rows (`FAMILY`). Waiting for answers, roles and events belong to the broker.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::commands::Command;
use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};
use crate::names::{NameCheck, NameKind};
use crate::roles::Role;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::time_fmt;
use crate::validate::schema;

/// Default `timeout_ms` of an action.
pub const DEFAULT_ACTION_TIMEOUT_MS: u64 = 10_000;
/// What a `format: password` value is replaced with outside the request to its extension.
pub const REDACTED: &str = "********";

fn default_timeout_ms() -> u64 {
    DEFAULT_ACTION_TIMEOUT_MS
}
fn default_resource() -> String {
    "none".into()
}
fn default_parameters() -> Value {
    serde_json::json!({"type": "object"})
}

/// One action of a manifest (or of an executable extension's config entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// An entity type id, `task:<entity>.<operation>`, or `none`.
    #[serde(default = "default_resource")]
    pub resource: String,
    /// Who may invoke it besides `admin`.
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// JSON Schema 2020-12 of the arguments.
    #[serde(default = "default_parameters")]
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_message: Option<String>,
}

impl ActionSpec {
    /// May a principal with `roles` invoke it?
    pub fn permits(&self, roles: &[Role]) -> bool {
        roles
            .iter()
            .any(|r| *r == Role::Admin || self.roles.contains(r))
    }

    /// The parameters schema, compiled with formats checked (`password` is accepted as text).
    pub fn compile(&self) -> Result<jsonschema::Validator, String> {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .with_format("password", |_: &str| true)
            .build(&self.parameters)
            .map_err(|e| e.to_string())
    }

    /// The JSON Pointers (into the arguments) of every `format: password` property.
    pub fn password_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        password_paths(&self.parameters, "", &mut out, 0);
        out
    }

    /// `arguments` with every password value replaced by `REDACTED`.
    pub fn redact(&self, arguments: &Value) -> Value {
        let mut v = arguments.clone();
        for p in self.password_paths() {
            if let Some(x) = v.pointer_mut(&p) {
                *x = Value::String(REDACTED.into());
            }
        }
        v
    }

    /// The declaration as listed to people: password fields' `default`, `const`, `examples`
    /// and `enum` are redacted.
    pub fn listed(&self) -> ActionSpec {
        let mut a = self.clone();
        redact_schema(&mut a.parameters, 0);
        a
    }

    /// `success_message` with `{{field}}` from the (redacted) arguments and `{{resource}}`.
    pub fn success_text(&self, arguments: &Value, resource_id: Option<&str>) -> Option<String> {
        let template = self.success_message.as_deref()?;
        let args = self.redact(arguments);
        Some(fill(template, &args, resource_id))
    }
}

fn password_paths(schema: &Value, at: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    if schema.get("format").and_then(Value::as_str) == Some("password") {
        out.push(at.to_string());
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (k, s) in props {
            let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            password_paths(s, &p, out, depth + 1);
        }
    }
}

fn redact_schema(schema: &mut Value, depth: usize) {
    if depth > 16 {
        return;
    }
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    if o.get("format").and_then(Value::as_str) == Some("password") {
        for k in ["default", "const"] {
            if o.contains_key(k) {
                o.insert(k.into(), Value::String(REDACTED.into()));
            }
        }
        for k in ["examples", "enum"] {
            if let Some(Value::Array(a)) = o.get_mut(k) {
                a.iter_mut()
                    .for_each(|x| *x = Value::String(REDACTED.into()));
            }
        }
    }
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(|s| redact_schema(s, depth + 1));
    }
}

/// Fills `{{name}}` placeholders: `resource` is the resource id, any other name a top-level
/// argument (strings as they are, other values as JSON). Unknown names become empty.
pub fn fill(template: &str, arguments: &Value, resource_id: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        if name == "resource" {
            out.push_str(resource_id.unwrap_or(""));
        } else {
            match arguments.get(name) {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) | None => {}
                Some(v) => out.push_str(&v.to_string()),
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Checks a manifest's actions beyond the schema: parameters compile, no name twice, resource
/// forms (`schema_violation`); then names (`invalid_name`, into `names`).
pub fn check(actions: &[ActionSpec], details: &mut Vec<ErrorDetail>, names: &mut NameCheck) {
    for (i, a) in actions.iter().enumerate() {
        if let Err(why) = a.compile() {
            details.push(ErrorDetail {
                path: format!("/actions/{i}/parameters"),
                message: format!("the schema does not compile: {}", clip(&why, 160)),
            });
        }
        if actions[..i].iter().any(|o| o.name == a.name) {
            details.push(ErrorDetail {
                path: format!("/actions/{i}"),
                message: format!("action '{}' is declared twice", clip(&a.name, 64)),
            });
        }
        if !valid_resource(&a.resource) {
            details.push(ErrorDetail {
                path: format!("/actions/{i}/resource"),
                message: format!(
                    "'{}' is not an entity type id, task:<entity>.<operation> or none",
                    clip(&a.resource, 80)
                ),
            });
        }
        names.check(NameKind::Name, format!("/actions/{i}/name"), &a.name);
    }
}

fn valid_resource(r: &str) -> bool {
    if r == "none" {
        return true;
    }
    if let Some(op) = r.strip_prefix("task:") {
        return crate::names::valid_operation(op);
    }
    r.starts_with(crate::entity_types::TYPE_ID_PREFIX) && r.len() <= 256
}

/// Body of `actions/<extension>/<name>/invoke`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ActionInvoke {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// What the broker publishes on `extbus/actions/<extension>/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub id: String,
    /// The action's name.
    pub action: String,
    pub resource_id: Option<String>,
    pub arguments: Value,
    pub principal: String,
    pub orgs: Vec<String>,
    #[serde(with = "time_fmt::ms")]
    pub deadline: u64,
}

/// Whether an action run worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Error => "error",
        }
    }
}

/// Body of `actions/responses`: an extension's answer to run `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResponse {
    pub id: String,
    pub status: RunStatus,
    /// A string, an object, or an array of objects (a table).
    #[serde(default)]
    pub message: Value,
}

/// Body of `actions/query` and `ui-plugins/query` (nothing but a correlation id).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListQuery {}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[INVOKE, RESPONSE, QUERY, crate::ui_plugins::QUERY];

pub const INVOKE: Spec = Spec {
    suffix: "actions/{extension}/{name}/invoke",
    kind: "actions/invoke",
    schema: schema!("action-invoke", Inbound),
    channel: "cmdActionInvoke",
    description: "a role the action names (or admin): run an extension's action; the run's answer is the reply.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"resource_id": "urn:extbus:entity:0193f6c2-aa", "arguments": {"label": "nightly", "quiesce": true}}"#,
    build: |p| Command::ActionInvoke {
        extension: arg(p, 0),
        name: arg(p, 1),
    },
};

pub const RESPONSE: Spec = Spec {
    suffix: "actions/responses",
    kind: "actions/responses",
    schema: schema!("action-response", Inbound),
    channel: "cmdActionResponse",
    description: "extension: answer an action request.",
    roles: &[Role::Extension],
    read_only: false,
    example: r#"{"id": "0193f6c2-run", "status": "success", "message": "snapshot taken"}"#,
    build: |_| Command::ActionResponse,
};

pub const QUERY: Spec = Spec {
    suffix: "actions/query",
    kind: "actions/query",
    schema: schema!("actions-query", Inbound),
    channel: "cmdActionsQuery",
    description: "any role: the actions the sender may invoke.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |_| Command::ActionsQuery,
};

/// `CommandError` for arguments that fail the parameters: one detail per failing field.
pub fn arguments_error(details: Vec<ErrorDetail>, total: usize) -> CommandError {
    let first = details.first().map_or_else(String::new, |d| {
        format!(
            "{}: {}",
            if d.path.is_empty() { "/" } else { &d.path },
            d.message
        )
    });
    let message = match total {
        0 | 1 => format!("arguments do not satisfy the action's parameters: {first}"),
        n => format!(
            "arguments do not satisfy the action's parameters: {first} (and {} more)",
            n - 1
        ),
    };
    CommandError::new(ErrorCode::SchemaViolation, message).with_details(details)
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
