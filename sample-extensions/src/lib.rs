//! Runnable example extensions for extbus, and the thin layer over `extbus-client` they share
//! (flags, one stream of subscribed messages, `anyhow` errors, the callout loop). Each sample is a module with `run(opts, ..., shutdown)` (its binary in
//! `src/bin/` only parses flags), so tests drive the same code in-process.
//!
//! Samples: `approver`, `placer` (callouts), `event_logger` (observer), `platform_sim`
//! (platform), `greeter` (extension service), `cluster` (an entity type with a hook and a
//! behavior), `vm_tools` (custom actions and a UI plugin).

pub mod approver;
pub mod cluster;
pub mod event_logger;
pub mod greeter;
pub mod placer;
pub mod platform_sim;
pub mod usage;
pub mod vm_tools;

use anyhow::{anyhow, bail, Context, Result};
use extbus_client::wire::topics;
use extbus_client::{Client, Error, Options};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

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
        let mut args = std::env::args();
        let bin = args
            .next()
            .and_then(|a| {
                let p = std::path::Path::new(&a);
                p.file_stem().map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let usage = usage::find(&bin);
        while let Some(k) = args.next() {
            if k == "--help" || k == "-h" {
                match usage {
                    Some(u) => print!("{}", usage::text(u)),
                    None => {
                        println!("flags: --url URL --user NAME --secret SECRET [--key value]...")
                    }
                }
                std::process::exit(0);
            }
            let Some(key) = k.strip_prefix("--") else {
                bail!("unexpected argument '{k}'; use --key value (see --help)");
            };
            if !usage::knows(usage, key) {
                bail!("unknown flag '--{key}' (see --help)");
            }
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

/// A connection as one principal. Clone it freely; all clones share the connection, which
/// reconnects (and subscribes again) when the broker restarts.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    pub user: String,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Bus {
    /// Connects, subscribes to our replies, and returns the bus and the stream of other messages.
    pub async fn connect(o: &Opts) -> Result<(Bus, mpsc::UnboundedReceiver<Msg>)> {
        let opts = Options::new(o.host.clone(), o.port, &o.user, &o.secret);
        let client = Client::connect(&opts).await.map_err(|e| match e {
            Error::ConnectTimeout { .. } => anyhow!("no answer from {}:{}", o.host, o.port),
            e => anyhow!("connecting as '{}': {e}", o.user),
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let bus = Bus {
            client,
            user: o.user.clone(),
            tx,
        };
        Ok((bus, rx))
    }

    /// The underlying client, for what `Bus` does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Subscribes at QoS 1, waits for the broker to accept, and forwards what arrives to the
    /// stream `connect` returned.
    pub async fn subscribe(&self, filter: &str) -> Result<()> {
        let mut sub = self.client.subscribe(filter).await?;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Ok(d) = sub.next().await {
                let msg = Msg {
                    topic: d.topic,
                    payload: d.payload,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    /// Sends a command under `extbus/in/<user>/` and returns its `result`, or the error as
    /// `code: message`.
    pub async fn command(&self, suffix: &str, body: Value) -> Result<Value> {
        self.client
            .request_within(suffix, body, COMMAND_WAIT)
            .await
            .map_err(|e| match e {
                Error::Timeout { .. } => anyhow!("no reply to {suffix}"),
                e => anyhow!("{e}"),
            })
    }

    /// Registers this principal's callout rules and services (replacing earlier ones).
    pub async fn register(&self, manifest: Value) -> Result<Value> {
        self.command("register", manifest).await
    }

    pub async fn disconnect(&self) {
        self.client.close().await;
    }
}

/// How long a command waits for its reply.
const COMMAND_WAIT: Duration = Duration::from_secs(15);

/// The topic a blocked `vm.create` task is announced on: `extbus/tasks/blocked/vm/create`.
pub fn blocked_topic(operation: &str) -> String {
    topics::tasks_blocked(operation)
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
        match bus.command(&topics::task_action(&id, action), body).await {
            Ok(_) => println!("{} task {id} ({})", action, task["subject"]),
            // A renotify of a task someone else resolved meanwhile is refused; that is fine.
            Err(e) => eprintln!("task {id}: {e}"),
        }
    }
}
