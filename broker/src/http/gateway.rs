//! The services gateway: any HTTP request that is not `/healthz` or `/metrics` is
//! authenticated, matched against the registered services' URL patterns, published as a
//! service request, and answered with the extension's response (or 401/404/413/502/503/504,
//! each with a JSON body carrying a protocol error code).

use super::auth::Denied;
use super::HttpState;
use crate::principals::Principal;
use crate::services::hub::Outcome;
use crate::services::{error_body, failure, stripped, Services};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use extbus_schema::{CommandError, ErrorCode, ServiceRequest, ServiceResponse};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An error answer: `status` with `{"error": {"code", "message"}}`.
fn error(status: u16, code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(error_body(code, message))).into_response()
}

fn unauthorized(why: &str) -> Response {
    let mut r = error(401, ErrorCode::Forbidden, why);
    challenge(&mut r);
    r
}

/// The `WWW-Authenticate` headers of a 401: either scheme is accepted.
pub(super) fn challenge(r: &mut Response) {
    let h = r.headers_mut();
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"extbus\""),
    );
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"extbus\""),
    );
}

/// Header names (lowercase) a message's own `Connection` header marks as hop-by-hop.
fn connection_listed<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The request headers an extension sees: lowercase names, repeated ones joined with ", ",
/// hop-by-hop and credential headers dropped, values that are not text skipped.
fn forwarded_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let listed = connection_listed(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if stripped(name, &listed) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        // The console's session cookie is the broker's credential, like `authorization`.
        let kept;
        let value = if name == "cookie" {
            kept = without_session_cookie(value);
            if kept.is_empty() {
                continue;
            }
            kept.as_str()
        } else {
            value
        };
        out.entry(name.to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_string());
    }
    out
}

