//! The console's session endpoints under `/api/session`: sign in (`POST`, name and secret,
//! checked through the same verifier and login throttle as Basic auth), who am I (`GET`;
//! `{"principal": null}` when not signed in),
//! sign out (`DELETE`), and a short-lived bearer token for UI plugins (`POST .../token`).
//! Their 401s carry no `WWW-Authenticate` challenge, so a browser shows no login dialog.

use super::api::error;
use super::auth::Denied;
use super::session::{cookie_value, Cookie, Opened, COOKIE};
use super::HttpState;
use crate::auth::{Creds, Refused};
use axum::body::Body;
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use extbus_schema::{CommandError, ErrorCode, ErrorDetail};
use serde_json::{json, Value};
use std::net::IpAddr;

fn fail(status: u16, code: ErrorCode, message: &str) -> Response {
    let mut r = error(CommandError::new(code, message));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r
}

fn unauthorized(message: &str) -> Response {
    fail(401, ErrorCode::Forbidden, message)
}

/// What the console learns about its session.
fn describe(st: &HttpState, s: &Opened) -> Option<Value> {
    let p = st.auth.verifier().principals().get(&s.principal)?;
    let sessions = &st.auth.sessions;
    Some(json!({
        "principal": p.name, "roles": p.roles, "orgs": p.orgs, "csrf_token": s.csrf,
        "idle_secs": sessions.idle_ms / 1000, "token_secs": sessions.token_ms / 1000,
    }))
}

fn with_cookie(mut r: Response, value: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Every `/api/session...` request.
pub(super) async fn handle(
    st: &HttpState,
    parts: Parts,
    peer: Option<IpAddr>,
    body: Body,
) -> Response {
    let path = parts.uri.path().trim_end_matches('/');
    match (&parts.method, path) {
        (&Method::POST, "/api/session") => sign_in(st, &parts, peer, body).await,
        (&Method::GET, "/api/session") => match current(st, &parts) {
            Ok(s) => match describe(st, &s) {
                Some(v) => with_cookie(
                    axum::Json(v).into_response(),
                    st.auth.sessions.set_cookie(Some(&s.id)),
                ),
                None => unauthorized("the principal no longer exists"),
            },
            // Not signed in is an answer, not a failure: the console asks at every load.
            Err(_) => axum::Json(json!({"principal": null})).into_response(),
        },
        (&Method::DELETE, "/api/session") => match current(st, &parts) {
            Ok(s) => {
                st.auth.sessions.close(&s.id);
                let r = axum::Json(json!({"signed_out": true})).into_response();
                with_cookie(r, st.auth.sessions.set_cookie(None))
            }
            Err(why) => why.answer(),
        },
        (&Method::POST, "/api/session/token") => match current(st, &parts) {
            Ok(s) => match st.auth.sessions.mint(&s.id) {
                Some((token, expires_ms)) => {
                    let body = json!({
                        "token": token, "principal": s.principal,
                        "expires_at": extbus_schema::time_fmt::format_ms(expires_ms),
                    });
                    with_cookie(
                        (StatusCode::CREATED, axum::Json(body)).into_response(),
                        st.auth.sessions.set_cookie(Some(&s.id)),
                    )
                }
                None => unauthorized("the console session ended; sign in again"),
            },
            Err(why) => why.answer(),
        },
        (_, "/api/session" | "/api/session/token") => fail(
            404,
            ErrorCode::NotFound,
            &format!("{} is not served for {path}", parts.method),
        ),
        _ => fail(404, ErrorCode::NotFound, "no API route under /api/session"),
    }
}

/// Why a request has no usable session.
enum NoSession {
    None,
    Ended,
    NoCsrf,
}

impl NoSession {
    fn answer(self) -> Response {
        match self {
            NoSession::None => unauthorized("not signed in"),
            NoSession::Ended => unauthorized("the console session ended; sign in again"),
            NoSession::NoCsrf => fail(
                403,
                ErrorCode::Forbidden,
                "a write with the session cookie needs its X-CSRF-Token header",
            ),
        }
    }
}

/// The request's live session (writes need its CSRF token).
fn current(st: &HttpState, parts: &Parts) -> Result<Opened, NoSession> {
    let sessions = &st.auth.sessions;
    match sessions.from_request(&parts.method, &parts.headers) {
        Cookie::None => Err(NoSession::None),
        Cookie::Stale => Err(NoSession::Ended),
        Cookie::Live { csrf_ok: false, .. } => Err(NoSession::NoCsrf),
        Cookie::Live { .. } => cookie_value(&parts.headers, COOKIE)
            .and_then(|id| sessions.touch(id))
            .ok_or(NoSession::Ended),
    }
}

async fn sign_in(st: &HttpState, parts: &Parts, peer: Option<IpAddr>, body: Body) -> Response {
    let bytes = match super::gateway::read_limited(&parts.headers, body, 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return fail(400, ErrorCode::BadJson, "the body is not JSON");
    };
    let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(name), Some(secret)) = (field("name"), field("secret")) else {
        let e = CommandError::new(
            ErrorCode::SchemaViolation,
            "sign-in needs {\"name\": <principal>, \"secret\": <its secret>}",
        )
        .with_details(
            ["/name", "/secret"]
                .into_iter()
                .filter(|p| field(&p[1..]).is_none())
                .map(|p| ErrorDetail {
                    path: p.to_string(),
                    message: "must be a non-empty string".to_string(),
                })
                .collect(),
        );
        return error(e);
    };
    let creds = Creds::Named {
        name: name.to_string(),
        secret: secret.to_string(),
    };
    match st.auth.verifier().check(peer, creds).await {
        Ok(p) => {
            let opened = st.auth.sessions.open(&p.name);
            let Some(v) = describe(st, &opened) else {
                return unauthorized("the principal no longer exists");
            };
            let r = (StatusCode::CREATED, axum::Json(v)).into_response();
            with_cookie(r, st.auth.sessions.set_cookie(Some(&opened.id)))
        }
        Err(Refused::Bad) => unauthorized("wrong name or secret"),
        Err(Refused::Busy) => {
            Denied::overloaded("too many credential checks waiting; try again shortly", 1)
        }
        Err(Refused::Throttled { retry_after_ms }) => Denied::overloaded(
            "too many failed logins from this address or for this principal",
            retry_after_ms.div_ceil(1000).max(1),
        ),
    }
}
