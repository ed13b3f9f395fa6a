//! Wire error codes (SPEC.md "Commands") and the error body every failed command reply carries.
//! This is the one place where a failure is mapped to a stable code string.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes of SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    SchemaViolation,
    InvalidName,
    UnknownCommand,
    NotFound,
    Forbidden,
    Conflict,
    PayloadTooLarge,
    Overloaded,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadJson,
        ErrorCode::SchemaViolation,
        ErrorCode::InvalidName,
        ErrorCode::UnknownCommand,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::SchemaViolation => "schema_violation",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the services gateway answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadJson | ErrorCode::SchemaViolation | ErrorCode::InvalidName => 400,
            ErrorCode::UnknownCommand | ErrorCode::NotFound => 404,
            ErrorCode::Forbidden => 403,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Overloaded => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failing location of a schema violation: a JSON Pointer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub path: String,
    pub message: String,
}

/// The `error` object of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, why)
    }

    pub fn conflict(why: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, why)
    }

    pub fn internal(why: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, why)
    }
}

/// Cuts `s` to at most `max` characters, marking the cut, so client-chosen strings cannot
/// blow up an error message.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}...", &s[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_spec_strings() {
        let e = CommandError::new(ErrorCode::PayloadTooLarge, "too big");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "payload_too_large");
        assert!(v.get("details").is_none());
        assert_eq!(ErrorCode::SchemaViolation.as_str(), "schema_violation");
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn clip_cuts_on_char_boundaries() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc...");
        assert_eq!(clip("ääää", 2), "ää...");
    }
}