/// A `Cookie` header value without the console session's cookie.
fn without_session_cookie(value: &str) -> String {
    value
        .split(';')
        .map(str::trim)
        .filter(|kv| {
            kv.split_once('=')
                .map_or(!kv.is_empty(), |(k, _)| k != super::session::COOKIE)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns an extension's response into the HTTP answer; `Err` says why it cannot be one.
fn to_http(r: ServiceResponse) -> Result<Response, String> {
    let status =
        StatusCode::from_u16(r.status).map_err(|_| format!("status {} is not valid", r.status))?;
    let listed = connection_listed(
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.as_str()),
    );
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        let k = k.to_ascii_lowercase();
        if stripped(&k, &listed) {
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header name '{}' is not valid", clip(&k)))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| format!("the value of header '{}' is not valid", clip(&k)))?;
        headers.append(name, value);
    }
    let body = match (r.json, r.body) {
        (Some(json), _) => {
            if !headers.contains_key(header::CONTENT_TYPE) {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            serde_json::to_vec(&json).map_err(|e| e.to_string())?
        }
        (None, Some(b64)) => B64
            .decode(b64.as_bytes())
            .map_err(|e| format!("body is not base64: {e}"))?,
        (None, None) => Vec::new(),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Reads the body, refusing more than `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, CommandError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            CommandError::new(
                ErrorCode::SchemaViolation,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads a request body of at most `max` bytes; a larger declared length is refused unread.
/// The error's code carries its status (`ErrorCode::http_status`).
pub(super) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Vec<u8>, CommandError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    read_body(body, max).await
}

fn too_large(max: usize) -> CommandError {
    CommandError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {max} bytes"),
    )
}

/// Stops waiting for a request whose HTTP caller went away before its answer.
struct Abandon<'a> {
    services: &'a Services,
    id: String,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.services.abandon(&self.id);
        }
    }
}

/// The fallback route: every path that is not the broker's own.
pub(super) async fn handle(State(st): State<HttpState>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let resp = serve(&st, req).await;
    st.services.record(resp.status().as_u16(), started);
    resp
}

async fn serve(st: &HttpState, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let principal = match st
        .auth
        .check_request(&parts.method, &parts.headers, peer)
        .await
    {
        Ok(p) => p,
        Err(Denied::Unauthorized(why))
            if super::session::cookie_value(&parts.headers, super::session::COOKIE).is_some() =>
        {
            return error(401, ErrorCode::Forbidden, why)
        }
        Err(Denied::Unauthorized(why)) => return unauthorized(why),
        Err(Denied::Forbidden(why)) => return error(403, ErrorCode::Forbidden, why),
        Err(Denied::Overloaded {
            message,
            retry_after_s,
        }) => return Denied::overloaded(message, retry_after_s),
    };
    let path = parts.uri.path();
    let Some(route) = st.services.router.for_path(path) else {
        return error(
            404,
            ErrorCode::NotFound,
            &format!("no extension service serves {}", clip(path)),
        );
    };
    let body = match read_limited(&parts.headers, body, st.max_payload).await {
        Ok(b) => b,
        Err(e) => return error(e.code.http_status(), e.code, &e.message),
    };
    let Principal { name, orgs, .. } = principal;
    let caller = super::access::Caller(name.clone());
    let req = ServiceRequest {
        id: uuid::Uuid::now_v7().to_string(),
        method: parts.method.to_string(),
        path: path.to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: forwarded_headers(&parts.headers),
        body: B64.encode(&body),
        principal: name,
        orgs,
        deadline: st.services.deadline(&route),
    };
    if let Some(why) = st.services.absent(&route) {
        let mut resp = error(503, ErrorCode::Overloaded, &why);
        resp.extensions_mut().insert(caller);
        return resp;
    }
    let mut resp = forward(&st.services, &route, req, st.closing.clone()).await;
    resp.extensions_mut().insert(caller);
    resp
}

async fn forward(
    services: &Arc<Services>,
    route: &crate::services::router::Route,
    req: ServiceRequest,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let rx = match services.send(route, &req) {
        Ok(rx) => rx,
        Err(e) => {
            return error(
                503,
                ErrorCode::Overloaded,
                &format!("the request could not be published: {e}"),
            )
        }
    };
    let mut guard = Abandon {
        services,
        id: req.id.clone(),
        armed: true,
    };
    let outcome = tokio::select! {
        o = services.wait(&req.id, rx, req.deadline) => o,
        // Dropping the guard abandons the request.
        Ok(_) = closing.wait_for(|c| *c) => {
            return error(503, ErrorCode::Overloaded, "the broker is shutting down");
        }
    };
    guard.armed = false;
    if let Some((status, code, message)) = failure(outcome.as_ref(), route.spec.timeout_ms) {
        return error(status, code, &message);
    }
    let Some(Outcome::Response(r)) = outcome else {
        return error(500, ErrorCode::Internal, "no outcome");
    };
    to_http(r).unwrap_or_else(|why| {
        let (status, code, message) = failure(
            Some(&Outcome::Malformed(why)),
            route.spec.timeout_ms,
        )
        .unwrap_or((502, ErrorCode::Internal, String::new()));
        error(status, code, &message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(v: serde_json::Value) -> ServiceResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn request_headers_lose_hop_by_hop_and_credentials() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic eA=="));
        h.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.append("accept", HeaderValue::from_static("a/b"));
        h.append("accept", HeaderValue::from_static("c/d"));
        let f = forwarded_headers(&h);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f["accept"], "a/b, c/d");
        assert_eq!(f["content-type"], "text/plain");
    }

    #[test]
    fn the_session_cookie_is_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("a=1; extbus_session=secret; b=2"),
        );
        assert_eq!(forwarded_headers(&h)["cookie"], "a=1; b=2");
        h.insert("cookie", HeaderValue::from_static("extbus_session=secret"));
        assert!(!forwarded_headers(&h).contains_key("cookie"));
    }

    #[test]
    fn responses_become_http_or_say_why_not() {
        let r = to_http(response(serde_json::json!({"id": "1", "status": 201,
            "headers": {"X-A": "1", "Transfer-Encoding": "chunked"}, "json": {"a": 1}})))
        .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-a"], "1");
        assert!(r.headers().get("transfer-encoding").is_none());
        assert_eq!(r.headers()["content-type"], "application/json");
        let bad = |v| to_http(response(v)).unwrap_err();
        assert!(
            bad(serde_json::json!({"id": "1", "status": 200, "body": "%%%"})).contains("base64")
        );
        assert!(
            bad(serde_json::json!({"id": "1", "status": 200, "headers": {"a b": "1"}}))
                .contains("header name")
        );
        assert!(
            bad(serde_json::json!({"id": "1", "status": 200, "headers": {"a": "x\ny"}}))
                .contains("value")
        );
    }
}
