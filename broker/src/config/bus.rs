//! `[bus]`: where the MQTT bus is. `embedded` (the default) runs rumqttd behind the gate on
//! `[mqtt]`'s listeners; `external` connects the coordinator as a client to an existing broker
//! (Mosquitto), which then enforces the role table itself (see `dynsec`).

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusMode {
    #[default]
    Embedded,
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub mode: BusMode,
    /// External broker: `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// The broker principal extbus connects as (it must be allowed to publish everywhere
    /// under `extbus/` and, with `dynsec`, to `$CONTROL/dynamic-security/#`).
    pub user: String,
    pub secret: String,
    /// Start of the coordinator's MQTT client ids (`<prefix>-coordinator`, `<prefix>-dynsec-<random>`).
    pub client_id_prefix: String,
    /// PEM CA file for `mqtts://` (the system's roots when unset).
    pub ca_file: Option<PathBuf>,
    /// How long the broker keeps the coordinator's session (and its queued commands) while
    /// extbus is away, in seconds.
    pub session_expiry_s: u32,
    /// Take commands through `$share/<group>/extbus/in/+/#` instead of `extbus/in/+/#`.
    /// Empty (the default): a plain subscription, which Mosquitto 2.0 keeps across its own
    /// restart; it does not keep shared ones, and commands published before extbus is back
    /// would be acknowledged to their senders and dropped.
    pub share_group: String,
    /// Keep Mosquitto's dynamic-security clients, roles and ACLs in step with principals
    /// and registrations.
    pub dynsec: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            mode: BusMode::Embedded,
            url: String::new(),
            user: String::new(),
            secret: String::new(),
            client_id_prefix: "extbus".into(),
            ca_file: None,
            session_expiry_s: 86_400,
            share_group: String::new(),
            dynsec: false,
        }
    }
}

/// An external broker's address, from `bus.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses `mqtt://host[:port]` / `mqtts://host[:port]` (ports 1883 / 8883 by default).
pub fn parse_url(url: &str) -> Result<BusUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "'{url}' is not mqtt://host:port or mqtts://host:port"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("'{p}' in '{url}' is not a port"))?;
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
        return Err(format!("'{url}' names no host and port"));
    }
    Ok(BusUrl {
        host: host.to_string(),
        port,
        tls,
    })
}

impl BusConfig {
    pub fn external(&self) -> bool {
        self.mode == BusMode::External
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.external() {
            if self.dynsec {
                return Err(invalid(
                    "bus.dynsec",
                    "applies only with bus.mode = \"external\"",
                ));
            }
            return Ok(());
        }
        let url = parse_url(&self.url).map_err(|e| invalid("bus.url", e))?;
        if self.user.is_empty() {
            return Err(invalid(
                "bus.user",
                "name the broker principal extbus connects as",
            ));
        }
        if self.secret.is_empty() {
            return Err(invalid("bus.secret", "give the secret of bus.user"));
        }
        let prefix = &self.client_id_prefix;
        if prefix.is_empty()
            || prefix.len() > 40
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "bus.client_id_prefix",
                "must be 1 to 40 of [A-Za-z0-9_-]",
            ));
        }
        let g = &self.share_group;
        if g.len() > 40
            || !g
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "bus.share_group",
                "must be empty or up to 40 of [A-Za-z0-9_-]",
            ));
        }
        if self.ca_file.is_some() && !url.tls {
            return Err(invalid(
                "bus.ca_file",
                "applies only to an mqtts:// bus.url",
            ));
        }
        if self.session_expiry_s < 60 {
            return Err(invalid(
                "bus.session_expiry_s",
                "must be at least 60: the broker keeps commands for extbus that long",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://broker:1884").unwrap(),
            BusUrl {
                host: "broker".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(parse_url("mqtts://b.example").unwrap().port, 8883);
        assert_eq!(parse_url("mqtt://[::1]:1883").unwrap().host, "::1");
        for bad in [
            "",
            "tcp://x:1",
            "mqtt://",
            "mqtt://x:y",
            "mqtt://x:0",
            "mqtt://u@x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    fn external() -> BusConfig {
        BusConfig {
            mode: BusMode::External,
            url: "mqtt://127.0.0.1:1883".into(),
            user: "extbus".into(),
            secret: "s".into(),
            ..Default::default()
        }
    }

    fn field(c: &BusConfig) -> String {
        match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert!(BusConfig::default().validate().is_ok());
        assert!(external().validate().is_ok());
        let mut c = external();
        c.url = "http://x".into();
        assert_eq!(field(&c), "bus.url");
        let mut c = external();
        c.user.clear();
        assert_eq!(field(&c), "bus.user");
        let mut c = external();
        c.secret.clear();
        assert_eq!(field(&c), "bus.secret");
        let mut c = external();
        c.client_id_prefix = "a b".into();
        assert_eq!(field(&c), "bus.client_id_prefix");
        let mut c = external();
        c.ca_file = Some("ca.pem".into());
        assert_eq!(field(&c), "bus.ca_file");
        let mut c = external();
        c.share_group = "a/b".into();
        assert_eq!(field(&c), "bus.share_group");
        let c = BusConfig {
            dynsec: true,
            ..Default::default()
        };
        assert_eq!(field(&c), "bus.dynsec");
    }

    #[test]
    fn no_mqtt_listener_settings_in_external_mode() {
        let mut cfg = super::super::Config {
            bus: external(),
            ..Default::default()
        };
        assert!(cfg.validate().is_ok());
        cfg.mqtt.tls = Some(super::super::TlsConfig {
            listen: "127.0.0.1:8883".parse().unwrap(),
            cert: "c.pem".into(),
            key: "k.pem".into(),
        });
        match cfg.validate() {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "mqtt.tls"),
            other => panic!("{other:?}"),
        }
    }
}
