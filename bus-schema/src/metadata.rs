//! Object metadata of SPEC.md v2: the entry (`{domain, namespace, key, value, read_only}`),
//! the checks a schema cannot make (names, value size, duplicates), and the `metadata/
//! <object_id>/set|delete|get` command bodies and rows (`FAMILY`). Pure data: who may see or
//! write an entry is decided by the broker.

use serde::{Deserialize, Serialize};

use crate::commands::Command;
use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};
use crate::query::TypedValue;
use crate::roles::Role;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::validate::schema;

/// Most bytes of one string value.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most bytes of a namespace or key.
pub const MAX_NAME_BYTES: usize = 128;

/// Who sees an entry: principals of the object's org (`tenant`) or only those with all orgs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    #[default]
    Tenant,
    Provider,
}

impl Domain {
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Tenant => "tenant",
            Domain::Provider => "provider",
        }
    }
}

/// One metadata entry, unique on (domain, namespace, key) within its object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub domain: Domain,
    pub namespace: String,
    pub key: String,
    pub value: TypedValue,
    #[serde(default)]
    pub read_only: bool,
}

impl Entry {
    /// Whether it is the entry named (domain, namespace, key).
    pub fn is(&self, domain: Domain, namespace: &str, key: &str) -> bool {
        self.domain == domain && self.namespace == namespace && self.key == key
    }
}

/// A namespace or key: `[a-z0-9._-]{1,128}`.
pub fn valid_meta_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_BYTES
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Checks a list of entries to write at JSON Pointer `at` (`/entries`): names
/// (`invalid_name`), then value size and duplicates (`schema_violation`).
pub fn check_entries(at: &str, entries: &[Entry]) -> Result<(), CommandError> {
    for (i, e) in entries.iter().enumerate() {
        for (field, v) in [("namespace", &e.namespace), ("key", &e.key)] {
            if !valid_meta_name(v) {
                let message = format!(
                    "{field} '{}' is not a valid name: [a-z0-9._-]{{1,128}}",
                    clip(v, 80)
                );
                return Err(one(
                    ErrorCode::InvalidName,
                    format!("{at}/{i}/{field}"),
                    message,
                ));
            }
        }
        if let TypedValue::String(s) = &e.value {
            if s.len() > MAX_VALUE_BYTES {
                let message = format!(
                    "a value of {} bytes is larger than {MAX_VALUE_BYTES} bytes",
                    s.len()
                );
                return Err(one(
                    ErrorCode::SchemaViolation,
                    format!("{at}/{i}/value"),
                    message,
                ));
            }
        }
        if let TypedValue::Number(n) = e.value {
            if !n.is_finite() {
                let message = "a number value must be finite".to_string();
                return Err(one(
                    ErrorCode::SchemaViolation,
                    format!("{at}/{i}/value"),
                    message,
                ));
            }
        }
        if let Some(j) = entries[..i]
            .iter()
            .position(|o| o.is(e.domain, &e.namespace, &e.key))
        {
            let message = format!(
                "entry ({}, {}, {}) is also entry {j}",
                e.domain.as_str(),
                e.namespace,
                e.key
            );
            return Err(one(
                ErrorCode::SchemaViolation,
                format!("{at}/{i}"),
                message,
            ));
        }
    }
    Ok(())
}

fn one(code: ErrorCode, path: String, message: String) -> CommandError {
    CommandError::new(code, format!("{path}: {message}"))
        .with_details(vec![ErrorDetail { path, message }])
}

/// Body of `metadata/<object_id>/set`: entries to add or replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetMetadata {
    pub entries: Vec<Entry>,
}

/// Body of `metadata/<object_id>/delete`: the entry to remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteMetadata {
    #[serde(default)]
    pub domain: Domain,
    pub namespace: String,
    pub key: String,
}

/// What is done to one object's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataAction {
    Get,
    Set,
    Delete,
}

impl MetadataAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataAction::Get => "get",
            MetadataAction::Set => "set",
            MetadataAction::Delete => "delete",
        }
    }
}

