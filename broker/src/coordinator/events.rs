//! Audit events on the bus side: platform drafts (validate, stamp, log, fan out), the broker's
//! own events, `events/replay`, and retention. Publishing happens after the batch is flushed,
//! in seq order, so `seq` on the bus is gap-free and everything published is in the log.

use super::ctx::Ctx;
use super::outbox::Outbox;
use super::{Batch, Coordinator};
use crate::eventlog::{Logged, Staged};
use crate::mqtt::PublishProps;
use bytes::Bytes;
use extbus_callouts::Txn;
use extbus_schema::events::{CloudEvent, EventDraft, ReplayRequest};
use extbus_schema::{topics, CommandError, ErrorCode};
use serde_json::Value;

/// Org of events that belong to no tenant (security, principals).
pub const SYSTEM_ORG: &str = "system";
/// Most events retention removes per batch, so ingest never waits long behind it.
const RETENTION_CHUNK: usize = 1000;
/// A replay page stops growing past this many bytes of events (it always holds at least one).
const REPLAY_MAX_BYTES: usize = 1 << 20;

/// A broker event (source `extbus://broker`) with a fresh id.
fn broker_event(
    co: &Coordinator,
    kind: &str,
    org: &str,
    subject: Option<String>,
    data: Value,
) -> CloudEvent {
    let draft = EventDraft {
        r#type: kind.to_string(),
        org: org.to_string(),
        subject,
        outcome: None,
        id: None,
        data,
    };
    CloudEvent::stamp(
        draft,
        "broker",
        0,
        co.clock.now_ms(),
        uuid::Uuid::now_v7().to_string(),
    )
}

fn stage(
    co: &mut Coordinator,
    b: &mut Batch,
    ev: CloudEvent,
    dedupe: bool,
) -> Result<Logged, CommandError> {
    co.log
        .stage(&mut b.staged, ev, dedupe)
        .map_err(|e| CommandError::internal(e.to_string()))
}

/// `events`: a platform's draft. The result is written as JSON here (the hottest command):
/// the bytes `{"duplicate","id","seq"}` as a `Value` would give them, keys in order.
pub(crate) fn publish(
    co: &mut Coordinator,
    b: &mut Batch,
    ctx: &Ctx,
    draft: EventDraft,
) -> Result<Vec<u8>, CommandError> {
    if !ctx.principal.in_org(&draft.org) {
        return Err(CommandError::forbidden(format!(
            "principal '{}' may not emit events for org '{}'",
            ctx.principal.name, draft.org
        )));
    }
    let dedupe = draft.id.is_some();
    let ev = CloudEvent::stamp(
        draft,
        &ctx.principal.name,
        0,
        co.clock.now_ms(),
        uuid::Uuid::now_v7().to_string(),
    );
    let logged = stage(co, b, ev, dedupe)?;
    if !logged.fresh {
        co.metrics.events_duplicate.inc();
    }
    Ok(publish_result(&logged))
}

/// `{"duplicate":..,"id":..,"seq":..}`, the bytes its `Value` would give.
fn publish_result(logged: &Logged) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + logged.id.len());
    out.extend_from_slice(if logged.fresh {
        b"{\"duplicate\":false,\"id\":"
    } else {
        b"{\"duplicate\":true,\"id\":"
    });
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &logged.id);
    out.extend_from_slice(format!(",\"seq\":{}}}", logged.seq).as_bytes());
    out
}

/// A broker event in the system org.
pub(crate) fn system(
    co: &mut Coordinator,
    b: &mut Batch,
    kind: &str,
    subject: Option<String>,
    data: Value,
) {
    system_in_org(co, b, kind, SYSTEM_ORG, subject, data)
}

/// A broker event in a tenant's org (task lifecycle).
pub(crate) fn system_in_org(
    co: &mut Coordinator,
    b: &mut Batch,
    kind: &str,
    org: &str,
    subject: Option<String>,
    data: Value,
) {
    let ev = broker_event(co, kind, org, subject, data);
    co.log.stage_fresh(&mut b.staged, ev);
}

/// Publishes a flushed batch's events to their topics, in seq order, as the bytes stored.
pub(crate) fn announce(outbox: &mut Outbox, events: Vec<(CloudEvent, Bytes)>) {
    for (ev, payload) in events {
        let topic = topics::events(&ev.org, &ev.r#type);
        let props = PublishProps {
            user_properties: ev.user_properties(),
            content_type: Some("application/cloudevents+json".into()),
            ..Default::default()
        };
        outbox.push(topic, payload, props);
    }
}

/// `events/replay`: a page of stored events the requester may see, from `from_seq`.
pub(crate) fn replay(
    co: &Coordinator,
    ctx: &Ctx,
    req: &ReplayRequest,
) -> Result<Value, CommandError> {
    let filter = req
        .filter
        .clone()
        .unwrap_or_else(|| topics::EVENTS_ALL.to_string());
    if !topics::valid_filter(&filter) {
        return Err(CommandError::new(
            ErrorCode::SchemaViolation,
            format!("'{filter}' is not a valid MQTT topic filter"),
        ));
    }
    let limit = req
        .limit
        .unwrap_or(co.config.events.replay_page_max)
        .clamp(1, co.config.events.replay_page_max);
    let p = &ctx.principal;
    let (events, next_seq, more) = co
        .log
        .read(req.from_seq, limit, REPLAY_MAX_BYTES, |ev| {
            p.in_org(&ev.org)
                && topics::filter_matches(&filter, &topics::events(&ev.org, &ev.r#type))
        })
        .map_err(|e| CommandError::internal(e.to_string()))?;
    let first_seq = co.log.first_seq().ok().flatten();
    Ok(
        serde_json::json!({"events": events, "next_seq": next_seq, "more": more, "first_seq": first_seq}),
    )
}

/// Drops events past the retention limits in the batch's `txn`, one chunk per batch, the
/// batch's own `staged` events counted. Returns how many go when the batch commits.
pub(crate) fn retention(co: &Coordinator, txn: &mut Txn, staged: &Staged) -> usize {
    let cfg = &co.config.events;
    if cfg.retention_max_age_ms == 0 && cfg.retention_max_count == 0 {
        return 0;
    }
    match co.log.enforce_retention(
        txn,
        staged,
        co.clock.now_ms(),
        cfg.retention_max_age_ms,
        cfg.retention_max_count,
        RETENTION_CHUNK,
    ) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "event retention failed");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_result_is_the_json_a_value_gives() {
        for (fresh, id, seq) in [(true, "0193-a", 1), (false, "q\"uote\\ \u{e9}", u64::MAX)] {
            let logged = Logged {
                seq,
                id: id.to_string(),
                fresh,
            };
            let want = serde_json::json!({"seq": seq, "id": id, "duplicate": !fresh});
            assert_eq!(publish_result(&logged), serde_json::to_vec(&want).unwrap());
        }
    }
}
