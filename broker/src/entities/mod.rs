//! Defined entities on the store: entity types compiled once and kept in memory (`Types`,
//! rebuilt from the `entity-types` tree on open), the stored entity record, its index
//! (`entity-index`: by type, org and state, in id order) and content checks. Every write
//! goes through the batch's `Txn`. `secure` seals write-only fields.

pub mod hooks;
pub mod secure;

use extbus_callouts::{prefix_end, CalloutError, TreeId, Trees, Txn};
use extbus_schema::entities::{Entity, EntityState};
use extbus_schema::entity_types::{secure_paths, EntityTypeSpec};
use extbus_schema::{time_fmt, ErrorDetail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Most history entries an entity keeps (the oldest go first).
pub const MAX_HISTORY: usize = 100;
/// Most changed paths one history entry names.
const MAX_PATHS: usize = 20;

/// A type as stored in the `entity-types` tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeRecord {
    pub owner: String,
    /// The owner's component that declared it (types stored before components: `default`).
    #[serde(default = "default_component")]
    pub component: String,
    #[serde(with = "time_fmt::ms")]
    pub registered_at: u64,
    pub spec: EntityTypeSpec,
}

fn default_component() -> String {
    extbus_callouts::DEFAULT_COMPONENT.to_string()
}

/// A registered type with its compiled schema.
pub struct TypeEntry {
    pub record: TypeRecord,
    pub validator: jsonschema::Validator,
    /// JSON Pointers of its write-only properties.
    pub secure: Vec<String>,
    /// Its behaviors' `parameters`, compiled, by behavior name.
    pub parameters: HashMap<String, jsonschema::Validator>,
}

impl TypeEntry {
    pub fn new(record: TypeRecord) -> Result<TypeEntry, String> {
        let validator = record.spec.compile()?;
        let secure = secure_paths(&record.spec.schema);
        let mut parameters = HashMap::new();
        for b in &record.spec.behaviors {
            if let Some(p) = &b.parameters {
                let v = jsonschema::draft202012::options()
                    .build(p)
                    .map_err(|e| format!("parameters of behavior '{}': {e}", b.name))?;
                parameters.insert(b.name.clone(), v);
            }
        }
        Ok(TypeEntry {
            record,
            validator,
            secure,
            parameters,
        })
    }

    /// Whether `path` is a secure field or inside one.
    pub fn is_secure(&self, path: &str) -> bool {
        self.secure
            .iter()
            .any(|s| path == s || path.starts_with(&format!("{s}/")))
    }

    /// Where `content` (secure fields included) fails the type's schema; empty when it fits.
    pub fn check(&self, content: &Value) -> Vec<ErrorDetail> {
        if self.validator.is_valid(content) {
            return Vec::new();
        }
        let (details, _) = extbus_schema::validate::violations(
            &self.validator,
            &self.record.spec.schema,
            content,
            &|p| self.is_secure(p),
        );
        details
    }
}

/// Every registered type, by id.
#[derive(Default)]
pub struct Types {
    by_id: HashMap<String, Arc<TypeEntry>>,
}

impl Types {
    /// The types of the `entity-types` tree; one that no longer compiles is logged and left out.
    pub fn load(trees: &Trees) -> Types {
        let mut t = Types::default();
        for (k, v) in trees.tree(TreeId::EntityTypes).iter().flatten() {
            let id = String::from_utf8_lossy(&k).to_string();
            match serde_json::from_slice::<TypeRecord>(&v)
                .map_err(|e| e.to_string())
                .and_then(TypeEntry::new)
            {
                Ok(e) => t.insert(e),
                Err(why) => {
                    tracing::error!(type_id = %id, error = %why, "stored entity type unusable")
                }
            }
        }
        t
    }

