//! `register`: an extension's manifest of callout rules and services, for itself only.
//! Rules go to the callouts engine (persisted, replaced wholesale); services are kept in the
//! `services` tree (written through the batch's `Txn`) and routed by the services router; the gate's registry is updated so the
//! extension may receive its notices and requests.

use super::ctx::Ctx;
use super::{Batch, Coordinator};
use crate::registry::{Registration, Registry};
use crate::services::router::Router;
use extbus_callouts::{TreeId, Trees};
use extbus_schema::register::{Manifest, ServiceSpec};
use extbus_schema::CommandError;
use serde_json::Value;

pub(crate) fn apply(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    mut manifest: Manifest,
) -> Result<Value, CommandError> {
    // `decode` has checked the manifest already.
    let owner = ctx.principal.name.clone();
    manifest.bind_to(&owner)?;
    // Checked whole before anything of the manifest is written.
    let types = super::entity_types::prepare(co, &b.txn, &owner, &manifest.entity_types, b.now)?;
    let rules = co
        .engine
        .register(&mut b.txn, &owner, manifest.rules.clone())?;
    let body = serde_json::to_vec(&manifest.services)
        .map_err(|e| CommandError::internal(e.to_string()))?;
    // In the batch's transaction: committed with the rules, or not at all.
    b.txn.insert(TreeId::Services, owner.as_bytes(), body);
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
    // The external broker learns the new rights before the reply goes out.
    b.acl_changed.push(owner.clone());
    let entity_types = super::entity_types::apply(co, b, types);
    Ok(
        serde_json::json!({"principal": owner, "rules": rules, "services": manifest.services,
                           "entity_types": entity_types}),
    )
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
    trees: &Trees,
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
    for (k, v) in trees.tree(TreeId::Services).iter().flatten() {
        let owner = String::from_utf8_lossy(&k).to_string();
        if let Ok(services) = serde_json::from_slice::<Vec<ServiceSpec>>(&v) {
            owners
                .entry(owner.clone())
                .or_insert_with(|| config.declared_services(&owner))
                .extend(services);
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
