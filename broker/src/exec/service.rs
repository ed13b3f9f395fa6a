//! Executable extensions answering service requests: runs an entry's program (action
//! `service`) with the request as its payload and turns its answer into the response. The
//! answer's `result` is the response (`status`, `headers`, `json` or base64 `body`) or, when it
//! has none of those keys, a JSON body sent with 200. A failed run answers 502 (504 when it was
//! killed at its timeout); the caller never sees the program's stderr, the log does.

use super::{runner, Entry};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::services::hub::Outcome;
use crate::services::{error_body, LocalAnswerer};
use extbus_schema::{Body, Decoded, ErrorCode, ServiceRequest, ServiceResponse};
use serde_json::{json, Map, Value};

/// Keys that make a `result` a response rather than a JSON body.
const RESPONSE_KEYS: [&str; 4] = ["status", "headers", "json", "body"];

impl LocalAnswerer for Entry {
    fn owner(&self) -> &str {
        &self.config.name
    }

    fn answer<'a>(
        &'a self,
        req: &'a ServiceRequest,
        clock: &'a dyn Clock,
        metrics: &'a Metrics,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Outcome>> + Send + 'a>> {
        Box::pin(answer(self, req, clock, metrics))
    }
}

/// Runs the program for `req` once a run slot is free, within the request's deadline (on
/// `clock`) and the entry's `timeout_ms`. `None`: the deadline passed while waiting for a slot.
pub async fn answer(
    e: &Entry,
    req: &ServiceRequest,
    clock: &dyn Clock,
    metrics: &Metrics,
) -> Option<Outcome> {
    let payload = serde_json::to_value(req).unwrap_or(Value::Null);
    let outcome = e
        .run_within("service", &payload, req.deadline, clock, metrics)
        .await?;
    if let Err(f) = &outcome {
        tracing::warn!(exec = %e.config.name, request_id = %req.id, path = %req.path, reason = %f, "executable extension gave no answer");
    }
    Some(response(&e.config.name, &req.id, &outcome))
}

/// The response a run's outcome stands for.
pub fn response(
    name: &str,
    id: &str,
    outcome: &Result<runner::Answer, runner::Failure>,
) -> Outcome {
    let a = match outcome {
        Ok(a) => a,
        Err(runner::Failure::Timeout(ms)) => {
            return error(
                504,
                ErrorCode::Overloaded,
                id,
                format!("executable extension '{name}' gave no answer within {ms} ms"),
            )
        }
        Err(f) => {
            return error(
                502,
                ErrorCode::Internal,
                id,
                format!("executable extension '{name}' {}", brief(f)),
            )
        }
    };
    let shaped = a
        .result
        .as_object()
        .is_some_and(|o| RESPONSE_KEYS.iter().any(|k| o.contains_key(*k)));
    if shaped {
        let mut o = a.result.as_object().cloned().unwrap_or_default();
        o.insert("id".into(), json!(id));
        o.entry("status")
            .or_insert(json!(if a.success { 200 } else { 500 }));
        return checked(o);
    }
    if !a.success {
        let message = a
            .message
            .clone()
            .unwrap_or_else(|| format!("executable extension '{name}' answered error"));
        return error(500, ErrorCode::Internal, id, message);
    }
    let (status, json) = match (&a.result, &a.message) {
        (Value::Null, None) => (204, None),
        (Value::Null, Some(m)) => (200, Some(json!({"message": m}))),
        (v, _) => (200, Some(v.clone())),
    };
    Outcome::Response(ServiceResponse {
        id: id.to_string(),
        status,
        headers: Default::default(),
        body: None,
        json,
    })
}

/// A response object from the program, checked as `services/responses` checks an extension's.
fn checked(o: Map<String, Value>) -> Outcome {
    match extbus_schema::decode_value("services/responses", Value::Object(o), usize::MAX) {
        Ok(Decoded {
            typed: Body::ServiceResponse(r),
            ..
        }) => Outcome::Response(*r),
        Ok(_) => Outcome::Malformed("not a service response".into()),
        Err(f) => Outcome::Malformed(f.error.message),
    }
}

fn error(status: u16, code: ErrorCode, id: &str, message: String) -> Outcome {
    Outcome::Response(ServiceResponse {
        id: id.to_string(),
        status,
        headers: Default::default(),
        body: None,
        json: Some(error_body(code, &message)),
    })
}

/// The failure without the program's stderr, which may hold what the caller must not see.
fn brief(f: &runner::Failure) -> String {
    match f {
        runner::Failure::Exit { code, .. } => format!("exited with status {code}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner::{Answer, Failure};

    fn ok(success: bool, message: Option<&str>, result: Value) -> Result<Answer, Failure> {
        Ok(Answer {
            success,
            message: message.map(str::to_string),
            result,
        })
    }

    fn resp(o: Outcome) -> ServiceResponse {
        match o {
            Outcome::Response(r) => r,
            Outcome::Malformed(m) => panic!("malformed: {m}"),
        }
    }

    #[test]
    fn answers_become_responses() {
        let r = resp(response("g", "1", &ok(true, None, json!({"hello": "x"}))));
        assert_eq!((r.id.as_str(), r.status), ("1", 200));
        assert_eq!(r.json, Some(json!({"hello": "x"})));
        let shaped = json!({"status": 201, "headers": {"location": "/a"}, "json": {"a": 1}});
        let r = resp(response("g", "1", &ok(true, None, shaped)));
        assert_eq!((r.status, r.headers["location"].as_str()), (201, "/a"));
        let r = resp(response("g", "1", &ok(true, None, json!({"body": "aGk="}))));
        assert_eq!((r.status, r.body.as_deref()), (200, Some("aGk=")));
        assert_eq!(
            resp(response("g", "1", &ok(true, None, Value::Null))).status,
            204
        );
        let r = resp(response("g", "1", &ok(false, Some("no"), Value::Null)));
        assert_eq!(r.status, 500);
        assert_eq!(r.json.unwrap()["error"]["message"], "no");
        let denied = json!({"status": 403, "json": {"why": "x"}});
        assert_eq!(
            resp(response("g", "1", &ok(false, None, denied))).status,
            403
        );
        let bad = json!({"status": 99});
        assert!(matches!(
            response("g", "1", &ok(true, None, bad)),
            Outcome::Malformed(_)
        ));
    }

    #[test]
    fn failed_runs_answer_502_or_504_without_stderr() {
        let exit = Err(Failure::Exit {
            code: "3".into(),
            stderr: "; stderr: secret".into(),
        });
        let r = resp(response("g", "1", &exit));
        assert_eq!(r.status, 502);
        let m = r.json.unwrap()["error"]["message"].to_string();
        assert!(m.contains("status 3") && !m.contains("secret"), "{m}");
        let r = resp(response("g", "1", &Err(Failure::Timeout(500))));
        assert_eq!(r.status, 504);
        assert_eq!(r.json.unwrap()["error"]["code"], "overloaded");
    }
}
