//! `[entities]` settings: the cap on entity types per principal, where the key that seals
//! secure entity fields comes from, hook timing, and entity types the admin declares
//! (`[[entities.types]]`, checked like a manifest's and owned by the extension they name).

use extbus_schema::entity_types::{Access, Behavior, EntityTypeSpec, Hooks};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// The component config-declared types belong to (a manifest's re-register leaves them alone).
pub const CONFIG_COMPONENT: &str = "config";

/// One `[[entities.types]]`: a manifest's entity type plus the extension that owns it (answers
/// its hooks and behaviors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigType {
    pub extension: String,
    pub vendor: String,
    pub nss: String,
    pub version: String,
    #[serde(default)]
    pub name: Option<String>,
    pub schema: Value,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub behaviors: Vec<Behavior>,
    #[serde(default)]
    pub access: Access,
}

impl ConfigType {
    pub fn spec(&self) -> EntityTypeSpec {
        EntityTypeSpec {
            vendor: self.vendor.clone(),
            nss: self.nss.clone(),
            version: self.version.clone(),
            name: self.name.clone(),
            schema: self.schema.clone(),
            hooks: self.hooks.clone(),
            behaviors: self.behaviors.clone(),
            access: self.access.clone(),
        }
    }
}

/// Checks `[[entities.types]]`: names, semver, schemas and behavior parameters that compile,
/// no id twice, a valid extension name. The error names the entry and the field.
pub fn validate(types: &[ConfigType]) -> Result<(), super::ConfigError> {
    let specs: Vec<EntityTypeSpec> = types.iter().map(ConfigType::spec).collect();
    let at = |i: usize| format!("entities.types[{i}]");
    if let Err(e) = extbus_schema::entity_types::check(&specs) {
        let (field, why) = match e.details.first() {
            Some(d) => {
                let rest = d.path.strip_prefix("/entity_types/").unwrap_or(&d.path);
                let (i, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let i: usize = i.parse().unwrap_or(0);
                (
                    format!(
                        "{}{}",
                        at(i),
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!(".{}", tail.replace('/', "."))
                        }
                    ),
                    d.message.clone(),
                )
            }
            None => ("entities.types".to_string(), e.message.clone()),
        };
        return Err(super::invalid(&field, why));
    }
    for (i, t) in types.iter().enumerate() {
        if !extbus_schema::names::valid_name(&t.extension) {
            return Err(super::invalid(
                &format!("{}.extension", at(i)),
                format!("'{}' is not a valid principal name", t.extension),
            ));
        }
        let record = crate::entities::TypeRecord {
            owner: t.extension.clone(),
            component: CONFIG_COMPONENT.to_string(),
            registered_at: 0,
            spec: specs[i].clone(),
        };
        if let Err(why) = crate::entities::TypeEntry::new(record) {
            return Err(super::invalid(&format!("{}.schema", at(i)), why));
        }
    }
    Ok(())
}

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
    /// Entity types the admin declares, registered at start.
    pub types: Vec<ConfigType>,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        EntitiesConfig {
            max_types_per_principal: 10_000,
            key_file: None,
            old_key_files: Vec::new(),
            hook_timeout_ms: 60_000,
            hook_max_timeout_ms: 3_600_000,
            types: Vec::new(),
        }
    }
}
