//! Audit-event messages of SPEC.md "Audit events": the draft a platform sends, the CloudEvents 1.0
//! event the broker stamps and publishes (with its MQTT user properties), and the replay request
//! and page, and the family's command rows (`FAMILY`). Pure data: sequencing, storage and
//! fan-out belong to the broker.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::Command;
use crate::roles::Role;
use crate::spec::{Spec, ANY_ROLE};
use crate::tasks::TaskState;
use crate::validate::schema;
use crate::{time_fmt, topics};

/// CloudEvents version of every event.
pub const SPECVERSION: &str = "1.0";
/// Content type of every event's `data`.
pub const DATACONTENTTYPE: &str = "application/json";
/// Scheme of an event's `source`: `extbus://<principal>`.
pub const SOURCE_SCHEME: &str = "extbus://";
/// Largest `limit` of one replay page.
pub const MAX_REPLAY_LIMIT: usize = 1000;

/// Event types the broker emits itself.
pub const TASK_BLOCKED: &str = "task.blocked";
pub const TASK_RESUMED: &str = "task.resumed";
pub const TASK_CANCELLED: &str = "task.cancelled";
pub const TASK_ABORTED: &str = "task.aborted";
pub const TASK_TIMED_OUT: &str = "task.timed-out";
pub const SECURITY_DENIED: &str = "security.denied";

/// The `task.<state>` event type announcing that a task reached `state`.
pub fn task_event_type(state: TaskState) -> &'static str {
    match state {
        TaskState::Blocked => TASK_BLOCKED,
        TaskState::Resumed => TASK_RESUMED,
        TaskState::Cancelled => TASK_CANCELLED,
        TaskState::Aborted => TASK_ABORTED,
    }
}

/// `extbus://<principal>`.
pub fn source_for(principal: &str) -> String {
    format!("{SOURCE_SCHEME}{principal}")
}

