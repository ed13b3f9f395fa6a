//! The client side of the CLI: connection flags (URL, principal, secret, `EXTBUS_*` environment,
//! credentials file) and an MQTT 5 connection that sends commands under the principal's inbox
//! with a correlation id and waits for the matching reply on `extbus/out/<principal>/replies`.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How to reach the broker and as whom. Flags win over the environment, which wins over the
/// credentials file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// Broker URL, e.g. mqtt://127.0.0.1:1883 [default: mqtt://127.0.0.1:1883].
    #[arg(long, env = "EXTBUS_URL", global = true)]
    pub url: Option<String>,
    /// Principal name (MQTT user name).
    #[arg(long, env = "EXTBUS_USER", global = true)]
    pub user: Option<String>,
    /// The principal's secret (MQTT password).
    #[arg(long, env = "EXTBUS_SECRET", hide_env_values = true, global = true)]
    pub secret: Option<String>,
    /// A TOML or JSON file with `url`, `user` and `secret`.
    #[arg(long, env = "EXTBUS_CREDENTIALS", global = true)]
    pub credentials: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the broker (connect and each reply), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    pub wait: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    url: Option<String>,
    user: Option<String>,
    secret: Option<String>,
}

/// Where to connect and with which credentials, once every layer is merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub secret: String,
}

fn read_credentials(path: &Path) -> Result<CredentialsFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .with_context(|| format!("credentials file {} (JSON)", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("credentials file {} (TOML)", path.display()))
    }
}

/// `mqtt://host:port`, `tcp://host:port`, `host:port` or `host` -> (host, port).
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let rest = if let Some(r) = url.strip_prefix("mqtt://") {
        r
    } else if let Some(r) = url.strip_prefix("tcp://") {
        r
    } else if url.contains("://") {
        bail!("unsupported broker URL '{url}': use mqtt://host:port");
    } else {
        url
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| anyhow!("bad port '{p}' in broker URL '{url}'"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (rest, 1883),
    };
    if host.is_empty() {
        bail!("broker URL '{url}' has no host");
    }
    Ok((host.to_string(), port))
}

/// Parses `500ms`, `90s`, `10m`, `1h`, `2d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 500ms, 90s, 10m or 1h"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use ms, s, m, h or d)"
            ))
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("'{s}' is too long"))
}

impl ConnectArgs {
    /// Merges flags / environment with the credentials file.
    pub fn target(&self) -> Result<Target> {
        let file = match &self.credentials {
            Some(p) => read_credentials(p)?,
            None => CredentialsFile::default(),
        };
        let url = self
            .url
            .clone()
            .or(file.url)
            .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
        let (host, port) = parse_url(&url)?;
        let user = self.user.clone().or(file.user).ok_or_else(|| {
            anyhow!("no principal given: use --user, EXTBUS_USER or --credentials FILE")
        })?;
        let secret = self.secret.clone().or(file.secret).ok_or_else(|| {
            anyhow!(
                "no secret given for '{user}': use --secret, EXTBUS_SECRET or --credentials FILE"
            )
        })?;
        Ok(Target {
            host,
            port,
            user,
            secret,
        })
    }
}

/// What the connection's event loop hands over.
enum Incoming {
    Msg { topic: String, payload: Vec<u8> },
    SubAck(Vec<SubscribeReasonCode>),
    Closed(String),
}

/// An open MQTT 5 connection as one principal.
pub struct Conn {
    client: AsyncClient,
    pub user: String,
    rx: mpsc::UnboundedReceiver<Incoming>,
    /// Messages that arrived while waiting for something else.
    held: VecDeque<(String, Vec<u8>)>,
    wait: Duration,
    seq: u64,
    run_id: String,
    task: tokio::task::JoinHandle<()>,
}

fn refusal(code: ConnectReturnCode, user: &str) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => format!(
            "the broker refused the connection: bad credentials for principal '{user}' (check --user and --secret)"
        ),
        other => format!("the broker refused the connection: {other:?}"),
    }
}

