//! Console sessions, held in memory (a restart signs everyone out): signing in with a
//! principal's name and secret opens a session named by the `extbus_session` cookie
//! (HttpOnly, SameSite=Strict, Path=/), with a CSRF token that writes must echo in
//! `X-CSRF-Token`. A session idle for `http.console_idle_secs` ends. A session mints
//! short-lived bearer tokens (`http.console_token_secs`) for the console's UI plugins; they
//! end with it. Times come from the injected clock.

use crate::clock::Clock;
use axum::http::{header, HeaderMap, Method};
use base64::Engine as _;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The session cookie's name.
pub const COOKIE: &str = "extbus_session";
/// The header a write made with the session cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most sessions (and, separately, tokens) held; the oldest idle one makes room.
const MAX: usize = 10_000;

/// One signed-in console.
struct Session {
    principal: String,
    csrf: String,
    last_ms: u64,
}

/// A bearer token minted by a session.
struct Token {
    principal: String,
    session: String,
    expires_ms: u64,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    tokens: HashMap<String, Token>,
}

/// What a request's session cookie says.
#[derive(Debug, PartialEq, Eq)]
pub enum Cookie {
    /// No session cookie.
    None,
    /// The cookie names no live session (unknown, or idle too long).
    Stale,
    /// A live session of `principal`; `csrf_ok` if the request may write with it.
    Live { principal: String, csrf_ok: bool },
}

/// A session just opened, or looked up: what the console needs to know.
#[derive(Debug, Clone)]
pub struct Opened {
    pub id: String,
    pub principal: String,
    pub csrf: String,
}

/// The in-memory session and token tables.
pub struct Sessions {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    pub idle_ms: u64,
    pub token_ms: u64,
    /// Cookies carry `Secure` (the listener is reached over TLS).
    pub secure: bool,
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Methods that change nothing, which need no CSRF token.
pub fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Evicts the entry with the least `age` key when `map` is full.
fn make_room<V>(map: &mut HashMap<String, V>, key: impl Fn(&V) -> u64) {
    if map.len() < MAX {
        return;
    }
    if let Some(k) = map
        .iter()
        .min_by_key(|(_, v)| key(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&k);
    }
}

impl Sessions {
    pub fn new(clock: Arc<dyn Clock>, idle_secs: u64, token_secs: u64, secure: bool) -> Self {
        Sessions {
            inner: Mutex::new(Inner::default()),
            clock,
            idle_ms: idle_secs.saturating_mul(1000),
            token_ms: token_secs.saturating_mul(1000),
            secure,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Drops idle sessions and expired tokens (with those of dropped sessions).
    fn sweep(&self, inner: &mut Inner, now: u64) {
        let idle = self.idle_ms;
        inner
            .sessions
            .retain(|_, s| now.saturating_sub(s.last_ms) < idle);
        let Inner { sessions, tokens } = inner;
        tokens.retain(|_, t| t.expires_ms > now && sessions.contains_key(&t.session));
    }

    /// Opens a session for `principal` (already authenticated).
    pub fn open(&self, principal: &str) -> Opened {
        let now = self.now_ms();
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        make_room(&mut inner.sessions, |s| s.last_ms);
        let opened = Opened {
            id: random_id(),
            principal: principal.to_string(),
            csrf: random_id(),
        };
        inner.sessions.insert(
            opened.id.clone(),
            Session {
                principal: opened.principal.clone(),
                csrf: opened.csrf.clone(),
                last_ms: now,
            },
        );
        opened
    }

    /// The live session `id` (its idle time starts again), if there is one.
    pub fn touch(&self, id: &str) -> Option<Opened> {
        let now = self.now_ms();
        let mut inner = self.lock();
        let s = inner.sessions.get_mut(id)?;
        if now.saturating_sub(s.last_ms) >= self.idle_ms {
            inner.sessions.remove(id);
            inner.tokens.retain(|_, t| t.session != id);
            return None;
        }
        s.last_ms = now;
        Some(Opened {
            id: id.to_string(),
            principal: s.principal.clone(),
            csrf: s.csrf.clone(),
        })
    }

    /// What the request's cookie (and, for writes, its CSRF header) amounts to.
    pub fn from_request(&self, method: &Method, headers: &HeaderMap) -> Cookie {
        let Some(id) = cookie_value(headers, COOKIE) else {
            return Cookie::None;
        };
        let Some(s) = self.touch(id) else {
            return Cookie::Stale;
        };
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let csrf_ok = safe(method) || sent.is_some_and(|t| constant_eq(t, &s.csrf));
        Cookie::Live {
            principal: s.principal,
            csrf_ok,
        }
    }

    /// Ends session `id` and its tokens; false if there was none.
    pub fn close(&self, id: &str) -> bool {
        let mut inner = self.lock();
        inner.tokens.retain(|_, t| t.session != id);
        inner.sessions.remove(id).is_some()
    }

    /// A new bearer token for session `id`'s principal: (token, expiry in ms since the epoch).
    pub fn mint(&self, id: &str) -> Option<(String, u64)> {
        let s = self.touch(id)?;
        let now = self.now_ms();
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        make_room(&mut inner.tokens, |t| t.expires_ms);
        let token = format!("st.{}", random_id());
        let expires_ms = now + self.token_ms;
        inner.tokens.insert(
            token.clone(),
            Token {
                principal: s.principal,
                session: id.to_string(),
                expires_ms,
            },
        );
        Some((token, expires_ms))
    }

    /// The principal a minted token stands for, while it is valid.
    pub fn token(&self, token: &str) -> Option<String> {
        let now = self.now_ms();
        let mut inner = self.lock();
        let t = inner.tokens.get(token)?;
        if t.expires_ms <= now {
            inner.tokens.remove(token);
            return None;
        }
        Some(t.principal.clone())
    }

    /// The `Set-Cookie` value naming session `id` (`None`: one that clears it).
    pub fn set_cookie(&self, id: Option<&str>) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        match id {
            Some(id) => format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                self.idle_ms / 1000
            ),
            None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        }
    }
}

/// Compares without stopping at the first difference (a CSRF token is a secret).
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use axum::http::HeaderValue;

