//! The stored form of a task: the wire `Task` plus what the state machine needs to continue
//! (per-stage timeouts and default actions, the renotify time). Encoding and decoding only.

use extbus_schema::tasks::Task;
use serde::{Deserialize, Serialize};

use crate::error::CalloutError;
use crate::rules::StageRule;

/// The latest instant the wire format can express (9999-12-31T23:59:59.999Z); every computed
/// time is capped here so that a stored time always reads back unchanged.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

pub(crate) fn cap(ms: u64) -> u64 {
    ms.min(MAX_TIME_MS)
}

/// What `t/<id>` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub task: Task,
    /// One entry per stage, parallel to `task.stages`.
    pub stage_rules: Vec<StageRule>,
    /// When the blocked task is next announced again; `None` once final or with renotify off.
    #[serde(default)]
    pub renotify_at: Option<u64>,
    /// When the task ended (resumed, cancelled, aborted); keys it in the `f/` index that
    /// retention purges by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

impl Stored {
    pub fn encode(&self) -> Result<Vec<u8>, CalloutError> {
        serde_json::to_vec(self).map_err(|e| CalloutError::corrupt(self.task.id.as_bytes(), e))
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Stored, CalloutError> {
        let s: Stored = serde_json::from_slice(bytes).map_err(|e| CalloutError::corrupt(key, e))?;
        if s.stage_rules.len() != s.task.stages.len() {
            return Err(CalloutError::corrupt(
                key,
                "stage rules do not match stages",
            ));
        }
        if s.task.stage >= s.task.stages.len().max(1) {
            return Err(CalloutError::corrupt(key, "stage index out of range"));
        }
        Ok(s)
    }

    /// The rule of the current stage.
    pub fn current_rule(&self) -> Option<&StageRule> {
        self.stage_rules.get(self.task.stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extbus_schema::tasks::{DefaultAction, TaskState};
    use serde_json::Value;

    fn sample() -> Stored {
        Stored {
            task: Task {
                id: "0193".into(),
                request_id: "r".into(),
                operation: "vapp.instantiate".into(),
                org: "acme".into(),
                subject: None,
                data: Value::Null,
                state: TaskState::Blocked,
                stage: 0,
                stages: vec![vec!["e".into()]],
                created_at: 5,
                deadline: Some(MAX_TIME_MS),
                default_action: DefaultAction::Abort,
                result: Value::Null,
                resolved_by: None,
                message: None,
                submitted_by: "p".into(),
                stage_started_at: 5,
                history: vec![],
            },
            stage_rules: vec![StageRule {
                timeout_ms: 1,
                max_timeout_ms: 2,
                default_action: DefaultAction::Abort,
            }],
            renotify_at: Some(7),
            finished_at: None,
        }
    }

    #[test]
    fn round_trips_even_at_the_latest_time() {
        let s = sample();
        let back = Stored::decode(b"t/0193", &s.encode().unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn bad_data_is_an_error_not_a_panic() {
        assert!(Stored::decode(b"t/x", b"{not json").is_err());
        let mut s = sample();
        s.task.stage = 3;
        assert!(Stored::decode(b"t/x", &s.encode().unwrap()).is_err());
        let mut s = sample();
        s.stage_rules.clear();
        assert!(Stored::decode(b"t/x", &s.encode().unwrap()).is_err());
    }
}
