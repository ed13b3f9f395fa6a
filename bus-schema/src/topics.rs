//! Every topic of SPEC.md "Topics": prefixes, builders, parsers, ACL filters, and the MQTT
//! topic-filter rules (`+`, `#`, `$`-topics, `$share/<group>/<filter>`) the gate checks with.
//! Builders take names that already passed `names` (and do not check them again); parsers check.

use crate::names::{valid_name, valid_org, valid_version};

/// Every extbus topic starts with this.
pub const ROOT: &str = "extbus/";
/// `extbus/events/<org>/<entity>/<operation>`.
pub const EVENTS_PREFIX: &str = "extbus/events/";
/// `extbus/tasks/blocked/...` and `extbus/tasks/resolved/...`.
pub const TASKS_PREFIX: &str = "extbus/tasks/";
pub const TASKS_BLOCKED_PREFIX: &str = "extbus/tasks/blocked/";
pub const TASKS_RESOLVED_PREFIX: &str = "extbus/tasks/resolved/";
/// `extbus/services/<vendor>/<name>/<version>/requests`.
pub const SERVICES_PREFIX: &str = "extbus/services/";
/// `extbus/actions/<extension>/requests`.
pub const ACTIONS_PREFIX: &str = "extbus/actions/";
/// `extbus/in/<principal>/<command>`.
pub const INBOX_PREFIX: &str = "extbus/in/";
/// `extbus/out/<principal>/{replies,outcomes}`.
pub const OUTBOX_PREFIX: &str = "extbus/out/";
/// Last level of a service's request topic.
pub const SERVICE_REQUESTS: &str = "requests";
/// Last level of a principal's reply topic.
pub const REPLIES: &str = "replies";
/// Last level of a principal's outcome topic.
pub const OUTCOMES: &str = "outcomes";
/// Prefix of MQTT 5 shared subscriptions.
pub const SHARE_PREFIX: &str = "$share/";

/// Filter of every command (what the coordinator subscribes to).
pub const INBOX_ALL: &str = "extbus/in/#";
/// Filter of every audit event.
pub const EVENTS_ALL: &str = "extbus/events/#";
/// Filter of every task topic.
pub const TASKS_ALL: &str = "extbus/tasks/#";
/// Filter of every blocked-task announcement.
pub const TASKS_BLOCKED_ALL: &str = "extbus/tasks/blocked/#";
/// Filter of every resolved-task announcement.
pub const TASKS_RESOLVED_ALL: &str = "extbus/tasks/resolved/#";

/// Longest topic MQTT can carry, in bytes.
pub const MAX_TOPIC_LEN: usize = 65_535;

fn op_levels(operation: &str) -> String {
    operation.replacen('.', "/", 1)
}

/// `extbus/events/<org>/<entity>/<operation>` for `operation` = `<entity>.<operation>`.
pub fn events(org: &str, operation: &str) -> String {
    format!("{EVENTS_PREFIX}{org}/{}", op_levels(operation))
}

/// `extbus/events/<org>/#`: every event of one org.
pub fn events_org_filter(org: &str) -> String {
    format!("{EVENTS_PREFIX}{org}/#")
}

/// `extbus/tasks/blocked/<entity>/<operation>`.
pub fn tasks_blocked(operation: &str) -> String {
    format!("{TASKS_BLOCKED_PREFIX}{}", op_levels(operation))
}

/// `extbus/tasks/resolved/<entity>/<operation>`.
pub fn tasks_resolved(operation: &str) -> String {
    format!("{TASKS_RESOLVED_PREFIX}{}", op_levels(operation))
}

/// `extbus/services/<vendor>/<name>/<version>/requests`.
pub fn service_requests(vendor: &str, name: &str, version: &str) -> String {
    format!("{SERVICES_PREFIX}{vendor}/{name}/{version}/{SERVICE_REQUESTS}")
}

/// `extbus/actions/<extension>/requests`: where an extension's action runs are delivered.
pub fn action_requests(extension: &str) -> String {
    format!("{ACTIONS_PREFIX}{extension}/{SERVICE_REQUESTS}")
}

/// `extbus/actions/<extension>/#`: what only that extension may subscribe to.
pub fn actions_filter(extension: &str) -> String {
    format!("{ACTIONS_PREFIX}{extension}/#")
}

/// `extbus/services/<vendor>/<name>/<version>/#`: what the extension serving it may subscribe to.
pub fn service_filter(vendor: &str, name: &str, version: &str) -> String {
    format!("{SERVICES_PREFIX}{vendor}/{name}/{version}/#")
}

