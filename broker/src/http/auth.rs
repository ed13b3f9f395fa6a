//! Who is calling over HTTP: `Authorization: Basic` (name and secret) or `Bearer` (a secret
//! alone, or `<name>:<secret>`). Checks go through the shared `auth::Verifier`: cached
//! secrets inline, the rest throttled and queued for its argon2 workers. A full queue or a
//! throttled caller is answered 503 `overloaded` with `Retry-After`. Requests to the API and
//! the gateway may instead carry a console session cookie (writes with its CSRF header) or a
//! bearer token the session minted (`session`).

use super::session::{Cookie, Sessions};
use crate::auth::{Creds, Refused, Verifier};
use crate::principals::{valid_name, Principal};
use crate::services::error_body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use extbus_schema::ErrorCode;
use std::net::IpAddr;
use std::sync::Arc;

/// Checks credentials.
#[derive(Clone)]
pub struct Authenticator {
    verifier: Arc<Verifier>,
    pub sessions: Arc<Sessions>,
}

/// Why a caller is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401, with the reason for its message.
    Unauthorized(&'static str),
    /// 403 `forbidden`: a session cookie without its CSRF token on a write.
    Forbidden(&'static str),
    /// 503 `overloaded`: no check was run; try again after `retry_after_s`.
    Overloaded {
        message: &'static str,
        retry_after_s: u64,
    },
}

impl Denied {
    fn from_refused(r: Refused) -> Denied {
        match r {
            Refused::Bad => Denied::Unauthorized("wrong credentials"),
            Refused::Busy => Denied::Overloaded {
                message: "too many credential checks waiting; try again shortly",
                retry_after_s: 1,
            },
            Refused::Throttled { retry_after_ms } => Denied::Overloaded {
                message: "too many failed logins from this address or for this principal",
                retry_after_s: retry_after_ms.div_ceil(1000).max(1),
            },
        }
    }

    /// The 503 answer (401 answers are built by the gateway, with its challenge headers).
    pub fn overloaded(message: &str, retry_after_s: u64) -> Response {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(error_body(ErrorCode::Overloaded, message)),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl Authenticator {
    pub fn new(verifier: Arc<Verifier>, sessions: Arc<Sessions>) -> Self {
        Authenticator { verifier, sessions }
    }

    /// The caller of an API or gateway request: `Authorization` (Basic, Bearer, or a token a
    /// session minted) when present, else the session cookie.
    pub async fn check_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, Denied> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
            if let Some(name) = token.and_then(|t| self.sessions.token(t)) {
                return self.live(&name);
            }
            return self.check(headers, peer).await;
        }
        match self.sessions.from_request(method, headers) {
            Cookie::None => self.check(headers, peer).await,
            Cookie::Stale => Err(Denied::Unauthorized(
                "the console session ended; sign in again",
            )),
            Cookie::Live { csrf_ok: false, .. } => Err(Denied::Forbidden(
                "a write with the session cookie needs its X-CSRF-Token header",
            )),
            Cookie::Live { principal, .. } => self.live(&principal),
        }
    }

    /// The principal `name` as it is now (its roles may have changed since sign-in).
    fn live(&self, name: &str) -> Result<Principal, Denied> {
        self.verifier
            .principals()
            .get(name)
            .ok_or(Denied::Unauthorized("the principal no longer exists"))
    }

    /// The shared verifier (for checks of credentials other than the caller's own).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The calling principal (from `peer`, if known), or why not.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, Denied> {
        let bad = Denied::Unauthorized;
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(bad("credentials required: Authorization: Basic or Bearer"));
        };
        let value = value
            .to_str()
            .map_err(|_| bad("unreadable Authorization header"))?;
        let (scheme, rest) = value.split_once(' ').ok_or(bad(
            "Authorization must be 'Basic <base64>' or 'Bearer <secret>'",
        ))?;
        let rest = rest.trim();
        let creds = match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| bad("Basic credentials are not base64"))?;
                let text =
                    String::from_utf8(raw).map_err(|_| bad("Basic credentials are not UTF-8"))?;
                let (name, secret) = text
                    .split_once(':')
                    .ok_or(bad("Basic credentials must be name:secret"))?;
                Creds::Named {
                    name: name.to_string(),
                    secret: secret.to_string(),
                }
            }
            "bearer" => self.bearer(rest),
            _ => {
                return Err(bad(
                    "Authorization must be 'Basic <base64>' or 'Bearer <secret>'",
                ))
            }
        };
        self.verifier
            .check(peer, creds)
            .await
            .map_err(Denied::from_refused)
    }

    /// The fast form `<name>:<secret>` when the name is a principal's, unless the whole token
    /// is a known nameless secret (a secret may itself contain ':').
    fn bearer(&self, token: &str) -> Creds {
        if let Some((name, secret)) = token.split_once(':') {
            let p = self.verifier.principals();
            if valid_name(name)
                && p.get(name).is_some()
                && p.indexed(token).is_none()
                && p.bearer_cached(token).is_none()
            {
                return Creds::Named {
                    name: name.to_string(),
                    secret: secret.to_string(),
                };
            }
        }
        Creds::Bearer {
            secret: token.to_string(),
        }
    }
}
