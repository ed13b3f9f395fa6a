//! Console sessions over a real broker: sign-in sets an HttpOnly, SameSite=Strict cookie the
//! API accepts, writes need the CSRF header (and change nothing without it), sessions end
//! when idle (manual clock) or signed out, minted bearer tokens expire and end with their
//! session, may be used from a sandboxed (origin `null`) frame, sign-in failures are throttled like Basic auth, and the console's files carry
//! ETags and answer 304 when unchanged.

use extbus_tests::http::{request, Http, HttpResponse};
use extbus_tests::TestBroker;
use serde_json::{json, Value};

async fn sign_in(b: &TestBroker, name: &str, secret: &str) -> HttpResponse {
    let body = json!({"name": name, "secret": secret}).to_string();
    request(
        b.http,
        "POST",
        "/api/session",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// The session cookie (`name=value`) and the CSRF token of a successful sign-in.
fn session_of(r: &HttpResponse) -> (String, String) {
    assert_eq!(r.status, 201, "{:?}", r.json());
    let set = r.header("set-cookie").expect("set-cookie");
    let cookie = set.split(';').next().unwrap().to_string();
    (cookie, r.json()["csrf_token"].as_str().unwrap().to_string())
}

async fn with(
    b: &TestBroker,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> HttpResponse {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, headers, &body).await
}

fn submit_body(id: &str) -> Value {
    json!({"request_id": id, "operation": "vm.create", "org": "acme"})
}

async fn task_count(b: &TestBroker) -> usize {
    let auth = extbus_tests::http::basic("admin", "admin");
    let r = with(
        b,
        "GET",
        "/api/tasks?state=blocked",
        &[("authorization", &auth)],
        &Value::Null,
    )
    .await;
    r.json()["tasks"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn the_session_cookie_authenticates_and_writes_need_the_csrf_header() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    let rule = json!({"rules": [{"operation": "vm.create", "timeout_ms": 600000}]});
    assert_eq!(ext.command("register", rule).await["ok"], true);
    let wrong = sign_in(&b, "platform", "nope").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.header("www-authenticate").is_none(),
        "no browser login dialog"
    );
    assert!(wrong.header("set-cookie").is_none());
    assert_eq!(
        with(&b, "POST", "/api/session", &[], &json!({"name": "x"}))
            .await
            .json()["error"]["details"][0]["path"],
        "/secret"
    );

    let r = sign_in(&b, "platform", "platform").await;
    let set = r.header("set-cookie").unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1800"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert_eq!(r.json()["principal"], "platform");
    let (cookie, csrf) = session_of(&r);

    let me = with(
        &b,
        "GET",
        "/api/session",
        &[("cookie", &cookie)],
        &Value::Null,
    )
    .await;
    assert_eq!(me.json()["principal"], "platform");
    assert_eq!(me.json()["csrf_token"], csrf.as_str());
    assert_eq!(
        with(
            &b,
            "GET",
            "/api/tasks",
            &[("cookie", &cookie)],
            &Value::Null
        )
        .await
        .status,
        200
    );

    // A write with the cookie alone, or a wrong token: refused, nothing stored.
    let no_csrf = with(
        &b,
        "POST",
        "/api/tasks",
        &[("cookie", &cookie)],
        &submit_body("r-1"),
    )
    .await;
    assert_eq!(no_csrf.status, 403);
    assert_eq!(no_csrf.json()["error"]["code"], "forbidden");
    let bad = with(
        &b,
        "POST",
        "/api/tasks",
        &[("cookie", &cookie), ("x-csrf-token", "guess")],
        &submit_body("r-1"),
    )
    .await;
    assert_eq!(bad.status, 403);
    assert_eq!(task_count(&b).await, 0);
    let ok = with(
        &b,
        "POST",
        "/api/tasks",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        &submit_body("r-1"),
    )
    .await;
    assert_eq!(ok.status, 201, "{:?}", ok.json());
    assert_eq!(task_count(&b).await, 1);

    // Sign-out needs the token too, then the cookie is cleared and no longer works.
    assert_eq!(
        with(
            &b,
            "DELETE",
            "/api/session",
            &[("cookie", &cookie)],
            &Value::Null
        )
        .await
        .status,
        403
    );
    let out = with(
        &b,
        "DELETE",
        "/api/session",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        &Value::Null,
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = with(
        &b,
        "GET",
        "/api/tasks",
        &[("cookie", &cookie)],
        &Value::Null,
    )
    .await;
    assert_eq!(after.status, 401);
    assert!(after.header("www-authenticate").is_none());
    let me = with(
        &b,
        "GET",
        "/api/session",
        &[("cookie", &cookie)],
        &Value::Null,
    )
    .await;
    assert_eq!(
        (me.status, me.json()["principal"].clone()),
        (200, Value::Null)
    );
    b.stop().await;
}

#[tokio::test]
async fn idle_sessions_end_and_minted_tokens_expire_with_them() {
    let b = TestBroker::start_with(|c| {
        c.http.console_idle_secs = 600;
        c.http.console_token_secs = 60;
    })
    .await;
    let (cookie, csrf) = session_of(&sign_in(&b, "operator", "operator").await);
    assert_eq!(
        with(
            &b,
            "POST",
            "/api/session/token",
            &[("cookie", &cookie)],
            &Value::Null
        )
        .await
        .status,
        403
    );
    let t = with(
        &b,
        "POST",
        "/api/session/token",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        &Value::Null,
    )
    .await;
    assert_eq!(t.status, 201, "{:?}", t.json());
    assert_eq!(t.json()["principal"], "operator");
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = with(
        &b,
        "GET",
        "/api/tasks",
        &[("authorization", &bearer)],
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 200);
    // The token stands for its principal, roles and all: an operator cannot submit.
    let r = with(
        &b,
        "POST",
        "/api/tasks",
        &[("authorization", &bearer)],
        &submit_body("r-2"),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.json());

    // A sandboxed plugin (origin `null`) may read answers to calls with its token only.
    let pre = with(
        &b,
        "OPTIONS",
        "/api/tasks",
        &[
            ("origin", "null"),
            ("access-control-request-headers", "authorization"),
        ],
        &Value::Null,
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("null"));
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    assert!(pre.header("access-control-allow-credentials").is_none());
    let r = with(
        &b,
        "GET",
        "/api/tasks",
        &[("authorization", &bearer), ("origin", "null")],
        &Value::Null,
    )
    .await;
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, Some("null"))
    );
    let r = with(
        &b,
        "GET",
        "/api/tasks",
        &[("cookie", &cookie), ("origin", "null")],
        &Value::Null,
    )
    .await;
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, None)
    );

    b.clock.advance(60_000);
    assert_eq!(
        with(
            &b,
            "GET",
            "/api/tasks",
            &[("authorization", &bearer)],
            &Value::Null
        )
        .await
        .status,
        401
    );
    // Use keeps the session alive; 10 idle minutes end it.
    b.clock.advance(500_000);
    assert_eq!(
        with(
            &b,
            "GET",
            "/api/tasks",
            &[("cookie", &cookie)],
            &Value::Null
        )
        .await
        .status,
        200
    );
    b.clock.advance(500_000);
    assert_eq!(
        with(
            &b,
            "GET",
            "/api/tasks",
            &[("cookie", &cookie)],
            &Value::Null
        )
        .await
        .status,
        200
    );
    let t = with(
        &b,
        "POST",
        "/api/session/token",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        &Value::Null,
    )
    .await;
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    b.clock.advance(600_000);
    let r = with(
        &b,
        "GET",
        "/api/tasks",
        &[("cookie", &cookie)],
        &Value::Null,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        with(
            &b,
            "GET",
            "/api/tasks",
            &[("authorization", &bearer)],
            &Value::Null
        )
        .await
        .status,
        401
    );
    b.stop().await;
}

