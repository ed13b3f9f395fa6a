//! Object metadata on the store: each object's entries (`metadata` tree, by object id) and the
//! search index (`metadata-index`), written together in the batch's `Txn`. `plan` answers
//! queries from the index; the commands are `coordinator/metadata.rs`.
//!
//! An index key is `kind domain scope name... value object-id`: kind `e` (entity) or `t`
//! (task) or `c` (a declared content index, `content`), domain `t`/`p`, then scope `n` (`namespace\0key\0`) or `a` (`key\0`, any
//! namespace, the namespace after the id so two namespaces never share a key). The value is
//! a type tag (`b` < `n` < `s`) and an order-preserving encoding, so a range of values is a
//! range of keys.

pub mod content;
pub mod plan;

use extbus_callouts::{CalloutError, TreeId, Txn};
use extbus_schema::entities::ENTITY_ID_PREFIX;
use extbus_schema::metadata::{Domain, Entry};
use extbus_schema::query::TypedValue;

/// Which objects an id names: entities or tasks (the first byte of its index keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Entity,
    Task,
    /// Declared content indexes of entities (`content`).
    Content,
}

impl Kind {
    pub fn of(object_id: &str) -> Kind {
        if object_id.starts_with(ENTITY_ID_PREFIX) {
            Kind::Entity
        } else {
            Kind::Task
        }
    }

    fn byte(self) -> u8 {
        match self {
            Kind::Entity => b'e',
            Kind::Task => b't',
            Kind::Content => b'c',
        }
    }
}

fn domain_byte(d: Domain) -> u8 {
    match d {
        Domain::Tenant => b't',
        Domain::Provider => b'p',
    }
}

/// The typed value as index bytes; the order of the bytes is the order of the values.
pub fn encode_value(v: &TypedValue, out: &mut Vec<u8>) {
    match v {
        TypedValue::Boolean(b) => {
            out.push(b'b');
            out.push(u8::from(*b));
        }
        TypedValue::Number(n) => {
            out.push(b'n');
            let n = if *n == 0.0 { 0.0 } else { *n };
            let bits = n.to_bits();
            // Negative numbers: every bit flipped; positive: the sign bit set.
            let k = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&k.to_be_bytes());
        }
        TypedValue::String(s) => {
            out.push(b's');
            escape_into(s.as_bytes(), out);
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// A string's bytes with 0x00 written 0x00 0xFF, so 0x00 0x00 can end it.
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
}

/// Reads a value written by `encode_value` at the start of `k`: the value and its length.
pub fn decode_value(k: &[u8]) -> Option<(TypedValue, usize)> {
    match k.first()? {
        b'b' => Some((TypedValue::Boolean(*k.get(1)? == 1), 2)),
        b'n' => {
            let raw: [u8; 8] = k.get(1..9)?.try_into().ok()?;
            let u = u64::from_be_bytes(raw);
            let bits = if u >> 63 == 1 { u & !(1 << 63) } else { !u };
            Some((TypedValue::Number(f64::from_bits(bits)), 9))
        }
        b's' => {
            let mut s = Vec::new();
            let mut i = 1;
            loop {
                let b = *k.get(i)?;
                if b == 0 {
                    match *k.get(i + 1)? {
                        0 => break,
                        _ => s.push(0),
                    }
                    i += 2;
                } else {
                    s.push(b);
                    i += 1;
                }
            }
            Some((TypedValue::String(String::from_utf8(s).ok()?), i + 2))
        }
        _ => None,
    }
}

/// The key prefix of one (kind, domain, namespace or any, key): values follow it.
pub fn selector_prefix(kind: Kind, domain: Domain, namespace: Option<&str>, key: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + key.len());
    p.push(kind.byte());
    p.push(domain_byte(domain));
    match namespace {
        Some(ns) => {
            p.push(b'n');
            p.extend_from_slice(ns.as_bytes());
            p.push(0);
        }
        None => p.push(b'a'),
    }
    p.extend_from_slice(key.as_bytes());
    p.push(0);
    p
}

