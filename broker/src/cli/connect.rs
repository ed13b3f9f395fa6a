//! The client side of the CLI: connection flags (URL, principal, secret, `EXTBUS_*` environment,
//! credentials file), and the CLI's wording over an `extbus-client` connection that sends
//! commands and waits for their replies.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use extbus_client::{Client, Error, Options, Subscription};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// An open connection as one principal, failing (not reconnecting) when it drops.
pub struct Conn {
    client: Client,
    pub user: String,
    subs: Vec<Subscription>,
}

/// The CLI's wording of a client error: flag hints for bad credentials, the principal for a
/// refused subscription.
fn explain(e: Error, user: &str) -> anyhow::Error {
    match e {
        Error::BadCredentials { .. } => anyhow!(
            "the broker refused the connection: bad credentials for principal '{user}' (check --user and --secret)"
        ),
        Error::SubscribeRefused { filter, reason } => anyhow!(
            "the broker refused the subscription to {filter} for '{user}': {reason}"
        ),
        other => anyhow!("{other}"),
    }
}

impl Conn {
    /// Connects, waits for CONNACK and subscribes to the principal's replies.
    pub async fn open(args: &ConnectArgs) -> Result<Conn> {
        let t = args.target()?;
        // Client ids starting with `extbus-` are reserved for the broker.
        let o = Options::new(t.host, t.port, &t.user, &t.secret)
            .timeout(args.wait)
            .reconnect(false)
            .id_prefix("cli");
        let client = Client::connect(&o).await.map_err(|e| explain(e, &t.user))?;
        Ok(Conn {
            client,
            user: t.user,
            subs: Vec::new(),
        })
    }

    /// Subscribes at QoS 1 and fails if the broker refuses.
    pub async fn subscribe(&mut self, filter: &str) -> Result<()> {
        let sub = self
            .client
            .subscribe(filter)
            .await
            .map_err(|e| explain(e, &self.user))?;
        self.subs.push(sub);
        Ok(())
    }

    /// Sends `suffix` under `extbus/in/<user>/` and returns the reply's result, or the broker's
    /// error as `<code>: <message>`.
    pub async fn command(&mut self, suffix: &str, body: Value) -> Result<Value> {
        self.client
            .request(suffix, body)
            .await
            .map_err(|e| explain(e, &self.user))
    }

    /// The next message on any subscribed topic other than the replies (waits without limit).
    pub async fn next_message(&mut self) -> Result<(String, Vec<u8>)> {
        if self.subs.is_empty() {
            return std::future::pending().await;
        }
        let next = self.subs.iter_mut().map(|s| Box::pin(s.next()));
        let (got, _, _) = futures::future::select_all(next).await;
        let d = got.map_err(|e| explain(e, &self.user))?;
        Ok((d.topic, d.payload))
    }

    /// Messages received so far that nobody asked for yet, oldest first per subscription.
    pub fn take_held(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for s in &mut self.subs {
            while let Some(d) = s.try_next() {
                out.push((d.topic, d.payload));
            }
        }
        out
    }

    pub async fn close(self) {
        self.client.close().await;
    }
}

/// A query command's body from the flags that were given (`limit` as a number).
pub fn query_body(fields: &[(&str, &Option<String>)], limit: Option<usize>) -> Value {
    let mut q = serde_json::json!({});
    for (k, v) in fields {
        if let Some(v) = v {
            q[*k] = v.clone().into();
        }
    }
    if let Some(l) = limit {
        q["limit"] = l.into();
    }
    q
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
