//! The `[[exec]]` config entries (executable extensions the broker runs itself) and their
//! checks; `crate::exec` runs them.

use super::{ConfigError, DeclaredService};
use crate::principals::Principal;
use extbus_schema::tasks::RuleSpec;
use extbus_schema::Role;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_check_interval_ms() -> u64 {
    30_000
}
fn default_max_running() -> usize {
    16
}
fn default_priority() -> i64 {
    50
}

/// One `[[exec]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The principal name its stages, history and services use (`[a-z0-9-]`).
    pub name: String,
    /// The program, run as `<path> <action> <payload_file> <timeout_seconds>`.
    pub path: PathBuf,
    /// Callout rules it answers (action `callout`); `extension` is always `name`.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Extension services it answers (action `service`).
    #[serde(default)]
    pub services: Vec<ExecService>,
    /// Custom actions it answers (action `action`), as in a manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<extbus_schema::actions::ActionSpec>,
    /// How long one run may take before it is killed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often readiness (exists, executable) is checked.
    #[serde(default = "default_check_interval_ms")]
    pub check_interval_ms: u64,
    /// Most runs of this program at once; more wait for a free slot (services until their
    /// deadline), so a burst of requests cannot fork without bound.
    #[serde(default = "default_max_running")]
    pub max_running: usize,
}