/// Both index keys of one entry of `object_id`.
fn index_keys(object_id: &str, e: &Entry) -> [Vec<u8>; 2] {
    let kind = Kind::of(object_id);
    let mut named = selector_prefix(kind, e.domain, Some(&e.namespace), &e.key);
    encode_value(&e.value, &mut named);
    named.extend_from_slice(object_id.as_bytes());
    let mut any = selector_prefix(kind, e.domain, None, &e.key);
    encode_value(&e.value, &mut any);
    any.extend_from_slice(object_id.as_bytes());
    any.push(0);
    any.extend_from_slice(e.namespace.as_bytes());
    [named, any]
}

/// The object id and value of an index key, after its selector prefix of `prefix_len` bytes.
pub fn split_key(key: &[u8], prefix_len: usize, any_scope: bool) -> Option<(String, TypedValue)> {
    let rest = key.get(prefix_len..)?;
    let (v, n) = decode_value(rest)?;
    let mut id = &rest[n..];
    if any_scope {
        let end = id.iter().position(|b| *b == 0)?;
        id = &id[..end];
    }
    Some((String::from_utf8_lossy(id).to_string(), v))
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> CalloutError {
    CalloutError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Every entry of `object_id` as this batch sees it (hidden ones included).
pub fn load(txn: &Txn, object_id: &str) -> Result<Vec<Entry>, CalloutError> {
    match txn.get(TreeId::Metadata, object_id.as_bytes())? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(object_id, e)),
        None => Ok(Vec::new()),
    }
}

/// Replaces the entries of `object_id` (`old` as `load` gave them) with `new`, index included.
pub fn store(
    txn: &mut Txn,
    object_id: &str,
    old: &[Entry],
    new: &[Entry],
) -> Result<(), CalloutError> {
    let new_keys: Vec<[Vec<u8>; 2]> = new.iter().map(|e| index_keys(object_id, e)).collect();
    for e in old {
        for k in index_keys(object_id, e) {
            if !new_keys.iter().any(|n| n.contains(&k)) {
                txn.remove(TreeId::MetadataIndex, k);
            }
        }
    }
    for ks in new_keys {
        for k in ks {
            txn.insert(TreeId::MetadataIndex, k, Vec::new());
        }
    }
    if new.is_empty() {
        txn.remove(TreeId::Metadata, object_id.as_bytes().to_vec());
    } else {
        let bytes = serde_json::to_vec(new).map_err(|e| corrupt(object_id, e))?;
        txn.insert(TreeId::Metadata, object_id.as_bytes().to_vec(), bytes);
    }
    Ok(())
}

/// Removes every entry of `object_id` and its index keys (the object is gone).
pub fn remove_all(txn: &mut Txn, object_id: &str) -> Result<(), CalloutError> {
    let old = load(txn, object_id)?;
    store(txn, object_id, &old, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &TypedValue) -> Vec<u8> {
        let mut o = Vec::new();
        encode_value(v, &mut o);
        o
    }

    fn value() -> impl Strategy<Value = TypedValue> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(TypedValue::Number),
            "[a\\x00b\u{e9}]{0,6}".prop_map(TypedValue::String),
            any::<bool>().prop_map(TypedValue::Boolean),
        ]
    }

    proptest! {
        #[test]
        fn encoding_keeps_order_and_decodes_back(a in value(), b in value()) {
            let (ea, eb) = (enc(&a), enc(&b));
            if let Some(o) = a.compare(&b) {
                // Same type: byte order is value order (0.0 and -0.0 are one value).
                prop_assert_eq!(ea.cmp(&eb), o);
            }
            let (back, n) = decode_value(&ea).unwrap();
            prop_assert_eq!(n, ea.len());
            prop_assert!(back.compare(&a) == Some(std::cmp::Ordering::Equal));
            // A value followed by an id still decodes to its own length.
            let mut k = ea.clone();
            k.extend_from_slice(b"urn:x");
            prop_assert_eq!(decode_value(&k).unwrap().1, ea.len());
        }
    }
}
