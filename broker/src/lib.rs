//! extbus broker library: config, principals, the embedded MQTT bus and its gate, the
//! coordinator loop, the HTTP listener and the CLI. `main.rs` only parses and calls in here.
//!
//! # Layout
//! - `principals`: identities, roles, argon2 secrets. `registry`: what extensions registered.
//! - `metrics`: counters for `/metrics`. `notices`: gate -> coordinator messages.

pub mod metrics;
pub mod notices;
pub mod principals;
pub mod registry;
