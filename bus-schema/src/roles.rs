//! Roles of SPEC.md's "Who talks to the bus" table, as names on the wire and in config.
//! Owns only the names; what each role may do is decided by the broker's gate and commands.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One role of a principal (SPEC.md role table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Platform,
    Extension,
    Operator,
    Observer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Platform,
        Role::Extension,
        Role::Operator,
        Role::Observer,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Extension => "extension",
            Role::Operator => "operator",
            Role::Observer => "observer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role '{s}' (expected platform, extension, operator, observer or admin)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!("root".parse::<Role>().is_err());
    }
}
