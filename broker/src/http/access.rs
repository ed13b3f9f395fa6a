//! The HTTP access log: one `info` line per request (method, path without its query, status,
//! the authenticated principal when there is one, duration), within a per-second budget so a
//! flood of requests cannot drown the log.

use crate::log_limit::LineLimit;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

static LINES: LineLimit = LineLimit::new(200);

/// Set on a response by a handler that authenticated its caller.
#[derive(Clone)]
pub(super) struct Caller(pub String);

pub(super) async fn log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let (write, skipped) = LINES.allow();
    if skipped > 0 {
        tracing::info!(skipped, "HTTP access lines skipped in the last second");
    }
    if write {
        let principal = resp
            .extensions()
            .get::<Caller>()
            .map_or("", |c| c.0.as_str());
        tracing::info!(
            method = %method,
            path = %path,
            status = resp.status().as_u16(),
            principal,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "HTTP request"
        );
    }
    resp
}
