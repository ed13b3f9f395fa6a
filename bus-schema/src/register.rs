//! The `register` manifest of SPEC.md: an extension's callout rules and extension services,
//! the checks a manifest must pass beyond its JSON Schema (names, URL patterns, timeouts), and
//! its command row (`FAMILY`).
//! Registration itself (who owns what, replacing an older manifest) belongs to the broker.

use serde::{Deserialize, Serialize};

use crate::commands::Command;
use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};
use crate::names::{NameCheck, NameKind};
use crate::roles::Role;
use crate::spec::Spec;
use crate::tasks::RuleSpec;
use crate::topics;
use crate::validate::schema;

/// The component of a manifest that names none.
pub const DEFAULT_COMPONENT: &str = "default";
/// The component under which `registrations/query` lists what the config file gives a
/// principal; no manifest may use it.
pub const CONFIG_COMPONENT: &str = "config";
/// Default `priority` of a service.
pub const DEFAULT_SERVICE_PRIORITY: i64 = 50;
/// Default `timeout_ms` of a service (SPEC.md "Limits and defaults").
pub const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 10_000;

fn default_priority() -> i64 {
    DEFAULT_SERVICE_PRIORITY
}
fn default_timeout_ms() -> u64 {
    DEFAULT_SERVICE_TIMEOUT_MS
}

/// Body of `register`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Which of the principal's programs this is: `register` replaces only its own
    /// registrations. Absent: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Entity types this extension owns (checked by `entity_types::check`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity_types: Vec<crate::entity_types::EntityTypeSpec>,
    /// Custom actions (checked by `actions::check`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::actions::ActionSpec>,
    /// UI plugins (checked by `ui_plugins::check`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_plugins: Vec<crate::ui_plugins::UiPluginSpec>,
}

/// An extension service: requests whose HTTP path matches one of `url_patterns` go to
/// `extbus/services/<vendor>/<name>/<version>/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub vendor: String,
    pub name: String,
    pub version: String,
    /// Regular expressions over the request path. Empty: reachable over MQTT only.
    #[serde(default)]
    pub url_patterns: Vec<String>,
    /// Among services whose patterns match one path, the highest priority wins.
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl ServiceSpec {
    /// `<vendor>/<name>/<version>`: the service's identity and the levels of its topic.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.vendor, self.name, self.version)
    }

    /// The topic its requests are published on.
    pub fn requests_topic(&self) -> String {
        topics::service_requests(&self.vendor, &self.name, &self.version)
    }

    /// The URL patterns, compiled.
    pub fn compile_patterns(&self) -> Result<Vec<regex::Regex>, regex::Error> {
        self.url_patterns
            .iter()
            .map(|p| regex::Regex::new(p))
            .collect()
    }
}

impl Manifest {
    /// The component this manifest registers (`default` when it names none).
    pub fn component(&self) -> &str {
        self.component.as_deref().unwrap_or(DEFAULT_COMPONENT)
    }