/// Body of the `events` command: an event as the platform drafts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDraft {
    /// The operation the event is about, `<entity>.<operation>`.
    #[serde(rename = "type")]
    pub r#type: String,
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The platform's own id for the event; becomes the CloudEvent id when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// An audit event as published on `extbus/events/<org>/<entity>/<operation>` (CloudEvents 1.0,
/// structured JSON). `time` is epoch milliseconds inside, RFC 3339 with milliseconds outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(with = "time_fmt::ms")]
    pub time: u64,
    pub datacontenttype: String,
    /// Gap-free sequence number per broker.
    pub seq: u64,
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl CloudEvent {
    /// Stamps a draft sent by `principal`: the draft's own `id` wins over `generated_id`.
    pub fn stamp(
        draft: EventDraft,
        principal: &str,
        seq: u64,
        time_ms: u64,
        generated_id: String,
    ) -> CloudEvent {
        CloudEvent {
            specversion: SPECVERSION.to_string(),
            id: draft.id.unwrap_or(generated_id),
            source: source_for(principal),
            r#type: draft.r#type,
            subject: draft.subject,
            time: time_ms,
            datacontenttype: DATACONTENTTYPE.to_string(),
            seq,
            org: draft.org,
            outcome: draft.outcome,
            data: draft.data,
        }
    }

    /// The topic this event is published on. `type` and `org` must be valid names.
    pub fn topic(&self) -> String {
        topics::events(&self.org, &self.r#type)
    }

    /// The principal named by `source`, if it is an `extbus://` source.
    pub fn source_principal(&self) -> Option<&str> {
        self.source.strip_prefix(SOURCE_SCHEME)
    }

    /// The event's attributes as MQTT 5 user properties (CloudEvents MQTT binding); `data` stays
    /// in the payload. Absent optional attributes are left out.
    pub fn user_properties(&self) -> Vec<(String, String)> {
        let mut p = Vec::with_capacity(9);
        p.extend([
            ("specversion".to_string(), self.specversion.clone()),
            ("id".to_string(), self.id.clone()),
            ("source".to_string(), self.source.clone()),
            ("type".to_string(), self.r#type.clone()),
        ]);
        if let Some(s) = &self.subject {
            p.push(("subject".to_string(), s.clone()));
        }
        p.push(("time".to_string(), time_fmt::format_ms(self.time)));
        p.push(("seq".to_string(), self.seq.to_string()));
        p.push(("org".to_string(), self.org.clone()));
        if let Some(o) = &self.outcome {
            p.push(("outcome".to_string(), o.clone()));
        }
        p
    }
}

/// Body of `events/replay`: re-send stored events from `from_seq` on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub from_seq: u64,
    /// An MQTT topic filter over event topics (`extbus/events/acme/#`); only events whose topic
    /// it matches are returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Page size, 1 to `MAX_REPLAY_LIMIT`; the broker's configured page size when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl ReplayRequest {
    /// Whether `event` passes this request's filter.
    pub fn accepts(&self, event: &CloudEvent) -> bool {
        match &self.filter {
            None => true,
            Some(f) => topics::filter_matches(f, &event.topic()),
        }
    }
}

/// The result of `events/replay`: events in `seq` order, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayPage {
    pub events: Vec<CloudEvent>,
    /// The `from_seq` of the next request.
    pub next_seq: u64,
    /// Whether stored events from `next_seq` on may remain.
    pub more: bool,
    /// The oldest sequence number still stored, when known: events before it were removed by
    /// retention and cannot be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<u64>,
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[EVENT, REPLAY];

pub const EVENT: Spec = Spec {
    suffix: "events",
    kind: "events",
    schema: schema!("event-draft", Inbound),
    channel: "cmdEvents",
    description: "platform: validate, stamp, persist and fan out an audit event.",
    roles: &[Role::Platform],
    read_only: false,
    example: r#"{"type": "vapp.instantiate", "org": "acme", "subject": "urn:acme:vapp:42", "outcome": "succeeded", "id": "optional", "data": {"cpu": 2}}"#,
    build: |_| Command::Event,
};

pub const REPLAY: Spec = Spec {
    suffix: "events/replay",
    kind: "events/replay",
    schema: schema!("events-replay", Inbound),
    channel: "cmdEventsReplay",
    description:
        "observer, operator, extension, platform: re-send stored events from a sequence number.",
    roles: ANY_ROLE,
    read_only: true,
    example: r#"{"from_seq": 1040, "filter": "extbus/events/acme/#", "limit": 100}"#,
    build: |_| Command::EventsReplay,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_draft() -> Value {
        json!({"type": "vapp.instantiate", "org": "acme", "subject": "urn:acme:vapp:42",
               "outcome": "succeeded", "id": "p-1", "data": {"cpu": 2}})
    }

    #[test]
    fn draft_round_trips() {
        let d: EventDraft = serde_json::from_value(spec_draft()).unwrap();
        assert_eq!(d.r#type, "vapp.instantiate");
        assert_eq!(d.id.as_deref(), Some("p-1"));
        assert_eq!(serde_json::to_value(&d).unwrap(), spec_draft());
        let min: EventDraft = serde_json::from_value(json!({"type": "a.b", "org": "o"})).unwrap();
        assert_eq!(min.data, Value::Null);
        assert_eq!(
            serde_json::to_value(&min).unwrap(),
            json!({"type": "a.b", "org": "o"})
        );
    }

    #[test]
    fn stamped_event_matches_the_spec_shape() {
        let d: EventDraft = serde_json::from_value(spec_draft()).unwrap();
        let e = CloudEvent::stamp(d, "platform-1", 1042, 1_795_341_600_123, "gen".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"specversion": "1.0", "id": "p-1", "source": "extbus://platform-1",
                   "type": "vapp.instantiate", "subject": "urn:acme:vapp:42",
                   "time": "2026-11-22T10:00:00.123Z", "datacontenttype": "application/json",
                   "seq": 1042, "org": "acme", "outcome": "succeeded", "data": {"cpu": 2}})
        );
        let back: CloudEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.topic(), "extbus/events/acme/vapp/instantiate");
        assert_eq!(e.source_principal(), Some("platform-1"));
    }

    #[test]
    fn generated_id_is_used_without_a_draft_id() {
        let d = EventDraft {
            r#type: "task.timed-out".into(),
            org: "acme".into(),
            subject: None,
            outcome: None,
            id: None,
            data: Value::Null,
        };
        let e = CloudEvent::stamp(d, "extbus", 1, 0, "gen-1".into());
        assert_eq!(e.id, "gen-1");
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("subject").is_none() && v.get("outcome").is_none());
        assert_eq!(v["data"], Value::Null);
    }

    #[test]
    fn user_properties_follow_the_mqtt_binding() {
        let d: EventDraft = serde_json::from_value(spec_draft()).unwrap();
        let e = CloudEvent::stamp(d, "platform-1", 7, 1_795_341_600_123, "g".into());
        let props = e.user_properties();
        let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "specversion",
                "id",
                "source",
                "type",
                "subject",
                "time",
                "seq",
                "org",
                "outcome"
            ]
        );
        let get = |k: &str| props.iter().find(|(x, _)| x == k).unwrap().1.as_str();
        assert_eq!(get("seq"), "7");
        assert_eq!(get("time"), "2026-11-22T10:00:00.123Z");
        assert_eq!(get("source"), "extbus://platform-1");

        let mut bare = e.clone();
        bare.subject = None;
        bare.outcome = None;
        let keys: Vec<String> = bare.user_properties().into_iter().map(|(k, _)| k).collect();
        assert!(!keys.contains(&"subject".to_string()) && !keys.contains(&"outcome".to_string()));
    }

    #[test]
    fn replay_types_round_trip_and_filter() {
        let r: ReplayRequest =
            serde_json::from_value(json!({"from_seq": 5, "filter": "extbus/events/acme/#"}))
                .unwrap();
        assert_eq!(r.limit, None);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"from_seq": 5, "filter": "extbus/events/acme/#"})
        );
        let d: EventDraft = serde_json::from_value(spec_draft()).unwrap();
        let e = CloudEvent::stamp(d, "p", 5, 0, "g".into());
        assert!(r.accepts(&e));
        let mut other = e.clone();
        other.org = "globex".into();
        assert!(!r.accepts(&other));
        assert!(ReplayRequest::default().accepts(&other));

        let page = ReplayPage {
            events: vec![e],
            next_seq: 6,
            more: false,
            first_seq: None,
        };
        let v = serde_json::to_value(&page).unwrap();
        assert_eq!(v["next_seq"], 6);
        assert!(v.get("first_seq").is_none());
        assert_eq!(serde_json::from_value::<ReplayPage>(v).unwrap(), page);
        let with_first: ReplayPage = serde_json::from_value(
            json!({"events": [], "next_seq": 9, "more": true, "first_seq": 3}),
        )
        .unwrap();
        assert_eq!(with_first.first_seq, Some(3));
    }

    #[test]
    fn task_event_types() {
        assert_eq!(task_event_type(TaskState::Cancelled), "task.cancelled");
        for t in [TASK_BLOCKED, TASK_TIMED_OUT, SECURITY_DENIED] {
            assert!(crate::names::split_operation(t).is_some(), "{t}");
        }
    }
}
