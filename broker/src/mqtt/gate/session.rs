//! One authenticated connection's decisions, frame by frame, in both directions: which
//! publishes and subscriptions pass (with MQTT 5 topic aliases resolved first), what the gate
//! answers itself (refusals, acks for oversized commands, spliced SUBACKs) and which
//! blocked-task notices an extension receives. The broker side always speaks MQTT 5; frames
//! of 3.1.1 clients are translated. Pure: it appends to output buffers, never touches a socket.

use super::ackorder::AckOrder;
use super::acl;
use super::codec::{self, Malformed, Publish};
use super::codec::{
    CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
    SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
};
use super::subcap::{Over, Slots};
use super::translate;
use super::Gate;
use crate::mqtt::InboundPublish;
use crate::principals::Principal;
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::OwnedPermit;

/// MQTT 5 reason codes the gate sends.
pub(crate) const NOT_AUTHORIZED: u8 = 0x87;
pub(crate) const MALFORMED_PACKET: u8 = 0x81;
pub(crate) const PROTOCOL_ERROR: u8 = 0x82;
pub(crate) const NOT_ACCEPTED: u8 = 0x83;
pub(crate) const SERVER_SHUTTING_DOWN: u8 = 0x8b;
pub(crate) const TOPIC_ALIAS_INVALID: u8 = 0x94;
pub(crate) const PACKET_TOO_LARGE: u8 = 0x95;
pub(crate) const QUOTA_EXCEEDED: u8 = 0x97;
/// MQTT 3.1.1 SUBACK failure.
const SUBACK_FAILURE: u8 = 0x80;
/// The highest topic alias the embedded broker accepts.
const MAX_TOPIC_ALIAS: u16 = 4096;

/// What the connection does after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Go,
    /// Stop reading from the client, flush what is queued and close.
    Close,
    /// The coordinator's queue is full: read nothing more from the client until the held
    /// command has been handed over (`Session::release`).
    Hold,
}

/// A command waiting for room in the coordinator's queue, with the ack it is owed.
struct Held {
    command: InboundPublish,
    qos: u8,
    pkid: u16,
}

/// Who a PINGREQ toward the broker came from. rumqttd sends no UNSUBACK for a filter it had
/// no subscription for (refused ones included) and one UNSUBACK per removed filter otherwise,
/// so the gate answers UNSUBSCRIBE itself, after a PINGREQ it adds: rumqttd answers packets
/// of a connection in order, so its PINGRESP means the unsubscribe is done.
enum Ping {
    Client,
    Unsubscribe { pkid: u16, filters: usize },
}

/// A SUBSCRIBE forwarded with some filters removed: its SUBACK gets their refusals back.
struct PendingSuback {
    pkid: u16,
    total: usize,
    /// (index in the SUBSCRIBE, refusal code)
    refused: Vec<(usize, u8)>,
}

pub(crate) struct Session {
    gate: Arc<Gate>,
    principal: Principal,
    client_id: String,
    v5: bool,
    /// `extbus/in/<name>/`: the fast path for the common publish.
    inbox: String,
    /// Topic aliases the client set (MQTT 5), as the broker knows them.
    aliases: HashMap<u16, String>,
    subacks: Vec<PendingSuback>,
    /// SUBSCRIBEs of an extension to blocked-task notices, by packet id, awaiting their SUBACK.
    listening: Vec<(u16, Vec<String>)>,
    /// QoS 2 publishes the gate answered itself: their PUBREL is completed here.
    swallowed: HashSet<u16>,
    /// Present when blocked-task notices are filtered for this principal.
    order: Option<AckOrder>,
    /// The broker's CONNACK has been passed on.
    connack_seen: bool,
    pings: VecDeque<Ping>,
    /// MQTT 5 client accepts reason strings (Request Problem Information).
    reasons: bool,
    held: Option<Held>,
    /// The filters this connection holds, against the subscription caps.
    slots: Slots,
    /// Why the gate or the client ended the connection, for its log line.
    closed_why: std::cell::Cell<Option<&'static str>>,
}

