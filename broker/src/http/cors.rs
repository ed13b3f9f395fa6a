//! Cross-origin API calls from UI plugins: a plugin runs in a sandboxed iframe without
//! same-origin, so its requests carry `Origin: null`. Such calls are answered (and preflights
//! allowed) only for explicit credentials: the response to one carrying `Authorization` (the
//! short-lived token the console handed the plugin) may be read; cookies are never allowed
//! cross-origin (no `Access-Control-Allow-Credentials`).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The request comes from an opaque origin (a sandboxed frame).
pub(super) fn opaque_origin(headers: &HeaderMap) -> bool {
    headers.get(header::ORIGIN).is_some_and(|o| o == "null")
}

/// The answer to an `OPTIONS` preflight from an opaque origin.
pub(super) fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    allow(&mut r);
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

/// Lets an opaque-origin caller read `r`.
pub(super) fn allow(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("null"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}
