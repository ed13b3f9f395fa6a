//! Broker configuration in layers: built-in defaults, a TOML file, `EXTBUS_*` environment
//! variables (`EXTBUS_MQTT__LISTEN`, `__` between levels), then command-line flags.
//! `Config::validate` refuses a bad value naming its field (`load_error` words what the loader
//! itself refuses); nothing here touches the network.

pub mod bus;
pub mod entities;
pub mod exec;
mod load_error;
pub mod metadata;

pub use bus::{BusConfig, BusMode};
pub use exec::{ExecConfig, ExecService};
use extbus_schema::tasks::RuleSpec;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the sled store and the principals file.
    pub data_dir: PathBuf,
    /// Create the five sample principals (name = secret). Loopback listeners only.
    pub dev: bool,
    /// Where the bus is (`[bus]`): embedded (default) or an external broker.
    pub bus: BusConfig,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub tasks: TasksConfig,
    pub events: EventsConfig,
    pub services: ServicesConfig,
    pub entities: entities::EntitiesConfig,
    pub metadata: metadata::MetadataConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    /// Executable extensions the broker runs itself (`[[exec]]`).
    pub exec: Vec<ExecConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// MQTT 3.1.1 and 5 on one port.
    pub listen: SocketAddr,
    /// Largest accepted publish payload, in bytes.
    pub max_payload: usize,
    /// Optional MQTT over TLS listener.
    pub tls: Option<TlsConfig>,
    /// Caps on subscriptions (`[mqtt.subscriptions]`).
    pub subscriptions: SubscriptionLimits,
    // Connection limits (with the `http` ones).
    /// Listen queue of the MQTT listeners; the kernel caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// A new connection that has not sent its CONNECT after this long is closed.
    pub connect_timeout_ms: u64,
}

/// How many distinct filters a client may hold; a SUBSCRIBE over a cap gets SUBACK 0x97
/// Quota exceeded (MQTT 3.1.1: 0x80) for the filters above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionLimits {
    /// Per client connection.
    pub max_per_connection: usize,
    /// Across all connections of one principal.
    pub max_per_principal: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        SubscriptionLimits {
            max_per_connection: 100,
            max_per_principal: 1000,
        }
    }
}

