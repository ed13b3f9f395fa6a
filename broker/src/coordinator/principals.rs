//! Watches the principals file (changed by `extbus principal add|remove` while the broker
//! runs) and logs each change as a broker event: `principal.added`, `principal.removed`,
//! `principal.changed`, in the system org. Secrets never appear in events.

use super::{events, Batch, Coordinator};
use crate::principals::Principal;
use std::collections::BTreeMap;

/// How often the file is checked.
pub(crate) const POLL_MS: u64 = 1_000;

pub(crate) type Snapshot = BTreeMap<String, Principal>;

pub(crate) fn snapshot(co: &Coordinator) -> Snapshot {
    co.principals
        .list()
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// Emits an event per difference since the last snapshot, then keeps the new one.
pub(crate) fn check(co: &mut Coordinator, b: &mut Batch) {
    co.principals.reload_if_changed();
    let now = snapshot(co);
    if now == co.known_principals {
        return;
    }
    let before = std::mem::take(&mut co.known_principals);
    for (name, p) in &now {
        let kind = match before.get(name) {
            None => "principal.added",
            Some(old) if old != p => "principal.changed",
            Some(_) => continue,
        };
        b.acl_changed.push(name.clone());
        let data = serde_json::json!({"name": name, "roles": p.roles, "orgs": p.orgs});
        events::system(
            co,
            b,
            kind,
            Some(format!("urn:extbus:principal:{name}")),
            data,
        );
    }
    for name in before.keys().filter(|n| !now.contains_key(*n)) {
        b.acl_changed.push(name.clone());
        events::system(
            co,
            b,
            "principal.removed",
            Some(format!("urn:extbus:principal:{name}")),
            serde_json::json!({"name": name}),
        );
    }
    co.known_principals = now;
}
