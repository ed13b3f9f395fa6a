//! A typed async client for extbus over MQTT 5 (rumqttc): connect as a principal (optionally
//! over TLS), send commands and await their reply by correlation id, subscribe to blocked-task
//! notices, outcomes and events, and keep going across broker restarts (reconnect with
//! backoff, subscriptions renewed).
//!
//! # Layout
//! - `connect`: [`Options`], [`Client::connect`], the task driving the connection, [`Link`].
//! - `request`: [`Client::request`] and the task-resolution shorthands.
//! - `subscribe`: [`Subscription`], [`Delivery`], typed [`Notice`]s.
//! - `tls`: [`Tls`] trust settings. `error`: [`Error`], carrying the error code of a refusal.
//! - `wire`: every use of the wire-contract crate.
//!
//! # Example: a callout extension
//!
//! Answer blocked `vm.create` tasks: first those already waiting, then each new notice.
//!
//! ```no_run
//! use extbus_client::{Client, Notice, Options};
//!
//! # async fn run() -> Result<(), extbus_client::Error> {
//! let client = Client::connect(&Options::new("127.0.0.1", 1883, "approver-1", "secret")).await?;
//! client
//!     .register(serde_json::json!({
//!         "rules": [{"operation": "vm.create", "priority": 10, "timeout_ms": 30000}]
//!     }))
//!     .await?;
//! // Subscribe before looking at the backlog, so no notice falls in between.
//! let mut notices = client.subscribe_blocked("vm.create").await?;
//! for task in client.blocked_on_me("vm.create").await? {
//!     client.resume(&task.id, Some("approved")).await?;
//! }
//! loop {
//!     let Notice::Blocked(task) = notices.next_notice().await? else { continue };
//!     if !client.waits_on_me(&task) {
//!         continue;
//!     }
//!     match client.resume(&task.id, Some("approved")).await {
//!         Ok(_) => println!("resumed {}", task.id),
//!         // Someone else resolved it meanwhile: the broker says `conflict`.
//!         Err(e) => eprintln!("task {}: {e} ({:?})", task.id, e.code()),
//!     }
//! }
//! # }
//! ```

mod connect;
mod error;
mod request;
mod subscribe;
mod tls;
pub mod wire;

pub use connect::{Client, Link, Options};
pub use error::Error;
pub use subscribe::{Delivery, Subscription};
/// The rumqttc transport that trusts `Tls` (for other rumqttc clients of the same broker).
pub use tls::transport as tls_transport;
pub use tls::Tls;
pub use wire::{ErrorCode, Notice};