impl Session {
    pub fn new(
        gate: Arc<Gate>,
        principal: Principal,
        client_id: String,
        v5: bool,
        reasons: bool,
    ) -> Self {
        let order = (acl::filters_blocked_tasks(&principal) || acl::filters_task_orgs(&principal))
            .then(AckOrder::default);
        let slots = Slots::new(gate.subcaps.clone(), &principal.name);
        Session {
            inbox: extbus_schema::topics::inbox_prefix(&principal.name),
            gate,
            principal,
            client_id,
            v5,
            aliases: HashMap::new(),
            subacks: Vec::new(),
            listening: Vec::new(),
            swallowed: HashSet::new(),
            order,
            connack_seen: false,
            pings: VecDeque::new(),
            reasons,
            closed_why: std::cell::Cell::new(None),
            held: None,
            slots,
        }
    }

    pub fn connack_seen(&self) -> bool {
        self.connack_seen
    }

    /// The broker closed before accepting the connection: refuse it as unavailable.
    pub fn unavailable(&self, to_c: &mut Vec<u8>) {
        let code = if self.v5 { 0x88 } else { 0x03 };
        to_c.extend_from_slice(&super::connect::connack_refusal(self.v5, code));
    }

    /// Why the connection is ending, once the gate or the client said so.
    pub fn closed_why(&self) -> Option<&'static str> {
        self.closed_why.get()
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Queues an MQTT 5 DISCONNECT (nothing for 3.1.1, which has none) and says close.
    pub fn disconnect(&self, reason: u8, why: &'static str, to_c: &mut Vec<u8>) -> Step {
        if self.closed_why.get().is_none() {
            self.closed_why.set(Some(why));
        }
        if self.v5 {
            codec::encode_disconnect_v5(reason, to_c);
        }
        tracing::debug!(
            principal = %self.principal.name,
            client_id = %self.client_id,
            why,
            "closing the client connection"
        );
        Step::Close
    }

    fn malformed(&self, m: Malformed, to_c: &mut Vec<u8>) -> Step {
        self.disconnect(MALFORMED_PACKET, m.0, to_c)
    }

    /// Passes a client frame on to the broker (as MQTT 5).
    fn forward(&self, f: &[u8], header: usize, to_b: &mut Vec<u8>, to_c: &mut Vec<u8>) -> Step {
        if self.v5 {
            to_b.extend_from_slice(f);
        } else if let Err(m) = translate::up(f, header, to_b) {
            return self.malformed(m, to_c);
        }
        Step::Go
    }

    /// Passes a broker frame on to the client (as 3.1.1 for 3.1.1 clients).
    fn deliver(&self, f: &[u8], header: usize, to_c: &mut Vec<u8>) -> Step {
        if self.v5 {
            to_c.extend_from_slice(f);
            return Step::Go;
        }
        match translate::down(f, header, to_c) {
            Ok(true) => Step::Go,
            Ok(false) => Step::Close,
            Err(m) => {
                tracing::warn!(why = m.0, "malformed frame from the embedded broker");
                Step::Close
            }
        }
    }

