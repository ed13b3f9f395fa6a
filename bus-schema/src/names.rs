//! Name rules of SPEC.md "Topics": entity, operation, vendor, service and principal names
//! (`[a-z0-9-]{1,64}`), org names, service versions, and `<entity>.<operation>` splitting.
//! Pure string checks; what a bad name answers (`invalid_name`) is decided by `decode`.

use crate::errors::{clip, CommandError, ErrorCode, ErrorDetail};

/// Longest name of any kind, in bytes.
pub const MAX_NAME_LEN: usize = 64;

fn name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// An entity, operation, vendor, service or principal name: `[a-z0-9-]{1,64}`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.bytes().all(name_byte)
}

/// An org (tenant) name: `[a-z0-9-]{1,64}`. The wildcard `*` of rule and principal org
/// lists is not an org; callers that accept it check for it first.
pub fn valid_org(s: &str) -> bool {
    valid_name(s)
}

/// An entry of a rule's or principal's org list: an org or `*`.
pub fn valid_org_pattern(s: &str) -> bool {
    s == "*" || valid_org(s)
}

/// A service version such as `1.0.0` or `2.1.0-beta`: `[a-z0-9.-]{1,64}`.
pub fn valid_version(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.bytes().all(|b| name_byte(b) || b == b'.')
}

/// Splits `vapp.instantiate` into `("vapp", "instantiate")`: exactly one dot, both sides valid names.
pub fn split_operation(op: &str) -> Option<(&str, &str)> {
    let (entity, operation) = op.split_once('.')?;
    (valid_name(entity) && valid_name(operation)).then_some((entity, operation))
}

/// Whether `op` is a valid `<entity>.<operation>`.
pub fn valid_operation(op: &str) -> bool {
    split_operation(op).is_some()
}

/// The topic form of an operation: `vapp.instantiate` -> `vapp/instantiate`.
pub fn operation_topic(op: &str) -> Option<String> {
    split_operation(op).map(|(e, o)| format!("{e}/{o}"))
}

/// The JSON form of an operation from its topic levels: (`vapp`, `instantiate`) -> `vapp.instantiate`.
pub fn join_operation(entity: &str, operation: &str) -> Option<String> {
    (valid_name(entity) && valid_name(operation)).then(|| format!("{entity}.{operation}"))
}

/// The kinds of names SPEC.md constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Name,
    Org,
    OrgPattern,
    Version,
    Operation,
}

impl NameKind {
    /// Whether `s` is a valid name of this kind.
    pub fn check(self, s: &str) -> bool {
        match self {
            NameKind::Name => valid_name(s),
            NameKind::Org => valid_org(s),
            NameKind::OrgPattern => valid_org_pattern(s),
            NameKind::Version => valid_version(s),
            NameKind::Operation => valid_operation(s),
        }
    }

    /// The rule a name of this kind must follow, for error messages.
    pub fn rule(self) -> &'static str {
        match self {
            NameKind::Name | NameKind::Org => "[a-z0-9-]{1,64}",
            NameKind::OrgPattern => "[a-z0-9-]{1,64} or *",
            NameKind::Version => "[a-z0-9.-]{1,64}",
            NameKind::Operation => "<entity>.<operation>, each [a-z0-9-]{1,64}",
        }
    }
}

/// Collects invalid names with the JSON Pointer where each was found; `finish` turns them
/// into one `invalid_name` error with a detail per name.
#[derive(Debug, Default)]
pub struct NameCheck {
    details: Vec<ErrorDetail>,
}

