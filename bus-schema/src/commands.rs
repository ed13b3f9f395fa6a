//! The commands of SPEC.md "Commands" as an enum the broker matches on: parsed from an inbox
//! topic suffix by the `Spec` rows, and mapped back to its row for every other fact (kind, who
//! may send it, schema). Decides nothing about payloads; `decode` runs the inbound pipeline.

use std::fmt;

use crate::entities::EntityAction;
use crate::errors::{clip, CommandError, ErrorCode};
use crate::metadata::MetadataAction;
use crate::roles::Role;
use crate::spec::{self, Spec};
use crate::tasks::TaskAction;
use crate::{actions, entities, events, metadata, register, registrations, services, tasks};

/// One inbound command, as named by the topic suffix after `extbus/in/<principal>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `events`
    Event,
    /// `events/replay`
    EventsReplay,
    /// `tasks/submit`
    TasksSubmit,
    /// `tasks/<task_id>/resume|cancel|abort|extend`
    TaskAction { task_id: String, action: TaskAction },
    /// `tasks/<task_id>/get`
    TaskGet { task_id: String },
    /// `tasks/query`
    TasksQuery,
    /// `register`
    Register,
    /// `registrations/query`
    RegistrationsQuery,
    /// `registrations/<principal>[/<component>]/disable|enable`
    RegistrationSwitch {
        principal: String,
        component: Option<String>,
        enable: bool,
    },
    /// `services/responses`
    ServiceResponse,
    /// `services/<vendor>/<name>/<version>`: a service request made over MQTT.
    ServiceCall {
        vendor: String,
        name: String,
        version: String,
    },
    /// `entities/create`
    EntitiesCreate,
    /// `entities/<entity_id>/get|update|resolve|delete|secrets`
    Entity {
        entity_id: String,
        action: EntityAction,
    },
    /// `entities/<entity_id>/behaviors/<behavior>`
    EntityBehavior { entity_id: String, behavior: String },
    /// `entities/query`
    EntitiesQuery,
    /// `entities/types`
    EntityTypes,
    /// `actions/<extension>/<name>/invoke`
    ActionInvoke { extension: String, name: String },
    /// `actions/responses`
    ActionResponse,
    /// `actions/query`
    ActionsQuery,
    /// `ui-plugins/query`
    UiPluginsQuery,
    /// `metadata/<object_id>/get|set|delete`
    Metadata {
        object_id: String,
        action: MetadataAction,
    },
}