    /// A whole frame from the client; `to_b` goes to the broker, `to_c` back to the client.
    pub fn on_client(
        &mut self,
        f: &[u8],
        header: usize,
        to_b: &mut Vec<u8>,
        to_c: &mut Vec<u8>,
    ) -> Step {
        let kind = f.first().map_or(0, |b| b >> 4);
        match kind {
            PUBLISH => self.client_publish(f, header, to_b, to_c),
            PUBACK | PUBREC | PUBCOMP => {
                match (&mut self.order, codec::pkid(f, header)) {
                    (Some(order), Ok(pkid)) => order.client_ack(kind, pkid, f, to_b),
                    (None, Ok(_)) => to_b.extend_from_slice(f),
                    (_, Err(m)) => return self.malformed(m, to_c),
                }
                Step::Go
            }
            PUBREL => {
                let pkid = match codec::pkid(f, header) {
                    Ok(p) => p,
                    Err(m) => return self.malformed(m, to_c),
                };
                if self.swallowed.remove(&pkid) {
                    codec::encode_ack(PUBCOMP, pkid, None, to_c);
                } else {
                    to_b.extend_from_slice(f);
                }
                Step::Go
            }
            SUBSCRIBE => self.client_subscribe(f, header, to_b, to_c),
            UNSUBSCRIBE => {
                let (pkid, filters) = match codec::parse_unsubscribe(f, header, self.v5) {
                    Ok(u) => u,
                    Err(m) => return self.malformed(m, to_c),
                };
                for filter in &filters {
                    self.slots.release(filter);
                }
                let filters = filters.len();
                let step = self.forward(f, header, to_b, to_c);
                to_b.extend_from_slice(&[PINGREQ << 4, 0]);
                self.pings.push_back(Ping::Unsubscribe { pkid, filters });
                step
            }
            PINGREQ => {
                self.pings.push_back(Ping::Client);
                self.forward(f, header, to_b, to_c)
            }
            DISCONNECT => {
                self.closed_why.set(Some("the client sent DISCONNECT"));
                self.forward(f, header, to_b, to_c)
            }
            // CONNECT again, server-only packets, and AUTH (the broker has no enhanced auth).
            _ => self.disconnect(PROTOCOL_ERROR, "unexpected packet type from a client", to_c),
        }
    }

    fn client_publish(
        &mut self,
        f: &[u8],
        header: usize,
        to_b: &mut Vec<u8>,
        to_c: &mut Vec<u8>,
    ) -> Step {
        let p = match codec::parse_publish(f, header, self.v5) {
            Ok(p) => p,
            Err(m) => return self.malformed(m, to_c),
        };
        let Ok(topic) = std::str::from_utf8(p.topic) else {
            return self.malformed(Malformed("topic is not UTF-8"), to_c);
        };
        // The topic the broker will use: a v5 alias is resolved first, so it cannot hide one.
        let (resolved, new_alias): (Cow<'_, str>, Option<u16>) = match p.topic_alias {
            Some(a) if a == 0 || a > MAX_TOPIC_ALIAS => {
                return self.disconnect(TOPIC_ALIAS_INVALID, "topic alias out of range", to_c)
            }
            Some(a) if topic.is_empty() => match self.aliases.get(&a) {
                Some(t) => (Cow::Owned(t.clone()), None),
                None => return self.disconnect(PROTOCOL_ERROR, "unknown topic alias", to_c),
            },
            Some(a) => (Cow::Borrowed(topic), Some(a)),
            None if topic.is_empty() => {
                return self.malformed(Malformed("empty topic without an alias"), to_c)
            }
            None => (Cow::Borrowed(topic), None),
        };
        let suffix = match resolved.strip_prefix(self.inbox.as_str()) {
            Some(s) if !s.contains(['+', '#', '\0']) => Some(s),
            _ => {
                if let Err(d) = acl::may_publish(&self.principal, &resolved) {
                    return self.refuse_publish(&p, new_alias, &resolved, &d.reason, to_c);
                }
                acl::inbox_suffix(&self.principal.name, &resolved)
            }
        };
        if let Some(suffix) = suffix {
            if p.payload.len() > self.gate.max_payload {
                self.gate.reporter.oversized(
                    &self.principal.name,
                    suffix,
                    p.payload.len(),
                    self.gate.max_payload,
                    p.correlation_data,
                    p.payload,
                );
                // The broker never saw this alias being set: forget it here too.
                if let Some(a) = new_alias {
                    self.aliases.remove(&a);
                }
                self.answer_unforwarded(&p, NOT_ACCEPTED, "payload_too_large", to_c);
                return Step::Go;
            }
        }
        if let Some(a) = new_alias {
            if self.aliases.get(&a).map(String::as_str) != Some(topic) {
                self.aliases.insert(a, topic.to_string());
            }
        }
        if p.qos == 2 && !self.swallowed.is_empty() {
            self.swallowed.remove(&p.pkid);
        }
        if extbus_schema::topics::parse_inbox(&resolved).is_some() {
            return self.hand_over(&p, &resolved, to_c);
        }
        self.forward(f, header, to_b, to_c)
    }

