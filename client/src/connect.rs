//! Connecting as a principal: the options, the MQTT 5 connection, and the task that drives it
//! (replies to their waiting request, messages to their subscriptions, reconnecting with
//! backoff and subscribing again when the broker is back).

use crate::subscribe::Subs;
use crate::tls::Tls;
use crate::wire::{self, topics, CommandError};
use crate::Error;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the broker is, who we are, and how to behave.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub secret: String,
    /// TLS trust; `None` for plain TCP.
    pub tls: Option<Tls>,
    /// How long to wait for CONNACK, a SUBACK, or a reply.
    pub timeout: Duration,
    /// Reconnect (and subscribe again) when the connection drops, instead of failing.
    pub reconnect: bool,
    /// Start of the MQTT client id and of correlation ids (ids starting with `extbus-` are
    /// reserved for the broker).
    pub id_prefix: String,
    pub keep_alive: Duration,
}

impl Options {
    pub fn new(host: impl Into<String>, port: u16, user: &str, secret: &str) -> Options {
        Options {
            host: host.into(),
            port,
            user: user.into(),
            secret: secret.into(),
            tls: None,
            timeout: Duration::from_secs(10),
            reconnect: true,
            id_prefix: user.into(),
            keep_alive: Duration::from_secs(30),
        }
    }

    pub fn addr(addr: SocketAddr, user: &str, secret: &str) -> Options {
        Options::new(addr.ip().to_string(), addr.port(), user, secret)
    }

    pub fn tls(mut self, tls: Tls) -> Options {
        self.tls = Some(tls);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    pub fn reconnect(mut self, on: bool) -> Options {
        self.reconnect = on;
        self
    }

    pub fn id_prefix(mut self, prefix: &str) -> Options {
        self.id_prefix = prefix.into();
        self
    }
}

/// Whether the connection is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Up,
    /// Lost; reconnecting.
    Down,
    /// Over for good, with why.
    Gone(String),
}

pub(crate) type Waiting = Mutex<HashMap<String, oneshot::Sender<Result<Value, CommandError>>>>;

/// State shared by the client handles and the driving task.
pub(crate) struct Shared {
    pub(crate) user: String,
    pub(crate) timeout: Duration,
    pub(crate) id_prefix: String,
    pub(crate) run_id: String,
    pub(crate) seq: AtomicU64,
    pub(crate) replies: String,
    pub(crate) waiting: Waiting,
    pub(crate) subs: Subs,
    pub(crate) link: watch::Sender<Link>,
    /// Reconnections completed (CONNACKs after the first).
    pub(crate) reconnects: AtomicU64,
    closing: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A connection as one principal. Clones share it.
#[derive(Clone)]
pub struct Client {
    pub(crate) mqtt: AsyncClient,
    pub(crate) shared: Arc<Shared>,
}

fn refusal(code: ConnectReturnCode, user: &str) -> Error {
    match code {
        ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
            Error::BadCredentials { user: user.into() }
        }
        other => Error::Refused(format!("{other:?}")),
    }
}

fn connect_error(e: ConnectionError, user: &str) -> Error {
    match e {
        ConnectionError::ConnectionRefused(code) => refusal(code, user),
        ConnectionError::Io(e) => Error::Unreachable(e.to_string()),
        ConnectionError::Tls(e) => Error::Unreachable(format!("tls: {e}")),
        // Bytes that do not parse as MQTT before CONNACK: something else is listening there.
        ConnectionError::MqttState(rumqttc::v5::StateError::Deserialization(e)) => {
            Error::NotMqtt(format!("the peer is not an MQTT listener: {e}"))
        }
        ConnectionError::NotConnAck(p) => Error::NotMqtt(format!(
            "the peer is not an MQTT broker: {p:?} before CONNACK"
        )),
        other => Error::Lost(other.to_string()),
    }
}

/// `connect_error` for the first connection, naming the address.
fn first_connect_error(e: ConnectionError, user: &str, addr: &str) -> Error {
    match connect_error(e, user) {
        Error::NotMqtt(why) => Error::NotMqtt(format!(
            "{addr} is not an MQTT listener (is the URL the broker's HTTP port?): {}",
            why.rsplit(": ").next().unwrap_or(&why)
        )),
        other => other,
    }
}

