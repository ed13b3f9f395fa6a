//! Defined entities of SPEC.md v2: the entity object, its states and history, the create /
//! get / update / resolve / delete / query command bodies and their command rows (`FAMILY`).
//! Entity types (the manifest's `entity_types`) live in `entity_types`.
//! Pure data: the lifecycle is applied by the broker.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

use crate::commands::Command;
use crate::errors::ErrorDetail;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::time_fmt;
use crate::validate::schema;
use crate::Role;

/// Prefix of every entity id; the rest is a UUID v7, so ids sort in creation order.
pub const ENTITY_ID_PREFIX: &str = "urn:extbus:entity:";

/// The entity id of UUID `uuid` (the broker makes them v7).
pub fn entity_id(uuid: &str) -> String {
    format!("{ENTITY_ID_PREFIX}{uuid}")
}

/// Entity states (SPEC.md "Defined entities").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityState {
    /// Stored, not yet resolved against its schema (a `post_create` hook may hold it here).
    PreCreated,
    Resolved,
    ResolutionError,
    /// Being removed (a delete hook may hold it here).
    InDeletion,
}

impl EntityState {
    pub const ALL: [EntityState; 4] = [
        EntityState::PreCreated,
        EntityState::Resolved,
        EntityState::ResolutionError,
        EntityState::InDeletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityState::PreCreated => "pre_created",
            EntityState::Resolved => "resolved",
            EntityState::ResolutionError => "resolution_error",
            EntityState::InDeletion => "in_deletion",
        }
    }

    pub fn parse(s: &str) -> Option<EntityState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for EntityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of an entity: who did what, when, and which paths of its content changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityChange {
    #[serde(with = "time_fmt::ms")]
    pub at: u64,
    pub by: String,
    /// `create`, `update`, `resolve`, `delete`; a hook's or behavior's outcome is
    /// `<hook>` / `behavior:<name>` with `.resumed`, `.cancelled` or `.aborted`.
    pub action: String,
    /// The revision the change produced.
    pub revision: u64,
    /// JSON Pointers of the content that changed (secure fields by path only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The hook's or behavior's message, or the task that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// A hook whose blocking task holds the entity: no other change is accepted until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHook {
    /// `post_create`, `pre_update` or `pre_delete`.
    pub name: String,
    pub task: String,
}

/// An entity as `entities/<id>/get` returns it. Secure fields are never in `entity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    #[serde(rename = "type")]
    pub type_id: String,
    pub org: String,
    pub name: String,
    pub state: EntityState,
    pub revision: u64,
    /// The principal that created it; it may always read it.
    pub owner: String,
    #[serde(with = "time_fmt::ms")]
    pub created_at: u64,
    #[serde(with = "time_fmt::ms")]
    pub updated_at: u64,
    #[serde(default)]
    pub entity: Value,
    /// On `resolution_error`: where the content fails its type's schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
    /// The hook that holds it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<PendingHook>,
    #[serde(default)]
    pub history: Vec<EntityChange>,
}

impl Entity {
    /// The `data` of its `entity.*` events.
    pub fn event_data(&self) -> Value {
        serde_json::json!({"id": self.id, "type": self.type_id, "revision": self.revision,
                           "state": self.state})
    }

    /// The entity without its history (query pages).
    pub fn summary(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("history");
        }
        v
    }
}

/// Body of `entities/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateEntity {
    #[serde(rename = "type")]
    pub type_id: String,
    pub org: String,
    pub name: String,
    pub entity: Value,
}

/// Body of `entities/<id>/update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateEntity {
    pub revision: u64,
    pub entity: Value,
}

/// Body of `entities/<id>/delete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeleteEntity {
    #[serde(default)]
    pub revision: Option<u64>,
}

/// Body of `entities/query`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EntityQuery {
    #[serde(default, rename = "type")]
    pub type_id: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub state: Option<EntityState>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Paging cursor: the last entity id of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// A metadata search (`query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// A search over content paths, same syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Body of `entities/<id>/behaviors/<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvokeBehavior {
    #[serde(default)]
    pub arguments: Value,
}

/// What is done to one entity (the `{entity_id}` commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityAction {
    Get,
    Update,
    Resolve,
    Delete,
    /// The secure values, for the type's own extension only.
    Secrets,
}

impl EntityAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityAction::Get => "get",
            EntityAction::Update => "update",
            EntityAction::Resolve => "resolve",
            EntityAction::Delete => "delete",
            EntityAction::Secrets => "secrets",
        }
    }
}

