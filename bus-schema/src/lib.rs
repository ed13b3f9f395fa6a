//! extbus wire contract (SPEC.md): roles, error codes, timestamps, task messages.
//!
//! # Layout
//! - `roles`: principal roles. `errors`: stable error codes and the reply error body.
//! - `time_fmt`: epoch-ms <-> RFC 3339. `tasks`: blocking-task messages and callout rules.
//!
//! Must not depend on tokio, sled or rumqttd.

pub mod errors;
pub mod roles;
pub mod tasks;
pub mod time_fmt;

pub use errors::{CommandError, ErrorCode, ErrorDetail};
pub use roles::Role;
