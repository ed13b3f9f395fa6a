//! What a principal may do on the bus, as a list of topic grants for a broker that enforces
//! the role table itself (external mode). The topics are the protocol's layout; whether each
//! is granted is `gate::acl`'s decision, so the role table is written once.

use super::gate::acl::{self, filters_blocked_tasks, filters_task_orgs};
use crate::principals::Principal;
use crate::registry::Registry;
use extbus_schema::topics;

/// One rule for the external broker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// May publish to topics matching this filter.
    Publish(String),
    /// May subscribe to filters within this one.
    Subscribe(String),
    /// Receives publishes on topics matching this filter (takes precedence over `Withhold`).
    Receive(String),
    /// Does not receive publishes on topics matching this filter.
    Withhold(String),
}

/// Everything `p` may do, given what is registered now.
pub fn grants(p: &Principal, registry: &Registry) -> Vec<Grant> {
    if p.is_admin() {
        return vec![Grant::Publish("#".into()), Grant::Subscribe("#".into())];
    }
    let mut out = Vec::new();
    let inbox = format!("{}#", topics::inbox_prefix(&p.name));
    if acl::may_publish(p, &inbox.replace('#', "x")).is_ok() {
        out.push(Grant::Publish(inbox));
    }
    let reg = registry.get(&p.name).unwrap_or_default();
    let mut candidates = vec![topics::outbox_filter(&p.name)];
    // Task notices name their org only in the payload, which the broker does not read: an
    // org-limited principal would hear every org's tasks, so it gets none (tasks/query).
    if !filters_task_orgs(p) {
        candidates.push(topics::TASKS_ALL.to_string());
        candidates.push(topics::TASKS_BLOCKED_ALL.to_string());
    }
    candidates.push(topics::EVENTS_ALL.to_string());
    candidates.push(topics::actions_filter(&p.name));
    candidates.extend(p.orgs.iter().map(|o| topics::events_org_filter(o)));
    candidates.extend(
        reg.services
            .iter()
            .map(|(v, n)| format!("{}{v}/{n}/#", topics::SERVICES_PREFIX)),
    );
    for f in candidates {
        if acl::may_subscribe(p, &f, registry).is_ok() && !covered(&out, &f) {
            out.push(Grant::Subscribe(f));
        }
    }
    // The gate passes an extension only the blocked tasks of operations it registered; here
    // the broker does, on delivery.
    if filters_blocked_tasks(p) && covered(&out, topics::TASKS_BLOCKED_ALL) {
        let mut ops: Vec<_> = reg.operations.iter().collect();
        ops.sort();
        for op in ops {
            out.push(Grant::Receive(topics::tasks_blocked(op)));
        }
        out.push(Grant::Withhold(topics::TASKS_BLOCKED_ALL.into()));
    }
    out
}

/// Is `filter` within a subscribe grant already in `out`?
fn covered(out: &[Grant], filter: &str) -> bool {
    out.iter().any(|g| match g {
        Grant::Subscribe(s) => within(filter, s),
        _ => false,
    })
}

/// Does every topic `inner` can match also match `outer`?
fn within(inner: &str, outer: &str) -> bool {
    let mut i = inner.split('/');
    for o in outer.split('/') {
        match (o, i.next()) {
            ("#", _) => return true,
            ("+", Some(l)) if l != "#" => {}
            (o, Some(l)) if o == l => {}
            _ => return false,
        }
    }
    i.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registration;
    use extbus_schema::Role;

    fn principal(name: &str, roles: &[Role], orgs: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            roles: roles.to_vec(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn subscribes(g: &[Grant]) -> Vec<&str> {
        g.iter()
            .filter_map(|g| match g {
                Grant::Subscribe(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_role_gets_what_the_gate_allows() {
        let r = Registry::new();
        let mut reg = Registration::default();
        reg.services.insert(("acme".into(), "greeter".into()));
        reg.operations.insert("vapp.instantiate".into());
        r.set("ext", reg);
        // Org-limited: no task notices at all (the broker cannot filter them by org).
        let limited = grants(&principal("ext", &[Role::Extension], &["acme"]), &r);
        assert!(!subscribes(&limited)
            .iter()
            .any(|f| f.starts_with("extbus/tasks/")));
        let ext = grants(&principal("ext", &[Role::Extension], &["*"]), &r);
        assert_eq!(ext[0], Grant::Publish("extbus/in/ext/#".into()));
        assert_eq!(
            subscribes(&ext),
            [
                "extbus/out/ext/#",
                "extbus/tasks/blocked/#",
                "extbus/events/#",
                "extbus/actions/ext/#",
                "extbus/services/acme/greeter/#"
            ]
        );
        assert!(ext.contains(&Grant::Receive(
            "extbus/tasks/blocked/vapp/instantiate".into()
        )));
        assert_eq!(
            ext.last(),
            Some(&Grant::Withhold("extbus/tasks/blocked/#".into()))
        );
        let plat = grants(&principal("plat", &[Role::Platform], &["*"]), &r);
        assert_eq!(subscribes(&plat), ["extbus/out/plat/#"]);
        let op = grants(&principal("op", &[Role::Operator], &["*"]), &r);
        assert_eq!(
            subscribes(&op),
            ["extbus/out/op/#", "extbus/tasks/#", "extbus/events/#"]
        );
        let obs = grants(&principal("obs", &[Role::Observer], &["a", "b"]), &r);
        assert_eq!(
            subscribes(&obs),
            ["extbus/out/obs/#", "extbus/events/a/#", "extbus/events/b/#"]
        );
        let admin = grants(&principal("root", &[Role::Admin], &["*"]), &r);
        assert_eq!(subscribes(&admin), ["#"]);
    }

    #[test]
    fn within_judges_wildcards() {
        assert!(within("a/b", "a/#") && within("a/b", "a/+") && within("a/+/c", "a/+/c"));
        assert!(!within("a/#", "a/+") && !within("a", "a/b") && !within("b/c", "a/#"));
    }
}
