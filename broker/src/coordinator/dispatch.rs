//! Routes one inbound command: who sent it (from the topic, never the payload), decode and
//! validate, role check, then the command family. Every command gets exactly one reply.

use super::ctx::{Ctx, Output};
use super::{
    actions, entities, entity_hooks, entity_query, events, metadata, register, registrations,
    services, tasks, Batch, Coordinator,
};
use crate::mqtt::InboundPublish;
use crate::notices::GateNotice;
use bytes::Bytes;
use extbus_schema::commands::Command;
use extbus_schema::decode::{decode, Body, Decoded};
use extbus_schema::entities::EntityAction;
use extbus_schema::tasks::Task;
use extbus_schema::{CommandError, ErrorCode};

pub(crate) fn command(co: &mut Coordinator, b: &mut Batch, m: InboundPublish) {
    let Some((name, suffix)) = extbus_schema::topics::parse_inbox(&m.topic) else {
        return;
    };
    // A principal added a moment ago may be known to an external broker before the
    // once-a-second check has read the file: read it now.
    let known = co.principals.get(name).or_else(|| {
        co.principals.reload_if_changed();
        co.principals.get(name)
    });
    let Some(principal) = known else {
        // The bus let it in, so the principal was removed since; nobody to answer.
        tracing::debug!(
            principal = name,
            "command from a principal that no longer exists"
        );
        return;
    };
    let mut ctx = Ctx {
        principal,
        suffix: suffix.to_string(),
        kind: "unknown",
        correlation_id: None,
        correlation_data: m.correlation_data.clone(),
        reply_topic: None,
    };
    // A Response Topic outside the sender's outbox is refused (on its usual replies topic)
    // once the command's correlation id is known; a good one takes every reply, errors too.
    let mut refused_topic = None;
    if let Some(t) = &m.response_topic {
        match super::ctx::response_topic(name, t) {
            Ok(()) => ctx.reply_topic = Some(t.clone()),
            Err(e) => refused_topic = Some(e),
        }
    }
    let decoded = match decode(suffix, &m.payload, co.config.mqtt.max_payload) {
        Ok(d) => d,
        Err(f) => {
            if suffix == "services/responses" && ctx.principal.has(extbus_schema::Role::Extension) {
                services::malformed(co, &ctx, &m.payload, &f.error);
            }
            ctx.correlation_id = f.correlation_id;
            // Cold path: a known command with a bad body keeps its own label.
            ctx.kind = crate::metrics::command_kind(suffix);
            ctx.reply(b, Err(f.error), &co.metrics);
            return;
        }
    };
    ctx.correlation_id = decoded.correlation_id.clone();
    ctx.kind = decoded.command.kind();
    if let Some(e) = refused_topic {
        ctx.reply(b, Err(e), &co.metrics);
        return;
    }
    if !decoded.command.permitted(&ctx.principal.roles) {
        let e = CommandError::forbidden(format!(
            "principal '{}' has no role that may send '{}'",
            ctx.principal.name, ctx.suffix
        ));
        ctx.reply(b, Err(e), &co.metrics);
        return;
    }
    let _span =
        tracing::debug_span!("command", principal = %ctx.principal.name, command = %ctx.suffix)
            .entered();
    let result = apply(co, b, &ctx, decoded);
    if let Some(result) = result {
        ctx.reply(b, result, &co.metrics);
    }
}

