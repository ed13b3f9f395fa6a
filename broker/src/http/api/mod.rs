//! The HTTP API under `/api/`: a request is authenticated like the services gateway's, matched
//! against the route rows (`routes`), turned into a bus command (suffix and JSON body) and
//! submitted to the coordinator as an in-process command: the same decode, role checks and
//! single-writer batch as MQTT commands. The reply maps to a status by its error code.
//! `sse` serves the event stream, `openapi` the document made from the rows, `etag` entity
//! revisions as `ETag` / `If-Match`.

mod etag;
pub mod openapi;
pub mod routes;
mod sse;

use super::auth::Denied;
use super::HttpState;
use crate::feed::Feed;
use crate::link::{Answer, InternalCommand};
use crate::principals::Principal;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use extbus_schema::{CommandError, ErrorCode};
use routes::{Input, Kind};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands the HTTP API may have waiting for the coordinator; more are answered 503.
pub const QUEUE: usize = 1024;

/// What the API needs besides the shared HTTP state.
pub struct Api {
    commands: mpsc::Sender<InternalCommand>,
    pub feed: Feed,
    pub keepalive: Duration,
}

impl Api {
    pub fn new(commands: mpsc::Sender<InternalCommand>, feed: Feed, keepalive: Duration) -> Api {
        Api {
            commands,
            feed,
            keepalive,
        }
    }

    /// Submits one command as `principal` and waits for its reply (sent once its batch is
    /// durable).
    pub async fn call(&self, principal: &Principal, suffix: String, body: Value) -> Answer {
        let (reply, rx) = oneshot::channel();
        let cmd = InternalCommand {
            principal: principal.clone(),
            suffix,
            body,
            reply,
        };
        if let Err(e) = self.commands.try_send(cmd) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "too many API commands waiting; try again",
                mpsc::error::TrySendError::Closed(_) => "the broker is shutting down",
            };
            return Err(CommandError::new(ErrorCode::Overloaded, why));
        }
        rx.await.unwrap_or_else(|_| {
            Err(CommandError::internal(
                "the command's batch was not stored; it may be retried",
            ))
        })
    }
}

/// The status for a failed command: SPEC.md's mapping (`ErrorCode::http_status`).
pub fn status_of(e: &CommandError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `{"error": {code, message, details}}` with the code's status.
pub fn error(e: CommandError) -> Response {
    let status = status_of(&e);
    let body = json!({"error": {"code": e.code, "message": e.message, "details": e.details}});
    (status, axum::Json(body)).into_response()
}

fn err(code: ErrorCode, message: impl Into<String>) -> Response {
    error(CommandError::new(code, message))
}

/// Every `/api/...` request.
pub(in crate::http) async fn handle(State(st): State<HttpState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let opaque = super::cors::opaque_origin(&parts.headers);
    if opaque && parts.method == axum::http::Method::OPTIONS {
        return super::cors::preflight();
    }
    let path = parts.uri.path();
    if path == "/api/session" || path.starts_with("/api/session/") {
        return super::signin::handle(&st, parts, peer, body).await;
    }
    let principal = match st
        .auth
        .check_request(&parts.method, &parts.headers, peer)
        .await
    {
        Ok(p) => p,
        Err(Denied::Forbidden(why)) => return err(ErrorCode::Forbidden, why),
        Err(Denied::Unauthorized(why)) => {
            let mut r = err(ErrorCode::Forbidden, why);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            // A console whose session ended signs in again: no browser login dialog.
            if super::session::cookie_value(&parts.headers, super::session::COOKIE).is_none() {
                super::gateway::challenge(&mut r);
            }
            return r;
        }
        Err(Denied::Overloaded {
            message,
            retry_after_s,
        }) => {
            let mut r = err(ErrorCode::Overloaded, message);
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_s.to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            return r;
        }
    };
    let caller = super::access::Caller(principal.name.clone());
    let bearer = parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION);
    let mut resp = serve(&st, &principal, parts, body).await;
    resp.extensions_mut().insert(caller);
    if opaque && bearer {
        super::cors::allow(&mut resp);
    }
    resp
}

async fn serve(
    st: &HttpState,
    principal: &Principal,
    parts: axum::http::request::Parts,
    body: Body,
) -> Response {
    let path = parts.uri.path();
    let matched = match routes::find(&parts.method, path) {
        Ok(m) => m,
        Err(known) => {
            let what = if known {
                format!("{} is not served for {}", parts.method, routes::clip(path))
            } else {
                format!("no API route {}", routes::clip(path))
            };
            return err(ErrorCode::NotFound, what);
        }
    };
    if matched.route.kind == Kind::OpenApi {
        return axum::Json(openapi::document()).into_response();
    }
    let suffix = matched.suffix();
    let body = match matched.route.input {
        Input::Query => {
            let pairs = match Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
                Ok(Query(p)) => p,
                Err(e) => return err(ErrorCode::SchemaViolation, format!("bad query string: {e}")),
            };
            let schema = command_schema(&suffix);
            match routes::query_body(pairs, &schema) {
                Ok(b) => b,
                Err(why) => return err(ErrorCode::SchemaViolation, why),
            }
        }
        Input::Json => match json_body(st, &parts.headers, body, &suffix).await {
            Ok(b) => b,
            Err(resp) => return resp,
        },
    };
    if matched.route.kind == Kind::Stream {
        return sse::open(st, principal, &parts.headers, body).await;
    }
    let mut body = body;
    let precondition = match etag::if_match(matched.route.command, &parts.headers) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    if let Some(r) = precondition {
        if let Err(e) = etag::apply(&mut body, r) {
            return error(e);
        }
    }
    match st.api.call(principal, suffix, body).await {
        Ok(v) => {
            let status = StatusCode::from_u16(matched.route.ok).unwrap_or(StatusCode::OK);
            let tag = etag::tag(&v);
            let mut r = (status, axum::Json(v)).into_response();
            if let Some(t) = tag {
                r.headers_mut().insert(axum::http::header::ETAG, t);
            }
            r
        }
        Err(e) if precondition.is_some() && etag::is_stale(&e) => {
            let mut r = error(e);
            *r.status_mut() = etag::PRECONDITION_FAILED;
            r
        }
        Err(e) => error(e),
    }
}

/// The schema of the command `suffix` names (`Null` if none does).
fn command_schema(suffix: &str) -> Value {
    let levels: Vec<&str> = suffix.split('/').collect();
    extbus_schema::spec::find(&levels).map_or(Value::Null, |(s, _)| s.schema.value())
}

/// The request body as JSON; empty is `{}`. Bytes that are not JSON get the bus decoder's own
/// `bad_json` answer.
async fn json_body(
    st: &HttpState,
    headers: &axum::http::HeaderMap,
    body: Body,
    suffix: &str,
) -> Result<Value, Response> {
    let bytes = super::gateway::read_limited(headers, body, st.max_payload)
        .await
        .map_err(error)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => Ok(v),
        Err(_) => match extbus_schema::decode(suffix, &bytes, st.max_payload) {
            Err(f) => Err(error(f.error)),
            Ok(_) => Err(err(ErrorCode::BadJson, "the body is not JSON")),
        },
    }
}
