//! What each registration holds beside its rules (services, actions, UI plugins, when it
//! registered, whether an operator switched it off), kept in the `services` tree, and how a principal's registrations
//! are pushed to the services router and the gate's registry.
//!
//! Keys: `<principal>\0<component>` -> `Record` (JSON); `<principal>\0` -> the switch of the
//! whole principal. A key without `\0` holds a service list stored before components existed;
//! `load` moves it to component `default`.

use super::Coordinator;
use crate::registry::Registration;
use extbus_callouts::{CalloutError, Store, TreeId, Txn};
use extbus_schema::actions::ActionSpec;
use extbus_schema::register::{ServiceSpec, DEFAULT_COMPONENT};
use extbus_schema::ui_plugins::UiPluginSpec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One (principal, component) registration's stored part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<u64>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Custom actions, as listed (password defaults redacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_plugins: Vec<UiPluginSpec>,
}

/// Every registration's record, and the principals switched off as a whole.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub components: BTreeMap<(String, String), Record>,
    pub disabled_principals: BTreeSet<String>,
}

fn key(principal: &str, component: &str) -> Vec<u8> {
    format!("{principal}\0{component}").into_bytes()
}

impl Records {
    /// Reads every record, first moving service lists stored before components to component
    /// `default` (committed at once).
    pub fn load(store: &Store) -> Result<Records, CalloutError> {
        let tree = store.trees().tree(TreeId::Services);
        let mut txn = store.txn();
        let mut out = Records::default();
        for item in tree.iter() {
            let (k, v) = item?;
            let text = String::from_utf8_lossy(&k).to_string();
            match text.split_once('\0') {
                None => {
                    let services: Vec<ServiceSpec> = serde_json::from_slice(&v).unwrap_or_default();
                    let record = Record {
                        services,
                        ..Record::default()
                    };
                    let body = serde_json::to_vec(&record).unwrap_or_default();
                    txn.insert(TreeId::Services, key(&text, DEFAULT_COMPONENT), body);
                    txn.remove(TreeId::Services, k.to_vec());
                    out.components
                        .insert((text, DEFAULT_COMPONENT.to_string()), record);
                }
                Some((p, "")) => {
                    out.disabled_principals.insert(p.to_string());
                }
                Some((p, c)) => match serde_json::from_slice::<Record>(&v) {
                    Ok(r) => {
                        out.components.insert((p.to_string(), c.to_string()), r);
                    }
                    Err(e) => tracing::warn!(principal = p, component = c, error = %e,
                        "unreadable registration record skipped"),
                },
            }
        }
        if !txn.is_empty() {
            txn.commit()?;
            store.flush()?;
            tracing::info!("registrations stored before components moved to `default`");
        }
        Ok(out)
    }

    /// Writes one component's record in the batch.
    pub fn put(&mut self, txn: &mut Txn, principal: &str, component: &str, record: Record) {
        let k = key(principal, component);
        let id = (principal.to_string(), component.to_string());
        txn.insert(
            TreeId::Services,
            k,
            serde_json::to_vec(&record).unwrap_or_default(),
        );
        self.components.insert(id, record);
    }

    /// Forgets one component's record, in the batch.
    pub fn remove(&mut self, txn: &mut Txn, principal: &str, component: &str) {
        txn.remove(TreeId::Services, key(principal, component));
        self.components
            .remove(&(principal.to_string(), component.to_string()));
    }

    /// Switches a whole principal off or on, in the batch.
    pub fn set_principal(&mut self, txn: &mut Txn, principal: &str, disabled: bool) {
        let k = key(principal, "");
        if disabled {
            txn.insert(TreeId::Services, k, b"{\"disabled\":true}".to_vec());
            self.disabled_principals.insert(principal.to_string());
        } else {
            txn.remove(TreeId::Services, k);
            self.disabled_principals.remove(principal);
        }
    }

    pub fn get(&self, principal: &str, component: &str) -> Option<&Record> {
        self.components
            .get(&(principal.to_string(), component.to_string()))
    }

    /// Every principal with a record or a switch.
    pub fn principals(&self) -> BTreeSet<String> {
        self.components
            .keys()
            .map(|(p, _)| p.clone())
            .chain(self.disabled_principals.iter().cloned())
            .collect()
    }
}

/// Pushes `principal`'s registrations (all components, and what the config gives it) to the
/// services router, with each service's switch, and to the gate's registry. Operations of
/// switched-off registrations stay in the registry: tasks already waiting on them stay visible.
pub(crate) fn refresh(co: &Coordinator, principal: &str) {
    let all_off = co.records.disabled_principals.contains(principal);
    let mut services: Vec<(ServiceSpec, bool)> = co
        .records
        .components
        .iter()
        .filter(|((p, _), _)| p == principal)
        .flat_map(|(_, r)| {
            r.services
                .iter()
                .map(|s| (s.clone(), all_off || r.disabled))
        })
        .collect();
    services.extend(
        co.config
            .declared_services(principal)
            .into_iter()
            .map(|s| (s, all_off)),
    );
    co.services.router.set_owner_flagged(principal, &services);
    let operations = co
        .engine
        .rules()
        .registrations()
        .remove(principal)
        .unwrap_or_default();
    co.registry.set(
        principal,
        Registration {
            operations,
            services: services
                .iter()
                .map(|(s, _)| (s.vendor.clone(), s.name.clone()))
                .collect(),
        },
    );
}

/// At start: the switches go to the engine, and every principal with a registration, a
/// config rule or a declared service is pushed to the router and the registry.
pub(crate) fn restore(co: &mut Coordinator) {
    for p in &co.records.disabled_principals {
        co.engine.set_disabled(p, None, true);
    }
    for ((p, c), r) in &co.records.components {
        if r.disabled {
            co.engine.set_disabled(p, Some(c), true);
        }
    }
    let mut owners = co.records.principals();
    owners.extend(co.engine.rules().registrations().into_keys());
    owners.extend(
        co.config
            .services
            .declared
            .iter()
            .map(|d| d.extension.clone()),
    );
    for owner in owners {
        refresh(co, &owner);
    }
}
