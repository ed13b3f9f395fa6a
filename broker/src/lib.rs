//! extbus broker library: config, principals, the embedded MQTT bus and its gate, the
//! coordinator loop, the events log, the HTTP listener and the CLI. `main.rs` only parses
//! and calls in here.
//!
//! # Layout
//! - `config`: layered configuration. `logging`: the binary's tracing subscriber.
//! - `principals`: identities, roles, argon2 secrets. `registry`: what extensions registered.
//! - `auth`: credential checks for MQTT and HTTP (cache, throttle, bounded argon2 workers).
//! - `mqtt`: embedded rumqttd and the gate (no rumqttd type leaves it).
//! - `coordinator`: the single-writer loop (commands, timers, group commit).
//! - `eventlog`: durable, sequenced audit events. `clock`: injected time.
//! - `datadir`: the data dir and store kept private (0700 / 0600).
//! - `http`: healthz, metrics, the services gateway. `server`: start/stop everything.
//!   `cli`: command line. `services`: extension services (router, pending requests).
//! - `exec`: executable extensions the broker runs for callouts (CloudStack style).
//! - `metrics`: every `/metrics` family, typed, defined once. `notices`: gate -> coordinator
//!   messages.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod datadir;
pub mod eventlog;
pub mod exec;
pub mod http;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod notices;
pub mod principals;
pub mod registry;
pub mod server;
pub mod services;
