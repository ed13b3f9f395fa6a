//! Service requests waiting for their response, by request id: which service each is for and
//! where its answer goes (a oneshot the HTTP handler or the MQTT caller's waiter holds).
//! Requests that timed out are remembered for a while so a late response is told apart.

use extbus_schema::ServiceResponse;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// How many timed-out request ids are remembered to recognise late responses.
const EXPIRED_KEPT: usize = 16 * 1024;

/// What a waiting request receives.
#[derive(Debug)]
pub enum Outcome {
    /// The extension's response (checked against the schema, not yet against HTTP).
    Response(ServiceResponse),
    /// The extension answered with something unusable; the text says what.
    Malformed(String),
}

/// Why a response could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// No such request.
    Unknown,
    /// The request timed out (or its caller left) before the response came.
    Late,
    /// The responder does not serve the request's service.
    NotOwner { service: String },
}

struct Pending {
    service: String,
    tx: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    /// Ids that expired, with their service, oldest first.
    expired: HashMap<String, String>,
    expired_order: VecDeque<String>,
}

#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting for the response to request `id` of service `service` (its key).
    pub fn open(&self, id: &str, service: &str) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.lock().pending.insert(
            id.to_string(),
            Pending {
                service: service.to_string(),
                tx,
            },
        );
        rx
    }

    /// Delivers `outcome` for request `id` from `responder`, if `may_answer(service)` says the
    /// responder serves the request's service.
    pub fn complete(
        &self,
        id: &str,
        may_answer: impl Fn(&str) -> bool,
        outcome: Outcome,
    ) -> Result<(), Undelivered> {
        let mut inner = self.lock();
        let service = match inner.pending.get(id) {
            Some(p) => p.service.clone(),
            None => {
                return match inner.expired.get(id) {
                    Some(s) if !may_answer(s) => Err(Undelivered::NotOwner { service: s.clone() }),
                    Some(_) => Err(Undelivered::Late),
                    None => Err(Undelivered::Unknown),
                }
            }
        };
        if !may_answer(&service) {
            return Err(Undelivered::NotOwner { service });
        }
        let Some(p) = inner.pending.remove(id) else {
            return Err(Undelivered::Unknown);
        };
        drop(inner);
        // The waiter may have just given up: then the response is as good as late.
        p.tx.send(outcome).map_err(|_| Undelivered::Late)
    }

    /// Stops waiting for `id` (timeout, or the caller left). Returns false when it was no
    /// longer pending (its outcome was delivered meanwhile).
    pub fn expire(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let Some(p) = inner.pending.remove(id) else {
            return false;
        };
        inner.expired.insert(id.to_string(), p.service);
        inner.expired_order.push_back(id.to_string());
        while inner.expired_order.len() > EXPIRED_KEPT {
            if let Some(old) = inner.expired_order.pop_front() {
                inner.expired.remove(&old);
            }
        }
        true
    }

    /// Requests waiting now.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(id: &str) -> Outcome {
        Outcome::Response(ServiceResponse {
            id: id.into(),
            status: 200,
            headers: Default::default(),
            body: None,
            json: None,
        })
    }

    #[tokio::test]
    async fn delivers_once_to_the_owner_only() {
        let hub = Hub::new();
        let rx = hub.open("r1", "acme/greeter/1");
        let owner = |s: &str| s == "acme/greeter/1";
        assert_eq!(
            hub.complete("r1", |_| false, resp("r1")),
            Err(Undelivered::NotOwner {
                service: "acme/greeter/1".into()
            })
        );
        hub.complete("r1", owner, resp("r1")).unwrap();
        assert!(matches!(rx.await.unwrap(), Outcome::Response(r) if r.id == "r1"));
        assert_eq!(
            hub.complete("r1", owner, resp("r1")),
            Err(Undelivered::Unknown)
        );
        assert_eq!(hub.pending(), 0);
    }

    #[test]
    fn expired_requests_answer_late() {
        let hub = Hub::new();
        let _rx = hub.open("r2", "s");
        assert!(hub.expire("r2"));
        assert!(!hub.expire("r2"));
        assert_eq!(
            hub.complete("r2", |_| true, resp("r2")),
            Err(Undelivered::Late)
        );
        assert!(matches!(
            hub.complete("r2", |_| false, resp("r2")),
            Err(Undelivered::NotOwner { .. })
        ));
        for i in 0..EXPIRED_KEPT + 1 {
            let id = format!("x{i}");
            drop(hub.open(&id, "s"));
            hub.expire(&id);
        }
        assert_eq!(
            hub.complete("r2", |_| true, resp("r2")),
            Err(Undelivered::Unknown)
        );
    }
}
