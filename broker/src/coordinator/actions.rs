//! Custom actions on the bus side: `actions/<extension>/<name>/invoke` (role, switch, presence
//! and argument checks, then the request published on `extbus/actions/<extension>/requests`;
//! the reply waits in `action_runs`), `actions/responses` (the extension's answer, replied and
//! logged as `action.succeeded|failed`), the deadline timer, and the read-only listings
//! `actions/query` and `ui-plugins/query`. Password arguments go only to the extension.

use super::action_runs::{scrub, secrets, ReplyTo, Run};
use super::ctx::Ctx;
use super::{events, Batch, Coordinator};
use crate::link::LocalActions;
use crate::mqtt::PublishProps;
use bytes::Bytes;
use extbus_schema::actions::{
    arguments_error, ActionInvoke, ActionRequest, ActionResponse, ActionSpec, RunStatus,
};
use extbus_schema::register::CONFIG_COMPONENT;
use extbus_schema::ui_plugins::UiPluginSpec;
use extbus_schema::{topics, CommandError, ErrorCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// One declared action or UI plugin with its owner, component and switch.
struct Declared<'a, T> {
    extension: &'a str,
    component: &'a str,
    item: &'a T,
    disabled: bool,
}

fn declared<'a, T: 'a>(
    co: &'a Coordinator,
    items: impl Fn(&'a super::records::Record) -> &'a [T],
) -> impl Iterator<Item = Declared<'a, T>> {
    co.records.components.iter().flat_map(move |((p, c), r)| {
        let disabled = r.disabled || co.records.disabled_principals.contains(p);
        items(r).iter().map(move |item| Declared {
            extension: p,
            component: c,
            item,
            disabled,
        })
    })
}

/// Every action: those of registrations, then those of executable extensions' config
/// entries (component `config`).
fn all_actions(co: &Coordinator) -> impl Iterator<Item = Declared<'_, ActionSpec>> {
    let exec = co.config.exec.iter().flat_map(move |e| {
        let disabled = co.records.disabled_principals.contains(&e.name);
        e.actions.iter().map(move |item| Declared {
            extension: e.name.as_str(),
            component: CONFIG_COMPONENT,
            item,
            disabled,
        })
    });
    declared(co, |r| &r.actions).chain(exec)
}

fn find<'a>(co: &'a Coordinator, extension: &str, name: &str) -> Option<Declared<'a, ActionSpec>> {
    all_actions(co).find(|d| d.extension == extension && d.item.name == name)
}

fn overloaded(message: String) -> CommandError {
    CommandError::new(ErrorCode::Overloaded, message)
}

