//! A manifest's `entity_types`, for the registering principal: checked whole before anything
//! is written (`prepare`: owner, immutability once used, the per-principal cap), then written
//! through the batch's `Txn` and put in the in-memory `Types` (`apply`).

use super::{Batch, Coordinator};
use crate::entities::{type_in_use, TypeEntry, TypeRecord};
use extbus_callouts::{TreeId, Txn};
use extbus_schema::entity_types::EntityTypeSpec;
use extbus_schema::{CommandError, ErrorCode, ErrorDetail};

/// The declared types that are new or changed, compiled, ready to be written.
pub(crate) struct Plan {
    ids: Vec<String>,
    write: Vec<TypeEntry>,
}

pub(crate) fn prepare(
    co: &Coordinator,
    txn: &Txn,
    owner: &str,
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
            Some(e) if e.record.spec == *spec => continue,
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
        ids: specs.iter().map(EntityTypeSpec::id).collect(),
        write,
    })
}

/// Writes the plan's types; answers the ids of every declared type.
pub(crate) fn apply(co: &mut Coordinator, b: &mut Batch, plan: Plan) -> Vec<String> {
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
    plan.ids
}