impl SubscriptionLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        const MAX: usize = 1_000_000;
        let field = "mqtt.subscriptions";
        if self.max_per_connection == 0 || self.max_per_connection > MAX {
            return Err(invalid(
                &format!("{field}.max_per_connection"),
                "must be between 1 and 1000000",
            ));
        }
        if self.max_per_principal < self.max_per_connection || self.max_per_principal > MAX {
            return Err(invalid(
                &format!("{field}.max_per_principal"),
                "must be at least max_per_connection and at most 1000000",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    // Connection limits (with the `mqtt` ones).
    /// Listen queue of the HTTP listener; the kernel caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// A request's headers must arrive within this time of its first byte, and its body
    /// within this time of the headers.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request under way is closed after this long.
    pub idle_timeout_ms: u64,
    /// Open connections at most; more are answered 503 `overloaded` and closed.
    pub max_connections: usize,
    /// Open connections from one IP address at most; more are answered 503 `overloaded`.
    pub max_connections_per_address: usize,
    /// On shutdown, service calls still waiting after this long are answered 503 and every
    /// connection is closed.
    pub shutdown_grace_ms: u64,
    /// `GET /api/events/stream` sends a keep-alive comment after this long without an event.
    pub sse_keepalive_ms: u64,
    /// Events a stream's reader may fall behind the live feed before it is cut off (with an
    /// event saying where to resume).
    pub sse_buffer: usize,
    /// A console session unused this long ends (sign in again).
    pub console_idle_secs: u64,
    /// Bearer tokens the console mints for UI plugins last this long.
    pub console_token_secs: u64,
    /// Session cookies carry `Secure`: set when browsers reach the listener over TLS (a
    /// TLS-terminating proxy in front of it).
    pub console_secure_cookie: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Re-announce waiting tasks this often (a safety net: an extension hears its waiting
    /// tasks when it subscribes again; spread over the period, not in bursts).
    pub renotify_ms: u64,
    /// Callout rules set by the admin; each names the `extension` principal that answers it.
    pub rules: Vec<RuleSpec>,
    /// Most commands the coordinator applies per store flush (group commit).
    pub max_batch: usize,
    /// Remove tasks this long after they ended, with their idempotency keys (0 = keep forever).
    pub retention_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Drop events older than this (0 = keep forever).
    pub retention_max_age_ms: u64,
    /// Keep at most this many events (0 = unbounded).
    pub retention_max_count: u64,
    /// Most events one `events/replay` reply carries.
    pub replay_page_max: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesConfig {
    /// Timeout of a declared service that sets none.
    pub default_timeout_ms: u64,
    /// Services declared by the admin (extensions declare theirs with `register`).
    pub declared: Vec<DeclaredService>,
}

/// A service declared in the config, answered by the `extension` principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredService {
    pub extension: String,
    pub vendor: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub url_patterns: Vec<String>,
    #[serde(default = "default_service_priority")]
    pub priority: i64,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_service_priority() -> i64 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `extbus=debug,rumqttd=warn`.
    pub level: String,
}

/// Credential checks (`[auth]`): a fixed pool of argon2 workers behind a bounded queue, and
/// failure throttling per source address and per principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Threads that run argon2 (each keeps one argon2 work area, about 19 MiB).
    pub workers: usize,
    /// Checks waiting for a worker; beyond this a login is refused at once as busy. A
    /// first-time login waits at most about `queue / workers` argon2 checks.
    pub queue: usize,
    /// Failed checks an address or principal may have before it is throttled.
    pub free_failures: u32,
    /// First refusal period once throttled; it doubles with every further failure.
    pub penalty_base_ms: u64,
    /// Longest refusal period.
    pub penalty_max_ms: u64,
    /// A key's failures are forgotten after this long without one.
    pub forget_after_ms: u64,
    /// Most addresses and principals tracked at once.
    pub max_tracked: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            workers: 2,
            queue: 16,
            free_failures: 5,
            penalty_base_ms: 1_000,
            penalty_max_ms: 60_000,
            forget_after_ms: 600_000,
            max_tracked: 100_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./extbus-data"),
            dev: false,
            bus: BusConfig::default(),
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            tasks: TasksConfig::default(),
            events: EventsConfig::default(),
            services: ServicesConfig::default(),
            entities: entities::EntitiesConfig::default(),
            metadata: metadata::MetadataConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            exec: Vec::new(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: "127.0.0.1:1883".parse().unwrap(),
            max_payload: 256 * 1024,
            tls: None,
            subscriptions: SubscriptionLimits::default(),
            backlog: 1024,
            connect_timeout_ms: 10_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            backlog: 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 512,
            max_connections_per_address: 64,
            shutdown_grace_ms: 10_000,
            sse_keepalive_ms: 15_000,
            sse_buffer: 4096,
            console_idle_secs: 1800,
            console_token_secs: 300,
            console_secure_cookie: false,
        }
    }
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            renotify_ms: 600_000,
            rules: Vec::new(),
            max_batch: 1024,
            retention_ms: 604_800_000,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_max_age_ms: 7 * 24 * 3600 * 1000,
            retention_max_count: 10_000_000,
            replay_page_max: 500,
        }
    }
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            default_timeout_ms: 10_000,
            declared: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// A refused configuration: which field, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Load(String),
    #[error("config field `{field}`: {why}")]
    Invalid { field: String, why: String },
}

fn invalid(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        why: why.into(),
    }
}

