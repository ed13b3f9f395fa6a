//! The core end-to-end suites again, each broker in external bus mode beside a real Mosquitto
//! with dynamic security (the harness switches on this binary's name; see `extbus_tests`).
//! Tests of what only the embedded bus does return early here, saying so (`embedded_only!`).
//! Run alone: `cargo test -p extbus-tests --test on_mosquitto`; any other suite in this mode:
//! `EXTBUS_TEST_BUS=external cargo test -p extbus-tests --test NAME`.

#[path = "entities.rs"]
mod entities;
#[path = "events.rs"]
mod events;
#[path = "http_api.rs"]
mod http_api;
#[path = "registrations.rs"]
mod registrations;
#[path = "samples.rs"]
mod samples;
#[path = "services.rs"]
mod services;
#[path = "tasks.rs"]
mod tasks;
