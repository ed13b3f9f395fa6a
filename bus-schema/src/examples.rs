//! SPEC.md's example payloads, shared by the tests of `decode`, `validate` and `asyncapi`.
//! Test-only: compiled under `cfg(test)`.

use serde_json::{json, Value};

/// One example body per command, keyed by inbox topic suffix.
#[rustfmt::skip]
pub fn commands() -> Vec<(&'static str, Value)> {
    let manifest = json!({
        "rules": [{"operation": "vapp.instantiate", "orgs": ["*"], "priority": 50,
                   "timeout_ms": 60000, "max_timeout_ms": 3600000, "default_action": "abort"}],
        "services": [{"vendor": "acme", "name": "greeter", "version": "1.0.0",
                      "url_patterns": ["^/ext/acme/greeter/.*"], "priority": 50, "timeout_ms": 10000}]
    });
    vec![
        ("events", json!({"type": "vapp.instantiate", "org": "acme", "subject": "urn:acme:vapp:42",
                          "outcome": "succeeded", "id": "optional", "data": {"cpu": 2}})),
        ("events/replay", json!({"from_seq": 1040, "filter": "extbus/events/acme/#", "limit": 100})),
        ("tasks/submit", json!({"request_id": "idem-1", "operation": "vapp.instantiate",
                                "org": "acme", "subject": "urn:acme:vapp:42", "data": {"cpu": 2}})),
        ("tasks/0193f6c2-aa/resume", json!({"message": "approved", "result": {"host": "h1"}})),
        ("tasks/0193f6c2-aa/cancel", json!({"message": "no"})),
        ("tasks/0193f6c2-aa/abort", json!({})),
        ("tasks/0193f6c2-aa/extend", json!({"extend_ms": 60000, "message": "need time"})),
        ("tasks/query", json!({"state": "blocked", "operation": "vapp.instantiate", "org": "acme",
                               "limit": 10, "after": "0193f6c2-aa"})),
        ("tasks/0193f6c2-aa/get", json!({})),
        ("register", manifest),
        ("services/responses", json!({"id": "req-uuid", "status": 200,
                                      "headers": {"content-type": "text/plain"}, "body": "aGk="})),
        ("services/acme/greeter/1.0.0", json!({"method": "POST", "path": "/ext/acme/greeter/hello",
            "query": "lang=en", "headers": {"content-type": "application/json"}, "body": "eyJhIjoxfQ=="})),
    ]
}

/// The example body of command `suffix`.
pub fn command(suffix: &str) -> Value {
    commands()
        .into_iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no example for {suffix}"))
}

/// A task as SPEC.md shows it for `tasks/<id>/get`, with the fields the broker adds.
pub fn task() -> Value {
    json!({"id": "0193f6c2-aa", "request_id": "idem-1", "operation": "vapp.instantiate",
           "org": "acme", "subject": "urn:acme:vapp:42", "data": {"cpu": 2},
           "state": "blocked", "stage": 0, "stages": [["approver-1"], ["placer"]],
           "created_at": "2026-11-22T10:00:00.123Z", "deadline": "2026-11-22T10:01:00.123Z",
           "default_action": "abort", "result": null, "resolved_by": null, "message": null,
           "submitted_by": "platform-1", "stage_started_at": "2026-11-22T10:00:00.123Z",
           "history": [{"at": "2026-11-22T10:00:00.123Z", "by": "platform-1", "action": "submit"}]})
}
