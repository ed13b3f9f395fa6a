//! Who may publish and subscribe where: the protocol's role table as pure functions. A filter is
//! allowed only if every topic it can match is allowed, so wildcards are judged
//! conservatively (a `+` or `#` where a literal name is required refuses the filter).
//! Knows nothing about sockets or MQTT framing. Topic syntax and layout come from
//! `extbus_schema::topics`; only the role decisions live here.

use crate::principals::Principal;
use crate::registry::Registry;
use extbus_schema::topics::{self, split_shared, SHARE_PREFIX};
pub use extbus_schema::topics::{inbox_suffix, valid_filter};
use extbus_schema::Role;

/// A refusal, with a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: String,
}

fn deny(reason: impl Into<String>) -> Result<(), Denial> {
    Err(Denial {
        reason: reason.into(),
    })
}

/// May `p` publish to `topic`? Everyone may publish under its own inbox; admins anywhere.
pub fn may_publish(p: &Principal, topic: &str) -> Result<(), Denial> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return deny("a topic name must be non-empty and without wildcards");
    }
    if p.is_admin() {
        return Ok(());
    }
    if topic.starts_with('$') {
        return deny("topics starting with $ are reserved");
    }
    if inbox_suffix(&p.name, topic).is_some() {
        return Ok(());
    }
    deny(format!(
        "{} may only publish under {}",
        p.name,
        topics::inbox_prefix(&p.name)
    ))
}

/// Splits `$share/<group>/<filter>` into its inner filter; other filters pass unchanged.
pub fn strip_share(filter: &str) -> Result<&str, Denial> {
    if !filter.starts_with(SHARE_PREFIX) {
        return Ok(filter);
    }
    match split_shared(filter) {
        (Some(_), inner) => Ok(inner),
        _ => Err(Denial {
            reason: "a shared subscription is $share/<group>/<filter>".into(),
        }),
    }
}

fn literal(level: &str) -> bool {
    level != "+" && level != "#"
}

/// Does every topic `levels` can match start with the literal levels of topic prefix `prefix`
/// (`extbus/out/`) followed by `more`?
fn under(levels: &[&str], prefix: &str, more: &[&str]) -> bool {
    let want = prefix
        .trim_end_matches('/')
        .split('/')
        .chain(more.iter().copied());
    let mut got = levels.iter();
    want.into_iter()
        .all(|w| got.next().is_some_and(|g| literal(g) && *g == w))
}

/// May `p` subscribe to `filter` (shared subscriptions are judged by their inner filter)?
pub fn may_subscribe(p: &Principal, filter: &str, registry: &Registry) -> Result<(), Denial> {
    let inner = strip_share(filter)?;
    if !valid_filter(inner) {
        return deny(format!("'{inner}' is not a valid topic filter"));
    }
    if p.is_admin() {
        return Ok(());
    }
    if inner.starts_with('$') {
        return deny("topics starting with $ are reserved");
    }
    let levels: Vec<&str> = inner.split('/').collect();
    let name = p.name.as_str();
    if under(&levels, topics::OUTBOX_PREFIX, &[name]) {
        return Ok(());
    }
    let extension = p.has(Role::Extension);
    let operator = p.has(Role::Operator);
    let observer = p.has(Role::Observer);
    if operator && under(&levels, topics::TASKS_PREFIX, &[]) {
        return Ok(());
    }
    if extension && under(&levels, topics::TASKS_BLOCKED_PREFIX, &[]) {
        return Ok(());
    }
    if extension && under(&levels, topics::SERVICES_PREFIX, &[]) {
        return match (levels.get(2), levels.get(3)) {
            (Some(v), Some(n)) if literal(v) && literal(n) => {
                if registry.owns_service(name, v, n) {
                    Ok(())
                } else {
                    deny(format!("{name} has not registered the service {v}/{n}"))
                }
            }
            _ => deny("a service filter must name the vendor and the service literally"),
        };
    }
    if under(&levels, topics::ACTIONS_PREFIX, &[]) {
        // An action's requests carry its password arguments: only its extension reads them.
        if extension && under(&levels, topics::ACTIONS_PREFIX, &[name]) {
            return Ok(());
        }
        return deny(format!(
            "only the extension itself may subscribe to its action requests ({name} may read {})",
            topics::actions_filter(name)
        ));
    }
    if (extension || operator || observer) && under(&levels, topics::EVENTS_PREFIX, &[]) {
        if p.all_orgs() {
            return Ok(());
        }
        return match levels.get(2) {
            Some(org) if literal(org) && p.in_org(org) => Ok(()),
            Some(org) if literal(org) => deny(format!("{name} is not in org '{org}'")),
            _ => deny(format!(
                "{name} is limited to orgs [{}]: name one at the org level",
                p.orgs.join(", ")
            )),
        };
    }
    deny(format!(
        "'{inner}' reaches topics {name} may not read (its outbox is {})",
        topics::outbox_filter(name)
    ))
}