/// `extbus/in/<principal>/`: every command of `principal` starts with this.
pub fn inbox_prefix(principal: &str) -> String {
    format!("{INBOX_PREFIX}{principal}/")
}

/// `extbus/in/<principal>/<suffix>`: the topic a client publishes command `suffix` on.
pub fn inbox(principal: &str, suffix: &str) -> String {
    format!("{INBOX_PREFIX}{principal}/{suffix}")
}

/// `extbus/in/<principal>/#`: the only filter `principal` may publish under.
pub fn inbox_filter(principal: &str) -> String {
    format!("{INBOX_PREFIX}{principal}/#")
}

/// `extbus/out/<principal>/replies`.
pub fn replies(principal: &str) -> String {
    format!("{OUTBOX_PREFIX}{principal}/{REPLIES}")
}

/// `extbus/out/<principal>/outcomes`.
pub fn outcomes(principal: &str) -> String {
    format!("{OUTBOX_PREFIX}{principal}/{OUTCOMES}")
}

/// `extbus/out/<principal>/#`: what only `principal` may subscribe to.
pub fn outbox_filter(principal: &str) -> String {
    format!("{OUTBOX_PREFIX}{principal}/#")
}

fn split_principal<'a>(topic: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let (principal, suffix) = topic.strip_prefix(prefix)?.split_once('/')?;
    valid_name(principal).then_some((principal, suffix))
}

/// `extbus/in/alice/tasks/submit` -> `("alice", "tasks/submit")`. The suffix may be empty;
/// `decode` answers it with `unknown_command`.
pub fn parse_inbox(topic: &str) -> Option<(&str, &str)> {
    split_principal(topic, INBOX_PREFIX)
}

/// The command suffix of `topic` if it lies under `principal`'s inbox
/// (`extbus/in/<principal>/`); `principal` is not checked again.
pub fn inbox_suffix<'a>(principal: &str, topic: &'a str) -> Option<&'a str> {
    topic
        .strip_prefix(INBOX_PREFIX)?
        .strip_prefix(principal)?
        .strip_prefix('/')
}

/// `extbus/out/alice/replies` -> `("alice", "replies")`.
pub fn parse_outbox(topic: &str) -> Option<(&str, &str)> {
    split_principal(topic, OUTBOX_PREFIX)
}

/// The parts of an event topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTopic<'a> {
    pub org: &'a str,
    pub entity: &'a str,
    pub operation: &'a str,
}

impl EventTopic<'_> {
    /// The operation in JSON form: `vapp.instantiate`.
    pub fn operation_name(&self) -> String {
        format!("{}.{}", self.entity, self.operation)
    }
}

fn levels<const N: usize>(rest: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = rest.split('/');
    for slot in out.iter_mut() {
        *slot = it.next()?;
    }
    it.next().is_none().then_some(out)
}

/// `extbus/events/acme/vapp/instantiate` -> org `acme`, entity `vapp`, operation `instantiate`.
pub fn parse_events(topic: &str) -> Option<EventTopic<'_>> {
    let [org, entity, operation] = levels(topic.strip_prefix(EVENTS_PREFIX)?)?;
    (valid_org(org) && valid_name(entity) && valid_name(operation)).then_some(EventTopic {
        org,
        entity,
        operation,
    })
}

fn parse_op(rest: &str) -> Option<String> {
    let [entity, operation] = levels(rest)?;
    crate::names::join_operation(entity, operation)
}

/// `extbus/tasks/blocked/vapp/instantiate` -> `vapp.instantiate`.
pub fn parse_tasks_blocked(topic: &str) -> Option<String> {
    parse_op(topic.strip_prefix(TASKS_BLOCKED_PREFIX)?)
}

/// `extbus/tasks/resolved/vapp/instantiate` -> `vapp.instantiate`.
pub fn parse_tasks_resolved(topic: &str) -> Option<String> {
    parse_op(topic.strip_prefix(TASKS_RESOLVED_PREFIX)?)
}

/// `extbus/services/acme/greeter/1.0.0/requests` -> `("acme", "greeter", "1.0.0")`.
pub fn parse_service_requests(topic: &str) -> Option<(&str, &str, &str)> {
    let [vendor, name, version, last] = levels(topic.strip_prefix(SERVICES_PREFIX)?)?;
    (last == SERVICE_REQUESTS && valid_name(vendor) && valid_name(name) && valid_version(version))
        .then_some((vendor, name, version))
}

/// A topic a client may publish to: non-empty, no wildcard, no NUL, at most 65535 bytes.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN && !topic.contains(['+', '#', '\0'])
}

