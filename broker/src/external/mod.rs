//! External bus mode beyond the connection itself: the settings `[bus]` gives, and keeping
//! Mosquitto's dynamic-security clients, roles and ACLs in step with extbus's principals and
//! registrations (`dynsec` talks to the plugin, `sync` decides what to tell it).

pub mod dynsec;
pub mod sync;

use crate::config::{bus::parse_url, Config};
use crate::mqtt::external::ExternalSettings;
use anyhow::{anyhow, Result};

/// The external broker's connection settings from `[bus]`.
pub fn settings(cfg: &Config) -> Result<ExternalSettings> {
    let b = &cfg.bus;
    let url = parse_url(&b.url).map_err(|e| anyhow!("bus.url: {e}"))?;
    let tls = url.tls.then(|| match &b.ca_file {
        Some(p) => extbus_client::Tls::CaFile(p.clone()),
        None => extbus_client::Tls::NativeRoots,
    });
    Ok(ExternalSettings {
        host: url.host,
        port: url.port,
        tls,
        user: b.user.clone(),
        secret: b.secret.clone(),
        client_id: format!("{}-coordinator", b.client_id_prefix),
        session_expiry_s: b.session_expiry_s,
        max_payload: cfg.mqtt.max_payload,
        share_group: (!b.share_group.is_empty()).then(|| b.share_group.clone()),
    })
}

/// `principal add` with `bus.dynsec`: the new principal's client gets its password (known
/// only now; extbus keeps a hash) and its role, before the secret is shown.
pub async fn principal_added(cfg: &Config, name: &str, secret: &str) -> Result<()> {
    let s = settings(cfg)?;
    let dynsec = dynsec::Dynsec::connect(&s)
        .await
        .map_err(|e| anyhow!("dynamic security (bus.dynsec): {e}"))?;
    let sync = sync::Sync {
        dynsec,
        principals: std::sync::Arc::new(crate::principals::Principals::open(&cfg.data_dir)?),
        registry: std::sync::Arc::new(crate::registry::Registry::new()),
        dev: false,
    };
    sync.principal(name, Some(secret))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// `extbus bus sync`: applies every principal's client, role and ACLs (with what the stopped
/// broker's store has registered) and reports the drift it corrected.
pub async fn sync_all(cfg: &Config) -> Result<sync::Report> {
    if !(cfg.bus.external() && cfg.bus.dynsec) {
        anyhow::bail!("bus sync needs bus.mode = \"external\" and bus.dynsec = true");
    }
    let principals = std::sync::Arc::new(crate::principals::Principals::open(&cfg.data_dir)?);
    let db = crate::server::open_store(&cfg.data_dir).map_err(|e| {
        anyhow!("{e:#}: a running extbus applies everything at its start; stop it, or restart it instead")
    })?;
    let registry = crate::coordinator::registrations(&db, cfg).map_err(|e| anyhow!("{e}"))?;
    drop(db);
    let dynsec = dynsec::Dynsec::connect(&settings(cfg)?)
        .await
        .map_err(|e| anyhow!("dynamic security (bus.dynsec): {e}"))?;
    let sync = sync::Sync {
        dynsec,
        principals,
        registry: std::sync::Arc::new(registry),
        dev: false,
    };
    sync.all().await.map_err(|e| anyhow!("{e}"))
}
