//! Who is calling over HTTP: `Authorization: Basic` (name and secret) or `Bearer` (a secret
//! alone, or `<name>:<secret>`). Cached secrets are checked inline; argon2 runs on the
//! blocking pool, a few at a time, so a flood of wrong secrets cannot starve the server.

use crate::principals::{valid_name, Principal, Principals};
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Checks credentials; holds the limit on concurrent argon2 work.
#[derive(Clone)]
pub struct Authenticator {
    principals: Arc<Principals>,
    slow: Arc<Semaphore>,
}

impl Authenticator {
    pub fn new(principals: Arc<Principals>) -> Self {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Authenticator {
            principals,
            slow: Arc::new(Semaphore::new(n)),
        }
    }

    /// The calling principal, or why not (for the 401 message).
    pub async fn check(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err("credentials required: Authorization: Basic or Bearer");
        };
        let value = value
            .to_str()
            .map_err(|_| "unreadable Authorization header")?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or("Authorization must be 'Basic <base64>' or 'Bearer <secret>'")?;
        let rest = rest.trim();
        let found = match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| "Basic credentials are not base64")?;
                let text = String::from_utf8(raw).map_err(|_| "Basic credentials are not UTF-8")?;
                let (name, secret) = text
                    .split_once(':')
                    .ok_or("Basic credentials must be name:secret")?;
                self.named(name, secret).await
            }
            "bearer" => self.bearer(rest).await,
            _ => return Err("Authorization must be 'Basic <base64>' or 'Bearer <secret>'"),
        };
        found.ok_or("wrong credentials")
    }

    async fn named(&self, name: &str, secret: &str) -> Option<Principal> {
        if let Some(p) = self.principals.verify_cached(name, secret) {
            return Some(p);
        }
        let (name, secret) = (name.to_string(), secret.to_string());
        self.slow(move |p| p.verify(&name, &secret)).await
    }

    async fn bearer(&self, token: &str) -> Option<Principal> {
        // The fast form `<name>:<secret>`; a secret that merely contains ':' still works.
        if let Some((name, secret)) = token.split_once(':') {
            if valid_name(name) && self.principals.get(name).is_some() {
                if let Some(p) = self.named(name, secret).await {
                    return Some(p);
                }
            }
        }
        if let Some(p) = self.principals.bearer_cached(token) {
            return Some(p);
        }
        let token = token.to_string();
        self.slow(move |p| p.verify_bearer(&token)).await
    }

    async fn slow(
        &self,
        f: impl FnOnce(&Principals) -> Option<Principal> + Send + 'static,
    ) -> Option<Principal> {
        let _permit = self.slow.acquire().await.ok()?;
        let principals = self.principals.clone();
        tokio::task::spawn_blocking(move || f(&principals))
            .await
            .ok()
            .flatten()
    }
}