/// A service an executable answers: a declared service without `extension` (it is the entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecService {
    pub vendor: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub url_patterns: Vec<String>,
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Defaults to `services.default_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl ExecConfig {
    pub fn new(name: &str, path: &Path) -> ExecConfig {
        ExecConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            rules: Vec::new(),
            services: Vec::new(),
            actions: Vec::new(),
            timeout_ms: default_timeout_ms(),
            check_interval_ms: default_check_interval_ms(),
            max_running: default_max_running(),
        }
    }

    /// Its rules with `extension` set to its name.
    pub fn bound_rules(&self) -> Vec<RuleSpec> {
        self.rules
            .iter()
            .cloned()
            .map(|mut r| {
                r.extension = Some(self.name.clone());
                r
            })
            .collect()
    }

    /// Its services as config-declared services answered by its name.
    pub fn declared_services(&self) -> Vec<DeclaredService> {
        self.services
            .iter()
            .map(|s| DeclaredService {
                extension: self.name.clone(),
                vendor: s.vendor.clone(),
                name: s.name.clone(),
                version: s.version.clone(),
                url_patterns: s.url_patterns.clone(),
                priority: s.priority,
                timeout_ms: s.timeout_ms,
            })
            .collect()
    }

    /// The principal it acts as: role extension, all orgs.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            roles: vec![Role::Extension],
            orgs: vec!["*".into()],
        }
    }
}

fn invalid(field: String, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        why: why.into(),
    }
}

/// Checks the `[[exec]]` entries; a bad value names its field (`exec[0].timeout_ms`).
pub fn validate(entries: &[ExecConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let f = |k: &str| format!("exec[{i}].{k}");
        if !crate::principals::valid_name(&e.name) {
            return Err(invalid(
                f("name"),
                format!("'{}' is not [a-z0-9-]{{1,64}}", e.name),
            ));
        }
        if !names.insert(e.name.as_str()) {
            return Err(invalid(
                f("name"),
                format!("'{}' is configured twice", e.name),
            ));
        }
        if e.path.as_os_str().is_empty() {
            return Err(invalid(f("path"), "name the program to run"));
        }
        if e.timeout_ms == 0 || e.timeout_ms > 3_600_000 {
            return Err(invalid(f("timeout_ms"), "must be between 1 and 3600000"));
        }
        if e.check_interval_ms < 100 {
            return Err(invalid(f("check_interval_ms"), "must be at least 100"));
        }
        if e.max_running == 0 || e.max_running > 1024 {
            return Err(invalid(f("max_running"), "must be between 1 and 1024"));
        }
        for (j, s) in e.services.iter().enumerate() {
            let sf = |k: &str| format!("exec[{i}].services[{j}].{k}");
            super::check_service(
                &sf,
                [&s.vendor, &s.name, &s.version],
                &s.url_patterns,
                s.timeout_ms,
            )?;
        }
        check_actions(i, &e.actions)?;
        for (j, r) in e.rules.iter().enumerate() {
            let rf = |k: &str| format!("exec[{i}].rules[{j}].{k}");
            if extbus_schema::names::split_operation(&r.operation).is_none() {
                return Err(invalid(
                    rf("operation"),
                    format!("'{}' is not <entity>.<operation>", r.operation),
                ));
            }
            if r.extension.as_deref().is_some_and(|x| x != e.name) {
                return Err(invalid(
                    rf("extension"),
                    "an exec rule is always answered by its own entry; leave it out",
                ));
            }
            if r.timeout_ms == 0 || r.timeout_ms > r.max_timeout_ms {
                return Err(invalid(
                    rf("timeout_ms"),
                    "must be at least 1 and at most max_timeout_ms",
                ));
            }
        }
    }
    Ok(())
}

/// An entry's actions pass the manifest's checks; the first failure names its field
/// (`exec[0].actions[1].parameters`).
fn check_actions(
    i: usize,
    actions: &[extbus_schema::actions::ActionSpec],
) -> Result<(), ConfigError> {
    let mut details = Vec::new();
    let mut names = extbus_schema::names::NameCheck::new();
    extbus_schema::actions::check(actions, &mut details, &mut names);
    let details = match names.finish() {
        Ok(()) => details,
        Err(e) => details.into_iter().chain(e.details).collect(),
    };
    let Some(d) = details.first() else {
        return Ok(());
    };
    // `/actions/1/parameters` -> `exec[0].actions[1].parameters`.
    let mut field = format!("exec[{i}]");
    for level in d.path.trim_start_matches('/').split('/') {
        match level.parse::<usize>() {
            Ok(n) => field.push_str(&format!("[{n}]")),
            Err(_) => field.push_str(&format!(".{level}")),
        }
    }
    Err(invalid(field, d.message.clone()))
}

/// What a reloaded `[[exec]]` list changes, by entry name (in the new list's order, removed
/// ones in the old list's).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name, any other field different (path, timeouts, rules, services, actions, ...).
    pub changed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One `exec added NAME` (`removed`, `changed`) line per entry, for the reload's log.
    pub fn lines(&self) -> Vec<String> {
        let each = |word: &str, names: &[String]| -> Vec<String> {
            names.iter().map(|n| format!("exec {word} {n}")).collect()
        };
        let mut out = each("added", &self.added);
        out.extend(each("removed", &self.removed));
        out.extend(each("changed", &self.changed));
        out
    }
}

/// How `new` differs from `old`, entries told apart by name.
pub fn changes(old: &[ExecConfig], new: &[ExecConfig]) -> Changes {
    let find = |list: &'_ [ExecConfig], name: &str| list.iter().position(|e| e.name == name);
    let mut c = Changes::default();
    for e in new {
        match find(old, &e.name) {
            None => c.added.push(e.name.clone()),
            Some(i) if old[i] != *e => c.changed.push(e.name.clone()),
            Some(_) => {}
        }
    }
    c.removed = old
        .iter()
        .filter(|e| find(new, &e.name).is_none())
        .map(|e| e.name.clone())
        .collect();
    c
}

/// Every entry's rules, bound to their entries, for the callouts engine.
pub fn rules(entries: &[ExecConfig]) -> Vec<RuleSpec> {
    entries.iter().flat_map(ExecConfig::bound_rules).collect()
}

/// Every entry's services, as declared services answered by the entries' names.
pub fn declared_services(entries: &[ExecConfig]) -> Vec<DeclaredService> {
    entries
        .iter()
        .flat_map(ExecConfig::declared_services)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(op: &str) -> RuleSpec {
        serde_json::from_value(json!({"operation": op})).unwrap()
    }

    #[test]
    fn changes_tell_added_removed_and_changed_entries_apart_by_name() {
        let a = ExecConfig::new("a", Path::new("/bin/a"));
        let b = ExecConfig::new("b", Path::new("/bin/b"));
        let mut b2 = b.clone();
        b2.timeout_ms += 1;
        let c = ExecConfig::new("c", Path::new("/bin/c"));
        assert!(changes(&[a.clone(), b.clone()], &[b.clone(), a.clone()]).is_empty());
        let d = changes(&[a.clone(), b], &[c, b2]);
        assert_eq!(
            (d.added, d.removed, d.changed),
            (
                vec!["c".to_string()],
                vec!["a".to_string()],
                vec!["b".to_string()]
            )
        );
        let d = changes(&[], &[a]);
        assert_eq!(d.lines(), ["exec added a"]);
    }

    #[test]
    fn entries_are_checked_and_their_rules_and_services_bound_to_them() {
        let mut e = ExecConfig::new("quota", Path::new("/bin/true"));
        e.rules = vec![rule("vm.create")];
        e.services = vec![serde_json::from_value(
            json!({"vendor": "acme", "name": "quota", "version": "1.0.0", "url_patterns": ["^/q"]}),
        )
        .unwrap()];
        assert!(validate(std::slice::from_ref(&e)).is_ok());
        assert_eq!(
            rules(std::slice::from_ref(&e))[0].extension.as_deref(),
            Some("quota")
        );
        let d = declared_services(std::slice::from_ref(&e));
        assert_eq!((d[0].extension.as_str(), d[0].priority), ("quota", 50));
        let field = |es: &[ExecConfig]| match validate(es) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&[e.clone(), e.clone()]), "exec[1].name");
        let mut bad = e.clone();
        bad.rules[0].extension = Some("other".into());
        assert_eq!(field(&[bad]), "exec[0].rules[0].extension");
        let mut bad = e.clone();
        bad.rules = vec![rule("nodot")];
        assert_eq!(field(&[bad]), "exec[0].rules[0].operation");
        let mut bad = e.clone();
        bad.timeout_ms = 0;
        assert_eq!(field(&[bad]), "exec[0].timeout_ms");
        let mut bad = e.clone();
        bad.max_running = 0;
        assert_eq!(field(&[bad]), "exec[0].max_running");
        let mut bad = e.clone();
        bad.name = "Bad".into();
        assert_eq!(field(&[bad]), "exec[0].name");
        let mut bad = e.clone();
        bad.services[0].url_patterns = vec!["(".into()];
        assert_eq!(field(&[bad]), "exec[0].services[0].url_patterns[0]");
        let mut bad = e.clone();
        bad.services[0].version = "1/0".into();
        assert_eq!(field(&[bad]), "exec[0].services[0].version");
        let action = |v: serde_json::Value| serde_json::from_value(v).unwrap();
        let mut bad = e.clone();
        bad.actions = vec![
            action(json!({"name": "a"})),
            action(json!({"name": "b", "parameters": {"type": 5}})),
        ];
        assert_eq!(field(&[bad]), "exec[0].actions[1].parameters");
        let mut bad = e.clone();
        bad.actions = vec![action(json!({"name": "A"}))];
        assert_eq!(field(&[bad]), "exec[0].actions[0].name");
        assert!(
            serde_json::from_value::<extbus_schema::actions::ActionSpec>(
                json!({"name": "a", "rolez": []})
            )
            .is_err()
        );
    }
}