    /// Gives a command to the coordinator and acks it; rumqttd never sees it. An alias it
    /// set is known to the gate only, which is consistent: a publish resolving to an inbox
    /// is never forwarded, so the broker never needs that alias.
    fn hand_over(&mut self, p: &Publish<'_>, topic: &str, to_c: &mut Vec<u8>) -> Step {
        let command = InboundPublish {
            topic: topic.to_string(),
            payload: Bytes::copy_from_slice(p.payload),
            correlation_data: p.correlation_data.map(Bytes::copy_from_slice),
            response_topic: p
                .response_topic
                .map(|t| String::from_utf8_lossy(t).into_owned()),
        };
        match self.gate.commands.try_send(command) {
            Ok(()) => {
                self.ack_command(p.qos, p.pkid, to_c);
                Step::Go
            }
            Err(TrySendError::Full(command)) => {
                self.held = Some(Held {
                    command,
                    qos: p.qos,
                    pkid: p.pkid,
                });
                Step::Hold
            }
            Err(TrySendError::Closed(_)) => {
                self.disconnect(SERVER_SHUTTING_DOWN, "the coordinator has stopped", to_c)
            }
        }
    }

    /// Acks a command the coordinator has taken (QoS 2: its PUBREL is completed here).
    fn ack_command(&mut self, qos: u8, pkid: u16, to_c: &mut Vec<u8>) {
        match qos {
            1 => codec::encode_ack(PUBACK, pkid, None, to_c),
            2 => {
                self.swallowed.insert(pkid);
                codec::encode_ack(PUBREC, pkid, None, to_c);
            }
            _ => {}
        }
    }

    /// Whether a command waits for room in the coordinator's queue.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Hands the held command over with the room `permit` reserved, and acks it.
    pub fn release(&mut self, permit: OwnedPermit<InboundPublish>, to_c: &mut Vec<u8>) {
        if let Some(h) = self.held.take() {
            permit.send(h.command);
            self.ack_command(h.qos, h.pkid, to_c);
        }
    }

    /// Acks a QoS 1/2 publish the broker will never see (3.1.1: as accepted; MQTT 5: with
    /// `code`); a following PUBREL is completed by the gate.
    fn answer_unforwarded(&mut self, p: &Publish<'_>, code: u8, why: &str, to_c: &mut Vec<u8>) {
        let kind = match p.qos {
            1 => PUBACK,
            2 => {
                self.swallowed.insert(p.pkid);
                PUBREC
            }
            _ => return,
        };
        match (self.v5, self.reasons) {
            (true, true) => codec::encode_ack_with_reason(kind, p.pkid, code, why, to_c),
            (true, false) => codec::encode_ack(kind, p.pkid, Some(code), to_c),
            (false, _) => codec::encode_ack(kind, p.pkid, None, to_c),
        }
    }

    fn refuse_publish(
        &mut self,
        p: &Publish<'_>,
        new_alias: Option<u16>,
        topic: &str,
        reason: &str,
        to_c: &mut Vec<u8>,
    ) -> Step {
        self.gate.reporter.denied(
            &self.principal.name,
            &self.client_id,
            "publish",
            topic,
            reason,
        );
        if let Some(a) = new_alias {
            self.aliases.remove(&a);
        }
        if !self.v5 {
            return self.disconnect(NOT_AUTHORIZED, "publish refused", to_c);
        }
        match p.qos {
            0 => self.disconnect(NOT_AUTHORIZED, "QoS 0 publish refused", to_c),
            _ => {
                self.answer_unforwarded(p, NOT_AUTHORIZED, "not authorized", to_c);
                Step::Go
            }
        }
    }

