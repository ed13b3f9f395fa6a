//! `register`: an extension's manifest of callout rules and services, for itself only.
//! Rules go to the callouts engine (persisted, replaced wholesale); services are kept in the
//! `services` tree and routed by the services router; the gate's registry is updated so the
//! extension may receive its notices and requests.

use super::ctx::Ctx;
use super::{Batch, Coordinator};
use crate::registry::{Registration, Registry};
use crate::services::router::Router;
use extbus_schema::register::{Manifest, ServiceSpec};
use extbus_schema::CommandError;
use serde_json::Value;

const SERVICES_TREE: &str = "services";

pub(crate) fn apply(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    mut manifest: Manifest,
) -> Result<Value, CommandError> {
    // `decode` has checked the manifest already.
    let owner = ctx.principal.name.clone();
    manifest.bind_to(&owner)?;
    let rules = co
        .engine
        .register(&mut b.txn, &owner, manifest.rules.clone())?;
    let tree = co
        .db
        .open_tree(SERVICES_TREE)
        .map_err(|e| CommandError::internal(e.to_string()))?;
    let body = serde_json::to_vec(&manifest.services)
        .map_err(|e| CommandError::internal(e.to_string()))?;
    // The services tree is written before the batch's flush, so it is durable with the rules.
    tree.insert(owner.as_bytes(), body)
        .map_err(|e| CommandError::internal(e.to_string()))?;
    // Config rules naming this principal stay in force beside its registered ones.
    let config_rules: Vec<_> = co
        .config
        .tasks
        .rules
        .iter()
        .filter(|r| r.extension.as_deref() == Some(owner.as_str()))
        .cloned()
        .collect();
    // Services the config declares for this principal stay routed beside its own.
    let mut services = manifest.services.clone();
    services.extend(co.config.declared_services(&owner));
    co.services.router.set_owner(&owner, &services);
    co.registry.set(
        &owner,
        registration(rules.iter().chain(config_rules.iter()), &services),
    );
    Ok(serde_json::json!({"principal": owner, "rules": rules, "services": manifest.services}))
}

fn registration<'a>(
    rules: impl Iterator<Item = &'a extbus_schema::tasks::RuleSpec>,
    services: &[ServiceSpec],
) -> Registration {
    Registration {
        operations: rules.map(|r| r.operation.clone()).collect(),
        services: services
            .iter()
            .map(|s| (s.vendor.clone(), s.name.clone()))
            .collect(),
    }
}

/// Seeds the gate's registry and the services router with the services registered before
/// this start and those the config declares.
pub(crate) fn restore_services(
    db: &sled::Db,
    config: &crate::config::Config,
    registry: &Registry,
    router: &Router,
) {
    let mut owners: std::collections::BTreeMap<String, Vec<ServiceSpec>> =
        std::collections::BTreeMap::new();
    for d in &config.services.declared {
        owners
            .entry(d.extension.clone())
            .or_insert_with(|| config.declared_services(&d.extension));
    }
    if let Ok(tree) = db.open_tree(SERVICES_TREE) {
        for (k, v) in tree.iter().flatten() {
            let owner = String::from_utf8_lossy(&k).to_string();
            if let Ok(services) = serde_json::from_slice::<Vec<ServiceSpec>>(&v) {
                owners
                    .entry(owner.clone())
                    .or_insert_with(|| config.declared_services(&owner))
                    .extend(services);
            }
        }
    }
    for (owner, services) in owners {
        router.set_owner(&owner, &services);
        let mut reg = registry.get(&owner).unwrap_or_default();
        reg.services
            .extend(services.iter().map(|s| (s.vendor.clone(), s.name.clone())));
        registry.set(&owner, reg);
    }
}
