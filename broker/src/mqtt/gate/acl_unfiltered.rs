//! The role table for a broker that judges only at subscribe time (an external broker asking
//! over EMQX's HTTP authorization): the embedded gate also filters each delivery (an
//! extension gets only the blocked tasks of operations it registered, an org-limited principal
//! only its orgs' tasks), which such a broker cannot. So a subscription is allowed only where
//! every message it can match would have been delivered: the gate's decision, narrowed.

use super::acl::{filters_blocked_tasks, filters_task_orgs, may_subscribe, Denial};
use crate::principals::Principal;
use crate::registry::Registry;
use extbus_schema::topics;

/// May `p` subscribe to `filter` on a broker that delivers everything the filter matches?
pub fn may_subscribe_unfiltered(
    p: &Principal,
    filter: &str,
    registry: &Registry,
) -> Result<(), Denial> {
    may_subscribe(p, filter, registry)?;
    let inner = super::acl::strip_share(filter)?;
    if !inner.starts_with(topics::TASKS_PREFIX) && !topics_may_reach_tasks(inner) {
        return Ok(());
    }
    if filters_task_orgs(p) {
        return Err(Denial {
            reason: format!(
                "{} is limited to orgs [{}]; on an external broker its tasks are read with tasks/query",
                p.name,
                p.orgs.join(", ")
            ),
        });
    }
    if filters_blocked_tasks(p) {
        // Only `extbus/tasks/blocked/<entity>/<operation>` of an operation it registered.
        let op = topics::parse_tasks_blocked(inner).filter(|op| !op.contains(['+', '#']));
        return match op {
            Some(op) if registry.answers_operation(&p.name, &op) => Ok(()),
            Some(op) => Err(Denial {
                reason: format!("{} has not registered a rule for {op}", p.name),
            }),
            None => Err(Denial {
                reason: "name the blocked operation literally: extbus/tasks/blocked/<entity>/<operation>"
                    .into(),
            }),
        };
    }
    Ok(())
}

/// `#` or `+` at the first levels reach `extbus/tasks/` too (only admins get that far).
fn topics_may_reach_tasks(filter: &str) -> bool {
    let mut levels = filter.split('/');
    matches!(
        (levels.next(), levels.next()),
        (Some("#"), _) | (Some("+"), _) | (Some("extbus"), Some("#" | "+"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registration;
    use extbus_schema::Role;

    fn p(name: &str, roles: &[Role], orgs: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            roles: roles.to_vec(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn deliveries_the_gate_would_filter_are_refused_at_subscribe() {
        let r = Registry::new();
        let mut reg = Registration::default();
        reg.operations.insert("vm.create".into());
        r.set("ext", reg);
        let ext = p("ext", &[Role::Extension], &["*"]);
        let ok = |who: &Principal, f: &str| may_subscribe_unfiltered(who, f, &r).is_ok();
        assert!(ok(&ext, "extbus/tasks/blocked/vm/create"));
        assert!(ok(&ext, "$share/g/extbus/tasks/blocked/vm/create"));
        assert!(!ok(&ext, "extbus/tasks/blocked/#"));
        assert!(!ok(&ext, "extbus/tasks/blocked/vm/+"));
        assert!(!ok(&ext, "extbus/tasks/blocked/vm/delete"));
        assert!(ok(&ext, "extbus/out/ext/#"));
        let op = p("op", &[Role::Operator], &["*"]);
        assert!(ok(&op, "extbus/tasks/#"));
        let limited = p("op2", &[Role::Operator], &["acme"]);
        assert!(!ok(&limited, "extbus/tasks/#"));
        assert!(ok(&limited, "extbus/events/acme/#"));
        assert!(!ok(&limited, "extbus/events/globex/#"));
        let admin = p("root", &[Role::Admin], &["*"]);
        assert!(ok(&admin, "#"));
        // What the gate refuses stays refused.
        assert!(!ok(&p("obs", &[Role::Observer], &["*"]), "extbus/tasks/#"));
    }
}