    pub fn get(&self, id: &str) -> Option<&Arc<TypeEntry>> {
        self.by_id.get(id)
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// Ids of the types `owner` declared in `component`, in id order.
    pub fn of_component(&self, owner: &str, component: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_id
            .values()
            .filter(|e| e.record.owner == owner && e.record.component == component)
            .map(|e| e.record.spec.id())
            .collect();
        v.sort();
        v
    }

    pub fn insert(&mut self, e: TypeEntry) {
        self.by_id.insert(e.record.spec.id(), Arc::new(e));
    }

    /// How many types `owner` registered.
    pub fn owned_by(&self, owner: &str) -> usize {
        self.by_id
            .values()
            .filter(|e| e.record.owner == owner)
            .count()
    }

    /// The operations of the hooks and behaviors of the types `owner` registered
    /// (`<nss>.post-create`, `<nss>.<behavior>`): its tasks come on them.
    pub fn operations_of(&self, owner: &str) -> Vec<String> {
        let mut ops = Vec::new();
        for e in self.by_id.values().filter(|e| e.record.owner == owner) {
            let spec = &e.record.spec;
            let h = &spec.hooks;
            let on = [
                (h.post_create, hooks::POST_CREATE),
                (h.pre_update, hooks::PRE_UPDATE),
                (h.pre_delete, hooks::PRE_DELETE),
                (h.post_delete, hooks::POST_DELETE),
            ];
            let names = on.iter().filter(|(set, _)| *set).map(|(_, n)| *n);
            let names = names.chain(spec.behaviors.iter().map(|b| b.name.as_str()));
            ops.extend(names.map(|n| hooks::operation(&spec.nss, n)));
        }
        ops
    }

    /// Every type, in id order.
    pub fn list(&self) -> Vec<&Arc<TypeEntry>> {
        let mut v: Vec<_> = self.by_id.values().collect();
        v.sort_by_key(|e| e.record.spec.id());
        v
    }
}

/// An entity as stored: the public record (no secure values) and its sealed secure values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(flatten)]
    pub entity: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

fn index_key(kind: u8, value: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + value.len() + id.len());
    k.push(kind);
    k.push(0);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The index prefix of one type, org or state (`kind` b't', b'o', b's').
pub fn index_prefix(kind: u8, value: &str) -> Vec<u8> {
    index_key(kind, value, "")
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> CalloutError {
    CalloutError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn index_keys(e: &Entity) -> [Vec<u8>; 3] {
    [
        index_key(b't', &e.type_id, &e.id),
        index_key(b'o', &e.org, &e.id),
        index_key(b's', e.state.as_str(), &e.id),
    ]
}

/// The entity `id` as this batch sees it.
pub fn load(txn: &Txn, id: &str) -> Result<Option<Stored>, CalloutError> {
    match txn.get(TreeId::Entities, id.as_bytes())? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(id, e)),
        None => Ok(None),
    }
}

/// Writes `s` and its index entries, replacing those of `old`.
pub fn put(txn: &mut Txn, old: Option<&Entity>, s: &Stored) -> Result<(), CalloutError> {
    let bytes = serde_json::to_vec(s).map_err(|e| corrupt(&s.entity.id, e))?;
    let new_keys = index_keys(&s.entity);
    if let Some(o) = old {
        for k in index_keys(o) {
            if !new_keys.contains(&k) {
                txn.remove(TreeId::EntityIndex, k);
            }
        }
    }
    for k in new_keys {
        txn.insert(TreeId::EntityIndex, k, Vec::new());
    }
    txn.insert(TreeId::Entities, s.entity.id.as_bytes().to_vec(), bytes);
    Ok(())
}

/// Removes `e` and its index entries.
pub fn remove(txn: &mut Txn, e: &Entity) {
    for k in index_keys(e) {
        txn.remove(TreeId::EntityIndex, k);
    }
    txn.remove(TreeId::Entities, e.id.as_bytes().to_vec());
}

/// Whether any entity of type `type_id` exists.
pub fn type_in_use(txn: &Txn, type_id: &str) -> Result<bool, CalloutError> {
    let p = index_prefix(b't', type_id);
    Ok(!txn
        .range(TreeId::EntityIndex, &p, &prefix_end(&p), 1)?
        .is_empty())
}

/// Ids after `after` in id order: of one index prefix, or of every entity.
pub fn ids_after<'a>(
    txn: &'a Txn,
    prefix: Option<Vec<u8>>,
    after: Option<&str>,
) -> impl Iterator<Item = Result<String, CalloutError>> + 'a {
    let (tree, start, end, cut) = match prefix {
        Some(p) => {
            let end = prefix_end(&p);
            let cut = p.len();
            let mut start = p;
            if let Some(a) = after {
                start.extend_from_slice(a.as_bytes());
                start.push(0);
            }
            (TreeId::EntityIndex, start, end, cut)
        }
        None => {
            let mut start = after.map(|a| a.as_bytes().to_vec()).unwrap_or_default();
            if after.is_some() {
                start.push(0);
            }
            (TreeId::Entities, start, vec![0xff; 1], 0)
        }
    };
    txn.iter_range(tree, &start, &end)
        .map(move |r| r.map(|(k, _)| String::from_utf8_lossy(&k[cut..]).to_string()))
}

/// JSON Pointers where `old` and `new` differ (objects compared key by key), at most 20.
pub fn changed_paths(old: &Value, new: &Value) -> Vec<String> {
    fn walk(a: Option<&Value>, b: Option<&Value>, at: String, out: &mut Vec<String>) {
        if out.len() >= MAX_PATHS || a == b {
            return;
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    walk(x.get(k), y.get(k), p, out);
                }
            }
            _ => out.push(at),
        }
    }
    let mut out = Vec::new();
    walk(Some(old), Some(new), String::new(), &mut out);
    out
}

/// States a query may name, for the reply's table.
pub fn states() -> Vec<&'static str> {
    EntityState::ALL.iter().map(|s| s.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_paths_name_leaves() {
        let a = json!({"spec": {"n": 1, "m": 2}, "x": 1});
        let b = json!({"spec": {"n": 2, "m": 2}, "y": 1});
        assert_eq!(changed_paths(&a, &b), ["/spec/n", "/x", "/y"]);
        assert!(changed_paths(&a, &a).is_empty());
    }
}
