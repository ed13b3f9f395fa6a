//! The HTTP listener (axum): `/healthz`, `/metrics` (Prometheus text, or OpenMetrics on
//! request), the HTTP API under `/api/` (`api`), and everything else through the extension
//! services gateway (`gateway`); callers of both are authenticated by `auth`.
//! The operator console's assets are served under `/console/` (`console`); its sessions are
//! `session`'s and its sign-in endpoints `signin`'s.
//! `/bus/authn` and `/bus/authz` answer an external broker's HTTP auth backends (`bus_auth`).
//! Connections, their limits and timeouts, and the bounded shutdown are `conn`'s; one access
//! log line per request is `access`'s.

mod access;
pub mod api;
pub mod auth;
mod bus_auth;
mod conn;
mod console;
mod cors;
mod gateway;
pub mod session;
mod signin;

use crate::auth::Verifier;
pub use conn::Limits;

use crate::metrics::{self, Metrics};
use crate::services::Services;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub services: Arc<Services>,
    pub auth: auth::Authenticator,
    /// Largest request body the gateway accepts (`mqtt.max_payload`).
    pub max_payload: usize,
    /// Becomes true when the shutdown grace period is over: waiting calls answer 503.
    pub closing: watch::Receiver<bool>,
    /// What extensions registered, for `/bus/authz` (none: it refuses everything).
    pub registry: Option<Arc<crate::registry::Registry>>,
    /// Where `/bus/authz` refusals go to be audited as `security.denied`.
    pub notices: Option<tokio::sync::mpsc::Sender<crate::notices::GateNotice>>,
    /// Becomes true when shutdown begins: event streams end so connections can close.
    pub draining: watch::Receiver<bool>,
    pub api: Arc<api::Api>,
}

impl HttpState {
    pub fn new(
        metrics: Arc<Metrics>,
        verifier: Arc<Verifier>,
        services: Arc<Services>,
        max_payload: usize,
        api: api::Api,
        sessions: Arc<session::Sessions>,
    ) -> Self {
        HttpState {
            metrics,
            services,
            auth: auth::Authenticator::new(verifier, sessions),
            max_payload,
            closing: watch::channel(false).1,
            registry: None,
            notices: None,
            draining: watch::channel(false).1,
            api: Arc::new(api),
        }
    }

    /// Lets `/bus/authz` decide with `registry` and audit its refusals through `notices`.
    pub fn with_bus_auth(
        mut self,
        registry: Arc<crate::registry::Registry>,
        notices: tokio::sync::mpsc::Sender<crate::notices::GateNotice>,
    ) -> Self {
        self.registry = Some(registry);
        self.notices = Some(notices);
        self
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/bus/authn", axum::routing::post(bus_auth::authn))
        .route("/bus/authz", axum::routing::post(bus_auth::authz))
        .route("/api", any(api::handle))
        .route("/api/{*rest}", any(api::handle))
        .route("/console", get(console::redirect))
        .route("/console/", get(console::asset))
        .route("/console/{*file}", get(console::asset))
        .fallback(gateway::handle)
        .layer(axum::middleware::from_fn(access::log))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Prometheus text 0.0.4, or OpenMetrics when the `Accept` header names it (as Prometheus
/// servers do).
async fn metrics_text(State(st): State<HttpState>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        return (
            [(header::CONTENT_TYPE, metrics::OPENMETRICS)],
            st.metrics.render_openmetrics(),
        );
    }
    (
        [(header::CONTENT_TYPE, metrics::PROMETHEUS_TEXT)],
        st.metrics.render(),
    )
}

/// Serves until `shutdown`, then closes within `limits.grace` (and a moment to flush).
/// `limits` may change while serving (a reload): new connections get the new ones.
pub async fn serve(
    listener: TcpListener,
    mut state: HttpState,
    limits: watch::Receiver<Limits>,
    shutdown: impl Future<Output = ()>,
) {
    let (closing, rx) = watch::channel(false);
    state.closing = rx;
    let (draining, rx) = watch::channel(false);
    state.draining = rx;
    let shutdown = async move {
        shutdown.await;
        let _ = draining.send(true);
    };
    let metrics = state.metrics.clone();
    conn::serve(listener, router(state), limits, metrics, closing, shutdown).await
}
