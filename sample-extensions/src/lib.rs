//! Runnable example extensions for extbus, and the small client they share: connect as a
//! principal over MQTT 5, send commands with a correlation id and await the reply, register a
//! manifest, subscribe. Each sample is a module with `run(opts, ..., shutdown)` (its binary in
//! `src/bin/` only parses flags), so tests drive the same code in-process.
//!
//! Samples: `approver`, `placer` (callouts), `event_logger` (observer), `platform_sim`
//! (platform), `greeter` (extension service).

pub mod approver;
pub mod event_logger;
pub mod greeter;
pub mod placer;
pub mod platform_sim;

use anyhow::{anyhow, bail, Context, Result};
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where the broker is and who we are: `--url mqtt://host:port --user NAME --secret SECRET`,
/// plus any other `--key value` flags a sample reads with `get`.
#[derive(Debug, Clone)]
pub struct Opts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub secret: String,
    pub extra: HashMap<String, String>,
}

impl Opts {
    pub fn new(addr: std::net::SocketAddr, user: &str, secret: &str) -> Opts {
        Opts {
            host: addr.ip().to_string(),
            port: addr.port(),
            user: user.into(),
            secret: secret.into(),
            extra: HashMap::new(),
        }
    }

    /// Reads `--key value` pairs from the command line (and `EXTBUS_URL/USER/SECRET`).
    pub fn from_args() -> Result<Opts> {
        let mut extra = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(k) = args.next() {
            let Some(key) = k.strip_prefix("--") else {
                bail!("unexpected argument '{k}'; use --key value");
            };
            let v = args
                .next()
                .ok_or_else(|| anyhow!("--{key} needs a value"))?;
            extra.insert(key.to_string(), v);
        }
        let env = |k: &str| std::env::var(k).ok();
        let url = extra
            .remove("url")
            .or(env("EXTBUS_URL"))
            .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
        let hostport = url.strip_prefix("mqtt://").unwrap_or(&url);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("port in --url")?),
            None => (hostport.to_string(), 1883),
        };
        let user = extra
            .remove("user")
            .or(env("EXTBUS_USER"))
            .unwrap_or_else(|| "extension".into());
        let secret = extra
            .remove("secret")
            .or(env("EXTBUS_SECRET"))
            .unwrap_or_else(|| user.clone());
        Ok(Opts {
            host,
            port,
            user,
            secret,
            extra,
        })
    }

    /// An extra flag parsed as `T`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.extra.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow!("bad value '{v}' for --{key}")),
        }
    }
}

/// A message on a subscribed topic (replies are routed to `command` instead).
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A connection as one principal. Clone it freely; all clones share the connection.
#[derive(Clone)]
pub struct Bus {
    client: AsyncClient,
    pub user: String,
    waiting: Waiting,
    subacks: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>,
    seq: Arc<AtomicU64>,
}

