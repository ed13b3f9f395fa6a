//! Declared content indexes: a schema property marked `"x-extbus-index": true` has its
//! values (of every entity of that type) in the `metadata-index` tree under kind `c`, with the
//! type id in the namespace place and the content path (`entity.spec.size`) as the key, so
//! a `filter` clause on it walks a range like a metadata clause. Written with the entity.

use super::{encode_value, selector_prefix, Kind};
use extbus_callouts::{TreeId, Txn};
use extbus_schema::entities::Entity;
use extbus_schema::metadata::Domain;
use extbus_schema::query::TypedValue;
use serde_json::Value;

/// The schema keyword that declares an index.
pub const INDEX_KEYWORD: &str = "x-extbus-index";

/// The content paths of a type's indexed properties (`entity.<prop>.<prop>`).
pub fn index_paths(schema: &Value) -> Vec<String> {
    fn walk(s: &Value, at: &str, out: &mut Vec<String>) {
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (k, sub) in props {
            let path = format!("{at}.{k}");
            if sub.get(INDEX_KEYWORD) == Some(&Value::Bool(true)) {
                out.push(path.clone());
            }
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(schema, "entity", &mut out);
    out
}

/// Scalars at a dotted content path of an entity's JSON (each element of an array).
pub fn at_path<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match v {
                Value::Object(o) => next.extend(o.get(part)),
                Value::Array(a) => next.extend(a.iter().filter_map(|x| x.get(part))),
                _ => {}
            }
        }
        cur = next;
    }
    cur.into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        })
        .collect()
}

fn keys(paths: &[String], e: &Entity) -> Vec<Vec<u8>> {
    let summary = e.summary();
    let mut out = Vec::new();
    for p in paths {
        for v in at_path(&summary, p)
            .into_iter()
            .filter_map(TypedValue::from_json)
        {
            let mut k = selector_prefix(Kind::Content, Domain::Tenant, Some(&e.type_id), p);
            encode_value(&v, &mut k);
            k.extend_from_slice(e.id.as_bytes());
            out.push(k);
        }
    }
    out
}

/// Moves the content index of an entity of a type with `schema` from `old` to `new` (either
/// may be absent: created, deleted).
pub fn reindex(txn: &mut Txn, schema: &Value, old: Option<&Entity>, new: Option<&Entity>) {
    let paths = index_paths(schema);
    if paths.is_empty() {
        return;
    }
    let new_keys = new.map(|e| keys(&paths, e)).unwrap_or_default();
    for k in old.map(|e| keys(&paths, e)).unwrap_or_default() {
        if !new_keys.contains(&k) {
            txn.remove(TreeId::MetadataIndex, k);
        }
    }
    for k in new_keys {
        txn.insert(TreeId::MetadataIndex, k, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_paths_and_values_at_them() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer", "x-extbus-index": true},
                "zones": {"type": "array", "x-extbus-index": true},
                "other": {"type": "string"}}}}});
        assert_eq!(
            index_paths(&schema),
            ["entity.spec.size", "entity.spec.zones"]
        );
        let v = json!({"entity": {"spec": {"size": 3, "zones": ["a", "b"]}}});
        assert_eq!(at_path(&v, "entity.spec.size"), [&json!(3)]);
        assert_eq!(at_path(&v, "entity.spec.zones").len(), 2);
        assert!(at_path(&v, "entity.nope").is_empty());
    }
}