/// `actions/<extension>/<name>/invoke`: checks, then publishes the request; `None` as the
/// reply comes with the answer or at the deadline.
pub(crate) fn invoke(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    extension: &str,
    name: &str,
    req: ActionInvoke,
) -> Option<Result<Value, CommandError>> {
    let action = format!("{extension}/{name}");
    let Some(d) = find(co, extension, name) else {
        return Some(Err(CommandError::not_found(format!(
            "no action {action} is registered"
        ))));
    };
    let spec = d.item.clone();
    let disabled = d.disabled;
    let me = &ctx.principal;
    if !spec.permits(&me.roles) {
        return Some(Err(CommandError::forbidden(format!(
            "principal '{}' has none of the roles [{}] that may run {action}",
            me.name,
            spec.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))));
    }
    let validator = match spec.compile() {
        Ok(v) => v,
        Err(e) => {
            return Some(Err(CommandError::internal(format!(
                "parameters of {action}: {e}"
            ))))
        }
    };
    let passwords = spec.password_paths();
    let masked = |p: &str| {
        passwords
            .iter()
            .any(|w| p == w || p.starts_with(&format!("{w}/")))
    };
    let (mut details, total) =
        extbus_schema::validate::violations(&validator, &spec.parameters, &req.arguments, &masked);
    if total > 0 {
        // A password typed into another field is not echoed back either.
        let secrets = secrets(&spec, &req.arguments);
        for d in &mut details {
            if let Value::String(m) = scrub(Value::String(std::mem::take(&mut d.message)), &secrets)
            {
                d.message = m;
            }
        }
        return Some(Err(arguments_error(details, total)));
    }
    if disabled {
        return Some(Err(overloaded(format!("action {action} is disabled"))));
    }
    if !connected(co, extension) {
        return Some(Err(overloaded(format!(
            "no extension connected for action {action}"
        ))));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let deadline = b.now.saturating_add(spec.timeout_ms);
    let request = ActionRequest {
        id: id.clone(),
        action: spec.name.clone(),
        resource_id: req.resource_id.clone(),
        arguments: req.arguments.clone(),
        principal: me.name.clone(),
        orgs: me.orgs.clone(),
        deadline,
    };
    deliver(co, b, extension, &spec, &request);
    // An in-process caller's command swaps this for its oneshot (`Runs::bind`).
    let reply = ReplyTo::Bus {
        suffix: ctx.suffix.clone(),
        kind: ctx.kind,
        correlation_id: ctx.correlation_id.clone(),
        correlation_data: ctx.correlation_data.clone(),
        reply_topic: ctx.reply_topic.clone(),
    };
    let run = Run {
        extension: extension.to_string(),
        redacted: spec.redact(&req.arguments),
        secrets: secrets(&spec, &req.arguments),
        spec,
        invoker: me.clone(),
        resource_id: req.resource_id,
        deadline,
        reply,
    };
    tracing::debug!(run = %id, action = %action, principal = %me.name, "action run sent");
    co.runs.open(id, run);
    co.metrics.action_runs_pending.inc();
    None
}

/// The in-process extension that answers `extension`'s actions, if it is one.
fn local_actions(co: &Coordinator, extension: &str) -> Option<Arc<dyn LocalActions>> {
    co.local.as_ref()?.actions(extension)
}

/// Is the action's extension there to answer: connected over MQTT, or run in-process?
fn connected(co: &Coordinator, extension: &str) -> bool {
    co.registry.presence.present(extension) || local_actions(co, extension).is_some()
}

/// Publishes the request after the batch is durable, or hands it to the in-process extension.
fn deliver(co: &Coordinator, b: &mut Batch, extension: &str, spec: &ActionSpec, r: &ActionRequest) {
    if let Some(local) = local_actions(co, extension) {
        local.run(r.clone(), spec.clone());
        return;
    }
    let payload = serde_json::to_vec(r).unwrap_or_default();
    let props = PublishProps {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    b.outbox.push(
        topics::action_requests(extension),
        Bytes::from(payload),
        props,
    );
}

/// `actions/responses`: ends the run, replies to its invoker and logs the event.
pub(crate) fn respond(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    r: ActionResponse,
) -> Result<Value, CommandError> {
    let clipped: String = r.id.chars().take(80).collect();
    let Some(run) = co.runs.get(&r.id) else {
        return Err(CommandError::not_found(format!(
            "no action run '{clipped}' is waiting for a response (it may have timed out)"
        )));
    };
    if run.extension != ctx.principal.name {
        return Err(CommandError::forbidden(format!(
            "run '{clipped}' is of action {}; only its extension may answer it",
            run.action()
        )));
    }
    let Some(run) = co.runs.take(&r.id) else {
        return Err(CommandError::internal("run vanished"));
    };
    let message = scrub(r.message, &run.secrets);
    let text = match r.status {
        RunStatus::Success => run
            .spec
            .success_text(&run.redacted, run.resource_id.as_deref())
            .map(|t| scrub(Value::String(t), &run.secrets)),
        RunStatus::Error => None,
    };
    let result = json!({"id": r.id, "action": run.action(), "status": r.status.as_str(),
        "message": message, "text": text});
    finish(co, b, &r.id, &run, r.status.as_str(), &message);
    run.answer(b, Ok(result), &co.metrics);
    Ok(json!({"id": r.id, "delivered": true}))
}

/// Runs whose deadline passed: `overloaded` to the invoker, `action.failed` in the log.
pub(crate) fn timers(co: &mut Coordinator, b: &mut Batch) {
    for (id, run) in co.runs.due(b.now) {
        let why = format!(
            "action {} did not answer within {} ms",
            run.action(),
            run.spec.timeout_ms
        );
        finish(co, b, &id, &run, "timeout", &Value::String(why.clone()));
        run.answer(b, Err(overloaded(why)), &co.metrics);
    }
}

/// The run's event: `action.succeeded` for a success, else `action.failed`; arguments redacted.
fn finish(co: &mut Coordinator, b: &mut Batch, id: &str, run: &Run, status: &str, message: &Value) {
    let (kind, result) = match status {
        "success" => ("action.succeeded", "success"),
        "timeout" => ("action.failed", "timeout"),
        _ => ("action.failed", "error"),
    };
    let m = &co.metrics;
    m.action_runs
        .get_or_create(&crate::metrics::Outcome { result })
        .inc();
    m.action_runs_pending.dec();
    let who = &run.invoker;
    let org = match who.orgs.first() {
        Some(o) if !who.all_orgs() => o.clone(),
        _ => events::SYSTEM_ORG.to_string(),
    };
    let data = json!({"id": id, "action": run.action(), "extension": run.extension,
        "name": run.spec.name, "principal": who.name, "resource_id": run.resource_id,
        "arguments": run.redacted, "status": status, "message": message});
    tracing::info!(run = %id, action = %run.action(), principal = %who.name, status, "action run finished");
    events::system_in_org(co, b, kind, &org, run.resource_id.clone(), data);
}

/// `actions/query`: the actions of enabled registrations the sender may invoke.
pub(crate) fn query(co: &Coordinator, ctx: &Ctx) -> Result<Value, CommandError> {
    let roles = &ctx.principal.roles;
    let list: Vec<Value> = all_actions(co)
        .filter(|d| !d.disabled && d.item.permits(roles))
        .map(|d| {
            let a = d.item;
            json!({"extension": d.extension, "component": d.component, "name": a.name,
                "title": a.title, "resource": a.resource, "roles": a.roles,
                "timeout_ms": a.timeout_ms, "parameters": a.parameters,
                "success_message": a.success_message})
        })
        .collect();
    Ok(json!({ "actions": list }))
}

/// `ui-plugins/query`: the UI plugins of enabled registrations.
pub(crate) fn ui_query(co: &Coordinator) -> Result<Value, CommandError> {
    let list: Vec<Value> = declared::<UiPluginSpec>(co, |r| &r.ui_plugins)
        .filter(|d| !d.disabled)
        .map(|d| {
            let p = d.item;
            json!({"extension": d.extension, "component": d.component, "name": p.name,
                "title": p.title, "entry": p.entry, "extension_points": p.extension_points})
        })
        .collect();
    Ok(json!({ "ui_plugins": list }))
}
