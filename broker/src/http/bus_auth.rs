//! `POST /bus/authn` and `POST /bus/authz`: an external broker (EMQX's HTTP authentication and
//! authorization backends) asks extbus whether an MQTT client may log in, publish or
//! subscribe. Requests and answers are in EMQX's documented shapes; the decisions are the
//! embedded gate's (`mqtt::may_publish`, `mqtt::may_subscribe_unfiltered`), and each refusal
//! is counted and audited as `security.denied`, as the gate does. The caller (the broker) must
//! itself authenticate as an admin principal.

use super::HttpState;
use crate::auth::Creds;
use crate::notices::GateNotice;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use extbus_schema::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

/// EMQX's authentication request body (its default template, plus optional fields).
#[derive(Debug, Deserialize)]
struct AuthnRequest {
    username: Option<String>,
    password: Option<String>,
    clientid: Option<String>,
    peerhost: Option<String>,
}

/// EMQX's authorization request body. `action` is `publish` or `subscribe` (`all` counts as
/// both); templates send `qos`/`retain` as strings, which are not needed for the decision.
#[derive(Debug, Deserialize)]
struct AuthzRequest {
    username: Option<String>,
    clientid: Option<String>,
    topic: String,
    action: String,
}

fn answer(result: &str) -> Response {
    (StatusCode::OK, Json(json!({"result": result}))).into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(crate::services::error_body(ErrorCode::BadJson, message)),
    )
        .into_response()
}

/// The calling broker must be an admin principal; anything else gets the usual 401/403.
async fn caller_is_admin(
    st: &HttpState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<(), Response> {
    match st.auth.check(headers, peer).await {
        Ok(p) if p.is_admin() => Ok(()),
        Ok(p) => Err((
            StatusCode::FORBIDDEN,
            Json(crate::services::error_body(
                ErrorCode::Forbidden,
                &format!(
                    "{} is not an admin: only the broker's admin principal may ask",
                    p.name
                ),
            )),
        )
            .into_response()),
        Err(super::auth::Denied::Unauthorized(why) | super::auth::Denied::Forbidden(why)) => Err((
            StatusCode::UNAUTHORIZED,
            Json(crate::services::error_body(ErrorCode::Forbidden, why)),
        )
            .into_response()),
        Err(super::auth::Denied::Overloaded {
            message,
            retry_after_s,
        }) => Err(super::auth::Denied::overloaded(message, retry_after_s)),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("not the expected JSON: {e}"))
}

pub(super) async fn authn(
    State(st): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = caller_is_admin(&st, &headers, Some(peer.ip())).await {
        return r;
    }
    let req: AuthnRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let (Some(name), Some(secret)) = (req.username, req.password) else {
        // Not ours to judge (e.g. a certificate login): the next authenticator decides.
        return (
            StatusCode::OK,
            Json(json!({"result": "ignore", "is_superuser": false})),
        )
            .into_response();
    };
    // The MQTT client's own address drives the throttle, as on the embedded listener.
    let client_peer = req.peerhost.as_deref().and_then(|h| h.parse().ok());
    let creds = Creds::Named {
        name: name.clone(),
        secret,
    };
    match st.auth.verifier().check(client_peer, creds).await {
        Ok(p) => (
            StatusCode::OK,
            Json(json!({"result": "allow", "is_superuser": p.is_admin()})),
        )
            .into_response(),
        Err(crate::auth::Refused::Bad) => {
            tracing::info!(principal = %name, client_id = req.clientid.as_deref().unwrap_or(""), "external broker login refused: wrong credentials");
            (
                StatusCode::OK,
                Json(json!({"result": "deny", "is_superuser": false})),
            )
                .into_response()
        }
        // Throttled or busy: refuse now; the client retries as after any failed login.
        Err(_) => (
            StatusCode::OK,
            Json(json!({"result": "deny", "is_superuser": false})),
        )
            .into_response(),
    }
}

pub(super) async fn authz(
    State(st): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = caller_is_admin(&st, &headers, Some(peer.ip())).await {
        return r;
    }
    let req: AuthzRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let Some(name) = req.username.filter(|u| !u.is_empty()) else {
        return answer("deny");
    };
    // An unknown user is refused, not ignored: ignoring would fall through to the broker's
    // `no_match` default, which is allow unless configured otherwise.
    let Some(p) = st.auth.verifier().principals().get(&name) else {
        return answer("deny");
    };
    let Some(registry) = &st.registry else {
        return answer("deny");
    };
    let decisions: Vec<(&'static str, Result<(), crate::mqtt::Denial>)> = match req.action.as_str()
    {
        "publish" => vec![("publish", crate::mqtt::may_publish(&p, &req.topic))],
        "subscribe" => vec![(
            "subscribe",
            crate::mqtt::may_subscribe_unfiltered(&p, &req.topic, registry),
        )],
        "all" => vec![
            ("publish", crate::mqtt::may_publish(&p, &req.topic)),
            (
                "subscribe",
                crate::mqtt::may_subscribe_unfiltered(&p, &req.topic, registry),
            ),
        ],
        other => return bad_request(&format!("unknown action '{other}': publish or subscribe")),
    };
    for (action, d) in decisions {
        if let Err(denial) = d {
            st.metrics
                .gate_denied
                .get_or_create(&crate::metrics::Action { action })
                .inc();
            if let Some(tx) = &st.notices {
                let _ = tx.try_send(GateNotice::Denied {
                    principal: p.name.clone(),
                    client_id: req.clientid.clone().unwrap_or_default(),
                    action,
                    topic: req.topic.clone(),
                    reason: denial.reason,
                });
            }
            return answer("deny");
        }
    }
    answer("allow")
}