impl Client {
    /// Connects, waits for CONNACK and subscribes to this principal's replies.
    pub async fn connect(o: &Options) -> Result<Client, Error> {
        static N: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "{}-{}-{}",
            o.id_prefix,
            uuid::Uuid::new_v4().simple(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut mo = MqttOptions::new(id, o.host.clone(), o.port);
        mo.set_credentials(o.user.clone(), o.secret.clone())
            .set_keep_alive(o.keep_alive)
            .set_max_packet_size(Some(64 << 20));
        if let Some(tls) = &o.tls {
            mo.set_transport(crate::tls::transport(tls)?);
        }
        // Small request/response messages: don't let Nagle's algorithm hold them back.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        mo.set_network_options(net);
        let (mqtt, el) = AsyncClient::new(mo, 256);
        let shared = Arc::new(Shared {
            user: o.user.clone(),
            timeout: o.timeout,
            id_prefix: o.id_prefix.clone(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            seq: AtomicU64::new(0),
            replies: topics::replies(&o.user),
            waiting: Mutex::default(),
            subs: Subs::default(),
            link: watch::channel(Link::Up).0,
            reconnects: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(drive(
            el,
            mqtt.clone(),
            shared.clone(),
            ready_tx,
            o.reconnect,
            format!("{}:{}", o.host, o.port),
        ));
        let abort = task.abort_handle();
        if let Ok(mut t) = shared.task.lock() {
            *t = Some(task);
        }
        match tokio::time::timeout(o.timeout, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                abort.abort();
                return Err(e);
            }
            _ => {
                abort.abort();
                return Err(Error::ConnectTimeout {
                    addr: format!("{}:{}", o.host, o.port),
                    wait: o.timeout,
                });
            }
        }
        let client = Client { mqtt, shared };
        let replies = client.shared.replies.clone();
        client.subscribe_internal(&replies).await?;
        Ok(client)
    }

    /// The principal this client is connected as.
    pub fn user(&self) -> &str {
        &self.shared.user
    }

    /// Watches the connection: `Up`, `Down` while reconnecting, `Gone` when over.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.shared.link.subscribe()
    }

    /// How many times the connection was re-established.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Sends DISCONNECT and stops the connection; pending requests fail with `Closed`.
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let _ = self.mqtt.disconnect().await;
        let task = self.shared.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let abort = task.abort_handle();
            // Give the DISCONNECT a moment to leave before the event loop goes.
            if tokio::time::timeout(Duration::from_millis(200), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.shared.end(Error::Closed.to_string());
    }
}

impl Shared {
    /// Ends the connection for good: waiting requests and subscriptions see it close.
    pub(crate) fn end(&self, why: String) {
        self.link.send_replace(Link::Gone(why));
        if let Ok(mut w) = self.waiting.lock() {
            w.clear();
        }
        self.subs.close();
    }

    /// Waits until the link is up (not reconnecting); `Err` when it is over or `until` passes.
    pub(crate) async fn wait_up(&self, until: tokio::time::Instant) -> Result<(), Option<Error>> {
        let mut link = self.link.subscribe();
        loop {
            match &*link.borrow_and_update() {
                Link::Up => return Ok(()),
                Link::Gone(_) => return Err(self.gone()),
                Link::Down => {}
            }
            match tokio::time::timeout_at(until, link.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.gone()),
                Err(_) => return Err(None),
            }
        }
    }

    /// Why the connection is over, if it is.
    pub(crate) fn gone(&self) -> Option<Error> {
        match &*self.link.borrow() {
            Link::Gone(_) if self.closing.load(Ordering::Relaxed) => Some(Error::Closed),
            Link::Gone(why) => Some(Error::Lost(why.clone())),
            _ => None,
        }
    }

    fn dispatch(&self, topic: String, payload: Vec<u8>) {
        if topic == self.replies {
            let Some((corr, outcome)) = wire::parse_reply(&payload) else {
                return;
            };
            if let Some(w) = self.waiting.lock().ok().and_then(|mut m| m.remove(&corr)) {
                let _ = w.send(outcome);
            }
            return;
        }
        self.subs.deliver(&topic, &payload);
    }
}

async fn drive(
    mut el: EventLoop,
    mqtt: AsyncClient,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<(), Error>>,
    reconnect: bool,
    addr: String,
) {
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    // SUBACKs still due for the subscriptions renewed after a reconnect; the link is `Up`
    // again only once they are all in, so no reply is published before we listen for it.
    let mut renewing = 0usize;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = MIN_BACKOFF;
                match ready.take() {
                    Some(r) => {
                        let _ = r.send(Ok(()));
                    }
                    None => {
                        // A clean session: the broker forgot our subscriptions.
                        let mut filters = vec![shared.replies.clone()];
                        filters.extend(shared.subs.filters());
                        renewing = shared.subs.resubscribe(&mqtt, filters);
                        if renewing > 0 {
                            continue;
                        }
                        shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                }
                shared.link.send_replace(Link::Up);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).to_string();
                shared.dispatch(topic, p.payload.to_vec());
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                let ok = match s.return_codes.first() {
                    Some(SubscribeReasonCode::Success(_)) => Ok(()),
                    Some(c) => Err(format!("{c:?}")),
                    None => Err("empty SUBACK".into()),
                };
                shared.subs.acked(ok);
                if renewing > 0 {
                    renewing -= 1;
                    if renewing == 0 {
                        shared.reconnects.fetch_add(1, Ordering::Relaxed);
                        shared.link.send_replace(Link::Up);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(first_connect_error(e, &shared.user, &addr)));
                    return;
                }
                let refused = matches!(e, ConnectionError::ConnectionRefused(_));
                if shared.closing.load(Ordering::Relaxed) || !reconnect || refused {
                    shared.end(connect_error(e, &shared.user).to_string());
                    return;
                }
                renewing = 0;
                shared.link.send_replace(Link::Down);
                // rumqttc reconnects on the next poll; wait first so a dead broker is not
                // hammered.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Client {
    /// Subscribes without a subscription handle (the replies topic).
    async fn subscribe_internal(&self, filter: &str) -> Result<(), Error> {
        let rx = {
            // SUBACKs come back in the order SUBSCRIBEs left: queue and send as one step.
            let _order = self.shared.subs.order.lock().await;
            let rx = self.shared.subs.expect_ack(filter);
            self.mqtt
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| Error::Lost(e.to_string()))?;
            rx
        };
        crate::subscribe::await_ack(&self.shared, filter, rx).await
    }
}