/// Applies a decoded command to its family with the body decode already parsed; `None` means
/// the family replies later (service calls).
pub(crate) fn apply(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    d: Decoded,
) -> Option<Result<Output, CommandError>> {
    let task = |r: Result<Task, CommandError>| Some(r.map(Output::task));
    let value = match (d.command, d.typed) {
        (Command::TasksSubmit, Body::Submit(r)) => return task(tasks::submit(co, b, ctx, *r)),
        (Command::TaskAction { task_id, action }, Body::Resolve(r)) => {
            return task(tasks::resolve(co, b, ctx, &task_id, action, r))
        }
        (Command::TaskAction { task_id, .. }, Body::Extend(r)) => {
            return task(tasks::extend(co, b, ctx, &task_id, r))
        }
        (Command::TaskGet { task_id }, Body::Get) => tasks::get_with_metadata(co, b, ctx, &task_id),
        (Command::Event, Body::Event(e)) => {
            return Some(events::publish(co, b, ctx, *e).map(Output::Json))
        }
        (Command::EventsReplay, Body::Replay(r)) => events::replay(co, ctx, &r),
        (Command::TasksQuery, Body::Query(q)) => tasks::query(co, b, ctx, &q),
        (Command::Register, Body::Register(m)) => register::apply(co, b, ctx, *m),
        (Command::RegistrationsQuery, Body::RegistrationsQuery(q)) => {
            registrations::query(co, ctx, &q)
        }
        (
            Command::RegistrationSwitch {
                principal,
                component,
                enable,
            },
            Body::Switch(r),
        ) => registrations::switch(co, b, ctx, &principal, component.as_deref(), !enable, r),
        (Command::ServiceResponse, Body::ServiceResponse(r)) => services::respond(co, ctx, *r),
        (
            Command::ServiceCall {
                vendor,
                name,
                version,
            },
            Body::ServiceCall(c),
        ) => services::call(co, ctx, &format!("{vendor}/{name}/{version}"), *c)?,
        (Command::ActionInvoke { extension, name }, Body::ActionInvoke(r)) => {
            actions::invoke(co, b, ctx, &extension, &name, *r)?
        }
        (Command::ActionResponse, Body::ActionResponse(r)) => actions::respond(co, b, ctx, *r),
        (Command::ActionsQuery, Body::ListQuery) => actions::query(co, ctx),
        (Command::UiPluginsQuery, Body::ListQuery) => actions::ui_query(co),
        (Command::EntitiesCreate, Body::EntityCreate(r)) => entities::create(co, b, ctx, *r),
        (
            Command::EntityBehavior {
                entity_id,
                behavior,
            },
            Body::EntityBehavior(r),
        ) => {
            return task(entity_hooks::behavior(
                co, b, ctx, &entity_id, &behavior, *r,
            ))
        }
        (Command::EntitiesQuery, Body::EntityQuery(q)) => entity_query::query(co, b, ctx, &q),
        (Command::EntityTypes, Body::EntityEmpty) => entity_query::types(co, b),
        (Command::Entity { entity_id, action }, body) => match (action, body) {
            (EntityAction::Get, Body::EntityEmpty) => entities::get(co, b, ctx, &entity_id),
            (EntityAction::Resolve, Body::EntityEmpty) => entities::resolve(co, b, ctx, &entity_id),
            (EntityAction::Secrets, Body::EntityEmpty) => entities::secrets(co, b, ctx, &entity_id),
            (EntityAction::Update, Body::EntityUpdate(r)) => {
                entities::update(co, b, ctx, &entity_id, *r)
            }
            (EntityAction::Delete, Body::EntityDelete(r)) => {
                entities::delete(co, b, ctx, &entity_id, r)
            }
            (a, _) => Err(CommandError::internal(format!(
                "'entities/{}' decoded to another command's body",
                a.as_str()
            ))),
        },
        (Command::Metadata { object_id, .. }, Body::MetadataGet) => {
            metadata::get(co, b, ctx, &object_id)
        }
        (Command::Metadata { object_id, .. }, Body::MetadataSet(r)) => {
            metadata::set(co, b, ctx, &object_id, *r)
        }
        (Command::Metadata { object_id, .. }, Body::MetadataDelete(r)) => {
            metadata::delete(co, b, ctx, &object_id, *r)
        }
        // `decode` pairs every command with its own body type.
        (c, _) => Err(CommandError::internal(format!(
            "'{}' decoded to another command's body",
            c.kind()
        ))),
    };
    Some(value.map(Output::Value))
}

pub(crate) fn notice(co: &mut Coordinator, b: &mut Batch, n: GateNotice) {
    match n {
        GateNotice::Denied {
            principal,
            client_id,
            action,
            topic,
            reason,
        } => {
            let data = serde_json::json!({
                "principal": principal, "client_id": client_id, "action": action,
                "topic": topic, "reason": reason,
            });
            events::system(
                co,
                b,
                "security.denied",
                Some(format!("urn:extbus:principal:{principal}")),
                data,
            );
        }
        GateNotice::Listening { principal, filters } => {
            co.reannounce.listening(principal, filters);
        }
        GateNotice::Oversized {
            principal,
            suffix,
            size,
            limit,
            correlation_data,
            correlation_id,
        } => {
            let Some(p) = co.principals.get(&principal) else {
                return;
            };
            let ctx = Ctx {
                principal: p,
                kind: crate::metrics::command_kind(&suffix),
                suffix,
                correlation_id,
                correlation_data: correlation_data.map(Bytes::from),
                reply_topic: None,
            };
            let e = CommandError::new(
                ErrorCode::PayloadTooLarge,
                format!("payload of {size} bytes exceeds the limit of {limit} bytes"),
            );
            ctx.reply(b, Err(e), &co.metrics);
        }
    }
}
