//! Extension services (docs/protocol.md "Extension services"): the `router` of registered services, the
//! `hub` of requests waiting for a response, and `Services`, which publishes a request, waits
//! for its answer until the service's timeout (on the injected clock) and counts the result.
//! Callers are the HTTP gateway (`http::gateway`) and MQTT-native calls (the coordinator).
//! Services of in-process extensions are answered by a `LocalAnswerer` (exec runs a program)
//! instead of publishing.

pub mod hub;
pub mod router;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::mqtt::{BusError, BusTx, PublishProps};
use bytes::Bytes;
use extbus_schema::reply::Reply;
use extbus_schema::{ErrorCode, ServiceRequest};
use hub::{Hub, Outcome};
use router::{Route, Router};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Headers that never cross the gateway in either direction: hop-by-hop ones (RFC 9110
/// section 7.6.1) and credentials meant for the broker. Names in lowercase.
pub const STRIPPED_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "authorization",
    "content-length",
];

/// Is `name` (lowercase) dropped when a request or response crosses the gateway?
/// `connection_listed` holds the names the message's own `Connection` header lists.
pub fn stripped(name: &str, connection_listed: &[String]) -> bool {
    STRIPPED_HEADERS.contains(&name) || connection_listed.iter().any(|c| c == name)
}

/// The JSON body of every gateway error: `{"error": {"code", "message"}}`.
pub fn error_body(code: ErrorCode, message: &str) -> Value {
    json!({"error": {"code": code.as_str(), "message": message}})
}

/// The status, code and message of a request that got no usable answer.
pub fn failure(outcome: Option<&Outcome>, timeout_ms: u64) -> Option<(u16, ErrorCode, String)> {
    match outcome {
        None => Some((
            504,
            ErrorCode::Overloaded,
            format!("the service did not answer within {timeout_ms} ms"),
        )),
        Some(Outcome::Malformed(why)) => Some((
            502,
            ErrorCode::Internal,
            format!("the service answered with a malformed response: {why}"),
        )),
        Some(Outcome::Response(_)) => None,
    }
}

/// Answers the services of one in-process extension without the bus; the exec side implements
/// it, so this module does not depend on how the answer is made.
pub trait LocalAnswerer: Send + Sync {
    /// The extension (principal) whose services it answers.
    fn owner(&self) -> &str;
    /// Answers `req` before its deadline on `clock`; `None` when the deadline passed first.
    fn answer<'a>(
        &'a self,
        req: &'a ServiceRequest,
        clock: &'a dyn Clock,
        metrics: &'a Metrics,
    ) -> Pin<Box<dyn Future<Output = Option<Outcome>> + Send + 'a>>;
}

/// The in-process extensions whose services are answered without the bus, looked up on each
/// request (a reload may add or remove them).
pub trait LocalServices: Send + Sync {
    fn answerer(&self, owner: &str) -> Option<Arc<dyn LocalAnswerer>>;
}

/// Publishes service requests and waits for their responses.
pub struct Services {
    pub router: Router,
    pub hub: Hub,
    bus: BusTx,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// In-process extensions: the services they own are answered locally.
    local: Option<Arc<dyn LocalServices>>,
    presence: Arc<crate::presence::Presence>,
}

impl Services {
    pub fn new(
        bus: BusTx,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        local: Option<Arc<dyn LocalServices>>,
        presence: Arc<crate::presence::Presence>,
    ) -> Arc<Services> {
        Arc::new(Services {
            router: Router::new(),
            hub: Hub::new(),
            bus,
            clock,
            metrics,
            local,
            presence,
        })
    }

    /// Why `route` cannot be served now: it is switched off, or its owner is an extension with
    /// no MQTT connection (executable extensions answer in-process and are always there).
    pub fn absent(&self, route: &Route) -> Option<String> {
        if route.disabled {
            return Some(format!("service {} is disabled", route.spec.key()));
        }
        if self.local_answerer(&route.owner).is_some() || self.presence.present(&route.owner) {
            return None;
        }
        Some(format!(
            "no extension connected for service {}",
            route.spec.key()
        ))
    }