#[tokio::test]
async fn sign_in_failures_are_throttled_like_basic_auth() {
    let b = TestBroker::start().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(sign_in(&b, "operator", "wrong").await.status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    let r = sign_in(&b, "operator", "operator").await;
    assert_eq!(r.status, 503, "throttled even with the right secret");
    assert!(r.header("retry-after").is_some());
    assert!(r.header("set-cookie").is_none());
    // The broker keeps serving other addresses and principals.
    let mut c = Http::connect_from(b.http, "127.0.0.9".parse().unwrap())
        .await
        .unwrap();
    let body = json!({"name": "platform", "secret": "platform"}).to_string();
    let r = c
        .send("POST", "/api/session", &[], body.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    b.stop().await;
}

#[tokio::test]
async fn console_files_are_embedded_with_etags() {
    let b = TestBroker::start().await;
    let r = request(b.http, "GET", "/console", &[], b"").await;
    assert_eq!((r.status, r.header("location")), (308, Some("/console/")));
    let index = request(b.http, "GET", "/console/", &[], b"").await;
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&index.body).contains("js/app.js"));
    assert!(index
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let etag = index.header("etag").unwrap().to_string();
    let again = request(
        b.http,
        "GET",
        "/console/index.html",
        &[("if-none-match", &etag)],
        b"",
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let js = request(b.http, "GET", "/console/js/app.js", &[], b"").await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_ne!(js.header("etag").unwrap(), etag);
    assert_eq!(
        request(b.http, "GET", "/console/js/nope.js", &[], b"")
            .await
            .status,
        404
    );
    b.stop().await;
}
