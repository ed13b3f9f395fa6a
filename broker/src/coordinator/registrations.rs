//! `registrations/query` and `registrations/<extension>[/<component>]/disable|enable`: what
//! every extension registered, with its presence, and the operator's switch. A switch is
//! written in the batch, applied to the engine's matching and the services router at once,
//! and announced as an `extension.disabled|enabled` event. What the config file gives a
//! principal (rules, declared services) is listed as its component `config`; for an `[[exec]]`
//! entry that item carries its readiness (operators and admins only).

use super::ctx::Ctx;
use super::{events, records, Batch, Coordinator};
use extbus_schema::register::CONFIG_COMPONENT;
use extbus_schema::registrations::{
    ExecReadiness, RegistrationInfo, RegistrationsQuery, SwitchRequest,
};
use extbus_schema::tasks::RuleSpec;
use extbus_schema::{CommandError, Role};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Whether the sender may see `principal`'s registration with `rules`: its own, any with all
/// orgs, else one with a rule for one of the sender's orgs (or `*`), or whose principal
/// shares one of the sender's orgs.
fn visible(co: &Coordinator, ctx: &Ctx, principal: &str, rules: &[RuleSpec]) -> bool {
    let me = &ctx.principal;
    let touches = |o: &String| o == "*" || me.in_org(o);
    me.all_orgs()
        || me.name == principal
        || rules.iter().any(|r| r.orgs.iter().any(touches))
        || co
            .principals
            .get(principal)
            .is_some_and(|p| p.orgs.iter().any(touches))
}

pub(crate) fn query(
    co: &Coordinator,
    ctx: &Ctx,
    q: &RegistrationsQuery,
) -> Result<Value, CommandError> {
    let rules = co.engine.rules();
    let keys: BTreeSet<(String, String)> = co
        .records
        .components
        .keys()
        .cloned()
        .chain(
            rules
                .components()
                .map(|(p, c, _)| (p.to_string(), c.to_string())),
        )
        .filter(|(p, _)| q.principal.as_ref().is_none_or(|want| want == p))
        .collect();
    let mut configured: BTreeSet<String> = co
        .config
        .tasks
        .rules
        .iter()
        .filter_map(|r| r.extension.clone())
        .chain(
            co.config
                .services
                .declared
                .iter()
                .map(|d| d.extension.clone()),
        )
        .chain(co.config.exec.iter().map(|e| e.name.clone()))
        .collect();
    configured.retain(|p| q.principal.as_ref().is_none_or(|want| want == p));
    let keys = keys.into_iter().chain(
        configured
            .into_iter()
            .map(|p| (p, CONFIG_COMPONENT.to_string())),
    );
    let now = co.clock.now_ms();
    let presence = &co.registry.presence;
    let mut items = Vec::new();
    for (p, c) in keys {
        let (own, record) = if c == CONFIG_COMPONENT {
            let own: Vec<RuleSpec> = co
                .config
                .tasks
                .rules
                .iter()
                .filter(|r| r.extension.as_deref() == Some(p.as_str()))
                .cloned()
                .collect();
            let record = records::Record {
                services: co.config.declared_services(&p),
                actions: co
                    .config
                    .exec
                    .iter()
                    .filter(|e| e.name == p)
                    .flat_map(|e| e.actions.clone())
                    .collect(),
                ..records::Record::default()
            };
            (own, record)
        } else {
            let record = co.records.get(&p, &c).cloned().unwrap_or_default();
            (rules.registered_in(&p, &c).to_vec(), record)
        };
        if !visible(co, ctx, &p, &own) {
            continue;
        }
        let info = RegistrationInfo {
            connections: presence.open(&p),
            last_seen: presence.last_seen(&p, now),
            registered_at: record.registered_at,
            rules: own,
            services: record.services,
            entity_types: co
                .types
                .of_component(&p, &c)
                .into_iter()
                .map(Value::from)
                .collect(),
            actions: record.actions.iter().map(|a| json!(a.name)).collect(),
            ui_plugins: record.ui_plugins.iter().map(|u| json!(u.name)).collect(),
            disabled: co.records.disabled_principals.contains(&p) || record.disabled,
            exec: (c == CONFIG_COMPONENT && sees_readiness(ctx))
                .then(|| exec_readiness(co, &p))
                .flatten(),
            principal: p,
            component: c,
        };
        items.push(serde_json::to_value(&info).map_err(|e| CommandError::internal(e.to_string()))?);
    }
    Ok(json!({ "items": items }))
}

/// Readiness names paths on the broker's host: operators and admins see it.
fn sees_readiness(ctx: &Ctx) -> bool {
    ctx.principal.has(Role::Operator)
}

/// `principal`'s readiness if it is an `[[exec]]` entry (not ready until first checked).
fn exec_readiness(co: &Coordinator, principal: &str) -> Option<ExecReadiness> {
    let entry = co.config.exec.iter().find(|e| e.name == principal)?;
    Some(match co.exec_ready.get(principal) {
        Some(r) => ExecReadiness {
            path: r.path,
            ready: r.reason.is_none(),
            reason: r.reason,
            checked_at: Some(r.checked_at),
        },
        None => ExecReadiness {
            path: entry.path.display().to_string(),
            ready: false,
            reason: Some("not checked yet".into()),
            checked_at: None,
        },
    })
}

/// Does the broker know `principal` (as a principal, or by a registration or config entry)?
fn known_principal(co: &Coordinator, principal: &str) -> bool {
    co.principals.get(principal).is_some()
        || co.records.principals().contains(principal)
        || co.engine.rules().registrations().contains_key(principal)
        || !co.config.declared_services(principal).is_empty()
}

pub(crate) fn switch(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    principal: &str,
    component: Option<&str>,
    disable: bool,
    req: SwitchRequest,
) -> Result<Value, CommandError> {
    let was = match component {
        None if known_principal(co, principal) => {
            co.records.disabled_principals.contains(principal)
        }
        None => {
            return Err(CommandError::not_found(format!(
                "no principal or registration '{principal}'"
            )))
        }
        Some(c) => match co.records.get(principal, c) {
            Some(r) => r.disabled,
            None if !co.engine.rules().registered_in(principal, c).is_empty() => false,
            None => {
                return Err(CommandError::not_found(format!(
                    "principal '{principal}' has no component '{c}'"
                )))
            }
        },
    };
    let changed = was != disable;
    if changed {
        match component {
            None => co.records.set_principal(&mut b.txn, principal, disable),
            Some(c) => {
                let mut r = co.records.get(principal, c).cloned().unwrap_or_default();
                r.disabled = disable;
                co.records.put(&mut b.txn, principal, c, r);
            }
        }
        co.engine.set_disabled(principal, component, disable);
        records::refresh(co, principal);
        let kind = if disable {
            "extension.disabled"
        } else {
            "extension.enabled"
        };
        let data = json!({"principal": principal, "component": component,
            "by": ctx.principal.name, "message": req.message});
        events::system(
            co,
            b,
            kind,
            Some(format!("urn:extbus:principal:{principal}")),
            data,
        );
        tracing::info!(principal, component, by = %ctx.principal.name, disabled = disable,
            "registration switched");
    }
    Ok(
        json!({"principal": principal, "component": component, "disabled": disable,
        "changed": changed}),
    )
}