impl Conn {
    /// Connects, waits for CONNACK and subscribes to the principal's replies.
    pub async fn open(args: &ConnectArgs) -> Result<Conn> {
        let t = args.target()?;
        // Client ids starting with `extbus-` are reserved for the broker.
        let id = format!("cli-{}", uuid::Uuid::new_v4().simple());
        let mut o = MqttOptions::new(id, t.host.clone(), t.port);
        o.set_credentials(t.user.clone(), t.secret.clone())
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(Some(64 << 20));
        // Small request/response messages: don't let Nagle's algorithm hold them back.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        let (client, mut el) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let user = t.user.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                let ev = el.poll().await;
                let item = match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                        continue;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => Incoming::Msg {
                        topic: String::from_utf8_lossy(&p.topic).to_string(),
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::SubAck(s))) => Incoming::SubAck(s.return_codes),
                    Ok(_) => continue,
                    Err(e) => {
                        let why = match e {
                            ConnectionError::ConnectionRefused(code) => refusal(code, &user),
                            ConnectionError::Io(e) => format!("cannot reach the broker: {e}"),
                            other => format!("connection to the broker lost: {other}"),
                        };
                        match ready.take() {
                            Some(r) => {
                                let _ = r.send(Err(why));
                            }
                            None => {
                                let _ = tx.send(Incoming::Closed(why));
                            }
                        }
                        return;
                    }
                };
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        match tokio::time::timeout(args.wait, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(why))) => {
                task.abort();
                bail!("{why}");
            }
            _ => {
                task.abort();
                bail!(
                    "no answer from the broker at {}:{} within {:?}",
                    t.host,
                    t.port,
                    args.wait
                );
            }
        }
        let mut conn = Conn {
            client,
            user: t.user.clone(),
            rx,
            held: VecDeque::new(),
            wait: args.wait,
            seq: 0,
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            task,
        };
        let replies = extbus_schema::topics::replies(&t.user);
        conn.subscribe(&replies).await?;
        Ok(conn)
    }

    /// Subscribes at QoS 1 and fails if the broker refuses.
    pub async fn subscribe(&mut self, filter: &str) -> Result<()> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| anyhow!("subscribe {filter}: {e}"))?;
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Incoming::SubAck(codes))) => {
                    return match codes.first() {
                        Some(SubscribeReasonCode::Success(_)) => Ok(()),
                        Some(c) => bail!(
                            "the broker refused the subscription to {filter} for '{}': {c:?}",
                            self.user
                        ),
                        None => bail!("empty SUBACK for {filter}"),
                    };
                }
                Ok(Some(Incoming::Msg { topic, payload })) => self.held.push_back((topic, payload)),
                Ok(Some(Incoming::Closed(why))) => bail!("{why}"),
                Ok(None) => bail!("connection closed"),
                Err(_) => bail!("no SUBACK for {filter} within {:?}", self.wait),
            }
        }
    }

    /// Sends `suffix` under `extbus/in/<user>/` and returns the reply's result, or the broker's
    /// error as `<code>: <message>`.
    pub async fn command(&mut self, suffix: &str, mut body: Value) -> Result<Value> {
        self.seq += 1;
        let corr = format!("cli-{}-{}", self.run_id, self.seq);
        if let Some(o) = body.as_object_mut() {
            o.insert("correlation_id".into(), corr.clone().into());
        }
        let topic = extbus_schema::topics::inbox(&self.user, suffix);
        let payload = serde_json::to_vec(&body)?;
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| anyhow!("publish {suffix}: {e}"))?;
        let replies = extbus_schema::topics::replies(&self.user);
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let (topic, payload) = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Incoming::Msg { topic, payload })) => (topic, payload),
                Ok(Some(Incoming::SubAck(_))) => continue,
                Ok(Some(Incoming::Closed(why))) => bail!("{why}"),
                Ok(None) => bail!("connection closed"),
                Err(_) => bail!("no reply to '{suffix}' within {:?}", self.wait),
            };
            if topic != replies {
                self.held.push_back((topic, payload));
                continue;
            }
            let Ok(reply) = serde_json::from_slice::<extbus_schema::Reply>(&payload) else {
                continue;
            };
            if reply.correlation_id.as_ref().and_then(Value::as_str) != Some(corr.as_str()) {
                continue;
            }
            return reply
                .into_result()
                .map_err(|e| anyhow!("{}: {}", e.code.as_str(), e.message));
        }
    }

    /// The next message on any subscribed topic other than the replies (waits without limit).
    pub async fn next_message(&mut self) -> Result<(String, Vec<u8>)> {
        if let Some(m) = self.held.pop_front() {
            return Ok(m);
        }
        loop {
            match self.rx.recv().await {
                Some(Incoming::Msg { topic, payload }) => return Ok((topic, payload)),
                Some(Incoming::SubAck(_)) => continue,
                Some(Incoming::Closed(why)) => bail!("{why}"),
                None => bail!("connection closed"),
            }
        }
    }

    /// Messages received so far that nobody asked for yet, oldest first.
    pub fn take_held(&mut self) -> Vec<(String, Vec<u8>)> {
        while let Ok(m) = self.rx.try_recv() {
            if let Incoming::Msg { topic, payload } = m {
                self.held.push_back((topic, payload));
            }
        }
        self.held.drain(..).collect()
    }

    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        // Give the DISCONNECT a moment to leave before the event loop is dropped.
        let _ = tokio::time::timeout(Duration::from_millis(200), self.task).await;
    }
}

/// Runs an async CLI command on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_durations_parse() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1999").unwrap(),
            ("127.0.0.1".into(), 1999)
        );
        assert_eq!(parse_url("broker").unwrap(), ("broker".into(), 1883));
        assert_eq!(parse_url("[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://x:port").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn credentials_file_fills_in_what_flags_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(
            &toml,
            "url = \"mqtt://h:1\"\nuser = \"op\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let args = ConnectArgs {
            credentials: Some(toml),
            user: Some("other".into()),
            ..Default::default()
        };
        let t = args.target().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("h", 1));
        assert_eq!((t.user.as_str(), t.secret.as_str()), ("other", "s"));
        let json = dir.path().join("c.json");
        std::fs::write(&json, r#"{"user": "op", "secret": "s"}"#).unwrap();
        let args = ConnectArgs {
            credentials: Some(json),
            ..Default::default()
        };
        assert_eq!(args.target().unwrap().port, 1883);
        let none = ConnectArgs::default().target().unwrap_err().to_string();
        assert!(none.contains("--user"), "{none}");
    }
}
