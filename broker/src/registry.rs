//! What each extension has registered (callout operations, services), shared between the
//! coordinator (which writes it on `register`) and the gate (which reads it to decide what an
//! extension may receive). In memory only; the coordinator rebuilds it from the store at start.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// One principal's registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    /// Operations (`vapp.instantiate`) it has callout rules for.
    pub operations: HashSet<String>,
    /// Services it serves, as (vendor, name).
    pub services: HashSet<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<HashMap<String, Registration>>,
    /// Open connections per principal, kept by the gate.
    pub presence: std::sync::Arc<crate::presence::Presence>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a principal's registration.
    pub fn set(&self, principal: &str, reg: Registration) {
        self.inner
            .write()
            .unwrap()
            .insert(principal.to_string(), reg);
    }

    /// Adds callout operations a principal answers (config rules name their extension).
    pub fn add_operation(&self, principal: &str, operation: &str) {
        self.inner
            .write()
            .unwrap()
            .entry(principal.to_string())
            .or_default()
            .operations
            .insert(operation.to_string());
    }

    pub fn get(&self, principal: &str) -> Option<Registration> {
        self.inner.read().unwrap().get(principal).cloned()
    }

    /// May this principal receive `extbus/tasks/blocked/...` notices for `operation`?
    pub fn answers_operation(&self, principal: &str, operation: &str) -> bool {
        self.inner
            .read()
            .unwrap()
            .get(principal)
            .is_some_and(|r| r.operations.contains(operation))
    }

    /// Does this principal serve the service `vendor/name`?
    pub fn owns_service(&self, principal: &str, vendor: &str, name: &str) -> bool {
        self.inner
            .read()
            .unwrap()
            .get(principal)
            .is_some_and(|r| r.services.iter().any(|(v, n)| v == vendor && n == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_queries_answer() {
        let r = Registry::new();
        r.add_operation("ext", "vapp.instantiate");
        assert!(r.answers_operation("ext", "vapp.instantiate"));
        assert!(!r.answers_operation("other", "vapp.instantiate"));
        let mut reg = Registration::default();
        reg.services.insert(("acme".into(), "greeter".into()));
        r.set("ext", reg);
        assert!(!r.answers_operation("ext", "vapp.instantiate"));
        assert!(r.owns_service("ext", "acme", "greeter"));
        assert!(!r.owns_service("ext", "acme", "other"));
    }
}
