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
//! - `metadata`: object metadata entries and their search index (`metadata::plan`); the
//!   commands are `coordinator/metadata.rs`.
//! - `entities`: entity types (compiled once), stored entities, their index and sealed secure
//!   fields; the commands are `coordinator/entities.rs`.
//! - `datadir`: the data dir and store kept private (0700 / 0600). `backup`: offline copies.
//! - `http`: healthz, metrics, the operator console's embedded files (`broker/console/`) and
//!   its sessions, the HTTP API (`http::api`: route rows, event stream, OpenAPI),
//!   the services gateway. `server`: start/stop everything.
//!   `cli`: command line. `services`: extension services (router, pending requests).
//!   Custom actions and UI plugins are a command family (`coordinator/actions.rs`, runs
//!   waiting for answers in `coordinator/action_runs.rs`).
//! - `exec`: executable extensions the broker runs for callouts, services and actions
//!   (CloudStack style).
//! - `metrics`: every `/metrics` family, typed, defined once. `notices`: gate -> coordinator
//!   messages. `link`: the channel between the coordinator and in-process callers (exec, the
//!   HTTP API). `feed`: each durable batch's events for in-process readers (event streams).
//!
//! # How to add a command family
//! A family's commands are described once, decoded once in bus-schema and applied by one broker
//! module. Eleven files, of which `<family>.rs` and `coordinator/<family>.rs` are its own:
//! 1. `bus-schema/schemas/<command>.json` for each request body.
//! 2. `bus-schema/src/<family>.rs`: the request and reply types (re-exported in its `lib.rs`)
//!    and `FAMILY`, one `spec::Spec` row per command: suffix pattern, kind, schema, AsyncAPI
//!    channel, roles, read-only flag, example body and how its `Command` is built. Schemas,
//!    channels, examples, role checks and metric labels are all read from these rows.
//! 3. `bus-schema/src/spec.rs`: the family in `FAMILIES`, the only list of families.
//! 4. `bus-schema/src/commands.rs`: a `Command` variant with its `suffix` and `spec` arms;
//!    `decode.rs`: a `Body` variant and the arm of `check` that parses the body once and
//!    checks its names.
//! 5. `broker/src/coordinator/<family>.rs`: functions that take the typed body and a `Ctx`;
//!    one `mod` line in `coordinator/mod.rs` and one arm per command in `dispatch::apply`.
//! 6. `docs/protocol.md`: a row per command (`bus-schema/tests/protocol_doc.rs` checks it), and
//!    the addresses in `asyncapi`'s test `every_spec_channel_is_described`.
//!
//! Only if the family needs them: for a new `{parameter}` level, its sample value in
//! `Spec::sample` and its description in `asyncapi::PARAMETERS`; builders/parsers in
//! `topics.rs` for a topic of its own (and its outbound schema and channel in
//! `validate::OUTBOUND` / `asyncapi`), settings in `config/`, and a gate change for new subscribable topics (`mqtt/gate/acl.rs`). Who may
//! publish a command needs no gate change: inboxes are per principal, roles come from its row.
//!
//! To serve a command over HTTP too: one row per route in `http/api/routes.rs` `ROUTES`
//! (method, path pattern, command suffix pattern, body from query or JSON, success status),
//! and the route in `docs/protocol.md` "HTTP API". The handler, the status mapping, the
//! OpenAPI document and its tests read the rows; nothing else in `http/` changes.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod datadir;
pub mod entities;
pub mod eventlog;
pub mod exec;
pub mod external;
pub mod feed;
pub mod http;
pub mod link;
pub mod log_limit;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod mqtt;
pub mod notices;
pub mod presence;
pub mod principals;
pub mod registry;
pub mod reload;
pub mod server;
pub mod services;
