//! `[metadata]` settings: how many metadata entries one object may carry.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// Most entries on one entity or task (SPEC.md: 50); one more is `schema_violation`.
    pub max_entries: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig { max_entries: 50 }
    }
}
