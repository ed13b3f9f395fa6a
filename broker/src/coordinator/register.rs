//! `register`: an extension's manifest of callout rules, services, entity types, actions and
//! UI plugins for one of its components. Rules go to the callouts engine (persisted per (principal, component)); the
//! component's services and registration time are kept in the `services` tree (`records`),
//! both written through the batch's `Txn`; then the router and the gate's registry are
//! refreshed so the extension may receive its notices and requests.

use super::ctx::Ctx;
use super::records::{self, Record};
use super::{Batch, Coordinator};
use extbus_schema::actions::ActionSpec;
use extbus_schema::register::{Manifest, ServiceSpec};
use extbus_schema::CommandError;
use serde_json::{json, Value};

pub(crate) fn apply(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    mut manifest: Manifest,
) -> Result<Value, CommandError> {
    // `decode` has checked the manifest already.
    let owner = ctx.principal.name.clone();
    manifest.bind_to(&owner)?;
    let component = manifest.component().to_string();
    // Checked whole before anything of the manifest is written.
    let types = super::entity_types::prepare(co, &b.txn, &owner, &manifest.entity_types, b.now)?;
    let rules =
        co.engine
            .register_component(&mut b.txn, &owner, &component, manifest.rules.clone())?;
    let before = co.records.get(&owner, &component).cloned();
    let disabled = before.as_ref().is_some_and(|r| r.disabled);
    let before = before.unwrap_or_default();
    let old_services = before.services;
    let actions: Vec<ActionSpec> = manifest.actions.iter().map(ActionSpec::listed).collect();
    if manifest.rules.is_empty()
        && manifest.services.is_empty()
        && manifest.entity_types.is_empty()
        && manifest.actions.is_empty()
        && manifest.ui_plugins.is_empty()
        && !disabled
    {
        // An empty manifest withdraws the component (a switched-off one stays listed).
        co.records.remove(&mut b.txn, &owner, &component);
    } else {
        let record = Record {
            registered_at: Some(b.now),
            services: manifest.services.clone(),
            disabled,
            actions: actions.clone(),
            ui_plugins: manifest.ui_plugins.clone(),
        };
        co.records.put(&mut b.txn, &owner, &component, record);
    }
    records::refresh(co, &owner);
    // The external broker learns the new rights before the reply goes out.
    b.acl_changed.push(owner.clone());
    let entity_types = super::entity_types::apply(co, b, types);
    let new_services = &manifest.services;
    Ok(json!({
        "principal": owner,
        "component": component,
        "rules": rules.stored,
        "services": new_services,
        "added": {"rules": rules.added, "services": missing_from(new_services, &old_services),
            "actions": names_missing(&actions, &before.actions, |a| &a.name),
            "ui_plugins": names_missing(&manifest.ui_plugins, &before.ui_plugins, |p| &p.name)},
        "removed": {"rules": rules.removed, "services": missing_from(&old_services, new_services),
            "actions": names_missing(&before.actions, &actions, |a| &a.name),
            "ui_plugins": names_missing(&before.ui_plugins, &manifest.ui_plugins, |p| &p.name)},
        "entity_types": entity_types,
        "actions": actions,
        "ui_plugins": manifest.ui_plugins,
    }))
}

/// The names of the items of `a` that `b` does not hold as they are (a changed one is both
/// removed and added, as services are).
fn names_missing<T: PartialEq>(a: &[T], b: &[T], name: impl Fn(&T) -> &String) -> Vec<String> {
    a.iter()
        .filter(|x| !b.contains(x))
        .map(|x| name(x).clone())
        .collect()
}

/// The services of `a` that `b` does not hold as they are.
fn missing_from(a: &[ServiceSpec], b: &[ServiceSpec]) -> Vec<ServiceSpec> {
    a.iter().filter(|s| !b.contains(s)).cloned().collect()
}
