//! Entity types of SPEC.md v2 (a manifest's `entity_types`): the declaration, its id
//! `urn:extbus:type:<vendor>:<nss>:<semver>`, and the checks a declaration must pass beyond the
//! manifest's JSON Schema: names, semver, a schema that compiles as JSON Schema 2020-12.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};
use crate::names::{NameCheck, NameKind};
use crate::roles::Role;

/// Prefix of every entity type id.
pub const TYPE_ID_PREFIX: &str = "urn:extbus:type:";

/// The keyword that marks a property write-only.
pub const SECURE_KEYWORD: &str = "x-extbus-secure";

/// Which lifecycle hooks the type's extension wants (run as blocking tasks; not yet run).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hooks {
    #[serde(default)]
    pub post_create: bool,
    #[serde(default)]
    pub pre_update: bool,
    #[serde(default)]
    pub pre_delete: bool,
    #[serde(default)]
    pub post_delete: bool,
}

/// A behavior the type's extension offers on its entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Behavior {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Who may read and write entities of a type (besides `admin`; the owner may always read).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub read: Vec<Role>,
    #[serde(default)]
    pub write: Vec<Role>,
}

/// One entry of a manifest's `entity_types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityTypeSpec {
    pub vendor: String,
    pub nss: String,
    pub version: String,
    #[serde(default)]
    pub name: Option<String>,
    pub schema: Value,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub behaviors: Vec<Behavior>,
    #[serde(default)]
    pub access: Access,
}

impl EntityTypeSpec {
    /// `urn:extbus:type:<vendor>:<nss>:<version>`.
    pub fn id(&self) -> String {
        type_id(&self.vendor, &self.nss, &self.version)
    }

    /// Why the schema is not a valid JSON Schema 2020-12 document, if it is not (checked
    /// against the meta-schema, without compiling it).
    pub fn meta_check(&self) -> Result<(), String> {
        jsonschema::meta::validate(&self.schema).map_err(|e| e.to_string())
    }

    /// The JSON Schema, compiled (draft 2020-12), or why it does not compile.
    pub fn compile(&self) -> Result<jsonschema::Validator, String> {
        self.meta_check()?;
        jsonschema::draft202012::options()
            .build(&self.schema)
            .map_err(|e| e.to_string())
    }
}

/// `urn:extbus:type:<vendor>:<nss>:<version>`.
pub fn type_id(vendor: &str, nss: &str, version: &str) -> String {
    format!("{TYPE_ID_PREFIX}{vendor}:{nss}:{version}")
}

/// Semantic versioning 2.0.0: `MAJOR.MINOR.PATCH`, optional `-pre` and `+build` parts.
pub fn valid_semver(v: &str) -> bool {
    if v.is_empty() || v.len() > 64 {
        return false;
    }
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
        && pre.is_none_or(ident)
        && build.is_none_or(ident)
}