/// A topic filter a client may subscribe to: `#` only as the whole last level, `+` only as a
/// whole level, no NUL, at most 65535 bytes.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_TOPIC_LEN || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        let ok = match level {
            "#" => last,
            "+" => true,
            l => !l.contains(['+', '#']),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// MQTT matching of `topic` against `filter`: `+` is one level, a trailing `#` is any number of
/// levels (also none: `a/#` matches `a`), and a topic starting with `$` is not matched by a
/// filter starting with a wildcard. An invalid filter or topic matches nothing.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if !valid_filter(filter) || !valid_topic_name(topic) {
        return false;
    }
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic `inner` matches is also matched by `outer`: the check that a requested
/// subscription stays inside what a principal may subscribe to. Conservative: `false` when unsure.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    if !valid_filter(outer) || !valid_filter(inner) {
        return false;
    }
    if inner.starts_with('$') && outer.starts_with(['+', '#']) {
        return false;
    }
    let (mut o, mut i) = (outer.split('/'), inner.split('/'));
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `$share/<group>/<filter>` -> `(Some(group), filter)`; anything else, including a malformed
/// shared filter, -> `(None, filter)` unchanged (which then matches no ACL entry).
pub fn split_shared(filter: &str) -> (Option<&str>, &str) {
    if let Some((group, inner)) = filter
        .strip_prefix(SHARE_PREFIX)
        .and_then(|rest| rest.split_once('/'))
    {
        if !group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty() {
            return (Some(group), inner);
        }
    }
    (None, filter)
}

// Builders for clients (CLI, samples, tests, benches), so none spells a topic by hand.

/// `extbus/events/<org>/<rest>`: an event filter; `org` may be `+`, `rest` e.g. `vm/#`.
pub fn events_filter(org: &str, rest: &str) -> String {
    format!("{EVENTS_PREFIX}{org}/{rest}")
}

/// `tasks/<id>/<action>`: the inbox suffix that resolves task `id` (`resume`, `cancel`, ...).
pub fn task_action(id: &str, action: &str) -> String {
    format!("tasks/{id}/{action}")
}

/// `$share/<group>/<filter>`: `filter` shared among the members of `group`.
pub fn shared(group: &str, filter: &str) -> String {
    format!("{SHARE_PREFIX}{group}/{filter}")
}

#[cfg(test)]
mod client_builders {
    use super::*;