/// For `extbus/tasks/blocked/<entity>/<operation>`: the operation as `entity.operation`.
/// Any other topic under `extbus/tasks/blocked/` yields `Some("")`, which no one answers.
pub fn blocked_operation(topic: &str) -> Option<String> {
    topic.strip_prefix(topics::TASKS_BLOCKED_PREFIX)?;
    Some(topics::parse_tasks_blocked(topic).unwrap_or_default())
}

/// Does `p` receive only the blocked-task notices of the operations it registered for?
/// (Extensions do; an operator or admin sees every task.)
pub fn filters_blocked_tasks(p: &Principal) -> bool {
    p.roles.contains(&Role::Extension) && !p.has(Role::Operator)
}

/// Does `p` receive only its own orgs' tasks on `extbus/tasks/`? (An operator or extension
/// limited to some orgs; no other role may read there.)
pub fn filters_task_orgs(p: &Principal) -> bool {
    !p.is_admin() && !p.all_orgs() && (p.has(Role::Operator) || p.has(Role::Extension))
}

/// May `p` receive this publish, as far as orgs go? Under `extbus/tasks/` the payload names the
/// task's org; one that names none is not delivered to an org-limited principal.
pub fn task_org_allowed(p: &Principal, topic: &str, payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Org {
        org: Option<String>,
    }
    if !filters_task_orgs(p) || !topic.starts_with(topics::TASKS_PREFIX) {
        return true;
    }
    serde_json::from_slice::<Org>(payload)
        .ok()
        .and_then(|o| o.org)
        .is_some_and(|org| p.in_org(&org))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registration;

    fn principal(name: &str, roles: &[Role], orgs: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            roles: roles.to_vec(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn registry() -> Registry {
        let r = Registry::new();
        let mut reg = Registration::default();
        reg.services.insert(("acme".into(), "greeter".into()));
        reg.operations.insert("vapp.instantiate".into());
        r.set("ext", reg);
        let mut other = Registration::default();
        other.services.insert(("acme".into(), "billing".into()));
        r.set("ext2", other);
        r
    }

    fn pubs(p: &Principal, topic: &str) -> bool {
        may_publish(p, topic).is_ok()
    }

    fn subs(p: &Principal, filter: &str) -> bool {
        may_subscribe(p, filter, &registry()).is_ok()
    }

    /// The reason of a refused subscription, which the client and `security.denied` see.
    fn refusal(p: &Principal, filter: &str) -> String {
        may_subscribe(p, filter, &registry())
            .expect_err("refused")
            .reason
    }

    #[test]
    fn refusals_say_which_rule_was_broken() {
        let ext = principal("ext", &[Role::Extension], &["acme"]);
        for filter in ["extbus/services/+/greeter/#", "extbus/services/acme/+/#"] {
            let why = refusal(&ext, filter);
            assert!(
                why.contains("vendor and the service literally"),
                "{filter}: {why}"
            );
        }
        let why = refusal(&ext, "extbus/services/acme/billing/#");
        assert!(
            why.contains("has not registered the service acme/billing"),
            "{why}"
        );
        let why = refusal(&ext, "extbus/events/globex/#");
        assert!(why.contains("is not in org 'globex'"), "{why}");
        let why = refusal(&ext, "extbus/events/+/#");
        assert!(why.contains("name one at the org level"), "{why}");
    }

    /// Filters nobody but an admin may use.
    const FOREIGN: &[&str] = &[
        "#",
        "+",
        "+/#",
        "extbus/#",
        "extbus/+",
        "extbus/+/x/replies",
        "extbus/out/#",
        "extbus/out/+",
        "extbus/out/+/replies",
        "extbus/out/other/replies",
        "extbus/out/other/#",
        "extbus/in/#",
        "extbus/in/+/events",
        "extbus/in/ext/#",
        "$SYS/#",
        "$share/g/#",
        "$share/g/extbus/out/+/replies",
    ];

    #[test]
    fn publish_only_under_own_inbox() {
        for role in [
            Role::Platform,
            Role::Extension,
            Role::Operator,
            Role::Observer,
        ] {
            let p = principal("ext", &[role], &["*"]);
            assert!(pubs(&p, "extbus/in/ext/tasks/submit"), "{role}");
            assert!(pubs(&p, "extbus/in/ext/x/y/z"), "{role}");
            for t in [
                "extbus/in/other/tasks/submit",
                "extbus/in/ext",
                "extbus/in/exte/tasks/submit",
                "extbus/in/ex/t/tasks/submit",
                "extbus/out/ext/replies",
                "extbus/events/acme/vapp/instantiate",
                "extbus/tasks/blocked/vapp/instantiate",
                "extbus/services/acme/greeter/1.0.0/requests",
                "$SYS/x",
                "extbus/in/ext/+",
                "extbus/in/ext/#",
                "",
                "anything",
            ] {
                assert!(!pubs(&p, t), "{role} {t}");
            }
        }
        let admin = principal("root", &[Role::Admin], &["*"]);
        for t in ["extbus/in/other/x", "extbus/events/a/b/c", "$SYS/x", "x"] {
            assert!(pubs(&admin, t), "{t}");
        }
        assert!(!pubs(&admin, "a/+"));
        let d = may_publish(&principal("ext", &[Role::Platform], &["*"]), "x").unwrap_err();
        assert!(d.reason.contains("extbus/in/ext/"), "{}", d.reason);
    }

    #[test]
    fn everyone_reads_only_own_outbox() {
        for role in [
            Role::Platform,
            Role::Extension,
            Role::Operator,
            Role::Observer,
        ] {
            let p = principal("ext", &[role], &["acme"]);
            for f in [
                "extbus/out/ext/replies",
                "extbus/out/ext/#",
                "extbus/out/ext/+",
                "extbus/out/ext",
                "$share/g/extbus/out/ext/replies",
            ] {
                assert!(subs(&p, f), "{role} {f}");
            }
            for f in FOREIGN {
                assert!(!subs(&p, f), "{role} {f}");
            }
            assert!(!subs(&p, "extbus/out/exte/replies"), "{role}");
        }
    }

    #[test]
    fn platform_reads_nothing_else() {
        let p = principal("plat", &[Role::Platform], &["*"]);
        for f in [
            "extbus/events/#",
            "extbus/events/acme/#",
            "extbus/tasks",
            "extbus/tasks/#",
            "extbus/tasks/blocked/#",
            "extbus/tasks/resolved/vapp/instantiate",
            "extbus/services/acme/greeter/#",
        ] {
            assert!(!subs(&p, f), "{f}");
        }
    }

    #[test]
    fn extension_rights() {
        let p = principal("ext", &[Role::Extension], &["acme"]);
        for f in [
            "extbus/tasks/blocked/#",
            "extbus/tasks/blocked/vapp/instantiate",
            "extbus/tasks/blocked/+/+",
            "$share/ext/extbus/tasks/blocked/#",
            "extbus/services/acme/greeter/#",
            "extbus/services/acme/greeter/1.0.0/requests",
            "extbus/services/acme/greeter/+/requests",
            "$share/grp/extbus/services/acme/greeter/1.0.0/requests",
            "extbus/events/acme/#",
            "extbus/events/acme/vapp/+",
        ] {
            assert!(subs(&p, f), "{f}");
        }
        for f in [
            "extbus/tasks/#",
            "extbus/tasks/+/vapp/instantiate",
            "extbus/tasks/resolved/#",
            "extbus/services/#",
            "extbus/services/acme/#",
            "extbus/services/acme/+/1.0.0/requests",
            "extbus/services/+/greeter/#",
            "extbus/services/acme/billing/#",
            "$share/g/extbus/services/acme/billing/1.0.0/requests",
            "extbus/events/#",
            "extbus/events/+/vapp/instantiate",
            "extbus/events/other/#",
        ] {
            assert!(!subs(&p, f), "{f}");
        }
        let d = may_subscribe(&p, "extbus/services/acme/billing/#", &registry()).unwrap_err();
        assert!(d.reason.contains("acme/billing"), "{}", d.reason);
    }

    #[test]
    fn operator_rights() {
        let p = principal("op", &[Role::Operator], &["*"]);
        for f in [
            "extbus/tasks/#",
            "extbus/tasks/+/vapp/instantiate",
            "extbus/tasks/resolved/#",
            "extbus/tasks/blocked/#",
            "extbus/events/#",
            "extbus/events/+/vapp/+",
        ] {
            assert!(subs(&p, f), "{f}");
        }
        for f in ["extbus/services/acme/greeter/#", "extbus/+/blocked/#"] {
            assert!(!subs(&p, f), "{f}");
        }
        let limited = principal("op", &[Role::Operator], &["acme"]);
        assert!(subs(&limited, "extbus/tasks/#"));
        assert!(subs(&limited, "extbus/events/acme/#"));
        assert!(!subs(&limited, "extbus/events/#"));
    }

    #[test]
    fn task_publishes_reach_only_principals_of_their_org() {
        let limited = principal("op", &[Role::Operator], &["acme"]);
        let all = principal("op2", &[Role::Operator], &["*"]);
        let admin = principal("root", &[Role::Admin], &["acme"]);
        let t = "extbus/tasks/blocked/vm/create";
        let acme = br#"{"id":"1","org":"acme"}"#;
        let globex = br#"{"id":"2","org":"globex"}"#;
        assert!(filters_task_orgs(&limited));
        assert!(!filters_task_orgs(&all) && !filters_task_orgs(&admin));
        let ext = principal("ext", &[Role::Extension], &["acme"]);
        let obs = principal("obs", &[Role::Observer], &["acme"]);
        assert!(filters_task_orgs(&ext) && !filters_task_orgs(&obs));
        assert!(task_org_allowed(&limited, t, acme));
        assert!(!task_org_allowed(&limited, t, globex));
        assert!(!task_org_allowed(
            &limited,
            "extbus/tasks/resolved/vm/create",
            globex
        ));
        // A task payload without an org, or not JSON, is not guessed at.
        assert!(!task_org_allowed(&limited, t, br#"{"id":"3"}"#));
        assert!(!task_org_allowed(&limited, t, b"not json"));
        // Other topics, and principals of every org, are not filtered.
        assert!(task_org_allowed(&limited, "extbus/out/op/replies", globex));
        assert!(task_org_allowed(&all, t, globex) && task_org_allowed(&admin, t, b"x"));
    }

    #[test]
    fn observer_and_org_limits() {
        let p = principal("obs", &[Role::Observer], &["acme", "beta"]);
        for f in [
            "extbus/events/acme/#",
            "extbus/events/beta/vapp/+",
            "extbus/events/acme",
        ] {
            assert!(subs(&p, f), "{f}");
        }
        for f in [
            "extbus/events/#",
            "extbus/events/+/vapp/instantiate",
            "extbus/events/other/#",
            "extbus/events/acme-corp/#",
            "extbus/tasks/#",
            "extbus/tasks/blocked/#",
            "#",
        ] {
            assert!(!subs(&p, f), "{f}");
        }
        let d = may_subscribe(&p, "extbus/events/#", &registry()).unwrap_err();
        assert!(d.reason.contains("acme, beta"), "{}", d.reason);
        let all = principal("obs", &[Role::Observer], &["*"]);
        assert!(subs(&all, "extbus/events/#"));
        assert!(subs(&all, "extbus/events/+/vapp/instantiate"));
        assert!(!subs(&all, "extbus/#"));
        assert!(!subs(&all, "#"));
    }

    #[test]
    fn only_the_extension_reads_its_action_requests() {
        let ext = principal("ext", &[Role::Extension], &["*"]);
        assert!(subs(&ext, "extbus/actions/ext/#"));
        assert!(subs(&ext, "extbus/actions/ext/requests"));
        assert!(subs(&ext, "$share/g/extbus/actions/ext/requests"));
        for f in [
            "extbus/actions/other/#",
            "extbus/actions/+/requests",
            "extbus/actions/#",
        ] {
            assert!(!subs(&ext, f), "{f}");
        }
        let op = principal("op", &[Role::Operator, Role::Observer], &["*"]);
        let d = may_subscribe(&op, "extbus/actions/ext/requests", &registry()).unwrap_err();
        assert!(d.reason.contains("only the extension"), "{}", d.reason);
    }

    #[test]
    fn several_roles_get_the_union() {
        let p = principal("ext", &[Role::Extension, Role::Operator], &["acme"]);
        assert!(subs(&p, "extbus/tasks/#"));
        assert!(subs(&p, "extbus/services/acme/greeter/#"));
        assert!(subs(&p, "extbus/events/acme/#"));
        assert!(!subs(&p, "extbus/events/#"));
        let q = principal("plat", &[Role::Platform, Role::Observer], &["acme"]);
        assert!(subs(&q, "extbus/events/acme/#"));
        assert!(!subs(&q, "extbus/tasks/blocked/#"));
    }

    #[test]
    fn admin_reads_everything_valid() {
        let p = principal("root", &[Role::Admin], &[]);
        for f in FOREIGN {
            assert!(subs(&p, f), "{f}");
        }
        for f in [
            "a/#/b",
            "a/b#",
            "a+/b",
            "",
            "$share/g",
            "$share//x",
            "$share/+/x",
        ] {
            assert!(!subs(&p, f), "{f:?}");
        }
    }

    #[test]
    fn filter_syntax() {
        for f in ["#", "+", "a/+/b", "a/#", "/", "a//b", "+/+/#"] {
            assert!(valid_filter(f), "{f}");
        }
        for f in ["", "a/#/b", "#/a", "a#", "a/b+", "++", "a\0"] {
            assert!(!valid_filter(f), "{f:?}");
        }
        assert_eq!(strip_share("$share/g/a/b"), Ok("a/b"));
        assert_eq!(strip_share("a/b"), Ok("a/b"));
        assert!(strip_share("$share/g/").is_err());
        assert!(strip_share("$share/g").is_err());
    }

    #[test]
    fn blocked_operations_and_delivery_filter() {
        assert_eq!(
            blocked_operation("extbus/tasks/blocked/vapp/instantiate").as_deref(),
            Some("vapp.instantiate")
        );
        assert_eq!(
            blocked_operation("extbus/tasks/blocked/vapp").as_deref(),
            Some("")
        );
        assert_eq!(
            blocked_operation("extbus/tasks/blocked/a/b/c").as_deref(),
            Some("")
        );
        assert_eq!(blocked_operation("extbus/tasks/resolved/vapp/x"), None);
        assert!(filters_blocked_tasks(&principal(
            "e",
            &[Role::Extension],
            &["*"]
        )));
        assert!(!filters_blocked_tasks(&principal(
            "e",
            &[Role::Extension, Role::Operator],
            &["*"]
        )));
        assert!(!filters_blocked_tasks(&principal(
            "e",
            &[Role::Extension, Role::Admin],
            &["*"]
        )));
        assert!(!filters_blocked_tasks(&principal(
            "o",
            &[Role::Operator],
            &["*"]
        )));
        assert_eq!(
            inbox_suffix("a", "extbus/in/a/tasks/submit"),
            Some("tasks/submit")
        );
        assert_eq!(inbox_suffix("a", "extbus/in/ab/tasks/submit"), None);
    }
}
