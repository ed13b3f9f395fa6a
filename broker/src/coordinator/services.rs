//! Extension-service commands on the bus side: `services/responses` (an extension answers a
//! waiting request) and `services/<vendor>/<name>/<version>` (an MQTT-native call, answered
//! later by `Services::reply_later`). Nothing here touches the store.

use super::ctx::Ctx;
use super::Coordinator;
use crate::services::hub::{Outcome, Undelivered};
use crate::services::PendingCall;
use extbus_schema::{CommandError, ServiceCall, ServiceRequest, ServiceResponse};
use serde_json::{json, Value};
use std::time::Instant;

/// `services/responses`: hands the response to whoever waits for it.
pub(crate) fn respond(
    co: &Coordinator,
    ctx: &Ctx,
    r: ServiceResponse,
) -> Result<Value, CommandError> {
    let id = r.id.clone();
    deliver(co, ctx, &id, Outcome::Response(r))?;
    Ok(json!({"id": id, "delivered": true}))
}

/// A `services/responses` that failed its checks: if it names a request this extension may
/// answer, that request fails at once (502) instead of waiting for its timeout. The extension
/// still gets the decoding error as its reply.
pub(crate) fn malformed(co: &Coordinator, ctx: &Ctx, payload: &[u8], error: &CommandError) {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let Some(id) = o.get("id").and_then(Value::as_str) else {
        return;
    };
    let _ = deliver(co, ctx, id, Outcome::Malformed(error.message.clone()));
}

fn deliver(co: &Coordinator, ctx: &Ctx, id: &str, outcome: Outcome) -> Result<(), CommandError> {
    let me = ctx.principal.name.as_str();
    let router = &co.services.router;
    let clipped: String = id.chars().take(80).collect();
    match co
        .services
        .hub
        .complete(id, |service| router.is_owner(service, me), outcome)
    {
        Ok(()) => Ok(()),
        Err(Undelivered::Unknown) => Err(CommandError::not_found(format!(
            "no service request '{clipped}' is waiting for a response"
        ))),
        Err(Undelivered::Late) => {
            co.services.count_late();
            Err(CommandError::not_found(format!(
                "service request '{clipped}' already timed out; the response was dropped"
            )))
        }
        Err(Undelivered::NotOwner { service }) => Err(CommandError::forbidden(format!(
            "principal '{me}' does not serve {service}, so it may not answer its requests"
        ))),
    }
}

/// `services/<vendor>/<name>/<version>`: publishes the request; `None` as the reply comes
/// later (when the extension answers or the service's timeout passes).
pub(crate) fn call(
    co: &Coordinator,
    ctx: &Ctx,
    key: &str,
    call: ServiceCall,
) -> Option<Result<Value, CommandError>> {
    let started = Instant::now();
    let Some(route) = co.services.router.for_key(key) else {
        return Some(Err(CommandError::not_found(format!(
            "no extension serves {key}"
        ))));
    };
    if let Some(why) = co.services.absent(&route) {
        return Some(Ok(serde_json::json!({
            "status": 503,
            "headers": {"content-type": "application/json"},
            "json": crate::services::error_body(extbus_schema::ErrorCode::Overloaded, &why),
        })));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let deadline = co.services.deadline(&route);
    let p = &ctx.principal;
    let req = ServiceRequest::from_call(call, id.clone(), &p.name, p.orgs.clone(), deadline);
    let rx = match co.services.send(&route, &req) {
        Ok(rx) => rx,
        Err(e) => return Some(Err(CommandError::internal(format!("bus: {e}")))),
    };
    co.services.reply_later(
        PendingCall {
            id,
            caller: p.name.clone(),
            suffix: ctx.suffix.clone(),
            kind: ctx.kind,
            correlation_id: ctx.correlation_id.clone(),
            correlation_data: ctx.correlation_data.clone(),
            reply_topic: ctx.reply_topic(),
            deadline,
            timeout_ms: route.spec.timeout_ms,
            started,
        },
        rx,
    );
    None
}