fn on(p: &[&str], action: MetadataAction) -> Command {
    Command::Metadata {
        object_id: arg(p, 0),
        action,
    }
}

/// Roles that may write metadata (observers only read).
const WRITERS: &[Role] = &[Role::Platform, Role::Extension, Role::Operator];

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[GET, SET, DELETE];

pub const GET: Spec = Spec {
    suffix: "metadata/{object_id}/get",
    kind: "metadata/get",
    schema: schema!("metadata-get", Inbound),
    channel: "cmdMetadataGet",
    description: "any role that may see the object (an entity or a task): its entries this principal may see.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |p| on(p, MetadataAction::Get),
};

pub const SET: Spec = Spec {
    suffix: "metadata/{object_id}/set",
    kind: "metadata/set",
    schema: schema!("metadata-set", Inbound),
    channel: "cmdMetadataSet",
    description: "platform, extension, operator that may write the object: add or replace entries (provider and read_only entries: principals with all orgs).",
    roles: WRITERS,
    read_only: false,
    example: r#"{"entries": [{"domain": "tenant", "namespace": "billing", "key": "cost-center", "value": {"type": "string", "value": "cc-42"}, "read_only": false}]}"#,
    build: |p| on(p, MetadataAction::Set),
};

pub const DELETE: Spec = Spec {
    suffix: "metadata/{object_id}/delete",
    kind: "metadata/delete",
    schema: schema!("metadata-delete", Inbound),
    channel: "cmdMetadataDelete",
    description: "platform, extension, operator that may write the object: remove one entry.",
    roles: WRITERS,
    read_only: false,
    example: r#"{"domain": "tenant", "namespace": "billing", "key": "cost-center"}"#,
    build: |p| on(p, MetadataAction::Delete),
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(ns: &str, key: &str, v: TypedValue) -> Entry {
        Entry {
            domain: Domain::Tenant,
            namespace: ns.into(),
            key: key.into(),
            value: v,
            read_only: false,
        }
    }

    #[test]
    fn entries_round_trip_in_the_spec_shape() {
        let v = json!({"domain": "tenant", "namespace": "billing", "key": "cost-center",
                       "value": {"type": "string", "value": "cc-42"}, "read_only": false});
        let e: Entry = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            e,
            entry("billing", "cost-center", TypedValue::String("cc-42".into()))
        );
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        let n = json!({"namespace": "a", "key": "b", "value": {"type": "number", "value": 8}});
        let e: Entry = serde_json::from_value(n.clone()).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap()["value"], n["value"]);
        let f = json!({"type": "number", "value": 0.5});
        let v: TypedValue = serde_json::from_value(f.clone()).unwrap();
        assert_eq!(serde_json::to_value(&v).unwrap(), f);
        // A value of the wrong JSON type for its declared type does not parse.
        let bad = json!({"namespace": "a", "key": "b", "value": {"type": "number", "value": "x"}});
        assert!(serde_json::from_value::<Entry>(bad).is_err());
    }

    #[test]
    fn bad_entries_are_refused_with_their_path() {
        let s = |v: &str| TypedValue::String(v.into());
        let cases = [
            (
                vec![entry("Billing", "k", s("v"))],
                ErrorCode::InvalidName,
                "/entries/0/namespace",
            ),
            (
                vec![entry("b", &"k".repeat(129), s("v"))],
                ErrorCode::InvalidName,
                "/entries/0/key",
            ),
            (
                vec![entry("b", "k", s(&"x".repeat(4097)))],
                ErrorCode::SchemaViolation,
                "/entries/0/value",
            ),
            (
                vec![entry("b", "k", s("1")), entry("b", "k", s("2"))],
                ErrorCode::SchemaViolation,
                "/entries/1",
            ),
        ];
        for (entries, code, path) in cases {
            let e = check_entries("/entries", &entries).unwrap_err();
            assert_eq!(e.code, code, "{path}");
            assert_eq!(e.details[0].path, path);
        }
        let fine = vec![
            entry("b", "k", s(&"x".repeat(4096))),
            entry("b.c_d-1", "k", s("2")),
        ];
        assert!(check_entries("/entries", &fine).is_ok());
    }
}
