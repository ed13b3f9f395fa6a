//! The reply every command gets on `extbus/out/<principal>/replies` (SPEC.md "Commands"):
//! `{"correlation_id"?, "command", "ok", "result" | "error"}`, and its builders.
//! Exactly one of `result` and `error` is present on the wire.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::errors::CommandError;

/// A command's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Echo of the command's `correlation_id` (or MQTT 5 Correlation Data); omitted when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Value>,
    /// The command's topic suffix, e.g. `tasks/0193.../resume`.
    pub command: String,
    pub ok: bool,
    /// Present (possibly `null`) on success, omitted on error.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub result: Option<Value>,
    /// Present on error, omitted on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Reply {
    /// A successful reply carrying `result`.
    pub fn ok(command: impl Into<String>, correlation_id: Option<Value>, result: Value) -> Reply {
        Reply {
            correlation_id,
            command: command.into(),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failed reply carrying `error`.
    pub fn err(
        command: impl Into<String>,
        correlation_id: Option<Value>,
        error: CommandError,
    ) -> Reply {
        Reply {
            correlation_id,
            command: command.into(),
            ok: false,
            result: None,
            error: Some(error),
        }
    }

    /// A reply for the outcome of a command.
    pub fn from_result(
        command: impl Into<String>,
        correlation_id: Option<Value>,
        outcome: Result<Value, CommandError>,
    ) -> Reply {
        match outcome {
            Ok(v) => Reply::ok(command, correlation_id, v),
            Err(e) => Reply::err(command, correlation_id, e),
        }
    }

    /// The reply as the client sees it: its result, or its error. A reply claiming failure
    /// without an error body is `internal`.
    pub fn into_result(self) -> Result<Value, CommandError> {
        match (self.ok, self.error) {
            (true, _) => Ok(self.result.unwrap_or(Value::Null)),
            (false, Some(e)) => Err(e),
            (false, None) => Err(CommandError::internal("failed reply without an error")),
        }
    }

    /// The JSON bytes published on the replies topic.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{ErrorCode, ErrorDetail};
    use serde_json::json;

    #[test]
    fn success_matches_the_spec() {
        let r = Reply::ok(
            "tasks/0193/resume",
            Some(json!("c-17")),
            json!({"state": "resumed"}),
        );
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"correlation_id":"c-17","command":"tasks/0193/resume","ok":true,"result":{"state":"resumed"}}"#
        );
        let back: Reply = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.into_result().unwrap(), json!({"state": "resumed"}));
    }

    #[test]
    fn error_matches_the_spec() {
        let e =
            CommandError::new(ErrorCode::SchemaViolation, "bad").with_details(vec![ErrorDetail {
                path: "/timeout_ms".into(),
                message: "-1 is less than the minimum of 1".into(),
            }]);
        let r = Reply::err("tasks/submit", Some(json!("c-18")), e.clone());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"correlation_id": "c-18", "command": "tasks/submit", "ok": false,
                   "error": {"code": "schema_violation", "message": "bad",
                             "details": [{"path": "/timeout_ms", "message": "-1 is less than the minimum of 1"}]}})
        );
        let back: Reply = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.into_result().unwrap_err(), e);
    }

    #[test]
    fn null_results_and_missing_correlation_survive_a_round_trip() {
        let r = Reply::ok("tasks/query", None, Value::Null);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"command": "tasks/query", "ok": true, "result": null})
        );
        let back: Reply = serde_json::from_value(v).unwrap();
        assert_eq!(back.result, Some(Value::Null));
        assert_eq!(back, r);

        let n = Reply::ok("x", Some(json!(17)), json!([]));
        assert_eq!(serde_json::to_value(&n).unwrap()["correlation_id"], 17);
    }

    #[test]
    fn from_result_and_broken_replies() {
        let e = CommandError::not_found("no task t");
        let r = Reply::from_result("tasks/t/get", None, Err(e.clone()));
        assert!(!r.ok);
        assert!(serde_json::to_value(&r).unwrap().get("result").is_none());
        let broken = Reply {
            correlation_id: None,
            command: "x".into(),
            ok: false,
            result: None,
            error: None,
        };
        assert_eq!(broken.into_result().unwrap_err().code, ErrorCode::Internal);
    }
}