    fn local_answerer(&self, owner: &str) -> Option<Arc<dyn LocalAnswerer>> {
        self.local.as_ref()?.answerer(owner)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// When a request to `route` received now stops waiting.
    pub fn deadline(&self, route: &Route) -> u64 {
        self.clock.now_ms().saturating_add(route.spec.timeout_ms)
    }

    /// Opens `req` in the hub and publishes it on the service's request topic, or, for a
    /// service of an executable extension, runs its program in the background.
    pub fn send(
        self: &Arc<Self>,
        route: &Route,
        req: &ServiceRequest,
    ) -> Result<oneshot::Receiver<Outcome>, BusError> {
        let key = route.spec.key();
        let rx = self.hub.open(&req.id, &key);
        if let Some(e) = self.local_answerer(&route.owner) {
            let (me, req) = (self.clone(), req.clone());
            tokio::spawn(async move {
                let outcome = e.answer(&req, me.clock.as_ref(), &me.metrics).await;
                if let Some(o) = outcome {
                    // Undelivered: the caller timed out or left; nobody is waiting.
                    let _ = me.hub.complete(&req.id, |_| true, o);
                }
            });
            self.metrics.service_requests_pending.inc();
            return Ok(rx);
        }
        let payload = serde_json::to_vec(req).unwrap_or_default();
        let props = PublishProps {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        if let Err(e) = self
            .bus
            .publish(&route.spec.requests_topic(), Bytes::from(payload), props)
        {
            self.hub.expire(&req.id);
            return Err(e);
        }
        self.metrics.service_requests_pending.inc();
        Ok(rx)
    }

    /// Waits for the outcome of request `id` until `deadline` (ms, on the broker's clock).
    /// `None`: it timed out, and a response arriving later is dropped as late.
    pub async fn wait(
        &self,
        id: &str,
        mut rx: oneshot::Receiver<Outcome>,
        deadline: u64,
    ) -> Option<Outcome> {
        let sleep = self.clock.sleep_until(deadline);
        let got = tokio::select! {
            r = &mut rx => r.ok(),
            _ = sleep => {
                if self.hub.expire(id) {
                    None
                } else {
                    // Delivered just as the deadline passed: take it.
                    rx.await.ok()
                }
            }
        };
        self.metrics.service_requests_pending.dec();
        got
    }

    /// A caller left before its answer: later responses are dropped as late.
    pub fn abandon(&self, id: &str) {
        if self.hub.expire(id) {
            self.metrics.service_requests_pending.dec();
        }
    }

    /// Counts a request answered with `status`, `started` when it was received.
    pub fn record(&self, status: u16, started: Instant) {
        let s = crate::metrics::Status { status };
        self.metrics.service_requests.get_or_create(&s).inc();
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.service_request_duration.observe(elapsed);
    }

    /// Counts a response that came after its request timed out.
    pub fn count_late(&self) {
        self.metrics.service_late_responses.inc();
    }

    /// Waits for an MQTT-native call's answer in the background and sends it as the caller's
    /// reply: the response as `result`, or a 502/504 result shaped like the HTTP answer.
    pub fn reply_later(self: &Arc<Self>, call: PendingCall, rx: oneshot::Receiver<Outcome>) {
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = me.wait(&call.id, rx, call.deadline).await;
            let result = match (&outcome, failure(outcome.as_ref(), call.timeout_ms)) {
                (Some(Outcome::Response(r)), _) => r.to_result(),
                (_, Some((status, code, message))) => json!({
                    "status": status,
                    "headers": {"content-type": "application/json"},
                    "json": error_body(code, &message),
                }),
                _ => Value::Null,
            };
            let status = result["status"].as_u64().unwrap_or(0) as u16;
            me.record(status, call.started);
            me.metrics.command_replied(call.kind, "ok");
            let reply = Reply::ok(call.suffix, call.correlation_id, result);
            let props = PublishProps {
                correlation_data: call.correlation_data,
                content_type: Some("application/json".into()),
                ..Default::default()
            };
            let payload = serde_json::to_vec(&reply).unwrap_or_default();
            let topic = call.reply_topic;
            if let Err(e) = me.bus.publish(&topic, Bytes::from(payload), props) {
                tracing::warn!(topic = %topic, error = %e, "service call reply not published");
            }
        });
    }
}

/// An MQTT-native service call waiting for its answer: where the reply goes.
pub struct PendingCall {
    pub id: String,
    pub caller: String,
    /// The command's inbox suffix, echoed as the reply's `command`.
    pub suffix: String,
    /// Its metrics label (`Command::kind`).
    pub kind: &'static str,
    pub correlation_id: Option<Value>,
    pub correlation_data: Option<Bytes>,
    /// The caller's `replies`, or the Response Topic it chose in its outbox.
    pub reply_topic: String,
    pub deadline: u64,
    pub timeout_ms: u64,
    pub started: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_and_error_shapes() {
        assert!(stripped("authorization", &[]));
        assert!(stripped("transfer-encoding", &[]));
        assert!(stripped("x-private", &["x-private".into()]));
        assert!(!stripped("content-type", &[]));
        let (status, code, _) = failure(None, 10).unwrap();
        assert_eq!((status, code), (504, ErrorCode::Overloaded));
        let m = Outcome::Malformed("bad".into());
        assert_eq!(failure(Some(&m), 10).unwrap().0, 502);
        assert_eq!(
            error_body(ErrorCode::NotFound, "x"),
            json!({"error": {"code": "not_found", "message": "x"}})
        );
    }
}