/// Checks a manifest's `entity_types`: each schema is a valid JSON Schema document, no type is
/// declared twice, no behavior twice (`schema_violation`, a detail per location); then names
/// and versions (`invalid_name`). Compiling is left to the broker, once per new or changed
/// type.
pub fn check(types: &[EntityTypeSpec]) -> Result<(), CommandError> {
    let mut details = Vec::new();
    for (i, t) in types.iter().enumerate() {
        if let Err(why) = t.meta_check() {
            details.push(ErrorDetail {
                path: format!("/entity_types/{i}/schema"),
                message: format!("the schema does not compile: {}", clip(&why, 160)),
            });
        }
        if types[..i].iter().any(|o| o.id() == t.id()) {
            details.push(ErrorDetail {
                path: format!("/entity_types/{i}"),
                message: format!("type {} is declared twice", clip(&t.id(), 200)),
            });
        }
        for (j, b) in t.behaviors.iter().enumerate() {
            if t.behaviors[..j].iter().any(|o| o.name == b.name) {
                details.push(ErrorDetail {
                    path: format!("/entity_types/{i}/behaviors/{j}"),
                    message: format!("behavior '{}' is declared twice", clip(&b.name, 64)),
                });
            }
        }
    }
    if let Some(first) = details.first() {
        let first = format!("{}: {}", first.path, first.message);
        let message = match details.len() {
            1 => first,
            n => format!("{first} (and {} more)", n - 1),
        };
        return Err(CommandError::new(ErrorCode::SchemaViolation, message).with_details(details));
    }
    let mut names = NameCheck::new();
    let mut bad_versions = Vec::new();
    for (i, t) in types.iter().enumerate() {
        names.check(
            NameKind::Name,
            format!("/entity_types/{i}/vendor"),
            &t.vendor,
        );
        names.check(NameKind::Name, format!("/entity_types/{i}/nss"), &t.nss);
        for (j, b) in t.behaviors.iter().enumerate() {
            names.check(
                NameKind::Name,
                format!("/entity_types/{i}/behaviors/{j}/name"),
                &b.name,
            );
        }
        if !valid_semver(&t.version) {
            bad_versions.push(ErrorDetail {
                path: format!("/entity_types/{i}/version"),
                message: format!(
                    "'{}' is not a semantic version (MAJOR.MINOR.PATCH)",
                    clip(&t.version, 64)
                ),
            });
        }
    }
    names.finish().map_err(|mut e| {
        e.details.extend(bad_versions.clone());
        e
    })?;
    if let Some(first) = bad_versions.first() {
        return Err(CommandError::new(
            ErrorCode::InvalidName,
            format!("{}: {}", first.path, first.message),
        )
        .with_details(bad_versions));
    }
    Ok(())
}

/// JSON Pointers of every property the schema marks `x-extbus-secure: true`, through nested
/// `properties` at any depth.
pub fn secure_paths(schema: &Value) -> Vec<String> {
    fn walk(s: &Value, at: &str, out: &mut Vec<String>) {
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (k, sub) in props {
            let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            if sub.get(SECURE_KEYWORD) == Some(&Value::Bool(true)) {
                out.push(path);
            } else {
                walk(sub, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(schema: Value) -> EntityTypeSpec {
        serde_json::from_value(
            json!({"vendor": "acme", "nss": "k8s-cluster", "version": "1.2.0",
                                      "schema": schema}),
        )
        .unwrap()
    }

    #[test]
    fn ids_versions_and_compilation() {
        let ok = t(json!({"type": "object"}));
        assert_eq!(ok.id(), "urn:extbus:type:acme:k8s-cluster:1.2.0");
        assert!(check(std::slice::from_ref(&ok)).is_ok());
        for v in ["1.2.0", "0.0.1", "1.0.0-beta.1", "1.0.0+b7", "10.20.30"] {
            assert!(valid_semver(v), "{v}");
        }
        for v in [
            "1.2",
            "01.2.3",
            "1.2.3-",
            "a.b.c",
            "",
            "1.2.3.4",
            "1.2.3-a..b",
        ] {
            assert!(!valid_semver(v), "{v}");
        }
        // Valid as a document but not compilable: left to `compile`.
        let bad_regex = t(json!({"type": "string", "pattern": "(("}));
        assert!(check(std::slice::from_ref(&bad_regex)).is_ok());
        assert!(bad_regex.compile().is_err());
        let bad = t(json!({"type": "no-such-type"}));
        assert!(bad.compile().is_err());
        let e = check(&[bad]).unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaViolation);
        assert_eq!(e.details[0].path, "/entity_types/0/schema");
        let mut v = ok.clone();
        v.version = "1.2".into();
        v.vendor = "Acme".into();
        let e = check(&[v]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidName);
        assert_eq!(e.details.len(), 2, "{e:?}");
        let e = check(&[ok.clone(), ok]).unwrap_err();
        assert_eq!(e.details[0].path, "/entity_types/1");
    }

    #[test]
    fn secure_paths_at_any_depth() {
        let s = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "password": {"type": "string", "x-extbus-secure": true},
                "a/b": {"type": "object", "properties": {"k": {"x-extbus-secure": true}}}}},
            "token": {"x-extbus-secure": true},
            "plain": {"x-extbus-secure": false}}});
        let mut p = secure_paths(&s);
        p.sort();
        assert_eq!(p, ["/spec/a~1b/k", "/spec/password", "/token"]);
    }
}