/// Checks one service's identity (`[vendor, name, version]`), URL patterns and timeout; a bad
/// value is reported under `field(<key>)`. Shared by declared and exec services.
pub(crate) fn check_service(
    field: &dyn Fn(&str) -> String,
    [vendor, name, version]: [&String; 3],
    url_patterns: &[String],
    timeout_ms: Option<u64>,
) -> Result<(), ConfigError> {
    use extbus_schema::names::{valid_name, valid_version};
    for (f, v, ok) in [
        ("vendor", vendor, valid_name(vendor)),
        ("name", name, valid_name(name)),
        ("version", version, valid_version(version)),
    ] {
        if !ok {
            return Err(invalid(&field(f), format!("'{v}' is not a valid {f}")));
        }
    }
    for (j, pat) in url_patterns.iter().enumerate() {
        if let Err(e) = regex::Regex::new(pat) {
            return Err(invalid(
                &field(&format!("url_patterns[{j}]")),
                format!("not a regular expression: {e}"),
            ));
        }
    }
    if timeout_ms == Some(0) {
        return Err(invalid(&field("timeout_ms"), "must be at least 1"));
    }
    Ok(())
}

impl Config {
    /// Builds the effective config: defaults, then `file` (if given), then the environment,
    /// then `overrides` (flags, as a partial TOML-shaped value).
    pub fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // EXTBUS_CONFIG and the CLI client's variables are not config settings.
        let client_vars = ["config", "url", "user", "secret", "credentials"];
        fig = fig.merge(Env::prefixed("EXTBUS_").ignore(&client_vars).split("__"));
        fig = fig.merge(Serialized::defaults(overrides));
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Load(load_error::describe(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mqtt.max_payload < 1024 || self.mqtt.max_payload > 64 * 1024 * 1024 {
            return Err(invalid(
                "mqtt.max_payload",
                "must be between 1024 and 67108864 bytes",
            ));
        }
        self.mqtt.subscriptions.validate()?;
        self.bus.validate()?;
        if self.bus.external() && self.mqtt.tls.is_some() {
            return Err(invalid(
                "mqtt.tls",
                "bus.mode = \"external\" opens no MQTT listener: TLS is the external broker's (remove [mqtt.tls])",
            ));
        }
        if self.tasks.renotify_ms < 100 {
            return Err(invalid("tasks.renotify_ms", "must be at least 100"));
        }
        if self.tasks.max_batch == 0 {
            return Err(invalid("tasks.max_batch", "must be at least 1"));
        }
        self.validate_limits()?;
        self.validate_declared_services()?;
        self.validate_auth()?;
        if self.services.default_timeout_ms == 0 {
            return Err(invalid("services.default_timeout_ms", "must be at least 1"));
        }
        if self.events.replay_page_max == 0 || self.events.replay_page_max > 10_000 {
            return Err(invalid(
                "events.replay_page_max",
                "must be between 1 and 10000",
            ));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(invalid(
                "log.level",
                format!("'{}' is not a valid log filter", self.log.level),
            ));
        }
        for (i, r) in self.tasks.rules.iter().enumerate() {
            let field = format!("tasks.rules[{i}]");
            if extbus_schema::names::split_operation(&r.operation).is_none() {
                return Err(invalid(
                    &format!("{field}.operation"),
                    format!("'{}' is not <entity>.<operation> of [a-z0-9-]", r.operation),
                ));
            }
            match &r.extension {
                Some(e) if crate::principals::valid_name(e) => {}
                _ => {
                    return Err(invalid(
                        &format!("{field}.extension"),
                        "name the principal that answers this rule",
                    ))
                }
            }
            if let Some(o) = r
                .orgs
                .iter()
                .find(|o| o.as_str() != "*" && !extbus_schema::names::valid_org(o))
            {
                return Err(invalid(
                    &format!("{field}.orgs"),
                    format!("'{o}' is not a valid org"),
                ));
            }
            if r.timeout_ms == 0 || r.timeout_ms > r.max_timeout_ms {
                return Err(invalid(
                    &format!("{field}.timeout_ms"),
                    "must be at least 1 and at most max_timeout_ms",
                ));
            }
            if let Some(why) = r
                .result_schema
                .as_ref()
                .and_then(extbus_schema::register::result_schema_error)
            {
                return Err(invalid(
                    &format!("{field}.result_schema"),
                    format!("the schema does not compile: {why}"),
                ));
            }
        }
        exec::validate(&self.exec)?;
        entities::validate(&self.entities.types)?;
        if self.dev {
            let mut addrs = vec![
                ("mqtt.listen", self.mqtt.listen),
                ("http.listen", self.http.listen),
            ];
            if let Some(t) = &self.mqtt.tls {
                addrs.push(("mqtt.tls.listen", t.listen));
            }
            for (field, a) in addrs {
                if !a.ip().is_loopback() {
                    return Err(invalid(field, format!("--dev creates well-known secrets and only listens on loopback; {a} is not")));
                }
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        if a.workers == 0 || a.workers > 64 {
            return Err(invalid("auth.workers", "must be between 1 and 64"));
        }
        if a.queue == 0 || a.queue > 100_000 {
            return Err(invalid("auth.queue", "must be between 1 and 100000"));
        }
        if a.free_failures == 0 {
            return Err(invalid("auth.free_failures", "must be at least 1"));
        }
        if a.penalty_base_ms == 0 || a.penalty_base_ms > a.penalty_max_ms {
            return Err(invalid(
                "auth.penalty_base_ms",
                "must be at least 1 and at most penalty_max_ms",
            ));
        }
        if a.max_tracked == 0 {
            return Err(invalid("auth.max_tracked", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("mqtt.backlog", self.mqtt.backlog as u64),
            ("mqtt.connect_timeout_ms", self.mqtt.connect_timeout_ms),
            ("http.backlog", self.http.backlog as u64),
            (
                "http.header_read_timeout_ms",
                self.http.header_read_timeout_ms,
            ),
            ("http.idle_timeout_ms", self.http.idle_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address as u64,
            ),
            ("http.shutdown_grace_ms", self.http.shutdown_grace_ms),
            ("http.sse_keepalive_ms", self.http.sse_keepalive_ms),
            ("http.sse_buffer", self.http.sse_buffer as u64),
            ("http.console_idle_secs", self.http.console_idle_secs),
            ("http.console_token_secs", self.http.console_token_secs),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("mqtt.backlog", self.mqtt.backlog),
            ("http.backlog", self.http.backlog),
        ] {
            if v > 65_535 {
                return Err(invalid(field, "must be at most 65535"));
            }
        }
        if self.http.max_connections_per_address > self.http.max_connections {
            return Err(invalid(
                "http.max_connections_per_address",
                "must not exceed http.max_connections",
            ));
        }
        Ok(())
    }

    fn validate_declared_services(&self) -> Result<(), ConfigError> {
        for (i, d) in self.services.declared.iter().enumerate() {
            let field = |f: &str| format!("services.declared[{i}].{f}");
            if !crate::principals::valid_name(&d.extension) {
                return Err(invalid(
                    &field("extension"),
                    "name the principal that answers this service",
                ));
            }
            check_service(
                &field,
                [&d.vendor, &d.name, &d.version],
                &d.url_patterns,
                d.timeout_ms,
            )?;
        }
        Ok(())
    }

    /// The services the config declares for `owner`, as a manifest would.
    pub fn declared_services(&self, owner: &str) -> Vec<extbus_schema::register::ServiceSpec> {
        self.services
            .declared
            .iter()
            .filter(|d| d.extension == owner)
            .map(|d| extbus_schema::register::ServiceSpec {
                vendor: d.vendor.clone(),
                name: d.name.clone(),
                version: d.version.clone(),
                url_patterns: d.url_patterns.clone(),
                priority: d.priority,
                timeout_ms: d.timeout_ms.unwrap_or(self.services.default_timeout_ms),
            })
            .collect()
    }

    /// The effective config as TOML, for `extbus config print`.
    /// The configuration as TOML, with `bus.secret` masked (`config print` output is shown
    /// and pasted around).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.bus.secret.is_empty() {
            shown.bus.secret = "********".into();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_spec() {
        let c = Config::load(None, json!({})).unwrap();
        assert_eq!(c.mqtt.listen.to_string(), "127.0.0.1:1883");
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt.max_payload, 262_144);
        assert_eq!(c.tasks.renotify_ms, 600_000);
        assert_eq!(c.services.default_timeout_ms, 10_000);
        assert_eq!(c.mqtt.subscriptions.max_per_connection, 100);
        assert_eq!(c.mqtt.subscriptions.max_per_principal, 1000);
        assert_eq!((c.mqtt.backlog, c.http.backlog), (1024, 1024));
        assert_eq!(c.http.shutdown_grace_ms, 10_000);
    }

    #[test]
    fn file_then_flags_and_bad_values_name_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extbus.toml");
        std::fs::write(
            &path,
            "data_dir = \"/tmp/x\"\n[mqtt]\nlisten = \"127.0.0.1:1999\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), json!({"mqtt": {"listen": "127.0.0.1:2000"}})).unwrap();
        assert_eq!(c.mqtt.listen.port(), 2000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));

        std::fs::write(&path, "[mqtt]\nmax_payload = 10\n").unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.max_payload"), "{e}");

        std::fs::write(&path, "[mqtt]\nlisten = \"nowhere\"\n").unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");

        std::fs::write(&path, "[mqtt]\nlisten = \"0.0.0.0:1883\"\n").unwrap();
        let e = Config::load(Some(&path), json!({"dev": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.listen"), "{e}");

        std::fs::write(
            &path,
            "[tasks]\n[[tasks.rules]]\noperation = \"vapp.instantiate\"\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tasks.rules[0].extension"), "{e}");

        std::fs::write(
            &path,
            "[[services.declared]]\nextension = \"ext\"\nvendor = \"acme\"\nname = \"greeter\"\nversion = \"1.0.0\"\nurl_patterns = [\"^/ok\", \"(\"]\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("services.declared[0].url_patterns[1]"), "{e}");

        let exec = "[[exec]]\nname = \"quota\"\npath = \"/bin/q\"\n[[exec.services]]\nvendor = \"acme\"\nname = \"quota\"\nversion = \"1.0.0\"\nurl_patterns = [\"^/q/\"]\n";
        std::fs::write(&path, exec).unwrap();
        let c = Config::load(Some(&path), json!({})).unwrap();
        assert_eq!(c.exec[0].services[0].url_patterns, ["^/q/"]);
        assert_eq!(c.exec[0].max_running, 16);
        std::fs::write(&path, format!("{exec}timeout_ms = 0\n")).unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exec[0].services[0].timeout_ms"), "{e}");

        std::fs::write(&path, "[auth]\nworkers = 0\n").unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.workers"), "{e}");
        std::fs::write(&path, "[auth]\npenalty_base_ms = 5\npenalty_max_ms = 4\n").unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.penalty_base_ms"), "{e}");
        std::fs::write(&path, "[mqtt.subscriptions]\nmax_per_connection = 0\n").unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.subscriptions.max_per_connection"), "{e}");
        let below = "[mqtt.subscriptions]\nmax_per_connection = 50\nmax_per_principal = 10\n";
        std::fs::write(&path, below).unwrap();
        let e = Config::load(Some(&path), json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.subscriptions.max_per_principal"), "{e}");
        for (bad, field) in [
            ("[http]\nidle_timeout_ms = 0\n", "http.idle_timeout_ms"),
            ("[mqtt]\nbacklog = 70000\n", "mqtt.backlog"),
            (
                "[http]\nmax_connections = 4\nmax_connections_per_address = 5\n",
                "http.max_connections_per_address",
            ),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = Config::load(Some(&path), json!({}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{e}");
        }

        std::fs::write(&path, "typo = 1\n").unwrap();
        assert!(Config::load(Some(&path), json!({})).is_err());
        assert!(Config::load(Some(&dir.path().join("missing.toml")), json!({})).is_err());
    }
}