    fn with_cookie(id: &str, csrf: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        let c = format!("other=1; {COOKIE}={id}");
        h.insert(header::COOKIE, HeaderValue::from_str(&c).unwrap());
        if let Some(t) = csrf {
            h.insert(CSRF_HEADER, HeaderValue::from_str(t).unwrap());
        }
        h
    }

    #[test]
    fn writes_need_the_csrf_token_and_idle_sessions_end() {
        let clock = ManualClock::new(1_000_000);
        let s = Sessions::new(Arc::new(clock.clone()), 60, 30, false);
        let o = s.open("operator");
        let live = |csrf_ok| Cookie::Live {
            principal: "operator".into(),
            csrf_ok,
        };
        assert_eq!(
            s.from_request(&Method::GET, &with_cookie(&o.id, None)),
            live(true)
        );
        assert_eq!(
            s.from_request(&Method::POST, &with_cookie(&o.id, None)),
            live(false)
        );
        let wrong = with_cookie(&o.id, Some("nope"));
        assert_eq!(s.from_request(&Method::POST, &wrong), live(false));
        let right = with_cookie(&o.id, Some(&o.csrf));
        assert_eq!(s.from_request(&Method::POST, &right), live(true));
        // Use keeps it alive; 60 s without use ends it.
        clock.advance(59_000);
        assert!(s.touch(&o.id).is_some());
        clock.advance(59_000);
        assert!(s.touch(&o.id).is_some());
        clock.advance(60_000);
        assert_eq!(
            s.from_request(&Method::GET, &with_cookie(&o.id, None)),
            Cookie::Stale
        );
        assert_eq!(
            s.from_request(&Method::GET, &HeaderMap::new()),
            Cookie::None
        );
    }

    #[test]
    fn tokens_expire_and_end_with_their_session() {
        let clock = ManualClock::new(1_000_000);
        let s = Sessions::new(Arc::new(clock.clone()), 600, 30, true);
        let o = s.open("operator");
        let (t, exp) = s.mint(&o.id).unwrap();
        assert_eq!(exp, 1_030_000);
        assert_eq!(s.token(&t).as_deref(), Some("operator"));
        clock.advance(30_000);
        assert_eq!(s.token(&t), None);
        let (t2, _) = s.mint(&o.id).unwrap();
        assert!(s.close(&o.id));
        assert_eq!(s.token(&t2), None);
        assert!(s.mint(&o.id).is_none());
        assert!(s.set_cookie(Some("x")).ends_with("; Secure"));
    }
}
