//! SPEC.md's example payloads (command bodies from their `Spec` rows), shared by the tests of
//! `decode`, `validate` and `asyncapi`.
//! Test-only: compiled under `cfg(test)`.

use serde_json::{json, Value};

/// One example body per command (its `Spec` row's), keyed by sample inbox topic suffix.
pub fn commands() -> Vec<(String, Value)> {
    crate::spec::all()
        .map(|s| {
            let body = serde_json::from_str(s.example)
                .unwrap_or_else(|e| panic!("example of {}: {e}", s.suffix));
            (s.sample(), body)
        })
        .collect()
}

/// The example body of command `suffix`.
pub fn command(suffix: &str) -> Value {
    commands()
        .into_iter()
        .find(|(s, _)| s == suffix)
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
