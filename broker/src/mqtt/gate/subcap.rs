//! Subscription caps: a connection holds at most `max_per_connection` distinct filters and a
//! principal at most `max_per_principal` over all its connections, so no client can make the
//! embedded broker keep state for an unbounded number of filters. A connection's `Slots` take
//! a slot per new filter at SUBSCRIBE and give it back at UNSUBSCRIBE and when dropped.

use crate::config::SubscriptionLimits;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Which cap refused a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    Connection,
    Principal,
}

impl Over {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Over::Connection => "connection",
            Over::Principal => "principal",
        }
    }
}

/// The caps and the per-principal counts, shared by all connections of a gate.
pub(crate) struct SubCaps {
    /// Changed by a reload (SIGHUP); filters held beyond a lowered cap stay.
    limits: Mutex<SubscriptionLimits>,
    held: Mutex<HashMap<String, usize>>,
}

impl SubCaps {
    pub fn new(limits: SubscriptionLimits) -> Arc<Self> {
        Arc::new(SubCaps {
            limits: Mutex::new(limits),
            held: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> SubscriptionLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_limits(&self, limits: SubscriptionLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Filters `principal` holds over all its connections.
    #[cfg(test)]
    pub fn held_by(&self, principal: &str) -> usize {
        self.held().get(principal).copied().unwrap_or(0)
    }
}

/// The filters one connection holds.
pub(crate) struct Slots {
    caps: Arc<SubCaps>,
    principal: String,
    filters: HashSet<String>,
}

impl Slots {
    pub fn new(caps: Arc<SubCaps>, principal: &str) -> Self {
        Slots {
            caps,
            principal: principal.to_string(),
            filters: HashSet::new(),
        }
    }

    /// Takes a slot for `filter`; a filter this connection already holds needs none.
    pub fn take(&mut self, filter: &str) -> Result<(), Over> {
        if self.filters.contains(filter) {
            return Ok(());
        }
        if self.filters.len() >= self.caps.limits().max_per_connection {
            return Err(Over::Connection);
        }
        {
            let mut held = self.caps.held();
            let n = held.entry(self.principal.clone()).or_insert(0);
            if *n >= self.caps.limits().max_per_principal {
                return Err(Over::Principal);
            }
            *n += 1;
        }
        self.filters.insert(filter.to_string());
        Ok(())
    }

    /// Gives `filter`'s slot back (nothing if this connection did not hold it).
    pub fn release(&mut self, filter: &str) {
        if self.filters.remove(filter) {
            self.give_back(1);
        }
    }

    fn give_back(&self, count: usize) {
        let mut held = self.caps.held();
        if let Some(n) = held.get_mut(&self.principal) {
            *n = n.saturating_sub(count);
            if *n == 0 {
                held.remove(&self.principal);
            }
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if !self.filters.is_empty() {
            self.give_back(self.filters.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(conn: usize, principal: usize) -> Arc<SubCaps> {
        SubCaps::new(SubscriptionLimits {
            max_per_connection: conn,
            max_per_principal: principal,
        })
    }

    #[test]
    fn connection_cap_counts_distinct_filters_and_release_frees_a_slot() {
        let c = caps(2, 10);
        let mut s = Slots::new(c.clone(), "obs");
        assert_eq!(s.take("a"), Ok(()));
        assert_eq!(s.take("a"), Ok(()));
        assert_eq!(s.take("b"), Ok(()));
        assert_eq!(s.take("c"), Err(Over::Connection));
        assert_eq!(c.held_by("obs"), 2);
        s.release("c");
        assert_eq!(c.held_by("obs"), 2, "a refused filter holds no slot");
        s.release("a");
        assert_eq!(s.take("c"), Ok(()));
    }

    #[test]
    fn principal_cap_spans_connections_and_dropping_gives_slots_back() {
        let c = caps(2, 3);
        let mut one = Slots::new(c.clone(), "obs");
        let mut two = Slots::new(c.clone(), "obs");
        let mut other = Slots::new(c.clone(), "ext");
        assert_eq!(one.take("a"), Ok(()));
        assert_eq!(one.take("b"), Ok(()));
        assert_eq!(two.take("a"), Ok(()));
        assert_eq!(two.take("b"), Err(Over::Principal));
        assert_eq!(
            other.take("a"),
            Ok(()),
            "another principal has its own count"
        );
        drop(one);
        assert_eq!(c.held_by("obs"), 1);
        assert_eq!(two.take("b"), Ok(()));
        drop(two);
        assert_eq!(c.held_by("obs"), 0);
    }
}