    #[test]
    fn client_builders_follow_the_spec() {
        assert_eq!(events_filter("+", "vm/#"), "extbus/events/+/vm/#");
        assert_eq!(
            inbox("e", &task_action("01ab", "resume")),
            "extbus/in/e/tasks/01ab/resume"
        );
        let s = shared("g", &service_requests("acme", "greeter", "1.0.0"));
        assert_eq!(
            split_shared(&s),
            (Some("g"), "extbus/services/acme/greeter/1.0.0/requests")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builders_follow_the_spec() {
        assert_eq!(
            events("acme", "vapp.instantiate"),
            "extbus/events/acme/vapp/instantiate"
        );
        assert_eq!(
            tasks_blocked("vapp.instantiate"),
            "extbus/tasks/blocked/vapp/instantiate"
        );
        assert_eq!(
            tasks_resolved("vapp.instantiate"),
            "extbus/tasks/resolved/vapp/instantiate"
        );
        assert_eq!(
            service_requests("acme", "greeter", "1.0.0"),
            "extbus/services/acme/greeter/1.0.0/requests"
        );
        assert_eq!(inbox_prefix("platform-1"), "extbus/in/platform-1/");
        assert_eq!(inbox("p", "tasks/submit"), "extbus/in/p/tasks/submit");
        assert_eq!(replies("alice"), "extbus/out/alice/replies");
        assert_eq!(outcomes("platform-1"), "extbus/out/platform-1/outcomes");
        assert_eq!(inbox_filter("a"), "extbus/in/a/#");
        assert_eq!(outbox_filter("a"), "extbus/out/a/#");
        assert_eq!(events_org_filter("acme"), "extbus/events/acme/#");
        assert_eq!(service_filter("a", "b", "1"), "extbus/services/a/b/1/#");
    }

    #[test]
    fn parsers_invert_builders() {
        assert_eq!(
            parse_inbox("extbus/in/alice/tasks/submit"),
            Some(("alice", "tasks/submit"))
        );
        assert_eq!(parse_inbox("extbus/in/alice/"), Some(("alice", "")));
        assert_eq!(parse_inbox("extbus/in/alice"), None);
        assert_eq!(parse_inbox("extbus/in/Alice/events"), None);
        assert_eq!(parse_inbox("extbus/out/alice/events"), None);
        assert_eq!(parse_inbox("xextbus/in/alice/events"), None);
        assert_eq!(parse_outbox(&replies("bob")), Some(("bob", "replies")));

        let topic = events("acme", "vapp.instantiate");
        let e = parse_events(&topic).unwrap();
        assert_eq!(
            (e.org, e.entity, e.operation),
            ("acme", "vapp", "instantiate")
        );
        assert_eq!(e.operation_name(), "vapp.instantiate");
        assert_eq!(parse_events("extbus/events/acme/vapp"), None);
        assert_eq!(parse_events("extbus/events/acme/vapp/x/y"), None);
        assert_eq!(parse_events("extbus/events/ACME/vapp/x"), None);

        let op = "vapp.instantiate";
        assert_eq!(parse_tasks_blocked(&tasks_blocked(op)).as_deref(), Some(op));
        assert_eq!(
            parse_tasks_resolved(&tasks_resolved(op)).as_deref(),
            Some(op)
        );
        assert_eq!(parse_tasks_blocked(&tasks_resolved(op)), None);
        assert_eq!(parse_tasks_blocked("extbus/tasks/blocked/vapp"), None);

        assert_eq!(
            parse_service_requests(&service_requests("acme", "greeter", "1.0.0")),
            Some(("acme", "greeter", "1.0.0"))
        );
        assert_eq!(
            parse_service_requests("extbus/services/acme/greeter/1.0.0/responses"),
            None
        );
        assert_eq!(
            parse_service_requests("extbus/services/acme/greeter/requests"),
            None
        );
    }

    #[test]
    fn filter_validity() {
        for ok in [
            "#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "$SYS/#", "a/b",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b#", "a+/b", "#/a", "a/+b", "a\0"] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
        assert!(valid_topic_name("a/b"));
        assert!(valid_topic_name("/"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name("a/+"));
        assert!(!valid_topic_name("a/#"));
        assert!(!valid_topic_name(&"a".repeat(MAX_TOPIC_LEN + 1)));
    }

    #[test]
    fn filter_matching_follows_mqtt() {
        let yes = [
            ("#", "a"),
            ("#", "a/b/c"),
            ("#", "/"),
            ("a/#", "a"),
            ("a/#", "a/b"),
            ("a/#", "a/b/c"),
            ("a/#", "a/"),
            ("a/+", "a/b"),
            ("a/+", "a/"),
            ("+/+", "/"),
            ("+", "a"),
            ("+/b/#", "a/b"),
            ("a/b", "a/b"),
            ("$SYS/#", "$SYS/x"),
            ("$SYS/+", "$SYS/x"),
            (
                "extbus/events/acme/#",
                "extbus/events/acme/vapp/instantiate",
            ),
            ("extbus/tasks/#", "extbus/tasks/blocked/vapp/instantiate"),
        ];
        for (f, t) in yes {
            assert!(filter_matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("+", "a/b"),
            ("+", "/"),
            ("a/b", "a/b/c"),
            ("a/b", "a"),
            ("a/b", "A/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a/#/b", "a/x/b"),
            ("a", "a/+"),
            ("", ""),
            ("#", ""),
            (
                "extbus/events/acme/#",
                "extbus/events/acme2/vapp/instantiate",
            ),
        ];
        for (f, t) in no {
            assert!(!filter_matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn covering_is_conservative() {
        let yes = [
            ("#", "a/#"),
            ("#", "+/b"),
            ("a/#", "a"),
            ("a/#", "a/#"),
            ("a/#", "a/+/c"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("extbus/events/acme/#", "extbus/events/acme/vapp/+"),
            ("extbus/tasks/#", "extbus/tasks/blocked/#"),
        ];
        for (o, i) in yes {
            assert!(filter_covers(o, i), "{o} should cover {i}");
        }
        let no = [
            ("a/+", "a/#"),
            ("a/b", "a/+"),
            ("a/+/#", "a/#"),
            ("#", "$SYS/#"),
            ("+/#", "$x"),
            ("extbus/events/acme/#", "extbus/events/+/vapp/x"),
            ("extbus/events/acme/#", "extbus/events/#"),
            ("extbus/events/acme/#", "#"),
            ("a/#/b", "a/x"),
        ];
        for (o, i) in no {
            assert!(!filter_covers(o, i), "{o} should not cover {i}");
        }
    }

    #[test]
    fn shared_subscriptions_split() {
        assert_eq!(
            split_shared("$share/g1/extbus/services/acme/greeter/1.0.0/#"),
            (Some("g1"), "extbus/services/acme/greeter/1.0.0/#")
        );
        assert_eq!(split_shared("extbus/events/#"), (None, "extbus/events/#"));
        assert_eq!(split_shared("$share/g1"), (None, "$share/g1"));
        assert_eq!(split_shared("$share/g1/"), (None, "$share/g1/"));
        assert_eq!(split_shared("$share//a"), (None, "$share//a"));
        assert_eq!(split_shared("$share/+/a"), (None, "$share/+/a"));
        assert_eq!(split_shared("$share/g/#"), (Some("g"), "#"));
    }

    /// Reference matcher: the filter rewritten as a regular expression.
    fn reference(filter: &str, topic: &str) -> bool {
        if !valid_filter(filter) || !valid_topic_name(topic) {
            return false;
        }
        if topic.starts_with('$') && filter.starts_with(['+', '#']) {
            return false;
        }
        let levels: Vec<&str> = filter.split('/').collect();
        let (body, hash) = match levels.split_last() {
            Some((&"#", rest)) => (rest, true),
            _ => (&levels[..], false),
        };
        let body: Vec<String> = body
            .iter()
            .map(|l| match *l {
                "+" => "[^/]*".to_string(),
                l => regex::escape(l),
            })
            .collect();
        let pattern = match (body.is_empty(), hash) {
            (true, true) => "^.*$".to_string(),
            (false, true) => format!("^{}(/.*)?$", body.join("/")),
            _ => format!("^{}$", body.join("/")),
        };
        regex::Regex::new(&pattern).unwrap().is_match(topic)
    }

    fn level(wild: bool) -> BoxedStrategy<String> {
        let mut v = vec!["a", "b", "$x", "", "ab"];
        if wild {
            v.extend(["+", "#", "+", "#"]);
        }
        proptest::sample::select(v).prop_map(str::to_string).boxed()
    }

    fn path(wild: bool) -> impl Strategy<Value = String> {
        proptest::collection::vec(level(wild), 1..5).prop_map(|l| l.join("/"))
    }

    /// A filter made from a topic by turning some levels into wildcards, so most of them match.
    fn derived(topic: &str, mask: &[u8]) -> String {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut out = Vec::new();
        for (i, l) in levels.iter().enumerate() {
            match mask.get(i).copied().unwrap_or(0) % 4 {
                1 => out.push("+"),
                2 => {
                    out.push("#");
                    break;
                }
                _ => out.push(l),
            }
        }
        out.join("/")
    }

    proptest! {
        #[test]
        fn matches_agrees_with_reference(f in path(true), t in path(false)) {
            prop_assert_eq!(filter_matches(&f, &t), reference(&f, &t), "{} vs {}", f, t);
        }

        #[test]
        fn derived_filters_match(t in path(false), mask in proptest::collection::vec(any::<u8>(), 5)) {
            let f = derived(&t, &mask);
            prop_assert_eq!(filter_matches(&f, &t), reference(&f, &t), "{} vs {}", f, t);
            if valid_topic_name(&t) {
                prop_assert!(filter_matches(&t, &t));
                if !t.starts_with('$') {
                    prop_assert!(filter_matches(&f, &t), "{} should match {}", f, t);
                }
            }
        }

        #[test]
        fn covers_is_sound(o in path(true), i in path(true),
                           picks in proptest::collection::vec(any::<u8>(), 16)) {
            // Topics the inner filter matches: its wildcards filled in from `picks`.
            let fill = ["a", "b", "$x", "", "ab", "c"];
            let mut ts = Vec::new();
            for round in 0..4 {
                let mut p = picks.iter().skip(round * 4).cycle().copied();
                let mut levels = Vec::new();
                for l in i.split('/') {
                    match l {
                        "+" => levels.push(fill[p.next().unwrap() as usize % fill.len()]),
                        "#" => {
                            for _ in 0..p.next().unwrap() % 3 {
                                levels.push(fill[p.next().unwrap() as usize % fill.len()]);
                            }
                        }
                        l => levels.push(l),
                    }
                }
                ts.push(levels.join("/"));
            }
            if filter_covers(&o, &i) {
                prop_assert!(filter_covers(&o, &o) && filter_covers(&i, &i));
                for t in &ts {
                    if filter_matches(&i, t) {
                        prop_assert!(filter_matches(&o, t), "{} covers {} but misses {}", o, i, t);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(f in "\\PC{0,20}", t in "\\PC{0,20}") {
            let m = filter_matches(&f, &t);
            prop_assert_eq!(m, reference(&f, &t));
            let _ = filter_covers(&f, &t);
            let _ = split_shared(&f);
        }
    }
}
