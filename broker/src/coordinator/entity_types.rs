//! A manifest's `entity_types`, for the registering principal: checked whole before anything
//! is written (`prepare`: owner, immutability once used, the per-principal cap), then written
//! through the batch's `Txn` and put in the in-memory `Types` (`apply`). Types the component
//! declared before and no longer lists are removed if no entity uses them, else kept
//! (`withdraw`).

use super::{Batch, Coordinator};
use crate::entities::{type_in_use, TypeEntry, TypeRecord};
use extbus_callouts::{TreeId, Txn};
use extbus_schema::entity_types::EntityTypeSpec;
use extbus_schema::{CommandError, ErrorCode, ErrorDetail};

/// The declared types that are new or changed, compiled, ready to be written.
pub(crate) struct Plan {
    owner: String,
    component: String,
    ids: Vec<String>,
    write: Vec<TypeEntry>,
}

/// What a register did to the component's types.
pub(crate) struct Applied {
    /// Every declared type.
    pub ids: Vec<String>,
    /// Left out of the manifest and removed (no entity used them).
    pub removed: Vec<String>,
    /// Left out of the manifest but kept: entities of them exist.
    pub kept: Vec<String>,
}

pub(crate) fn prepare(
    co: &Coordinator,
    txn: &Txn,
    owner: &str,
    component: &str,
    specs: &[EntityTypeSpec],
    now: u64,
) -> Result<Plan, CommandError> {
    let mut write = Vec::new();
    let mut added = 0usize;
    for (i, spec) in specs.iter().enumerate() {
        let id = spec.id();
        match co.types.get(&id) {
            Some(e) if e.record.owner != owner => {
                return Err(CommandError::conflict(format!(
                    "type {id} belongs to '{}'",
                    e.record.owner
                )));
            }
            Some(e) if e.record.spec == *spec && e.record.component == component => continue,
            // The same body declared by another of the owner's components moves to it.
            Some(e) if e.record.spec == *spec => {}
            Some(_) => {
                if type_in_use(txn, &id)? {
                    return Err(CommandError::conflict(format!(
                        "type {id} has entities, so it cannot change: register a new version"
                    )));
                }
            }
            None => added += 1,
        }
        let record = TypeRecord {
            owner: owner.to_string(),
            component: component.to_string(),
            registered_at: now,
            spec: spec.clone(),
        };
        // Compiled here, once per new or changed type (`decode` checked the document only).
        let entry = TypeEntry::new(record).map_err(|why| {
            let path = format!("/entity_types/{i}/schema");
            CommandError::new(
                ErrorCode::SchemaViolation,
                format!("{path}: the schema does not compile: {why}"),
            )
            .with_details(vec![ErrorDetail { path, message: why }])
        })?;
        write.push(entry);
    }
    let cap = co.config.entities.max_types_per_principal;
    let owned = co.types.owned_by(owner);
    if owned + added > cap {
        return Err(CommandError::conflict(format!(
            "principal '{owner}' would own {} entity types; at most {cap} are allowed (entities.max_types_per_principal)",
            owned + added
        )));
    }
    Ok(Plan {
        owner: owner.to_string(),
        component: component.to_string(),
        ids: specs.iter().map(EntityTypeSpec::id).collect(),
        write,
    })
}

/// Writes the plan's types and withdraws those the component no longer declares.
pub(crate) fn apply(co: &mut Coordinator, b: &mut Batch, plan: Plan) -> Applied {
    let before = co.types.of_component(&plan.owner, &plan.component);
    for entry in plan.write {
        match serde_json::to_vec(&entry.record) {
            Ok(bytes) => {
                b.txn.insert(
                    TreeId::EntityTypes,
                    entry.record.spec.id().into_bytes(),
                    bytes,
                );
                co.types.insert(entry);
            }
            Err(e) => tracing::error!(error = %e, "entity type not encodable"),
        }
    }
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for id in before.into_iter().filter(|id| !plan.ids.contains(id)) {
        match type_in_use(&b.txn, &id) {
            Ok(false) => {
                b.txn.remove(TreeId::EntityTypes, id.clone().into_bytes());
                co.types.remove(&id);
                removed.push(id);
            }
            Ok(true) => kept.push(id),
            Err(e) => {
                tracing::error!(type_id = %id, error = %e, "checking a withdrawn type failed");
                kept.push(id);
            }
        }
    }
    Applied {
        ids: plan.ids,
        removed,
        kept,
    }
}

/// At start: the config's `[[entities.types]]` are registered for the extensions they name
/// (component `config`), written to the store like a manifest's. A config type whose id another
/// principal owns, or whose body changed while entities use it, stops the start with the reason.
pub(crate) fn from_config(co: &mut Coordinator) -> Result<(), String> {
    if co.config.entities.types.is_empty() {
        return Ok(());
    }
    let mut txn = co.store.txn();
    let now = co.clock.now_ms();
    let mut by_owner: std::collections::BTreeMap<String, Vec<EntityTypeSpec>> = Default::default();
    for t in &co.config.entities.types {
        by_owner
            .entry(t.extension.clone())
            .or_default()
            .push(t.spec());
    }
    let component = crate::config::entities::CONFIG_COMPONENT;
    let mut plans = Vec::new();
    for (owner, specs) in &by_owner {
        let plan = prepare(co, &txn, owner, component, specs, now)
            .map_err(|e| format!("entities.types of '{owner}': {}", e.message))?;
        plans.push(plan);
    }
    for plan in plans {
        for entry in plan.write {
            let bytes = serde_json::to_vec(&entry.record).map_err(|e| e.to_string())?;
            txn.insert(
                TreeId::EntityTypes,
                entry.record.spec.id().into_bytes(),
                bytes,
            );
            co.types.insert(entry);
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    co.store.flush().map_err(|e| e.to_string())?;
    Ok(())
}
