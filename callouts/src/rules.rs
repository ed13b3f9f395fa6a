//! Callout rules: config rules plus rules each extension registers for itself, one set per
//! (principal, component) (stored under `r/`), an in-memory index by operation that leaves out
//! disabled registrations, and the stages a submitted operation passes.
//! Matching and stage building are pure; only `load` and `register` touch the store.

use std::collections::{BTreeMap, HashMap, HashSet};

use extbus_schema::tasks::{DefaultAction, RuleSpec};
use extbus_schema::CommandError;
use serde::{Deserialize, Serialize};

use crate::error::CalloutError;
use crate::keys;
use crate::store::Store;
use crate::trees::TreeId;
use crate::txn::Txn;

/// What a task needs to know about one of its stages, fixed when the task is submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRule {
    /// Time the stage has before its default action applies.
    pub timeout_ms: u64,
    /// Latest deadline an extend may reach, counted from the stage's start.
    pub max_timeout_ms: u64,
    pub default_action: DefaultAction,
}

/// One stage: the principals any of whom may resolve it, and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub principals: Vec<String>,
    pub rule: StageRule,
}

/// The component a manifest without one registers (and rules stored before components).
pub const DEFAULT_COMPONENT: &str = extbus_schema::register::DEFAULT_COMPONENT;

/// Config rules and registered rules, indexed by operation.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    config: Vec<RuleSpec>,
    /// Registered rules by (principal, component).
    registered: BTreeMap<(String, String), Vec<RuleSpec>>,
    /// Principals switched off as a whole (their config rules too).
    disabled_principals: HashSet<String>,
    /// Single components switched off.
    disabled_components: HashSet<(String, String)>,
    by_operation: HashMap<String, Vec<RuleSpec>>,
}

/// What one `register` changed: the rules as stored, and those added and removed compared
/// with the component's earlier rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registered {
    pub stored: Vec<RuleSpec>,
    pub added: Vec<RuleSpec>,
    pub removed: Vec<RuleSpec>,
}

fn owner_is_valid(owner: &str) -> bool {
    !owner.is_empty() && !owner.contains('\0')
}

impl Rules {
    /// Config rules only, nothing registered (each rule must name its `extension`).
    pub fn new(config_rules: Vec<RuleSpec>) -> Result<Rules, CalloutError> {
        for r in &config_rules {
            match r.extension.as_deref() {
                Some(ext) if owner_is_valid(ext) => {}
                _ => {
                    return Err(CalloutError::InvalidRule(format!(
                        "config rule for operation '{}' must name its extension",
                        r.operation
                    )))
                }
            }
        }
        let mut rules = Rules {
            config: config_rules,
            ..Rules::default()
        };
        rules.reindex();
        Ok(rules)
    }

    /// Replaces the config rules (a reloaded configuration); registrations stay. Tasks already
    /// blocked keep their stages.
    pub fn set_config(&mut self, config_rules: Vec<RuleSpec>) -> Result<(), CalloutError> {
        let checked = Rules::new(config_rules)?;
        self.config = checked.config;
        self.reindex();
        Ok(())
    }

    /// Config rules plus every registration committed to `store`. Rules stored before
    /// components existed are moved to component `default` first (committed at once).
    pub fn load(store: &Store, config_rules: Vec<RuleSpec>) -> Result<Rules, CalloutError> {
        migrate_legacy(store)?;
        let mut rules = Rules::new(config_rules)?;
        for item in store.tree().scan_prefix(keys::RULE) {
            let (k, v) = item?;
            let (owner, component) = keys::rule_owner(&k)?;
            let component = component.unwrap_or_else(|| DEFAULT_COMPONENT.to_string());
            let mut spec: RuleSpec =
                serde_json::from_slice(&v).map_err(|e| CalloutError::corrupt(&k, e))?;
            spec.extension = Some(owner.clone());
            rules
                .registered
                .entry((owner, component))
                .or_default()
                .push(spec);
        }
        rules.reindex();
        Ok(rules)
    }

    /// Replaces the rules `owner` registered in component `default` with `specs` and returns
    /// them as stored (see `register_component`).
    pub fn register(
        &mut self,
        txn: &mut Txn,
        owner: &str,
        specs: Vec<RuleSpec>,
    ) -> Result<Vec<RuleSpec>, CommandError> {
        Ok(self
            .register_component(txn, owner, DEFAULT_COMPONENT, specs)?
            .stored)
    }

