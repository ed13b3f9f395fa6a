//! `[entities]` settings: the cap on entity types per principal and where the key that seals
//! secure entity fields comes from.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// File name of the sealing key in the data dir, used when `key_file` is not set.
pub const DEFAULT_KEY_FILE: &str = "entity-secrets.key";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitiesConfig {
    /// Most entity types one principal may own (registering more is `conflict`).
    pub max_types_per_principal: usize,
    /// The key that seals secure fields (32 random bytes, base64); default
    /// `<data_dir>/entity-secrets.key`, created 0600 on first use.
    pub key_file: Option<PathBuf>,
    /// Keys used before a rotation: values sealed with them are still read, and sealed again
    /// with the current key when their entity is next written.
    pub old_key_files: Vec<PathBuf>,
    /// Time a hook task (`post_create`, `pre_update`, `pre_delete`, `post_delete`) has before
    /// its default action (abort) applies; a behavior's own `timeout_ms` wins for behaviors.
    pub hook_timeout_ms: u64,
    /// Latest deadline an extend of a hook or behavior task may reach.
    pub hook_max_timeout_ms: u64,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        EntitiesConfig {
            max_types_per_principal: 10_000,
            key_file: None,
            old_key_files: Vec::new(),
            hook_timeout_ms: 60_000,
            hook_max_timeout_ms: 3_600_000,
        }
    }
}
