//! The HTTP listener (axum): `/healthz`, `/metrics` (Prometheus text), and everything else
//! through the extension services gateway (`gateway`, callers authenticated by `auth`).
//! Shuts down gracefully with the broker.

pub mod auth;
mod gateway;

use crate::auth::Verifier;
use crate::metrics::Metrics;
use crate::services::Services;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub services: Arc<Services>,
    pub auth: auth::Authenticator,
    /// Largest request body the gateway accepts (`mqtt.max_payload`).
    pub max_payload: usize,
}

impl HttpState {
    pub fn new(
        metrics: Arc<Metrics>,
        verifier: Arc<Verifier>,
        services: Arc<Services>,
        max_payload: usize,
    ) -> Self {
        HttpState {
            metrics,
            services,
            auth: auth::Authenticator::new(verifier),
            max_payload,
        }
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(gateway::handle)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn metrics_text(State(st): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address feeds the per-address login throttle.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
