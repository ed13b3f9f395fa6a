//! The `registrations` family of SPEC.md "Registrations and presence": listing what every
//! extension registered (per principal and component, with its presence) and switching a
//! principal or one of its components off and on, with their command rows (`FAMILY`).
//! What a registration holds and what a switch does belong to the broker.

use serde::{Deserialize, Serialize};

use crate::commands::Command;
use crate::register::ServiceSpec;
use crate::roles::Role;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::tasks::RuleSpec;
use crate::time_fmt;
use crate::validate::schema;

/// Body of `registrations/query`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegistrationsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// Body of `registrations/<principal>[/<component>]/disable|enable`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SwitchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One registration as `registrations/query` answers it (in `result.items`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    pub principal: String,
    pub component: String,
    /// When its last `register` was applied; `null` for one stored before this was kept.
    #[serde(with = "time_fmt::opt_ms", default)]
    pub registered_at: Option<u64>,
    /// Open MQTT connections of the principal now.
    pub connections: usize,
    /// Now if connected, else when its last connection closed (`null`: not since start).
    #[serde(with = "time_fmt::opt_ms", default)]
    pub last_seen: Option<u64>,
    pub rules: Vec<RuleSpec>,
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub entity_types: Vec<serde_json::Value>,
    #[serde(default)]
    pub actions: Vec<serde_json::Value>,
    #[serde(default)]
    pub ui_plugins: Vec<serde_json::Value>,
    /// Switched off, by itself or with its whole principal.
    pub disabled: bool,
    /// For an `[[exec]]` entry's `config` component, shown to operators and admins: whether
    /// its executable can run, as last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecReadiness>,
}

/// An executable extension's readiness (`RegistrationInfo::exec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecReadiness {
    pub path: String,
    pub ready: bool,
    /// Why it cannot run; `null` while ready.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was last checked; `null` before the first check.
    #[serde(with = "time_fmt::opt_ms", default)]
    pub checked_at: Option<u64>,
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[QUERY, DISABLE, ENABLE, DISABLE_COMPONENT, ENABLE_COMPONENT];

const SWITCH_ROLES: &[Role] = &[Role::Operator];
const SWITCH_EXAMPLE: &str = r#"{"message": "answers with errors, see INC-42"}"#;

pub const QUERY: Spec = Spec {
    suffix: "registrations/query",
    kind: "registrations/query",
    schema: schema!("registrations-query", Inbound),
    channel: "cmdRegistrationsQuery",
    description: "any role: every registration (principal, component) with its presence.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{"principal": "ext-1"}"#,
    build: |_| Command::RegistrationsQuery,
};

fn switch(p: &[&str], component: bool, enable: bool) -> Command {
    Command::RegistrationSwitch {
        principal: arg(p, 0),
        component: component.then(|| arg(p, 1)),
        enable,
    }
}

pub const DISABLE: Spec = Spec {
    suffix: "registrations/{extension}/disable",
    kind: "registrations/disable",
    schema: schema!("registration-switch", Inbound),
    channel: "cmdRegistrationDisable",
    description: "operator: switch every registration of a principal off (persisted).",
    roles: SWITCH_ROLES,
    read_only: false,
    example: SWITCH_EXAMPLE,
    build: |p| switch(p, false, false),
};

pub const ENABLE: Spec = Spec {
    suffix: "registrations/{extension}/enable",
    kind: "registrations/enable",
    schema: schema!("registration-switch", Inbound),
    channel: "cmdRegistrationEnable",
    description: "operator: switch a principal back on.",
    roles: SWITCH_ROLES,
    read_only: false,
    example: SWITCH_EXAMPLE,
    build: |p| switch(p, false, true),
};

pub const DISABLE_COMPONENT: Spec = Spec {
    suffix: "registrations/{extension}/{component}/disable",
    kind: "registrations/component/disable",
    schema: schema!("registration-switch", Inbound),
    channel: "cmdRegistrationComponentDisable",
    description: "operator: switch one component of a principal off (persisted).",
    roles: SWITCH_ROLES,
    read_only: false,
    example: SWITCH_EXAMPLE,
    build: |p| switch(p, true, false),
};

pub const ENABLE_COMPONENT: Spec = Spec {
    suffix: "registrations/{extension}/{component}/enable",
    kind: "registrations/component/enable",
    schema: schema!("registration-switch", Inbound),
    channel: "cmdRegistrationComponentEnable",
    description: "operator: switch one component of a principal back on.",
    roles: SWITCH_ROLES,
    read_only: false,
    example: SWITCH_EXAMPLE,
    build: |p| switch(p, true, true),
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suffixes_parse_to_switches() {
        let c = Command::parse("registrations/ext-1/approver/disable").unwrap();
        assert_eq!(
            c,
            Command::RegistrationSwitch {
                principal: "ext-1".into(),
                component: Some("approver".into()),
                enable: false
            }
        );
        assert_eq!(c.suffix(), "registrations/ext-1/approver/disable");
        let c = Command::parse("registrations/ext-1/enable").unwrap();
        assert_eq!(c.suffix(), "registrations/ext-1/enable");
        assert!(c.permitted(&[Role::Operator]));
        assert!(!c.permitted(&[Role::Extension]));
        assert!(Command::RegistrationsQuery.permitted(&[Role::Observer]));
        assert!(Command::parse("registrations/ext-1/pause").is_err());
    }

    #[test]
    fn info_round_trips() {
        let v = json!({"principal": "ext", "component": "default", "registered_at": null,
            "connections": 0, "last_seen": "2026-11-22T10:00:00.000Z", "rules": [],
            "services": [], "entity_types": [], "actions": [], "ui_plugins": [],
            "disabled": true});
        let i: RegistrationInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(i.last_seen, Some(1_795_341_600_000));
        assert_eq!(serde_json::to_value(&i).unwrap(), v);
        let mut v = v;
        v["exec"] = json!({"path": "/opt/q.sh", "ready": false, "reason": "/opt/q.sh: gone",
            "checked_at": "2026-11-22T10:00:00.000Z"});
        let i: RegistrationInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(i.exec.as_ref().unwrap().checked_at, Some(1_795_341_600_000));
        assert_eq!(serde_json::to_value(&i).unwrap(), v);
    }
}
