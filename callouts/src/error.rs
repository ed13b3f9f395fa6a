//! The crate's one error type for store and configuration failures, and its mapping to the
//! wire error `internal`. Refusals of the state machine are `CommandError`s with the protocol's codes.

use extbus_schema::CommandError;

/// A failure of the store or of stored data; never a refusal of a command.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    /// sled reported an I/O or consistency failure.
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    /// A stored key or value could not be decoded.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A configured callout rule cannot be used.
    #[error("invalid rule: {0}")]
    InvalidRule(String),
    /// A batch wrote a key that must be new but was already committed: nothing was written.
    #[error("write conflict in tree {tree} at key {key}")]
    Conflict { tree: &'static str, key: String },
}

impl CalloutError {
    pub(crate) fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> Self {
        CalloutError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

impl From<CalloutError> for CommandError {
    fn from(e: CalloutError) -> Self {
        CommandError::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extbus_schema::ErrorCode;

    #[test]
    fn maps_to_internal() {
        let e: CommandError = CalloutError::corrupt(b"t/x", "bad json").into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(e.message.contains("t/x"), "{}", e.message);
    }
}
