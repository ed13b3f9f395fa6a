//! Extension-service messages of SPEC.md "Extension services": the request the broker publishes
//! to a service, the extension's response, and the MQTT-native call a client sends instead of HTTP,
//! with their command rows (`FAMILY`).
//! Bodies stay base64 text here; encoding, routing and timeouts belong to the broker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::Command;
use crate::roles::Role;
use crate::spec::{arg, Spec, ANY_ROLE};
use crate::time_fmt;
use crate::validate::schema;

/// A request for an extension service, published on `extbus/services/<v>/<n>/<ver>/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRequest {
    pub id: String,
    pub method: String,
    pub path: String,
    /// The raw query string without `?`; empty when there is none.
    #[serde(default)]
    pub query: String,
    /// Header names in lowercase.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, base64 (standard alphabet, padded).
    #[serde(default)]
    pub body: String,
    /// The authenticated caller.
    pub principal: String,
    /// The caller's orgs (`*` for all).
    pub orgs: Vec<String>,
    /// When the broker stops waiting for the response (RFC 3339 on the wire).
    #[serde(with = "time_fmt::ms")]
    pub deadline: u64,
}

impl ServiceRequest {
    /// The request a `services/<v>/<n>/<ver>` command stands for, once the broker has given it
    /// an id, the caller's identity and a deadline.
    pub fn from_call(
        call: ServiceCall,
        id: String,
        principal: &str,
        orgs: Vec<String>,
        deadline: u64,
    ) -> ServiceRequest {
        let mut headers = call.headers;
        let body = match call.json {
            Some(json) => {
                use base64::Engine as _;
                if !headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.insert("content-type".into(), "application/json".into());
                }
                let text = serde_json::to_vec(&json).unwrap_or_default();
                base64::engine::general_purpose::STANDARD.encode(text)
            }
            None => call.body,
        };
        ServiceRequest {
            id,
            method: call.method,
            path: call.path,
            query: call.query,
            headers,
            body,
            principal: principal.to_string(),
            orgs,
            deadline,
        }
    }
}

/// Body of `services/responses`: an extension's answer to request `id`. The body is either
/// base64 `body` or a `json` value (not both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

impl ServiceResponse {
    /// The response without its `id`, as the `result` of an MQTT-native service call's reply.
    pub fn to_result(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
        }
        v
    }
}

/// Body of `services/<vendor>/<name>/<version>`: a service request made over MQTT. The response
/// arrives as the command's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceCall {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Base64 body; empty for none.
    #[serde(default)]
    pub body: String,
    /// A JSON body instead of `body` (not both): sent as its JSON text, with
    /// `content-type: application/json` unless the call names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// The commands of this family (`spec::FAMILIES`).
pub const FAMILY: &[Spec] = &[RESPONSE, CALL];

pub const RESPONSE: Spec = Spec {
    suffix: "services/responses",
    kind: "services/responses",
    schema: schema!("service-response", Inbound),
    channel: "cmdServiceResponse",
    description: "extension: answer a service request.",
    roles: &[Role::Extension],
    read_only: false,
    example: r#"{"id": "req-uuid", "status": 200, "headers": {"content-type": "text/plain"}, "body": "aGk="}"#,
    build: |_| Command::ServiceResponse,
};

pub const CALL: Spec = Spec {
    suffix: "services/{vendor}/{name}/{version}",
    kind: "services/call",
    schema: schema!("service-call", Inbound),
    channel: "cmdServiceCall",
    description:
        "any role: call an extension service over MQTT; the response is the reply's result.",
    roles: ANY_ROLE,
    read_only: false,
    example: r#"{"method": "POST", "path": "/ext/acme/greeter/hello", "query": "lang=en", "headers": {"content-type": "application/json"}, "body": "eyJhIjoxfQ=="}"#,
    build: |p| Command::ServiceCall {
        vendor: arg(p, 0),
        name: arg(p, 1),
        version: arg(p, 2),
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_request() -> Value {
        json!({"id": "req-uuid", "method": "POST", "path": "/ext/acme/greeter/hello",
               "query": "lang=en", "headers": {"content-type": "application/json"},
               "body": "eyJhIjoxfQ==", "principal": "alice", "orgs": ["acme"],
               "deadline": "2026-11-22T10:00:10.000Z"})
    }

    #[test]
    fn request_round_trips() {
        let r: ServiceRequest = serde_json::from_value(spec_request()).unwrap();
        assert_eq!(r.deadline, 1_795_341_610_000);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(serde_json::to_value(&r).unwrap(), spec_request());
    }

    #[test]
    fn call_becomes_a_request() {
        let c: ServiceCall =
            serde_json::from_value(json!({"method": "GET", "path": "/x"})).unwrap();
        assert_eq!(c.query, "");
        assert!(c.headers.is_empty() && c.body.is_empty());
        let r = ServiceRequest::from_call(c.clone(), "id-1".into(), "bob", vec!["*".into()], 5);
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/x"));
        assert_eq!(r.principal, "bob");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"method": "GET", "path": "/x", "query": "", "headers": {}, "body": ""})
        );
        let j: ServiceCall =
            serde_json::from_value(json!({"method": "POST", "path": "/y", "json": {"a": 1}}))
                .unwrap();
        let r = ServiceRequest::from_call(j, "id-2".into(), "bob", vec![], 5);
        assert_eq!(r.body, "eyJhIjoxfQ==");
        assert_eq!(r.headers["content-type"], "application/json");
    }

    #[test]
    fn response_forms() {
        let b: ServiceResponse = serde_json::from_value(
            json!({"id": "req-uuid", "status": 200, "headers": {"x": "1"}, "body": "aGk="}),
        )
        .unwrap();
        assert_eq!(b.body.as_deref(), Some("aGk="));
        assert_eq!(b.json, None);
        let j: ServiceResponse =
            serde_json::from_value(json!({"id": "r", "status": 201, "json": {"ok": 1}})).unwrap();
        assert!(j.headers.is_empty());
        assert_eq!(
            serde_json::to_value(&j).unwrap(),
            json!({"id": "r", "status": 201, "headers": {}, "json": {"ok": 1}})
        );
        assert_eq!(
            j.to_result(),
            json!({"status": 201, "headers": {}, "json": {"ok": 1}})
        );
        assert!(
            serde_json::from_value::<ServiceResponse>(json!({"id": "r", "status": 70000})).is_err()
        );
    }
}
