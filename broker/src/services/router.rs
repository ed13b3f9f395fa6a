//! Which extension service serves a request: every registered service with its compiled URL
//! patterns, ordered by priority (highest first; ties go to the earlier registration).
//! Written by the coordinator on `register` and at start; read by the HTTP gateway.

use extbus_schema::register::ServiceSpec;
use regex::Regex;
use std::sync::{Arc, RwLock};

/// A service as one principal registered it.
#[derive(Debug)]
pub struct Route {
    pub spec: ServiceSpec,
    /// The principal that registered it and may answer its requests.
    pub owner: String,
    patterns: Vec<Regex>,
    /// Registration order, for ties of priority.
    seq: u64,
    /// Switched off by an operator: still routed (so it answers 503 rather than falling
    /// through to another service), never sent a request.
    pub disabled: bool,
}

impl Route {
    /// Does one of its URL patterns match `path`?
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(path))
    }
}

#[derive(Debug, Default)]
struct Table {
    routes: Arc<Vec<Arc<Route>>>,
    next_seq: u64,
}

/// The services table. Readers take a snapshot; writers replace it.
#[derive(Debug, Default)]
pub struct Router {
    table: RwLock<Table>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the services `owner` registered, all switched on.
    pub fn set_owner(&self, owner: &str, specs: &[ServiceSpec]) {
        let flagged: Vec<(ServiceSpec, bool)> = specs.iter().map(|s| (s.clone(), false)).collect();
        self.set_owner_flagged(owner, &flagged);
    }

    /// Replaces the services `owner` registered, each with whether it is switched off. A
    /// pattern that does not compile is skipped (manifests are checked before they get here;
    /// this only guards a damaged store).
    pub fn set_owner_flagged(&self, owner: &str, specs: &[(ServiceSpec, bool)]) {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut routes: Vec<Arc<Route>> = t
            .routes
            .iter()
            .filter(|r| r.owner != owner)
            .cloned()
            .collect();
        for (spec, disabled) in specs {
            let patterns = spec
                .url_patterns
                .iter()
                .filter_map(|p| match Regex::new(p) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(service = %spec.key(), pattern = %p, error = %e, "URL pattern skipped");
                        None
                    }
                })
                .collect();
            // A re-registered service keeps its place among equals.
            let known = t
                .routes
                .iter()
                .find(|r| r.owner == owner && r.spec.key() == spec.key())
                .map(|r| r.seq);
            let seq = known.unwrap_or_else(|| {
                t.next_seq += 1;
                t.next_seq
            });
            routes.push(Arc::new(Route {
                spec: spec.clone(),
                owner: owner.to_string(),
                patterns,
                seq,
                disabled: *disabled,
            }));
        }
        routes.sort_by(|a, b| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then(a.seq.cmp(&b.seq))
        });
        t.routes = Arc::new(routes);
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Route>>> {
        self.table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .routes
            .clone()
    }

    /// The service an HTTP request for `path` goes to: the highest priority match.
    pub fn for_path(&self, path: &str) -> Option<Arc<Route>> {
        self.snapshot().iter().find(|r| r.matches(path)).cloned()
    }

    /// The service `<vendor>/<name>/<version>` (MQTT-native calls name it directly).
    pub fn for_key(&self, key: &str) -> Option<Arc<Route>> {
        self.snapshot()
            .iter()
            .find(|r| r.spec.key() == key)
            .cloned()
    }

    /// May `principal` answer requests for the service `key`? Any principal that registered
    /// it may (replicas of one extension share a principal).
    pub fn is_owner(&self, key: &str, principal: &str) -> bool {
        self.snapshot()
            .iter()
            .any(|r| r.owner == principal && r.spec.key() == key)
    }

    /// How many services are registered.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, pattern: &str, priority: i64) -> ServiceSpec {
        serde_json::from_value(json!({"vendor": "acme", "name": name, "version": "1.0.0",
            "url_patterns": [pattern], "priority": priority}))
        .unwrap()
    }

    #[test]
    fn highest_priority_wins_and_ties_go_to_the_first() {
        let r = Router::new();
        r.set_owner("m", &[spec("low", "^/ext/", 10)]);
        // The first of two equals sorts last by owner and by name: only registration order
        // can make it win.
        r.set_owner("z", &[spec("zz-first", "^/ext/acme/", 90)]);
        r.set_owner("a", &[spec("aa-second", "^/ext/acme/", 90)]);
        assert_eq!(r.for_path("/ext/acme/x").unwrap().spec.name, "zz-first");
        assert_eq!(r.for_path("/ext/other").unwrap().spec.name, "low");
        assert!(r.for_path("/nothing").is_none());
        // Re-registering keeps the place among equals.
        r.set_owner("z", &[spec("zz-first", "^/ext/acme/", 90)]);
        assert_eq!(r.for_path("/ext/acme/x").unwrap().owner, "z");
        // A higher priority beats an earlier registration.
        r.set_owner("a", &[spec("aa-second", "^/ext/acme/", 91)]);
        assert_eq!(r.for_path("/ext/acme/x").unwrap().owner, "a");
        r.set_owner("a", &[spec("aa-second", "^/ext/acme/", 90)]);
        // Replacing an owner's manifest removes what it no longer declares.
        r.set_owner("z", &[]);
        assert_eq!(r.for_path("/ext/acme/x").unwrap().spec.name, "aa-second");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn keys_and_owners() {
        let r = Router::new();
        r.set_owner("ext", &[spec("greeter", "^/g", 50)]);
        assert_eq!(r.for_key("acme/greeter/1.0.0").unwrap().owner, "ext");
        assert!(r.for_key("acme/greeter/2.0.0").is_none());
        assert!(r.is_owner("acme/greeter/1.0.0", "ext"));
        assert!(!r.is_owner("acme/greeter/1.0.0", "other"));
        let mut bad = spec("broken", "^/b", 50);
        bad.url_patterns.push("(".into());
        r.set_owner("x", &[bad]);
        assert!(r.for_path("/b").is_some());
    }
}
