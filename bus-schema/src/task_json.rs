//! A task written straight to JSON bytes, byte for byte what `serde_json::to_value` then
//! `to_vec` gives (keys in sorted order, as a `Value` map holds them) without building the
//! `Value`: replies carry a task per command, so the coordinator skips the detour.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::tasks::{HistoryEntry, Task};
use crate::time_fmt::format_ms;

/// The task's keys in `Value` (sorted) order; `history` is left out when `with_history` is off.
struct Sorted<'a> {
    task: &'a Task,
    with_history: bool,
}

struct SortedEntry<'a>(&'a HistoryEntry);

impl Serialize for SortedEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("action", &h.action)?;
        m.serialize_entry("at", &format_ms(h.at))?;
        m.serialize_entry("by", &h.by)?;
        if let Some(message) = &h.message {
            m.serialize_entry("message", message)?;
        }
        if let Some(result) = &h.result {
            m.serialize_entry("result", result)?;
        }
        if let Some(stage) = &h.stage {
            m.serialize_entry("stage", stage)?;
        }
        m.end()
    }
}

struct History<'a>(&'a [HistoryEntry]);

impl Serialize for History<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(SortedEntry))
    }
}

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.task;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("created_at", &format_ms(t.created_at))?;
        m.serialize_entry("data", &t.data)?;
        m.serialize_entry("deadline", &t.deadline.map(format_ms))?;
        m.serialize_entry("default_action", &t.default_action)?;
        if self.with_history {
            m.serialize_entry("history", &History(&t.history))?;
        }
        m.serialize_entry("id", &t.id)?;
        m.serialize_entry("message", &t.message)?;
        m.serialize_entry("operation", &t.operation)?;
        m.serialize_entry("org", &t.org)?;
        m.serialize_entry("request_id", &t.request_id)?;
        m.serialize_entry("resolved_by", &t.resolved_by)?;
        m.serialize_entry("result", &t.result)?;
        m.serialize_entry("stage", &t.stage)?;
        m.serialize_entry("stage_started_at", &format_ms(t.stage_started_at))?;
        m.serialize_entry("stages", &t.stages)?;
        m.serialize_entry("state", &t.state)?;
        m.serialize_entry("subject", &t.subject)?;
        m.serialize_entry("submitted_by", &t.submitted_by)?;
        m.end()
    }
}

impl Task {
    /// The task as JSON, the same bytes as `serde_json::to_vec(&serde_json::to_value(task))`.
    pub fn to_json(&self) -> Vec<u8> {
        let sorted = Sorted {
            task: self,
            with_history: true,
        };
        serde_json::to_vec(&sorted).unwrap_or_default()
    }

    /// `Task::announcement` as JSON bytes (the task without its history).
    pub fn announcement_json(&self) -> Vec<u8> {
        let sorted = Sorted {
            task: self,
            with_history: false,
        };
        serde_json::to_vec(&sorted).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::tasks::{DefaultAction, HistoryEntry, Task, TaskState};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn via_value(t: &Task) -> Vec<u8> {
        serde_json::to_vec(&serde_json::to_value(t).unwrap()).unwrap()
    }

    fn task(opt: bool, history: usize, data: Value) -> Task {
        Task {
            id: "0193f6c2-\"quoted\"".into(),
            request_id: "r-\u{e9}\n".into(),
            operation: "vapp.instantiate".into(),
            org: "acme".into(),
            subject: opt.then(|| "urn:acme:vapp:42".into()),
            data: data.clone(),
            state: if opt {
                TaskState::Resumed
            } else {
                TaskState::Blocked
            },
            stage: 1,
            stages: vec![vec!["a".into(), "b".into()], vec![]],
            created_at: 1_795_341_600_123,
            deadline: (!opt).then_some(1_795_341_660_123),
            default_action: DefaultAction::Resume,
            result: if opt { data } else { Value::Null },
            resolved_by: opt.then(|| "ext".into()),
            message: opt.then(|| "ok".into()),
            submitted_by: "platform-1".into(),
            stage_started_at: 0,
            history: (0..history)
                .map(|i| HistoryEntry {
                    at: 1_795_341_600_123 + i as u64,
                    by: format!("p{i}"),
                    action: "resume".into(),
                    message: (i % 2 == 1).then(|| format!("m{i}")),
                    stage: (i % 3 != 0).then_some(i),
                    result: (i % 2 == 0).then(|| serde_json::json!({"k": i})),
                })
                .collect(),
        }
    }

    #[test]
    fn same_bytes_as_through_a_value() {
        for opt in [false, true] {
            for history in [0, 1, 4] {
                let data = json!({"z": [1, 2.5, null], "a": {"y": "x", "b": true}});
                let t = task(opt, history, data);
                assert_eq!(t.to_json(), via_value(&t));
                let ann = serde_json::to_vec(&t.announcement()).unwrap();
                assert_eq!(t.announcement_json(), ann);
            }
        }
    }

    proptest! {
        #[test]
        fn same_bytes_for_any_data(keys in proptest::collection::vec("[a-z\"\\\\]{0,6}", 0..5), n in any::<i64>()) {
            let data: serde_json::Map<String, Value> =
                keys.into_iter().map(|k| (k, json!(n))).collect();
            let t = task(n % 2 == 0, (n.unsigned_abs() % 3) as usize, Value::Object(data));
            prop_assert_eq!(t.to_json(), via_value(&t));
        }
    }
}
