//! Key layout of the one `callouts` tree: `t/` task records, `q/` idempotency keys, `d/` and `n/`
//! time-ordered deadline and renotify indexes, `b/` the set of blocked tasks, `r/` registered rules
//! (by owner and component), `f/` finished tasks by the time they ended (for retention).
//! Times are big-endian u64 so that byte order is time order.

use crate::error::CalloutError;

pub(crate) const TASK: &[u8] = b"t/";
pub(crate) const REQUEST: &[u8] = b"q/";
pub(crate) const DEADLINE: &[u8] = b"d/";
pub(crate) const RENOTIFY: &[u8] = b"n/";
pub(crate) const BLOCKED: &[u8] = b"b/";
pub(crate) const RULE: &[u8] = b"r/";
pub(crate) const FINISHED: &[u8] = b"f/";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// `t/<task_id>`
pub(crate) fn task(id: &str) -> Vec<u8> {
    cat(&[TASK, id.as_bytes()])
}

/// `q/<submitter>\0<request_id>`
pub(crate) fn request(submitter: &str, request_id: &str) -> Vec<u8> {
    cat(&[REQUEST, submitter.as_bytes(), b"\0", request_id.as_bytes()])
}

/// `d/<deadline_ms BE><task_id>`
pub(crate) fn deadline(at_ms: u64, id: &str) -> Vec<u8> {
    cat(&[DEADLINE, &at_ms.to_be_bytes(), id.as_bytes()])
}

/// `n/<renotify_at_ms BE><task_id>`
pub(crate) fn renotify(at_ms: u64, id: &str) -> Vec<u8> {
    cat(&[RENOTIFY, &at_ms.to_be_bytes(), id.as_bytes()])
}

/// `f/<finished_at_ms BE><task_id>`
pub(crate) fn finished(at_ms: u64, id: &str) -> Vec<u8> {
    cat(&[FINISHED, &at_ms.to_be_bytes(), id.as_bytes()])
}

/// `b/<task_id>`
pub(crate) fn blocked(id: &str) -> Vec<u8> {
    cat(&[BLOCKED, id.as_bytes()])
}

/// `r/<owner>\0` : the prefix of one owner's rules.
pub(crate) fn rule_prefix(owner: &str) -> Vec<u8> {
    cat(&[RULE, owner.as_bytes(), b"\0"])
}

/// `r/<owner>\0<component>\0` : the prefix of one component's rules.
pub(crate) fn component_rule_prefix(owner: &str, component: &str) -> Vec<u8> {
    cat(&[&rule_prefix(owner), component.as_bytes(), b"\0"])
}

/// `r/<owner>\0<component>\0<n BE>`
pub(crate) fn rule(owner: &str, component: &str, n: u32) -> Vec<u8> {
    cat(&[&component_rule_prefix(owner, component), &n.to_be_bytes()])
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Only reachable for a prefix of 0xFF bytes, which this layout never uses.
    vec![u8::MAX; prefix.len() + 1]
}

/// Splits a `d/`, `n/` or `f/` key into its time and task id.
pub(crate) fn split_timed(key: &[u8]) -> Result<(u64, String), CalloutError> {
    if key.len() < 10 {
        return Err(CalloutError::corrupt(key, "timer key too short"));
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&key[2..10]);
    let id = std::str::from_utf8(&key[10..]).map_err(|e| CalloutError::corrupt(key, e))?;
    Ok((u64::from_be_bytes(at), id.to_string()))
}

/// The text after a two-byte prefix (`t/`, `b/`).
pub(crate) fn suffix(key: &[u8]) -> Result<String, CalloutError> {
    let rest = key.get(2..).unwrap_or_default();
    std::str::from_utf8(rest)
        .map(str::to_string)
        .map_err(|e| CalloutError::corrupt(key, e))
}

/// The owner and component of an `r/<owner>\0<component>\0<n>` key. A key written before
/// components existed (`r/<owner>\0<n BE>`, four bytes after the owner) has component `None`.
pub(crate) fn rule_owner(key: &[u8]) -> Result<(String, Option<String>), CalloutError> {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| CalloutError::corrupt(key, e))
    };
    let rest = key.get(2..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| CalloutError::corrupt(key, "rule key without owner separator"))?;
    let owner = text(&rest[..end])?;
    let tail = &rest[end + 1..];
    if tail.len() == 4 {
        return Ok((owner, None));
    }
    let sep = tail
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| CalloutError::corrupt(key, "rule key without component separator"))?;
    Ok((owner, Some(text(&tail[..sep])?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_keys_sort_by_time_and_round_trip() {
        let a = deadline(999, "zzz");
        let b = deadline(1000, "aaa");
        assert!(a < b);
        assert_eq!(split_timed(&b).unwrap(), (1000, "aaa".to_string()));
        assert!(split_timed(b"d/x").is_err());
    }

    #[test]
    fn prefixes_and_owners() {
        assert_eq!(prefix_end(b"d/"), b"d0".to_vec());
        assert_eq!(prefix_end(b"r/a\0"), b"r/a\x01".to_vec());
        assert_eq!(
            rule_owner(&rule("ext-1", "approver", 7)).unwrap(),
            ("ext-1".to_string(), Some("approver".to_string()))
        );
        let legacy = cat(&[&rule_prefix("ext-1"), &7u32.to_be_bytes()]);
        assert_eq!(rule_owner(&legacy).unwrap(), ("ext-1".to_string(), None));
        assert!(rule_owner(b"r/broken").is_err());
        assert!(rule_owner(b"r/a\0toolong").is_err());
        assert_eq!(suffix(&task("abc")).unwrap(), "abc");
        assert!(rule(&"a".repeat(3), "c", 1).starts_with(&rule_prefix("aaa")));
        assert!(rule("a", "c", 1).starts_with(&component_rule_prefix("a", "c")));
        // A trailing 0xFF carries into the byte before it.
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![u8::MAX; 3]);
    }

    #[test]
    fn the_shortest_timed_key_has_an_empty_id() {
        assert_eq!(split_timed(&deadline(5, "")).unwrap(), (5, String::new()));
        assert!(split_timed(&deadline(5, "")[..9]).is_err());
    }
}