    /// Replaces the rules `owner` registered before in `component` with `specs` (each forced
    /// to `extension = owner`); its other components keep theirs. The index changes at once,
    /// so later commands of the same batch see the new rules; the stored copy changes when
    /// `txn` commits.
    pub fn register_component(
        &mut self,
        txn: &mut Txn,
        owner: &str,
        component: &str,
        specs: Vec<RuleSpec>,
    ) -> Result<Registered, CommandError> {
        if !owner_is_valid(owner) || !owner_is_valid(component) {
            return Err(CommandError::new(
                extbus_schema::ErrorCode::InvalidName,
                "invalid principal or component name",
            ));
        }
        let prefix = keys::component_rule_prefix(owner, component);
        for (k, _) in txn.scan_prefix(TreeId::Callouts, &prefix, usize::MAX)? {
            txn.remove(TreeId::Callouts, k);
        }
        let mut stored = Vec::with_capacity(specs.len());
        for (n, mut spec) in specs.into_iter().enumerate() {
            spec.extension = Some(owner.to_string());
            let n = u32::try_from(n).map_err(|_| CommandError::internal("too many rules"))?;
            let bytes =
                serde_json::to_vec(&spec).map_err(|e| CommandError::internal(e.to_string()))?;
            txn.insert(TreeId::Callouts, keys::rule(owner, component, n), bytes);
            stored.push(spec);
        }
        let key = (owner.to_string(), component.to_string());
        let before = if stored.is_empty() {
            self.registered.remove(&key)
        } else {
            self.registered.insert(key, stored.clone())
        }
        .unwrap_or_default();
        self.reindex();
        Ok(Registered {
            added: stored
                .iter()
                .filter(|r| !before.contains(r))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|r| !stored.contains(r))
                .cloned()
                .collect(),
            stored,
        })
    }

    /// Switches a whole principal (`component` `None`: its config rules too) or one of its
    /// components off or on. In memory only: the caller persists the switch and sets it again
    /// at start. Tasks already blocked keep their stages.
    pub fn set_disabled(&mut self, owner: &str, component: Option<&str>, disabled: bool) {
        let changed = match component {
            None if disabled => self.disabled_principals.insert(owner.to_string()),
            None => self.disabled_principals.remove(owner),
            Some(c) => {
                let key = (owner.to_string(), c.to_string());
                if disabled {
                    self.disabled_components.insert(key)
                } else {
                    self.disabled_components.remove(&key)
                }
            }
        };
        if changed {
            self.reindex();
        }
    }

    /// Is this principal, or this component of it, switched off?
    pub fn is_disabled(&self, owner: &str, component: Option<&str>) -> bool {
        self.disabled_principals.contains(owner)
            || component.is_some_and(|c| {
                self.disabled_components
                    .contains(&(owner.to_string(), c.to_string()))
            })
    }

    /// Every (principal, component) with registered rules, with them.
    pub fn components(&self) -> impl Iterator<Item = (&str, &str, &[RuleSpec])> {
        self.registered
            .iter()
            .map(|((o, c), r)| (o.as_str(), c.as_str(), r.as_slice()))
    }

    /// The rules `owner` registered in `component`.
    pub fn registered_in(&self, owner: &str, component: &str) -> &[RuleSpec] {
        self.registered
            .get(&(owner.to_string(), component.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// For each principal with rules, the operations they are registered for (config and
    /// registered rules both count), to seed the ACL of `extbus/tasks/blocked/#`.
    pub fn registrations(&self) -> HashMap<String, HashSet<String>> {
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for r in self.all() {
            if let Some(ext) = &r.extension {
                out.entry(ext.clone())
                    .or_default()
                    .insert(r.operation.clone());
            }
        }
        out
    }

    /// The rules registered by `owner` in all its components (not its config rules).
    pub fn registered_by(&self, owner: &str) -> Vec<RuleSpec> {
        self.components()
            .filter(|(o, _, _)| *o == owner)
            .flat_map(|(_, _, r)| r.iter().cloned())
            .collect()
    }

    /// The rules that match `operation` in `org`.
    pub fn matching(&self, operation: &str, org: &str) -> Vec<&RuleSpec> {
        self.by_operation
            .get(operation)
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.orgs.iter().any(|o| o == "*" || o == org))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stages `operation` in `org` passes, highest priority first; empty when no rule matches.
    pub fn stages(&self, operation: &str, org: &str) -> Vec<Stage> {
        let mut by_priority: BTreeMap<i64, Vec<&RuleSpec>> = BTreeMap::new();
        for r in self.matching(operation, org) {
            by_priority.entry(r.priority).or_default().push(r);
        }
        by_priority
            .into_values()
            .rev()
            .map(|group| stage_of(&group))
            .collect()
    }

    fn all(&self) -> impl Iterator<Item = &RuleSpec> {
        self.config.iter().chain(self.registered.values().flatten())
    }

    /// Every rule of a registration that is switched on.
    fn in_force(&self) -> impl Iterator<Item = &RuleSpec> {
        let principal_on = |r: &RuleSpec| {
            r.extension
                .as_deref()
                .is_none_or(|e| !self.disabled_principals.contains(e))
        };
        let config = self.config.iter().filter(move |r| principal_on(r));
        let registered = self
            .registered
            .iter()
            .filter(|((o, c), _)| !self.is_disabled(o, Some(c)))
            .flat_map(|(_, rs)| rs.iter());
        config.chain(registered)
    }

    fn reindex(&mut self) {
        let mut by_operation: HashMap<String, Vec<RuleSpec>> = HashMap::new();
        for r in self.in_force() {
            by_operation
                .entry(r.operation.clone())
                .or_default()
                .push(r.clone());
        }
        self.by_operation = by_operation;
    }
}

/// Moves rules stored as `r/<owner>\0<n>` (before components) to component `default`, in
/// one committed transaction; a store without such keys is left untouched.
fn migrate_legacy(store: &Store) -> Result<(), CalloutError> {
    let mut txn = store.txn();
    for item in store.tree().scan_prefix(keys::RULE) {
        let (k, v) = item?;
        if let (owner, None) = keys::rule_owner(&k)? {
            let mut n = [0u8; 4];
            n.copy_from_slice(&k[k.len() - 4..]);
            let n = u32::from_be_bytes(n);
            txn.insert(
                TreeId::Callouts,
                keys::rule(&owner, DEFAULT_COMPONENT, n),
                v.to_vec(),
            );
            txn.remove(TreeId::Callouts, k.to_vec());
        }
    }
    if !txn.is_empty() {
        txn.commit()?;
        store.flush()?;
    }
    Ok(())
}

/// Rules of equal priority form one stage: all their extensions, the shortest timeout and max,
/// and the default action of the rule with the shortest timeout (ties: first by extension).
fn stage_of(group: &[&RuleSpec]) -> Stage {
    let mut principals: Vec<String> = group.iter().filter_map(|r| r.extension.clone()).collect();
    principals.sort();
    principals.dedup();
    let decisive = group
        .iter()
        .min_by(|a, b| {
            (a.timeout_ms, a.extension.as_deref()).cmp(&(b.timeout_ms, b.extension.as_deref()))
        })
        .map_or(DefaultAction::default(), |r| r.default_action);
    Stage {
        principals,
        rule: StageRule {
            timeout_ms: group.iter().map(|r| r.timeout_ms).min().unwrap_or(0),
            max_timeout_ms: group.iter().map(|r| r.max_timeout_ms).min().unwrap_or(0),
            default_action: decisive,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(op: &str, ext: &str, priority: i64, timeout: u64, action: DefaultAction) -> RuleSpec {
        RuleSpec {
            operation: op.into(),
            orgs: vec!["*".into()],
            priority,
            timeout_ms: timeout,
            max_timeout_ms: timeout * 10,
            default_action: action,
            extension: Some(ext.into()),
            result_schema: None,
        }
    }

    #[test]
    fn stages_group_by_priority_highest_first() {
        let rules = Rules::new(vec![
            rule("vapp.create", "placer", 10, 5_000, DefaultAction::Resume),
            rule(
                "vapp.create",
                "b-approver",
                50,
                9_000,
                DefaultAction::Cancel,
            ),
            rule("vapp.create", "a-approver", 50, 9_000, DefaultAction::Abort),
            rule("vapp.create", "quota", 50, 20_000, DefaultAction::Resume),
            rule("vapp.delete", "other", 99, 1, DefaultAction::Abort),
        ])
        .unwrap();
        let stages = rules.stages("vapp.create", "acme");
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].principals, ["a-approver", "b-approver", "quota"]);
        assert_eq!(stages[0].rule.timeout_ms, 9_000);
        assert_eq!(stages[0].rule.max_timeout_ms, 90_000);
        assert_eq!(
            stages[0].rule.default_action,
            DefaultAction::Abort,
            "tie -> a-approver"
        );
        assert_eq!(stages[1].principals, ["placer"]);
        assert!(rules.stages("vapp.unknown", "acme").is_empty());
    }

    #[test]
    fn orgs_filter_and_dedup() {
        let mut only_acme = rule("x.y", "e", 1, 10, DefaultAction::Abort);
        only_acme.orgs = vec!["acme".into()];
        let rules = Rules::new(vec![only_acme.clone(), only_acme]).unwrap();
        assert_eq!(rules.stages("x.y", "acme")[0].principals, ["e"]);
        assert!(rules.stages("x.y", "globex").is_empty());
    }

    #[test]
    fn config_rule_needs_extension() {
        let mut r = rule("x.y", "e", 1, 10, DefaultAction::Abort);
        r.extension = None;
        assert!(matches!(
            Rules::new(vec![r]),
            Err(CalloutError::InvalidRule(_))
        ));
    }
}