impl Bus {
    /// Connects, subscribes to our replies, and returns the bus and the stream of other messages.
    pub async fn connect(o: &Opts) -> Result<(Bus, mpsc::UnboundedReceiver<Msg>)> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{}-{}-{}-{}",
            o.user,
            std::process::id(),
            nanos() % 100_000,
            n
        );
        let mut mo = MqttOptions::new(id, o.host.clone(), o.port);
        mo.set_credentials(o.user.clone(), o.secret.clone())
            .set_keep_alive(Duration::from_secs(30));
        // Small request/response messages: don't let Nagle's algorithm hold them back.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        mo.set_network_options(net);
        let (client, mut el) = AsyncClient::new(mo, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let bus = Bus {
            client,
            user: o.user.clone(),
            waiting: Arc::default(),
            subacks: Arc::default(),
            seq: Arc::default(),
        };
        let (waiting, subacks) = (bus.waiting.clone(), bus.subacks.clone());
        let replies = format!("extbus/out/{}/replies", o.user);
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        let ok = matches!(
                            s.return_codes.first(),
                            Some(SubscribeReasonCode::Success(_))
                        );
                        if let Some(w) = subacks.lock().ok().and_then(|mut q| q.pop_front()) {
                            let _ = w.send(ok);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).to_string();
                        if topic == replies {
                            // A reply goes to whoever waits for its correlation id.
                            let v: Value =
                                serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                            let corr = v["correlation_id"].as_str().unwrap_or_default().to_string();
                            if let Some(w) = waiting.lock().ok().and_then(|mut m| m.remove(&corr)) {
                                let _ = w.send(v);
                            }
                        } else if tx
                            .send(Msg {
                                topic,
                                payload: p.payload.to_vec(),
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(e.to_string()));
                            return;
                        }
                        // rumqttc reconnects on the next poll; pause so we do not spin.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("connecting as '{}': {e}", o.user),
            _ => bail!("no answer from {}:{}", o.host, o.port),
        }
        let r = format!("extbus/out/{}/replies", o.user);
        bus.subscribe(&r).await?;
        Ok((bus, rx))
    }

    /// Subscribes at QoS 1 and waits for the broker to accept.
    pub async fn subscribe(&self, filter: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut q) = self.subacks.lock() {
            q.push_back(tx);
        }
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => bail!("the broker refused the subscription to {filter}"),
            _ => bail!("no SUBACK for {filter}"),
        }
    }

    /// Sends a command under `extbus/in/<user>/` and returns its `result`, or the error as
    /// `code: message`.
    pub async fn command(&self, suffix: &str, mut body: Value) -> Result<Value> {
        let corr = format!("{}-{}", self.user, self.seq.fetch_add(1, Ordering::Relaxed));
        body["correlation_id"] = corr.clone().into();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.waiting.lock() {
            m.insert(corr.clone(), tx);
        }
        let topic = format!("extbus/in/{}/{suffix}", self.user);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, serde_json::to_vec(&body)?)
            .await?;
        let reply = match tokio::time::timeout(Duration::from_secs(15), rx).await {
            Ok(Ok(v)) => v,
            _ => {
                if let Ok(mut m) = self.waiting.lock() {
                    m.remove(&corr);
                }
                bail!("no reply to {suffix}");
            }
        };
        if reply["ok"] == true {
            Ok(reply["result"].clone())
        } else {
            bail!(
                "{}: {}",
                reply["error"]["code"].as_str().unwrap_or("?"),
                reply["error"]["message"].as_str().unwrap_or("?")
            )
        }
    }

    /// Registers this principal's callout rules and services (replacing earlier ones).
    pub async fn register(&self, manifest: Value) -> Result<Value> {
        self.command("register", manifest).await
    }

    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// The topic a blocked `vm.create` task is announced on: `extbus/tasks/blocked/vm/create`.
pub fn blocked_topic(operation: &str) -> String {
    format!("extbus/tasks/blocked/{}", operation.replacen('.', "/", 1))
}

/// Is `task` blocked on a stage that names `me`?
pub fn waiting_on(task: &Value, me: &str) -> bool {
    let stage = task["stage"].as_u64().unwrap_or(0) as usize;
    task["state"] == "blocked"
        && task["stages"][stage]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == me))
}

/// Handles blocked tasks for `operation` until `shutdown`: those already waiting (found with
/// `tasks/query`), then each notice. `decide` returns the action (`resume`/`abort`/...) and body.
pub async fn serve_callouts<F>(
    bus: &Bus,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    operation: &str,
    mut decide: impl FnMut(&Value) -> (&'static str, Value),
    shutdown: F,
) -> Result<()>
where
    F: Future<Output = ()>,
{
    let waiting = bus
        .command(
            "tasks/query",
            serde_json::json!({"state": "blocked", "operation": operation}),
        )
        .await?;
    let mut backlog: Vec<Value> = waiting["tasks"].as_array().cloned().unwrap_or_default();
    tokio::pin!(shutdown);
    loop {
        let task = match backlog.pop() {
            Some(t) => t,
            None => tokio::select! {
                _ = &mut shutdown => return Ok(()),
                m = rx.recv() => match m.and_then(|m| m.json()) {
                    Some(t) => t,
                    None if rx.is_closed() => bail!("connection closed"),
                    None => continue,
                },
            },
        };
        if !waiting_on(&task, &bus.user) {
            continue;
        }
        let id = task["id"].as_str().unwrap_or_default().to_string();
        let (action, body) = decide(&task);
        match bus.command(&format!("tasks/{id}/{action}"), body).await {
            Ok(_) => println!("{} task {id} ({})", action, task["subject"]),
            // A renotify of a task someone else resolved meanwhile is refused; that is fine.
            Err(e) => eprintln!("task {id}: {e}"),
        }
    }
}
