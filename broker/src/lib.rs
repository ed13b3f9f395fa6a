//! extbus broker library: config, principals, the embedded MQTT bus and its gate, the
//! coordinator loop, the events log, the HTTP listener and the CLI. `main.rs` only parses
//! and calls in here.
//!
//! # Layout
//! - `config`: layered configuration; `reload`: SIGHUP. `logging`: the binary's tracing subscriber.
//!   `log_limit`: per-second budgets for lines a flood could repeat.
//! - `principals`: identities, roles, argon2 secrets. `registry`: what extensions registered;
//!   `presence`: who is connected.
//! - `auth`: credential checks for MQTT and HTTP (cache, throttle, bounded argon2 workers).
//! - `mqtt`: embedded rumqttd and the gate (no rumqttd type leaves it).
//! - `coordinator`: the single-writer loop (commands, timers, group commit).
//! - `eventlog`: durable, sequenced audit events, written into the batch `Txn` (the store's
//!   named trees, `extbus_callouts::Trees`, committed once per batch). `clock`: injected time.
//! - `datadir`: the data dir and store kept private (0700 / 0600). `backup`: offline copies.
//! - `http`: healthz, metrics, the services gateway. `server`: start/stop everything.
//!   `cli`: command line. `services`: extension services (router, pending requests).
//! - `exec`: executable extensions the broker runs for callouts (CloudStack style).
//! - `metrics`: every `/metrics` family, typed, defined once. `notices`: gate -> coordinator
//!   messages. `link`: the channel between the coordinator and in-process extensions.
//!
//! # How to add a command family
//! A family's commands are decoded once in bus-schema and applied by one broker module:
//! 1. `bus-schema/schemas/<command>.json` for each request body, each listed in
//!    `bus-schema/src/validate.rs` (`SCHEMAS`) and in `asyncapi.rs` (`CHANNELS`), with an
//!    example in `examples.rs`.
//! 2. `bus-schema/src/<family>.rs`: the request and reply types (re-exported in its `lib.rs`),
//!    plus builders/parsers in `topics.rs` for any topic of its own.
//! 3. `bus-schema/src/commands.rs`: a `Command` variant in each of its matches (parse, suffix,
//!    kind, permitted roles, schema name, read-only, display); `decode.rs`: a `Body` variant
//!    and the arm of `check` that parses the body once and checks its names.
//! 4. `broker/src/coordinator/<family>.rs`: functions that take the typed body and a `Ctx`;
//!    one `mod` line in `coordinator/mod.rs` and one arm per command in `dispatch::apply`.
//! 5. One line per command kind in `metrics/labels.rs` (`COMMAND_SAMPLES`); settings, if any,
//!    in `config/mod.rs`. Who may publish a command needs no gate change (inboxes are per
//!    principal; roles are checked by `Command::permitted`); new subscribable topics do
//!    (`mqtt/gate/acl.rs`).

pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod datadir;
pub mod eventlog;
pub mod exec;
pub mod http;
pub mod link;
pub mod log_limit;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod notices;
pub mod presence;
pub mod principals;
pub mod registry;
pub mod reload;
pub mod server;
pub mod services;
