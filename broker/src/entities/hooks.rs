//! What a hook or behavior task is for, kept beside the entity index (`entity-index`, kind
//! `h`, keyed by task id) from the task's start until it ends. Only the broker writes these,
//! so a task someone else submitted on the same operation can never change an entity.

use super::corrupt;
use extbus_callouts::{CalloutError, TreeId, Txn};
use extbus_schema::entities::EntityState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The lifecycle hooks, by their names in `hooks`.
pub const POST_CREATE: &str = "post_create";
pub const PRE_UPDATE: &str = "pre_update";
pub const PRE_DELETE: &str = "pre_delete";
pub const POST_DELETE: &str = "post_delete";

/// The operation of a hook or behavior `name` of a type with namespace `nss`: `<nss>.<name>`,
/// `_` written `-` (`k8s-cluster.post-create`).
pub fn operation(nss: &str, name: &str) -> String {
    format!("{nss}.{}", name.replace('_', "-"))
}

/// A running hook or behavior task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    pub entity: String,
    /// A hook name (`post_create` ...) or `behavior:<name>`.
    pub name: String,
    /// The principal whose command started it.
    pub by: String,
    /// `pre_update`: the proposed content (no secure values) and its sealed secure values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// `pre_delete`: the state the entity returns to when the delete is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<EntityState>,
}

fn key(task: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + task.len());
    k.extend_from_slice(b"h\0");
    k.extend_from_slice(task.as_bytes());
    k
}

pub fn put(txn: &mut Txn, task: &str, r: &HookRecord) -> Result<(), CalloutError> {
    let bytes = serde_json::to_vec(r).map_err(|e| corrupt(task, e))?;
    txn.insert(TreeId::EntityIndex, key(task), bytes);
    Ok(())
}

/// The record of task `task`, removed, if the task is a hook or behavior task.
pub fn take(txn: &mut Txn, task: &str) -> Result<Option<HookRecord>, CalloutError> {
    let r = get(txn, task)?;
    if r.is_some() {
        txn.remove(TreeId::EntityIndex, key(task));
    }
    Ok(r)
}

/// The record of task `task`, left in place.
pub fn get(txn: &Txn, task: &str) -> Result<Option<HookRecord>, CalloutError> {
    match txn.get(TreeId::EntityIndex, &key(task))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(task, e)),
        None => Ok(None),
    }
}
