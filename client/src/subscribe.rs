//! Subscriptions: a filter and the stream of messages matching it, decoded on demand as typed
//! notices; and the bookkeeping that matches SUBACKs to SUBSCRIBEs and resubscribes after a
//! reconnect.

use crate::connect::{Client, Shared};
use crate::wire::{self, topics, Notice, Task};
use crate::Error;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Delivery {
    /// The payload as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }

    /// The payload decoded by what its topic carries.
    pub fn notice(&self) -> Notice {
        wire::classify(&self.topic, &self.payload)
    }
}

type AckTx = oneshot::Sender<Result<(), String>>;

struct Entry {
    id: u64,
    filter: String,
    tx: mpsc::UnboundedSender<Delivery>,
}

/// Every subscription of a client, and SUBSCRIBEs still waiting for their SUBACK (oldest
/// first: a broker answers them in order).
#[derive(Default)]
pub(crate) struct Subs {
    entries: Mutex<Vec<Entry>>,
    pending: Mutex<VecDeque<(String, Option<AckTx>)>>,
    next: AtomicU64,
    pub(crate) order: tokio::sync::Mutex<()>,
}

impl Subs {
    fn add(&self, filter: &str) -> (u64, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.entries.lock() {
            e.push(Entry {
                id,
                filter: filter.into(),
                tx,
            });
        }
        (id, rx)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|s| s.id != id);
        }
    }

    /// Distinct filters of the live subscriptions.
    pub(crate) fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Ok(e) = self.entries.lock() {
            for s in e.iter() {
                if !out.contains(&s.filter) {
                    out.push(s.filter.clone());
                }
            }
        }
        out
    }

    pub(crate) fn deliver(&self, topic: &str, payload: &[u8]) {
        if let Ok(mut e) = self.entries.lock() {
            // A subscription whose handle was dropped goes with its first undeliverable message.
            e.retain(|s| {
                // A shared subscription delivers topics of its inner filter.
                let (_group, filter) = topics::split_shared(&s.filter);
                !topics::filter_matches(filter, topic)
                    || s.tx
                        .send(Delivery {
                            topic: topic.into(),
                            payload: payload.to_vec(),
                        })
                        .is_ok()
            });
        }
    }

    pub(crate) fn expect_ack(&self, filter: &str) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.push_back((filter.into(), Some(tx)));
        }
        rx
    }

    pub(crate) fn acked(&self, outcome: Result<(), String>) {
        let next = self.pending.lock().ok().and_then(|mut p| p.pop_front());
        if let Some((_, Some(tx))) = next {
            let _ = tx.send(outcome);
        }
    }

    /// After a reconnect: SUBSCRIBE every filter again, and return how many went out. A caller
    /// still waiting for a SUBACK gets the one of the new SUBSCRIBE.
    pub(crate) fn resubscribe(&self, mqtt: &AsyncClient, filters: Vec<String>) -> usize {
        let Ok(mut p) = self.pending.lock() else {
            return 0;
        };
        let mut old: Vec<(String, Option<AckTx>)> = p.drain(..).collect();
        for f in filters {
            let waiter = old
                .iter_mut()
                .find(|(of, w)| *of == f && w.is_some())
                .and_then(|(_, w)| w.take());
            if mqtt.try_subscribe(f.clone(), QoS::AtLeastOnce).is_ok() {
                p.push_back((f, waiter));
            }
        }
        p.len()
    }

    /// The connection is over: every subscription stream ends.
    pub(crate) fn close(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
    }
}

pub(crate) async fn await_ack(
    shared: &Shared,
    filter: &str,
    rx: oneshot::Receiver<Result<(), String>>,
) -> Result<(), Error> {
    match tokio::time::timeout(shared.timeout, rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => Err(Error::SubscribeRefused {
            filter: filter.into(),
            reason,
        }),
        Ok(Err(_)) => Err(shared.gone().unwrap_or(Error::Closed)),
        Err(_) => Err(Error::SubscribeTimeout {
            filter: filter.into(),
            wait: shared.timeout,
        }),
    }
}

/// Messages matching one filter. Dropping it stops the delivery (the MQTT subscription stays
/// until the connection ends).
pub struct Subscription {
    filter: String,
    id: u64,
    rx: mpsc::UnboundedReceiver<Delivery>,
    shared: Arc<Shared>,
}

impl Subscription {
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The next message; `Err` once the connection is over for good. Survives reconnects.
    pub async fn next(&mut self) -> Result<Delivery, Error> {
        match self.rx.recv().await {
            Some(d) => Ok(d),
            None => Err(self.shared.gone().unwrap_or(Error::Closed)),
        }
    }

    /// A message already received, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    /// The next message decoded as a typed notice.
    pub async fn next_notice(&mut self) -> Result<Notice, Error> {
        self.next().await.map(|d| d.notice())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.subs.remove(self.id);
    }
}

impl Client {
    /// Subscribes at QoS 1 to `filter` and waits for the broker to accept.
    pub async fn subscribe(&self, filter: &str) -> Result<Subscription, Error> {
        let (id, rx) = self.shared.subs.add(filter);
        let sub = Subscription {
            filter: filter.into(),
            id,
            rx,
            shared: self.shared.clone(),
        };
        let ack = {
            let _order = self.shared.subs.order.lock().await;
            let ack = self.shared.subs.expect_ack(filter);
            self.mqtt
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| Error::Lost(e.to_string()))?;
            ack
        };
        await_ack(&self.shared, filter, ack).await?;
        Ok(sub)
    }

    /// Blocked-task notices for `operation` (`vm.create`).
    pub async fn subscribe_blocked(&self, operation: &str) -> Result<Subscription, Error> {
        self.subscribe(&topics::tasks_blocked(operation)).await
    }

    /// Outcomes of the tasks this principal submitted.
    pub async fn subscribe_outcomes(&self) -> Result<Subscription, Error> {
        self.subscribe(&topics::outcomes(self.user())).await
    }

    /// Audit events of one org, or of every org the principal may see.
    pub async fn subscribe_events(&self, org: Option<&str>) -> Result<Subscription, Error> {
        match org {
            Some(org) => self.subscribe(&topics::events_org_filter(org)).await,
            None => self.subscribe(topics::EVENTS_ALL).await,
        }
    }

    /// Blocked tasks for `operation` already waiting on this principal (found with
    /// `tasks/query`): what a callout handler answers first, before new notices.
    pub async fn blocked_on_me(&self, operation: &str) -> Result<Vec<Task>, Error> {
        let r = self
            .request(
                "tasks/query",
                serde_json::json!({"state": "blocked", "operation": operation}),
            )
            .await?;
        Ok(wire::tasks_of(&r)
            .into_iter()
            .filter(|t| self.waits_on_me(t))
            .collect())
    }

    /// Is `task` blocked on a stage that names this principal?
    pub fn waits_on_me(&self, task: &Task) -> bool {
        wire::waits_on(task, self.user())
    }
}
