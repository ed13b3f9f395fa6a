//! Commands: publish under the principal's inbox with a fresh correlation id, and wait for
//! the reply carrying it. Concurrent requests on one connection each get their own reply.

use crate::connect::Client;
use crate::wire::topics;
use crate::Error;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

impl Client {
    /// Sends command `suffix` (`tasks/submit`, `tasks/<id>/resume`, ...) with `body` (a JSON
    /// object) and returns the reply's `result`, or `Error::Command` with the error code.
    pub async fn request(&self, suffix: &str, body: Value) -> Result<Value, Error> {
        self.request_within(suffix, body, self.shared.timeout).await
    }

    /// `request` with its own timeout.
    pub async fn request_within(
        &self,
        suffix: &str,
        mut body: Value,
        wait: Duration,
    ) -> Result<Value, Error> {
        let s = &self.shared;
        let deadline = tokio::time::Instant::now() + wait;
        // While reconnecting, the reply topic may not be subscribed yet: wait for it.
        if let Err(e) = s.wait_up(deadline).await {
            return Err(e.unwrap_or(Error::Timeout {
                command: suffix.into(),
                wait,
            }));
        }
        let Some(obj) = body.as_object_mut() else {
            return Err(Error::BadRequest(format!(
                "the body of '{suffix}' must be a JSON object"
            )));
        };
        let n = s.seq.fetch_add(1, Ordering::Relaxed);
        let corr = format!("{}-{}-{n}", s.id_prefix, s.run_id);
        obj.insert("correlation_id".into(), corr.clone().into());
        let payload = serde_json::to_vec(&body).map_err(|e| Error::BadRequest(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = s.waiting.lock() {
            w.insert(corr.clone(), tx);
        }
        let sent = self
            .mqtt
            .publish(
                topics::inbox(&s.user, suffix),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await;
        let outcome = match sent {
            Err(e) => Err(Error::Lost(e.to_string())),
            Ok(()) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r.map_err(Error::Command),
                Ok(Err(_)) => Err(s.gone().unwrap_or(Error::Closed)),
                Err(_) => Err(Error::Timeout {
                    command: suffix.into(),
                    wait,
                }),
            },
        };
        if let Ok(mut w) = s.waiting.lock() {
            w.remove(&corr);
        }
        outcome
    }

    /// Registers this principal's callout rules and services (replacing earlier ones).
    pub async fn register(&self, manifest: Value) -> Result<Value, Error> {
        self.request("register", manifest).await
    }

    /// Resolves task `id` with `action` (`resume`, `cancel`, `abort`) and returns the task.
    pub async fn resolve(&self, id: &str, action: &str, body: Value) -> Result<Value, Error> {
        self.request(&format!("tasks/{id}/{action}"), body).await
    }

    /// Lets task `id` continue, with an optional message.
    pub async fn resume(&self, id: &str, message: Option<&str>) -> Result<Value, Error> {
        let body = match message {
            Some(m) => json!({ "message": m }),
            None => json!({}),
        };
        self.resolve(id, "resume", body).await
    }
}
