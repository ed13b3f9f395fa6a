//! The facts of one inbound command as a table row (`Spec`), and `FAMILIES`, the only list of
//! command families. Each family module holds its own rows; parsing, roles, schemas, AsyncAPI
//! channels, examples and metric labels are all read from these rows.

use crate::commands::Command;
use crate::roles::Role;
use crate::validate::SchemaFile;
use crate::{actions, entities, events, metadata, register, registrations, services, tasks};

/// Every command family, in the order their channels and schemas are exported.
pub const FAMILIES: &[&[Spec]] = &[
    events::FAMILY,
    tasks::FAMILY,
    register::FAMILY,
    registrations::FAMILY,
    services::FAMILY,
    entities::FAMILY,
    actions::FAMILY,
    metadata::FAMILY,
];

/// One inbound command.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Inbox topic suffix: literal levels and `{parameter}` levels, e.g. `tasks/{task_id}/resume`.
    pub suffix: &'static str,
    /// Stable label for metrics and logs (`Command::kind`).
    pub kind: &'static str,
    /// The JSON Schema its payload must satisfy.
    pub schema: SchemaFile,
    /// AsyncAPI channel id and description.
    pub channel: &'static str,
    pub description: &'static str,
    /// Who may send it besides `admin` (SPEC.md "who").
    pub roles: &'static [Role],
    /// Queries, gets and replays never change state.
    pub read_only: bool,
    /// SPEC.md's example body, as JSON text.
    pub example: &'static str,
    /// The command, from the values of the `{parameter}` levels in order.
    pub build: fn(&[&str]) -> Command,
}

/// Every role but `admin`: commands any principal with a role may send.
pub const ANY_ROLE: &[Role] = &[
    Role::Platform,
    Role::Extension,
    Role::Operator,
    Role::Observer,
];

/// Every command's row, family by family.
pub fn all() -> impl Iterator<Item = &'static Spec> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The row whose suffix pattern `levels` fits, with the values of its parameters.
pub fn find<'a>(levels: &[&'a str]) -> Option<(&'static Spec, Vec<&'a str>)> {
    all().find_map(|s| s.captures(levels).map(|p| (s, p)))
}

/// Parameter `i` of a matched suffix (rows only ask for the ones their pattern has).
pub(crate) fn arg(params: &[&str], i: usize) -> String {
    params.get(i).map_or_else(String::new, |p| p.to_string())
}

impl Spec {
    /// The values of the `{parameter}` levels if `levels` fits this row's pattern.
    pub fn captures<'a>(&self, levels: &[&'a str]) -> Option<Vec<&'a str>> {
        // Counted first so a row of another depth costs no allocation.
        if self.suffix.split('/').count() != levels.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, l) in self.suffix.split('/').zip(levels) {
            if p.starts_with('{') {
                params.push(*l);
            } else if p != *l {
                return None;
            }
        }
        Some(params)
    }

    /// Whether a principal with `roles` may send it; `admin` may send everything.
    pub fn permits(&self, roles: &[Role]) -> bool {
        roles
            .iter()
            .any(|r| *r == Role::Admin || self.roles.contains(r))
    }

    /// The full inbox topic, with `{principal}` and the suffix's parameters as placeholders.
    pub fn address(&self) -> String {
        format!("extbus/in/{{principal}}/{}", self.suffix)
    }

    /// The suffix with SPEC.md's sample values in its parameters.
    pub fn sample(&self) -> String {
        self.suffix
            .replace("{task_id}", "0193f6c2-aa")
            .replace("{vendor}", "acme")
            .replace("{name}", "greeter")
            .replace("{version}", "1.0.0")
            .replace("{entity_id}", "urn:extbus:entity:0193f6c2-aa")
            .replace("{extension}", "ext-1")
            .replace("{component}", "approver")
            .replace("{object_id}", "urn:extbus:entity:0193f6c2-aa")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_back_to_itself() {
        let mut kinds = std::collections::HashSet::new();
        for s in all() {
            let cmd = Command::parse(&s.sample()).unwrap();
            assert_eq!(cmd.spec().kind, s.kind);
            assert_eq!(cmd.suffix(), s.sample());
            assert!(kinds.insert(s.kind), "{} twice", s.kind);
            assert!(serde_json::from_str::<serde_json::Value>(s.example).is_ok());
        }
    }

    #[test]
    fn no_two_patterns_overlap() {
        for a in all() {
            let levels: Vec<&str> = a.suffix.split('/').collect();
            let fits: Vec<_> = all().filter(|b| b.captures(&levels).is_some()).collect();
            assert_eq!(fits.len(), 1, "{}", a.suffix);
        }
    }
}