impl NameCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` (found at `path`) unless it is a valid name of `kind`.
    pub fn check(&mut self, kind: NameKind, path: impl Into<String>, value: &str) -> &mut Self {
        if !kind.check(value) {
            self.details.push(ErrorDetail {
                path: path.into(),
                message: format!("'{}' is not a valid name: {}", clip(value, 80), kind.rule()),
            });
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }

    /// `Ok` when every name was valid, else one `invalid_name` error.
    pub fn finish(self) -> Result<(), CommandError> {
        let Some(first) = self.details.first() else {
            return Ok(());
        };
        let first = if first.path.is_empty() {
            first.message.clone()
        } else {
            format!("{}: {}", first.path, first.message)
        };
        let message = match self.details.len() {
            1 => first,
            n => format!("{first} (and {} more)", n - 1),
        };
        Err(CommandError::new(ErrorCode::InvalidName, message).with_details(self.details))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_accept_the_spec_set_only() {
        for ok in ["acme", "a", "vapp", "platform-1", "0", "-", &"a".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
            assert!(valid_org(ok), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "a b",
            "a/b",
            "a.b",
            "a+",
            "#",
            "ä",
            "a_b",
            "*",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
            assert!(!valid_org(bad), "{bad:?}");
        }
        assert!(valid_org_pattern("*"));
        assert!(valid_org_pattern("acme"));
        assert!(!valid_org_pattern("**"));
    }

    #[test]
    fn versions_allow_dots() {
        for ok in ["1.0.0", "2.1.0-rc1", "v1", "1"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in ["", "1.0.0+build", "1/0", "V1", "1 0", &"1".repeat(65)] {
            assert!(!valid_version(bad), "{bad:?}");
        }
    }

    #[test]
    fn operations_split_on_exactly_one_dot() {
        assert_eq!(
            split_operation("vapp.instantiate"),
            Some(("vapp", "instantiate"))
        );
        assert_eq!(
            split_operation("task.timed-out"),
            Some(("task", "timed-out"))
        );
        for bad in [
            "vapp",
            "vapp.",
            ".instantiate",
            "a.b.c",
            "Vapp.instantiate",
            "vapp/instantiate",
            "",
            ".",
        ] {
            assert_eq!(split_operation(bad), None, "{bad:?}");
            assert_eq!(operation_topic(bad), None, "{bad:?}");
        }
        assert_eq!(
            operation_topic("vapp.instantiate").as_deref(),
            Some("vapp/instantiate")
        );
        assert_eq!(
            join_operation("vapp", "instantiate").as_deref(),
            Some("vapp.instantiate")
        );
        assert_eq!(join_operation("vapp", "a.b"), None);
    }

    #[test]
    fn kinds_dispatch_to_their_rule() {
        assert!(NameKind::Operation.check("a.b"));
        assert!(!NameKind::Name.check("a.b"));
        assert!(NameKind::Version.check("a.b"));
        assert!(NameKind::OrgPattern.check("*"));
        assert!(!NameKind::Org.check("*"));
        assert!(NameKind::Operation.rule().contains("<entity>"));
    }

    #[test]
    fn name_check_collects_every_bad_name() {
        assert_eq!(NameCheck::new().finish(), Ok(()));
        let mut c = NameCheck::new();
        c.check(NameKind::Org, "/org", "acme")
            .check(NameKind::Operation, "/operation", "VAPP");
        let e = c.finish().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidName);
        assert_eq!(e.details.len(), 1);
        assert_eq!(e.details[0].path, "/operation");
        assert!(e.message.starts_with("/operation: 'VAPP'"), "{}", e.message);

        let mut c = NameCheck::new();
        c.check(NameKind::Org, "/orgs/0", "A")
            .check(NameKind::Org, "/orgs/1", "B");
        let e = c.finish().unwrap_err();
        assert_eq!(
            e.message,
            "/orgs/0: 'A' is not a valid name: [a-z0-9-]{1,64} (and 1 more)"
        );
        assert_eq!(e.details[1].path, "/orgs/1");
    }

    proptest! {
        #[test]
        fn operation_round_trips(e in "[a-z0-9-]{1,64}", o in "[a-z0-9-]{1,64}") {
            let op = join_operation(&e, &o).unwrap();
            prop_assert_eq!(split_operation(&op), Some((e.as_str(), o.as_str())));
            prop_assert_eq!(operation_topic(&op), Some(format!("{e}/{o}")));
        }

        #[test]
        fn valid_name_matches_its_regex(s in "\\PC{0,70}") {
            let re = regex::Regex::new("^[a-z0-9-]{1,64}$").unwrap();
            prop_assert_eq!(valid_name(&s), re.is_match(&s));
        }
    }
}
