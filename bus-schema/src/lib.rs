//! extbus wire contract (SPEC.md): topics, message types, JSON Schemas, validation, error codes,
//! and the one decoding pipeline every inbound command goes through.
//!
//! # Layout
//! - `names`: name rules (`[a-z0-9-]{1,64}`, orgs, versions, `<entity>.<operation>`).
//! - `topics`: every topic's prefix, builder and parser; MQTT filter matching and `$share`.
//! - `roles`: principal roles. `errors`: stable error codes and the reply error body.
//! - `spec`: one `Spec` row per command (suffix, kind, schema, channel, roles, example) and
//!   `FAMILIES`, the only list of command families; each family module holds its rows.
//! - `commands`: the `Command` enum, parsed by the rows and mapped back to its row.
//! - `events`: event drafts, CloudEvents, replay. `tasks`: tasks, rules, task commands.
//! - `task_json`: a task written straight to JSON, as its `Value` form would be.
//! - `entities`: defined entities and their commands. `entity_types`: entity type declarations.
//! - `actions`: custom actions; `ui_plugins`: UI plugin declarations.
//! - `register`: extension manifests. `services`: service requests, responses and calls.
//! - `reply`: the reply every command gets. `time_fmt`: epoch-ms <-> RFC 3339.
//! - `validate`: the embedded `schemas/*.json` (draft 2020-12) and `schema_violation` details.
//! - `decode`: size, command, JSON, schema and name checks, in that order.
//! - `asyncapi`: AsyncAPI 3.0 export of every channel and schema.
//!
//! Must not depend on tokio, sled or rumqttd.

pub mod actions;
pub mod asyncapi;
pub mod commands;
pub mod correlation_scan;
pub mod decode;
pub mod entities;
pub mod entity_types;
pub mod errors;
pub mod events;
pub mod metadata;
pub mod names;
pub mod query;
pub mod query_range;
pub mod register;
pub mod registrations;
pub mod reply;
pub mod roles;
pub mod services;
pub mod spec;
pub mod task_json;
pub mod tasks;
pub mod time_fmt;
pub mod topics;
pub mod ui_plugins;
pub mod unknown_fields;
pub mod validate;

#[cfg(test)]
mod examples;

pub use commands::Command;
pub use decode::{decode, decode_value, Body, Decoded, Failure, DEFAULT_MAX_PAYLOAD};
pub use entities::{
    CreateEntity, DeleteEntity, Entity, EntityAction, EntityChange, EntityQuery, EntityState,
    UpdateEntity,
};
pub use entity_types::EntityTypeSpec;
pub use errors::{CommandError, ErrorCode, ErrorDetail};
pub use events::{CloudEvent, EventDraft, ReplayPage, ReplayRequest};
pub use register::{Manifest, ServiceSpec};
pub use reply::Reply;
pub use roles::Role;
pub use services::{ServiceCall, ServiceRequest, ServiceResponse};
pub use tasks::{
    DefaultAction, ExtendRequest, HistoryEntry, Outcome, ResolveRequest, RuleSpec, SubmitRequest,
    Task, TaskAction, TaskQuery, TaskState,
};
pub use validate::validate;