    fn client_subscribe(
        &mut self,
        f: &[u8],
        header: usize,
        to_b: &mut Vec<u8>,
        to_c: &mut Vec<u8>,
    ) -> Step {
        let s = match codec::parse_subscribe(f, header, self.v5) {
            Ok(s) => s,
            Err(m) => return self.malformed(m, to_c),
        };
        let mut refused = Vec::new();
        for (i, (filter, _)) in s.filters.iter().enumerate() {
            let verdict = acl::may_subscribe(&self.principal, filter, &self.gate.registry)
                .and_then(|()| broker_accepts(filter));
            if let Err(d) = verdict {
                self.gate.reporter.denied(
                    &self.principal.name,
                    &self.client_id,
                    "subscribe",
                    filter,
                    &d.reason,
                );
                refused.push((i, self.refusal_code()));
            } else if let Err(over) = self.slots.take(filter) {
                self.over_cap(filter, over);
                refused.push((i, self.quota_code()));
            }
        }
        // Only principals with the extension role sit on stages (an admin's `#` is not one).
        if self.answers_callouts() {
            let blocked: Vec<String> = s
                .filters
                .iter()
                .enumerate()
                .filter(|(i, (filter, _))| {
                    !refused.iter().any(|r| r.0 == *i) && hears_blocked(filter)
                })
                .map(|(_, (filter, _))| filter.to_string())
                .collect();
            if !blocked.is_empty() {
                self.listening.retain(|(p, _)| *p != s.pkid);
                self.listening.push((s.pkid, blocked));
            }
        }
        if refused.is_empty() {
            return self.forward(f, header, to_b, to_c);
        }
        let total = s.filters.len();
        if refused.len() == total {
            let codes: Vec<u8> = refused.iter().map(|&(_, code)| code).collect();
            codec::encode_suback(self.v5, s.pkid, &[], &codes, to_c);
            return Step::Go;
        }
        let allowed = s
            .filters
            .iter()
            .enumerate()
            .filter(|(i, _)| !refused.iter().any(|r| r.0 == *i))
            .map(|(_, &(f, o))| (f, o));
        let props: &[u8] = if self.v5 { s.props_raw } else { &[0] };
        codec::encode_subscribe(s.pkid, props, allowed, to_b);
        self.subacks.retain(|p| p.pkid != s.pkid);
        self.subacks.push(PendingSuback {
            pkid: s.pkid,
            total,
            refused,
        });
        Step::Go
    }

    fn answers_callouts(&self) -> bool {
        self.principal
            .roles
            .contains(&extbus_schema::Role::Extension)
    }

    /// Records a filter refused by a subscription cap.
    fn over_cap(&self, filter: &str, over: Over) {
        let limits = self.gate.subcaps.limits();
        let limit = match over {
            Over::Connection => limits.max_per_connection,
            Over::Principal => limits.max_per_principal,
        };
        self.gate.reporter.over_cap(
            &self.principal.name,
            &self.client_id,
            filter,
            over.label(),
            limit,
        );
    }

    fn quota_code(&self) -> u8 {
        if self.v5 {
            QUOTA_EXCEEDED
        } else {
            SUBACK_FAILURE
        }
    }

    fn refusal_code(&self) -> u8 {
        if self.v5 {
            NOT_AUTHORIZED
        } else {
            SUBACK_FAILURE
        }
    }