impl Command {
    /// Parses a topic suffix such as `tasks/0193/resume` against the `Spec` rows. An unknown
    /// shape, or an empty level, is `unknown_command` naming the suffix. Names inside the suffix
    /// (service vendor, name, version) are checked later by `decode`, so they come out as
    /// `invalid_name`.
    pub fn parse(suffix: &str) -> Result<Command, CommandError> {
        let levels: Vec<&str> = suffix.split('/').collect();
        let cmd = if levels.iter().any(|l| l.is_empty()) {
            None
        } else {
            spec::find(&levels).map(|(s, params)| (s.build)(&params))
        };
        cmd.ok_or_else(|| {
            CommandError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command '{}'", clip(suffix, 128)),
            )
        })
    }

    /// The topic suffix of this command, as echoed in the reply's `command` field.
    pub fn suffix(&self) -> String {
        match self {
            Command::Event => "events".into(),
            Command::EventsReplay => "events/replay".into(),
            Command::TasksSubmit => "tasks/submit".into(),
            Command::TaskAction { task_id, action } => {
                format!("tasks/{task_id}/{}", action.as_str())
            }
            Command::TaskGet { task_id } => format!("tasks/{task_id}/get"),
            Command::TasksQuery => "tasks/query".into(),
            Command::Register => "register".into(),
            Command::RegistrationsQuery => "registrations/query".into(),
            Command::RegistrationSwitch {
                principal,
                component,
                enable,
            } => {
                let verb = if *enable { "enable" } else { "disable" };
                match component {
                    Some(c) => format!("registrations/{principal}/{c}/{verb}"),
                    None => format!("registrations/{principal}/{verb}"),
                }
            }
            Command::ServiceResponse => "services/responses".into(),
            Command::ServiceCall {
                vendor,
                name,
                version,
            } => format!("services/{vendor}/{name}/{version}"),
            Command::EntitiesCreate => "entities/create".into(),
            Command::Entity { entity_id, action } => {
                format!("entities/{entity_id}/{}", action.as_str())
            }
            Command::EntityBehavior {
                entity_id,
                behavior,
            } => format!("entities/{entity_id}/behaviors/{behavior}"),
            Command::EntitiesQuery => "entities/query".into(),
            Command::EntityTypes => "entities/types".into(),
            Command::ActionInvoke { extension, name } => {
                format!("actions/{extension}/{name}/invoke")
            }
            Command::ActionResponse => "actions/responses".into(),
            Command::ActionsQuery => "actions/query".into(),
            Command::UiPluginsQuery => "ui-plugins/query".into(),
            Command::Metadata { object_id, action } => {
                format!("metadata/{object_id}/{}", action.as_str())
            }
        }
    }

    /// This command's row of its family table, where every fact below comes from.
    pub fn spec(&self) -> &'static Spec {
        match self {
            Command::Event => &events::EVENT,
            Command::EventsReplay => &events::REPLAY,
            Command::TasksSubmit => &tasks::SUBMIT,
            Command::TaskAction { action, .. } => match action {
                TaskAction::Resume => &tasks::RESUME,
                TaskAction::Cancel => &tasks::CANCEL,
                TaskAction::Abort => &tasks::ABORT,
                TaskAction::Extend => &tasks::EXTEND,
            },
            Command::TaskGet { .. } => &tasks::GET,
            Command::TasksQuery => &tasks::QUERY,
            Command::Register => &register::REGISTER,
            Command::RegistrationsQuery => &registrations::QUERY,
            Command::RegistrationSwitch {
                component, enable, ..
            } => match (component.is_some(), enable) {
                (false, false) => &registrations::DISABLE,
                (false, true) => &registrations::ENABLE,
                (true, false) => &registrations::DISABLE_COMPONENT,
                (true, true) => &registrations::ENABLE_COMPONENT,
            },
            Command::ServiceResponse => &services::RESPONSE,
            Command::ServiceCall { .. } => &services::CALL,
            Command::EntitiesCreate => &entities::CREATE,
            Command::Entity { action, .. } => match action {
                EntityAction::Get => &entities::GET,
                EntityAction::Update => &entities::UPDATE,
                EntityAction::Resolve => &entities::RESOLVE,
                EntityAction::Delete => &entities::DELETE,
                EntityAction::Secrets => &entities::SECRETS,
            },
            Command::EntityBehavior { .. } => &entities::BEHAVIOR,
            Command::EntitiesQuery => &entities::QUERY,
            Command::EntityTypes => &entities::TYPES,
            Command::ActionInvoke { .. } => &actions::INVOKE,
            Command::ActionResponse => &actions::RESPONSE,
            Command::ActionsQuery => &actions::QUERY,
            Command::UiPluginsQuery => &crate::ui_plugins::QUERY,
            Command::Metadata { action, .. } => match action {
                MetadataAction::Get => &metadata::GET,
                MetadataAction::Set => &metadata::SET,
                MetadataAction::Delete => &metadata::DELETE,
            },
        }
    }

    /// A stable label for the kind of command (ids and service names replaced), for metrics and logs.
    pub fn kind(&self) -> &'static str {
        self.spec().kind
    }

    /// Whether a principal with `roles` may send this command (SPEC.md "who").
    /// `admin` may send everything; a principal without roles may send nothing.
    pub fn permitted(&self, roles: &[Role]) -> bool {
        self.spec().permits(roles)
    }

    /// The name of the JSON Schema (file `schemas/<name>.json`) this command's payload must satisfy.
    pub fn schema_name(&self) -> &'static str {
        self.spec().schema.name
    }

    /// Whether the command may change state (queries, gets and replays never do).
    pub fn is_read_only(&self) -> bool {
        self.spec().read_only
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix())
    }
}

impl std::str::FromStr for Command {
    type Err = CommandError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn examples() -> Vec<(&'static str, Command)> {
        let ta = |action| Command::TaskAction {
            task_id: "0193f6c2-aa".into(),
            action,
        };
        vec![
            ("events", Command::Event),
            ("events/replay", Command::EventsReplay),
            ("tasks/submit", Command::TasksSubmit),
            ("tasks/query", Command::TasksQuery),
            ("tasks/0193f6c2-aa/resume", ta(TaskAction::Resume)),
            ("tasks/0193f6c2-aa/cancel", ta(TaskAction::Cancel)),
            ("tasks/0193f6c2-aa/abort", ta(TaskAction::Abort)),
            ("tasks/0193f6c2-aa/extend", ta(TaskAction::Extend)),
            (
                "tasks/0193f6c2-aa/get",
                Command::TaskGet {
                    task_id: "0193f6c2-aa".into(),
                },
            ),
            ("register", Command::Register),
            ("services/responses", Command::ServiceResponse),
            (
                "services/acme/greeter/1.0.0",
                Command::ServiceCall {
                    vendor: "acme".into(),
                    name: "greeter".into(),
                    version: "1.0.0".into(),
                },
            ),
            ("entities/create", Command::EntitiesCreate),
            ("entities/query", Command::EntitiesQuery),
            (
                "entities/urn:extbus:entity:0193f6c2-aa/update",
                Command::Entity {
                    entity_id: "urn:extbus:entity:0193f6c2-aa".into(),
                    action: EntityAction::Update,
                },
            ),
        ]
    }