    /// Checks what the JSON Schema cannot: every URL pattern compiles, no rule's `timeout_ms`
    /// exceeds its `max_timeout_ms`, no service is declared twice (`schema_violation`, one
    /// detail per location such as `/services/0/url_patterns/1`); then every name
    /// (`invalid_name`).
    pub fn check(&self) -> Result<(), CommandError> {
        let mut details = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.timeout_ms > r.max_timeout_ms {
                details.push(ErrorDetail {
                    path: format!("/rules/{i}/timeout_ms"),
                    message: format!(
                        "timeout_ms {} is greater than max_timeout_ms {}",
                        r.timeout_ms, r.max_timeout_ms
                    ),
                });
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            for (j, p) in s.url_patterns.iter().enumerate() {
                if let Err(e) = regex::Regex::new(p) {
                    // Syntax errors span several lines; the last one says what is wrong.
                    let text = e.to_string();
                    let why = text.lines().last().unwrap_or_default().trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    details.push(ErrorDetail {
                        path: format!("/services/{i}/url_patterns/{j}"),
                        message: format!(
                            "'{}' is not a valid regular expression: {}",
                            clip(p, 80),
                            why
                        ),
                    });
                }
            }
            if self.services[..i].iter().any(|o| o.key() == s.key()) {
                details.push(ErrorDetail {
                    path: format!("/services/{i}"),
                    message: format!("service {} is declared twice", clip(&s.key(), 200)),
                });
            }
        }
        let mut names = NameCheck::new();
        crate::actions::check(&self.actions, &mut details, &mut names);
        crate::ui_plugins::check(&self.ui_plugins, &mut details, &mut names);
        if !details.is_empty() {
            let first = format!("{}: {}", details[0].path, details[0].message);
            let message = match details.len() {
                1 => first,
                n => format!("{first} (and {} more)", n - 1),
            };
            return Err(
                CommandError::new(ErrorCode::SchemaViolation, message).with_details(details)
            );
        }

        if let Some(c) = &self.component {
            if c == CONFIG_COMPONENT {
                let message = format!(
                    "component '{CONFIG_COMPONENT}' is reserved for the broker's config file"
                );
                return Err(CommandError::new(
                    ErrorCode::InvalidName,
                    format!("/component: {message}"),
                )
                .with_details(vec![ErrorDetail {
                    path: "/component".into(),
                    message,
                }]));
            }
            names.check(NameKind::Name, "/component", c);
        }
        for (i, r) in self.rules.iter().enumerate() {
            names.check(
                NameKind::Operation,
                format!("/rules/{i}/operation"),
                &r.operation,
            );
            for (j, o) in r.orgs.iter().enumerate() {
                names.check(NameKind::OrgPattern, format!("/rules/{i}/orgs/{j}"), o);
            }
            if let Some(e) = &r.extension {
                names.check(NameKind::Name, format!("/rules/{i}/extension"), e);
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            names.check(NameKind::Name, format!("/services/{i}/vendor"), &s.vendor);
            names.check(NameKind::Name, format!("/services/{i}/name"), &s.name);
            names.check(
                NameKind::Version,
                format!("/services/{i}/version"),
                &s.version,
            );
        }
        names.finish()
    }

    /// Binds every rule to the registering extension: a rule naming another principal is
    /// `forbidden`, an unnamed one is given `principal`.
    pub fn bind_to(&mut self, principal: &str) -> Result<(), CommandError> {
        for (i, r) in self.rules.iter_mut().enumerate() {
            match &r.extension {
                Some(e) if e != principal => {
                    return Err(CommandError::forbidden(format!(
                        "rule {i} names extension '{}'; a manifest registers rules for its sender only",
                        clip(e, 64)
                    )));
                }
                _ => r.extension = Some(principal.to_string()),
            }
        }
        Ok(())
    }
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[REGISTER];

pub const REGISTER: Spec = Spec {
    suffix: "register",
    kind: "register",
    schema: schema!("register", Inbound),
    channel: "cmdRegister",
    description:
        "extension: register callout rules and services for one component of this principal.",
    roles: &[Role::Extension],
    read_only: false,
    example: r#"{
        "component": "approver",
        "rules": [{"operation": "vapp.instantiate", "orgs": ["*"], "priority": 50,
                   "timeout_ms": 60000, "max_timeout_ms": 3600000, "default_action": "abort"}],
        "services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
                      "url_patterns": ["^/ext/acme/greeter/.*"], "priority": 50, "timeout_ms": 10000}]
    }"#,
    build: |_| Command::Register,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::DefaultAction;
    use serde_json::json;

    fn spec_manifest() -> serde_json::Value {
        json!({
            "rules": [{"operation": "vapp.instantiate", "orgs": ["*"], "priority": 50,
                       "timeout_ms": 60000, "max_timeout_ms": 3600000, "default_action": "abort"}],
            "services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
                          "url_patterns": ["^/ext/acme/greeter/.*"], "priority": 50, "timeout_ms": 10000}]
        })
    }

    #[test]
    fn spec_manifest_round_trips_and_checks() {
        let m: Manifest = serde_json::from_value(spec_manifest()).unwrap();
        assert_eq!(m.rules[0].default_action, DefaultAction::Abort);
        assert_eq!(m.services[0].key(), "acme/greeter/1.0.0");
        assert_eq!(
            m.services[0].requests_topic(),
            "extbus/services/acme/greeter/1.0.0/requests"
        );
        assert!(m.services[0].compile_patterns().unwrap()[0].is_match("/ext/acme/greeter/hello"));
        m.check().unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), spec_manifest());
    }

    #[test]
    fn defaults() {
        let m: Manifest = serde_json::from_value(json!({})).unwrap();
        assert!(m.rules.is_empty() && m.services.is_empty());
        m.check().unwrap();
        let s: ServiceSpec =
            serde_json::from_value(json!({"vendor": "a", "name": "b", "version": "1"})).unwrap();
        assert_eq!(s.priority, 50);
        assert_eq!(s.timeout_ms, 10_000);
        assert!(s.url_patterns.is_empty());
    }

    #[test]
    fn bad_patterns_are_schema_violations_with_paths() {
        let mut v = spec_manifest();
        v["services"][0]["url_patterns"] = json!(["^/ok", "(", "^/fine"]);
        v["services"][0]["vendor"] = json!("ACME");
        let m: Manifest = serde_json::from_value(v).unwrap();
        let e = m.check().unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaViolation);
        assert_eq!(e.details.len(), 1);
        assert_eq!(e.details[0].path, "/services/0/url_patterns/1");
        assert_eq!(
            e.message,
            "/services/0/url_patterns/1: '(' is not a valid regular expression: unclosed group"
        );
    }

    #[test]
    fn timeouts_above_max_and_duplicates_are_refused() {
        let mut v = spec_manifest();
        v["rules"][0]["timeout_ms"] = json!(5000);
        v["rules"][0]["max_timeout_ms"] = json!(1000);
        let dup = v["services"][0].clone();
        v["services"].as_array_mut().unwrap().push(dup);
        let m: Manifest = serde_json::from_value(v).unwrap();
        let e = m.check().unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaViolation);
        let paths: Vec<_> = e.details.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["/rules/0/timeout_ms", "/services/1"]);
        assert!(e.message.ends_with("(and 1 more)"), "{}", e.message);
    }

    #[test]
    fn bad_names_are_invalid_name_with_paths() {
        let mut v = spec_manifest();
        v["rules"][0]["operation"] = json!("vapp");
        v["rules"][0]["orgs"] = json!(["acme", "Bad Org", "*"]);
        v["rules"][0]["extension"] = json!("x_y");
        v["services"][0]["vendor"] = json!("ACME");
        v["services"][0]["name"] = json!("");
        v["services"][0]["version"] = json!("1.0.0+b");
        let m: Manifest = serde_json::from_value(v).unwrap();
        let e = m.check().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidName);
        let paths: Vec<_> = e.details.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/rules/0/operation",
                "/rules/0/orgs/1",
                "/rules/0/extension",
                "/services/0/vendor",
                "/services/0/name",
                "/services/0/version"
            ]
        );
    }

    #[test]
    fn components_default_and_config_is_reserved() {
        let m: Manifest = serde_json::from_value(json!({})).unwrap();
        assert_eq!(m.component(), "default");
        let m: Manifest = serde_json::from_value(json!({"component": "approver"})).unwrap();
        assert_eq!(m.component(), "approver");
        m.check().unwrap();
        for bad in ["config", "Bad"] {
            let m: Manifest = serde_json::from_value(json!({"component": bad})).unwrap();
            let e = m.check().unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidName);
            assert_eq!(e.details[0].path, "/component");
        }
    }

    #[test]
    fn rules_bind_to_their_sender() {
        let mut m: Manifest = serde_json::from_value(spec_manifest()).unwrap();
        m.bind_to("approver-1").unwrap();
        assert_eq!(m.rules[0].extension.as_deref(), Some("approver-1"));
        m.bind_to("approver-1").unwrap();
        let e = m.bind_to("someone-else").unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }
}
