//! Entity revisions as HTTP preconditions: reads of an entity carry `ETag: "<revision>"`, and
//! `If-Match` on PUT / DELETE of an entity names the revision the change is based on. A stale
//! one is 412 (`conflict` in the body); a body `revision` keeps working without the header.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use extbus_schema::{CommandError, ErrorCode};
use serde_json::Value;

/// Commands whose body revision `If-Match` may give.
const CONDITIONAL: &[&str] = &["entities/{entity_id}/update", "entities/{entity_id}/delete"];

/// The revision `If-Match` names for `command`: `None` without the header (or for another
/// command); an error for a value that is not one quoted revision.
pub fn if_match(command: &str, headers: &HeaderMap) -> Result<Option<u64>, CommandError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    if !CONDITIONAL.contains(&command) {
        return Ok(None);
    }
    let text = v.to_str().unwrap_or("").trim();
    let bare = text.strip_prefix("W/").unwrap_or(text);
    let inner = bare
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(bare);
    inner.parse::<u64>().map(Some).map_err(|_| {
        CommandError::new(
            ErrorCode::SchemaViolation,
            format!(
                "If-Match must be one entity revision as its ETag gives it (\"3\"), not '{}'",
                text.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Puts the `If-Match` revision in the body; a body naming another revision is refused.
pub fn apply(body: &mut Value, revision: u64) -> Result<(), CommandError> {
    let Some(o) = body.as_object_mut() else {
        return Ok(());
    };
    match o.get("revision").and_then(Value::as_u64) {
        Some(r) if r != revision => Err(CommandError::new(
            ErrorCode::SchemaViolation,
            format!("If-Match names revision {revision} but the body revision {r}"),
        )),
        _ => {
            o.insert("revision".into(), revision.into());
            Ok(())
        }
    }
}

/// Whether `e` is the refusal of a stale revision (412 when `If-Match` was given).
pub fn is_stale(e: &CommandError) -> bool {
    e.code == ErrorCode::Conflict && e.details.iter().any(|d| d.path == "/revision")
}

pub const PRECONDITION_FAILED: StatusCode = StatusCode::PRECONDITION_FAILED;

/// `ETag: "<revision>"` for an answer that is an entity.
pub fn tag(v: &Value) -> Option<HeaderValue> {
    let is_entity = v
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with(extbus_schema::entities::ENTITY_ID_PREFIX));
    let rev = v.get("revision").and_then(Value::as_u64)?;
    is_entity
        .then(|| HeaderValue::from_str(&format!("\"{rev}\"")).ok())
        .flatten()
}