fn on(p: &[&str], action: EntityAction) -> Command {
    Command::Entity {
        entity_id: arg(p, 0),
        action,
    }
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[
    CREATE, GET, UPDATE, RESOLVE, DELETE, SECRETS, BEHAVIOR, QUERY, TYPES,
];

pub const CREATE: Spec = Spec {
    suffix: "entities/create",
    kind: "entities/create",
    schema: schema!("entity-create", Inbound),
    channel: "cmdEntitiesCreate",
    description: "any role the type's access.write names: store an entity and resolve it against its type's schema.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"type": "urn:extbus:type:acme:k8s-cluster:1.2.0", "org": "acme", "name": "prod-1", "entity": {"spec": {"nodes": 3}}}"#,
    build: |_| Command::EntitiesCreate,
};

pub const GET: Spec = Spec {
    suffix: "entities/{entity_id}/get",
    kind: "entities/get",
    schema: schema!("entity-get", Inbound),
    channel: "cmdEntityGet",
    description:
        "any role the type's access.read names, and the owner: one entity with its history.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |p| on(p, EntityAction::Get),
};

pub const UPDATE: Spec = Spec {
    suffix: "entities/{entity_id}/update",
    kind: "entities/update",
    schema: schema!("entity-update", Inbound),
    channel: "cmdEntityUpdate",
    description: "access.write: replace the content if revision is the current one (else conflict); revision + 1.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"revision": 1, "entity": {"spec": {"nodes": 5}}}"#,
    build: |p| on(p, EntityAction::Update),
};

pub const RESOLVE: Spec = Spec {
    suffix: "entities/{entity_id}/resolve",
    kind: "entities/resolve",
    schema: schema!("entity-get", Inbound),
    channel: "cmdEntityResolve",
    description: "access.write: validate the content again: resolved or resolution_error.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{}"#,
    build: |p| on(p, EntityAction::Resolve),
};

pub const DELETE: Spec = Spec {
    suffix: "entities/{entity_id}/delete",
    kind: "entities/delete",
    schema: schema!("entity-delete", Inbound),
    channel: "cmdEntityDelete",
    description: "access.write: remove the entity (if revision is given, only at that revision).",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"revision": 2}"#,
    build: |p| on(p, EntityAction::Delete),
};

pub const SECRETS: Spec = Spec {
    suffix: "entities/{entity_id}/secrets",
    kind: "entities/secrets",
    schema: schema!("entity-get", Inbound),
    channel: "cmdEntitySecrets",
    description: "the type's own extension only: the entity's secure values, {id, revision, secrets: [{path, value}]}.",
    roles: &[Role::Extension],
    read_only: true,
    example: r#"{}"#,
    build: |p| on(p, EntityAction::Secrets),
};

pub const BEHAVIOR: Spec = Spec {
    suffix: "entities/{entity_id}/behaviors/{behavior}",
    kind: "entities/behavior",
    schema: schema!("entity-behavior", Inbound),
    channel: "cmdEntityBehavior",
    description: "access.write: invoke a behavior the type declares, as a blocking task on <nss>.<behavior> assigned to the type's extension; the reply is the task.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"arguments": {"nodes": 5}}"#,
    build: |p| Command::EntityBehavior {
        entity_id: arg(p, 0),
        behavior: arg(p, 1),
    },
};

pub const QUERY: Spec = Spec {
    suffix: "entities/query",
    kind: "entities/query",
    schema: schema!("entities-query", Inbound),
    channel: "cmdEntitiesQuery",
    description:
        "any role: a page of the entities it may read, by type, org and state, in id order.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{"type": "urn:extbus:type:acme:k8s-cluster:1.2.0", "org": "acme", "state": "resolved", "limit": 10, "after": "urn:extbus:entity:0193f6c2-aa"}"#,
    build: |_| Command::EntitiesQuery,
};

pub const TYPES: Spec = Spec {
    suffix: "entities/types",
    kind: "entities/types",
    schema: schema!("entity-types", Inbound),
    channel: "cmdEntityTypes",
    description: "any role: the registered entity types, in id order.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{}"#,
    build: |_| Command::EntityTypes,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_round_trips_and_event_data_has_the_spec_fields() {
        let e = Entity {
            id: "urn:extbus:entity:1".into(),
            type_id: "urn:extbus:type:acme:k8s-cluster:1.2.0".into(),
            org: "acme".into(),
            name: "prod-1".into(),
            state: EntityState::ResolutionError,
            revision: 3,
            owner: "platform-1".into(),
            created_at: 1_795_341_600_123,
            updated_at: 1_795_341_600_124,
            entity: serde_json::json!({"spec": {}}),
            errors: vec![ErrorDetail {
                path: "/spec".into(),
                message: "bad".into(),
            }],
            hook: None,
            history: vec![],
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["state"], "resolution_error");
        assert_eq!(v["type"], e.type_id);
        assert_eq!(serde_json::from_value::<Entity>(v).unwrap(), e);
        let d = e.event_data();
        assert_eq!(d["revision"], 3);
        assert_eq!(d["state"], "resolution_error");
        assert!(e.summary().get("history").is_none());
        for s in EntityState::ALL {
            assert_eq!(EntityState::parse(s.as_str()), Some(s));
        }
        assert_eq!(entity_id("x"), "urn:extbus:entity:x");
    }
}