    /// A whole frame from the broker (always MQTT 5); `to_c` goes to the client, `to_b` back
    /// to the broker.
    pub fn on_broker(
        &mut self,
        f: &[u8],
        header: usize,
        to_c: &mut Vec<u8>,
        to_b: &mut Vec<u8>,
    ) -> Step {
        let kind = f.first().map_or(0, |b| b >> 4);
        if kind == CONNACK {
            self.connack_seen = true;
            // A resumed session keeps its subscriptions: waiting tasks are due to it now.
            let resumed = f.get(header).is_some_and(|flags| flags & 1 == 1);
            if resumed && self.answers_callouts() {
                let all = vec![extbus_schema::topics::TASKS_BLOCKED_ALL.to_string()];
                self.gate.reporter.listening(&self.principal.name, all);
            }
        }
        if kind == SUBACK && !self.listening.is_empty() {
            if let Ok(a) = codec::parse_suback(f, header, true) {
                if let Some(i) = self.listening.iter().position(|(p, _)| *p == a.pkid) {
                    let (_, filters) = self.listening.swap_remove(i);
                    self.gate.reporter.listening(&self.principal.name, filters);
                }
            }
        }
        match (kind, &mut self.order) {
            (PUBLISH, Some(order)) => {
                let Ok(p) = codec::parse_publish(f, header, true) else {
                    return self.deliver(f, header, to_c);
                };
                let topic = std::str::from_utf8(p.topic).unwrap_or_default();
                let deliver = match acl::blocked_operation(topic) {
                    Some(op) if acl::filters_blocked_tasks(&self.principal) => self
                        .gate
                        .registry
                        .answers_operation(&self.principal.name, &op),
                    _ => true,
                } && acl::task_org_allowed(&self.principal, topic, p.payload);
                if !deliver {
                    if p.qos > 0 {
                        order.dropped(p.pkid, p.qos, to_b);
                    }
                    return Step::Go;
                }
                if p.qos > 0 {
                    order.delivered(p.pkid);
                }
                self.deliver(f, header, to_c)
            }
            (PUBREL, Some(order)) => match codec::pkid(f, header) {
                Ok(pkid) if !order.broker_pubrel(pkid, to_b) => Step::Go,
                _ => self.deliver(f, header, to_c),
            },
            (SUBACK, _) if !self.subacks.is_empty() => self.splice_suback(f, header, to_c),
            (UNSUBACK, _) => Step::Go,
            (PINGRESP, _) => match self.pings.pop_front() {
                Some(Ping::Unsubscribe { pkid, filters }) => {
                    codec::encode_unsuback(self.v5, pkid, filters, to_c);
                    Step::Go
                }
                _ => self.deliver(f, header, to_c),
            },
            _ => self.deliver(f, header, to_c),
        }
    }

    /// Puts the refusals of filters the gate removed back into the broker's SUBACK.
    fn splice_suback(&mut self, f: &[u8], header: usize, to_c: &mut Vec<u8>) -> Step {
        let pending = codec::parse_suback(f, header, true).ok().and_then(|a| {
            let i = self.subacks.iter().position(|p| p.pkid == a.pkid)?;
            Some((a, self.subacks.swap_remove(i)))
        });
        let Some((a, pending)) = pending else {
            return self.deliver(f, header, to_c);
        };
        let refusal = self.refusal_code();
        let mut given = a.codes.iter().map(|&c| {
            if self.v5 {
                c
            } else {
                translate::suback_code(c)
            }
        });
        let codes: Vec<u8> = (0..pending.total)
            .map(|i| match pending.refused.iter().find(|r| r.0 == i) {
                Some(&(_, code)) => code,
                None => given.next().unwrap_or(refusal),
            })
            .collect();
        let props: &[u8] = if self.v5 { a.props_raw } else { &[] };
        codec::encode_suback(self.v5, a.pkid, props, &codes, to_c);
        Step::Go
    }
}

/// Could `filter` receive blocked-task notices?
fn hears_blocked(filter: &str) -> bool {
    use extbus_schema::topics::{
        filter_covers, split_shared, TASKS_BLOCKED_ALL, TASKS_BLOCKED_PREFIX,
    };
    let (_, inner) = split_shared(filter);
    inner.starts_with(TASKS_BLOCKED_PREFIX) || filter_covers(inner, TASKS_BLOCKED_ALL)
}

/// The embedded broker drops a connection that subscribes to a `$` topic (other than
/// `$share/...`), so the gate refuses those filters even for admins.
fn broker_accepts(filter: &str) -> Result<(), acl::Denial> {
    match acl::strip_share(filter) {
        Ok(inner) if inner.starts_with('$') => Err(acl::Denial {
            reason: "the embedded broker has no $ topics".into(),
        }),
        Ok(_) => Ok(()),
        Err(d) => Err(d),
    }
}
