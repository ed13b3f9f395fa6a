//! What can go wrong talking to the broker, as one error type. A refused command keeps the
//! protocol error code (`Error::Command`), so callers can match on it.

use crate::wire::{CommandError, ErrorCode};
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// CONNECT refused for the name/password.
    #[error("the broker refused the connection: bad credentials for principal '{user}'")]
    BadCredentials { user: String },
    /// CONNECT refused for another reason.
    #[error("the broker refused the connection: {0}")]
    Refused(String),
    /// No TCP (or TLS) connection could be made.
    #[error("cannot reach the broker: {0}")]
    Unreachable(String),
    /// The peer answered, but not in MQTT (e.g. the URL names an HTTP port).
    #[error("{0}")]
    NotMqtt(String),
    /// No CONNACK in time.
    #[error("no answer from the broker at {addr} within {wait:?}")]
    ConnectTimeout { addr: String, wait: Duration },
    /// The connection dropped and is not being re-established.
    #[error("connection to the broker lost: {0}")]
    Lost(String),
    /// `close` was called.
    #[error("connection closed")]
    Closed,
    /// The broker answered SUBSCRIBE with a failure code.
    #[error("the broker refused the subscription to {filter}: {reason}")]
    SubscribeRefused { filter: String, reason: String },
    /// No SUBACK in time.
    #[error("no SUBACK for {filter} within {wait:?}")]
    SubscribeTimeout { filter: String, wait: Duration },
    /// No reply to a command in time.
    #[error("no reply to '{command}' within {wait:?}")]
    Timeout { command: String, wait: Duration },
    /// The broker replied with an error.
    #[error("{0}")]
    Command(CommandError),
    /// The request could not be sent as given.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// TLS settings that cannot be used (unreadable CA file, no usable roots).
    #[error("tls: {0}")]
    Tls(String),
}

impl Error {
    /// The protocol error code when the broker refused the command.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Command(e) => Some(e.code),
            _ => None,
        }
    }
}