    #[test]
    fn every_spec_suffix_parses_and_round_trips() {
        for (suffix, cmd) in examples() {
            assert_eq!(Command::parse(suffix).unwrap(), cmd, "{suffix}");
            assert_eq!(cmd.suffix(), suffix);
            assert_eq!(cmd.to_string(), suffix);
            assert_eq!(suffix.parse::<Command>().unwrap(), cmd);
        }
    }

    #[test]
    fn unknown_suffixes_name_themselves() {
        for bad in [
            "",
            "event",
            "events/",
            "events/replay/x",
            "tasks",
            "tasks/",
            "tasks//get",
            "tasks/x/delete",
            "tasks/x/get/y",
            "tasks/submit/x/y",
            "register/x",
            "services",
            "services/responses/x",
            "services/a/b",
            "services/a//1",
            "services/a/b/1/requests",
            "Events",
            "/events",
        ] {
            let e = Command::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::UnknownCommand, "{bad:?}");
            assert_eq!(e.message, format!("unknown command '{bad}'"));
        }
        let long = "x".repeat(1000);
        let e = Command::parse(&long).unwrap_err();
        assert!(e.message.len() < 200);
    }

    #[test]
    fn who_column_of_the_spec() {
        use Role::*;
        let submit = Command::TasksSubmit;
        let resume = Command::parse("tasks/t/resume").unwrap();
        let extend = Command::parse("tasks/t/extend").unwrap();
        let get = Command::parse("tasks/t/get").unwrap();
        let call = Command::parse("services/a/b/1").unwrap();
        let table: Vec<(&Command, [bool; 5])> = vec![
            // platform, extension, operator, observer, admin
            (&Command::Event, [true, false, false, false, true]),
            (&Command::EventsReplay, [true, true, true, true, true]),
            (&submit, [true, false, false, false, true]),
            (&resume, [false, true, true, false, true]),
            (&extend, [false, true, true, false, true]),
            (&Command::TasksQuery, [true, true, true, true, true]),
            (&get, [true, true, true, true, true]),
            (&Command::Register, [false, true, false, false, true]),
            (&Command::ServiceResponse, [false, true, false, false, true]),
            (&call, [true, true, true, true, true]),
        ];
        for (cmd, allowed) in table {
            for (role, want) in [Platform, Extension, Operator, Observer, Admin]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(cmd.permitted(&[role]), want, "{cmd} by {role}");
            }
            assert!(!cmd.permitted(&[]), "{cmd} with no roles");
        }
        assert!(Command::Register.permitted(&[Observer, Extension]));
    }

    #[test]
    fn schema_names_and_kinds() {
        let names: Vec<_> = examples().iter().map(|(_, c)| c.schema_name()).collect();
        assert_eq!(
            names,
            [
                "event-draft",
                "events-replay",
                "tasks-submit",
                "tasks-query",
                "task-resolve",
                "task-resolve",
                "task-resolve",
                "task-extend",
                "task-get",
                "register",
                "service-response",
                "service-call",
                "entity-create",
                "entities-query",
                "entity-update"
            ]
        );
        assert_eq!(
            Command::parse("tasks/x/abort").unwrap().kind(),
            "tasks/abort"
        );
        assert!(Command::TasksQuery.is_read_only());
        assert!(!Command::TasksSubmit.is_read_only());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "[a-z/]{0,12}|\\PC{0,30}") {
            if let Ok(c) = Command::parse(&s) {
                prop_assert_eq!(c.suffix(), s);
            } else {
                prop_assert_eq!(Command::parse(&s).unwrap_err().code, ErrorCode::UnknownCommand);
            }
        }

        #[test]
        fn any_task_id_round_trips(id in "[^/]{1,40}", a in 0usize..5) {
            let action = ["resume", "cancel", "abort", "extend", "get"][a];
            let suffix = format!("tasks/{id}/{action}");
            let c = Command::parse(&suffix).unwrap();
            prop_assert_eq!(c.schema_name() == "task-get", a == 4);
            prop_assert_eq!(c.suffix(), suffix);
        }
    }
}
