//! Starting and stopping the whole broker: data dir, principals, store, MQTT bus and gate,
//! coordinator, HTTP. `run` takes bound listeners, a clock and a shutdown future, so tests
//! start it on port 0 with a manual clock and stop it cleanly.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::coordinator::{self, Parts};
use crate::metrics::Metrics;
use crate::mqtt::{self, MqttSettings};
use crate::principals::Principals;
use crate::registry::Registry;
use anyhow::{Context, Result};
use extbus_schema::Role;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

/// The sockets the broker serves on, bound by the caller. In external bus mode there is no
/// MQTT listener (`mqtt` is `None`, `mqtt_tls` too): clients use the external broker.
pub struct Listeners {
    pub mqtt: Option<TcpListener>,
    pub http: TcpListener,
    pub mqtt_tls: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(cfg: &Config) -> Result<Self> {
        let http = bind(cfg.http.listen, cfg.http.backlog)
            .with_context(|| format!("binding HTTP listener {} (http.listen)", cfg.http.listen))?;
        if cfg.bus.external() {
            return Ok(Listeners {
                mqtt: None,
                http,
                mqtt_tls: None,
            });
        }
        let mqtt = bind(cfg.mqtt.listen, cfg.mqtt.backlog)
            .with_context(|| format!("binding MQTT listener {} (mqtt.listen)", cfg.mqtt.listen))?;
        let mqtt_tls =
            match &cfg.mqtt.tls {
                Some(t) => Some(bind(t.listen, cfg.mqtt.backlog).with_context(|| {
                    format!("binding TLS listener {} (mqtt.tls.listen)", t.listen)
                })?),
                None => None,
            };
        Ok(Listeners {
            mqtt: Some(mqtt),
            http,
            mqtt_tls,
        })
    }
}

/// Binds `addr` with a listen queue of `backlog` (tokio's own `bind` uses 128, which a burst
/// of connections overflows). The kernel silently caps it at `net.core.somaxconn`.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// `extbus serve`: bind, run until SIGINT/SIGTERM.
pub async fn serve(cfg: Config) -> Result<()> {
    let listeners = Listeners::bind(&cfg).await?;
    run(cfg, listeners, Arc::new(SystemClock), shutdown_signal()).await
}

/// `serve`, reloading the configuration with `load` on SIGHUP (see `reload`).
pub async fn serve_reloading(cfg: Config, load: crate::reload::Loader) -> Result<()> {
    let listeners = Listeners::bind(&cfg).await?;
    let metrics = Arc::new(Metrics::new());
    let (appliers, reloads) = crate::reload::channels();
    let hup = tokio::spawn(crate::reload::on_sighup(
        cfg.clone(),
        load,
        metrics.clone(),
        Some(appliers),
    ));
    let clock = Arc::new(SystemClock);
    let r = run_reloadable(
        cfg,
        listeners,
        clock,
        shutdown_signal(),
        metrics,
        Some(reloads),
    )
    .await;
    hup.abort();
    r
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

/// The sample principals of `--dev`, each with its name as secret.
pub const DEV_PRINCIPALS: [(&str, Role); 5] = [
    ("platform", Role::Platform),
    ("extension", Role::Extension),
    ("operator", Role::Operator),
    ("observer", Role::Observer),
    ("admin", Role::Admin),
];

/// Makes sure someone can log in: dev principals, or a first `admin` whose secret goes to a
/// private file in the data dir.
pub fn ensure_principals(cfg: &Config, p: &Principals) -> Result<()> {
    if cfg.dev {
        for (name, role) in DEV_PRINCIPALS {
            if p.get(name).is_none() {
                p.add(name, vec![role], vec!["*".into()], Some(name.to_string()))?;
            }
        }
        tracing::warn!("--dev: sample principals platform, extension, operator, observer, admin have their names as secrets");
    } else if p.is_empty() {
        let secret = p.add("admin", vec![Role::Admin], vec!["*".into()], None)?;
        let path = cfg.data_dir.join("admin.secret");
        crate::datadir::write_private(&path, format!("{secret}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(path = %path.display(), "first start: created principal 'admin'; its secret is in this file (readable by you only)");
    }
    Ok(())
}

pub(crate) fn open_store(dir: &Path) -> Result<sled::Db> {
    let store = dir.join("store");
    crate::datadir::create_private(&store)
        .with_context(|| format!("creating the store dir {}", store.display()))?;
    let db = sled::Config::new()
        .path(&store)
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .with_context(|| {
            format!(
                "opening the store in {} (is another extbus using this data dir?)",
                dir.display()
            )
        })?;
    // sled creates its files with the process umask; the dir is private, the files too.
    if let Err(e) = crate::datadir::restrict_tree(&store) {
        tracing::warn!(store = %store.display(), error = %e, "cannot make the store files private");
    }
    Ok(db)
}

/// What stops the bus at shutdown.
enum BusHandle {
    Embedded(mqtt::MqttHandle),
    External {
        client: mqtt::external::ExternalHandle,
        _notices: mpsc::Sender<crate::notices::GateNotice>,
    },
}

/// Runs the broker on the given listeners until `shutdown` resolves, then stops accepting,
/// finishes and flushes the coordinator's batch, and returns.
pub async fn run(
    cfg: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    run_with_metrics(cfg, listeners, clock, shutdown, Arc::new(Metrics::new())).await
}

/// `run`, counting into `metrics` (shared with what runs beside the broker, e.g. reloads).
pub async fn run_with_metrics(
    cfg: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
) -> Result<()> {
    run_reloadable(cfg, listeners, clock, shutdown, metrics, None).await
}

/// `run_with_metrics`, taking reloaded configurations from `reloads` (the coordinator its
/// rules and services, the listeners and the verifier their limits).
pub async fn run_reloadable(
    mut cfg: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
    reloads: Option<crate::reload::Reloads>,
) -> Result<()> {
    let (reconfigure, limits_rx) = match reloads {
        Some(r) => (Some(r.coordinator), Some(r.limits)),
        None => (None, None),
    };
    // Executable extensions' rules and services join the config's, answered by their names.
    cfg.tasks.rules.extend(crate::exec::rules(&cfg.exec));
    cfg.services
        .declared
        .extend(crate::exec::declared_services(&cfg.exec));
    crate::datadir::create_private(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    if let Some(why) = crate::datadir::exposure(&cfg.data_dir) {
        tracing::warn!(data_dir = %cfg.data_dir.display(), "the data dir is not private: {why}");
    }
    let principals = Arc::new(Principals::open(&cfg.data_dir)?);
    ensure_principals(&cfg, &principals)?;
    for name in principals.reserve(cfg.exec.iter().map(|e| e.name.clone())) {
        tracing::warn!(principal = %name, "a principal has the name of an [[exec]] entry; it cannot log in while the entry is configured");
    }
    let db = open_store(&cfg.data_dir)?;
    let registry = Arc::new(Registry::new());
    let (notice_tx, notice_rx) = mpsc::channel(4096);

    let http_addr = listeners.http.local_addr()?;
    let verifier = crate::auth::Verifier::start(
        principals.clone(),
        &cfg.auth,
        clock.clone(),
        metrics.clone(),
    );
    let verifier_live = verifier.clone();
    let mut acl_sync = None;
    let (bus_handle, bus_tx, bus_rx) = match listeners.mqtt {
        Some(mqtt_listener) => {
            let settings = MqttSettings {
                max_payload: cfg.mqtt.max_payload,
                gate: true,
                subscriptions: cfg.mqtt.subscriptions,
                connect_timeout: std::time::Duration::from_millis(cfg.mqtt.connect_timeout_ms),
            };
            let tls = match (listeners.mqtt_tls, &cfg.mqtt.tls) {
                (Some(l), Some(t)) => Some((
                    l,
                    mqtt::TlsFiles {
                        cert: t.cert.clone(),
                        key: t.key.clone(),
                    },
                )),
                _ => None,
            };
            let (h, tx, rx) = mqtt::start(
                settings,
                mqtt_listener,
                tls,
                verifier.clone(),
                registry.clone(),
                metrics.clone(),
                notice_tx.clone(),
            )
            .await
            .context("starting the MQTT bus")?;
            tracing::info!(mqtt = %h.local_addr(), "embedded MQTT bus listening");
            (BusHandle::Embedded(h), tx, rx)
        }
        None => {
            let settings = crate::external::settings(&cfg)?;
            let (h, tx, rx) = mqtt::external::connect(&settings)
                .await
                .context("connecting to the external MQTT broker (bus.url)")?;
            tracing::info!(url = %cfg.bus.url, "using the external MQTT broker");
            // The broker's connections are not seen here: services wait for their timeout.
            registry.presence.untracked();
            if cfg.bus.dynsec {
                let dynsec = crate::external::dynsec::Dynsec::connect(&settings)
                    .await
                    .map_err(|e| anyhow::anyhow!("dynamic security (bus.dynsec): {e}"))?;
                acl_sync = Some(Arc::new(crate::external::sync::Sync {
                    dynsec,
                    principals: principals.clone(),
                    registry: registry.clone(),
                    dev: cfg.dev,
                }));
            }
            // Nothing raises gate notices here; the sender stays so the queue stays open.
            (
                BusHandle::External {
                    client: h,
                    _notices: notice_tx.clone(),
                },
                tx,
                rx,
            )
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (exec, internal) =
        crate::exec::start(&cfg.exec, metrics.clone(), clock.clone(), stop_rx.clone());
    let services = crate::services::Services::new(
        bus_tx.clone(),
        clock.clone(),
        metrics.clone(),
        Some(exec as Arc<dyn crate::services::LocalServices>),
        registry.presence.clone(),
    );
    let feed = crate::feed::Feed::new(cfg.http.sse_buffer);
    let (api_tx, api_rx) = mpsc::channel(crate::http::api::QUEUE);
    let api = crate::http::api::Api::new(
        api_tx,
        feed.clone(),
        std::time::Duration::from_millis(cfg.http.sse_keepalive_ms),
    );
    let parts = Parts {
        config: cfg.clone(),
        db: db.clone(),
        bus_tx,
        bus_rx,
        notices: notice_rx,
        principals: principals.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        internal: Some(internal),
        api: Some(api_rx),
        feed,
        services: services.clone(),
        acl_sync,
        reconfigure,
    };
    let http_state = crate::http::HttpState::new(
        metrics.clone(),
        verifier,
        services,
        cfg.mqtt.max_payload,
        api,
        Arc::new(crate::http::session::Sessions::new(
            clock.clone(),
            cfg.http.console_idle_secs,
            cfg.http.console_token_secs,
            cfg.http.console_secure_cookie,
        )),
    )
    .with_bus_auth(registry, notice_tx);
    let coord = tokio::spawn(coordinator::run(parts, stopped(stop_rx.clone())));
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let (http_limits, http_limits_rx) = watch::channel(crate::http::Limits::from(&cfg.http));
    let http = tokio::spawn(crate::http::serve(
        listeners.http,
        http_state,
        http_limits_rx,
        stopped(http_stop_rx),
    ));
    if let Some(rx) = limits_rx {
        let gate = match &bus_handle {
            BusHandle::Embedded(h) => Some(h.limits()),
            BusHandle::External { .. } => None,
        };
        tokio::spawn(apply_limits(rx, http_limits, verifier_live, gate));
    }
    tracing::info!(http = %http_addr, data_dir = %cfg.data_dir.display(), "extbus serving");

    shutdown.await;
    // HTTP first, while the bus still carries service responses; bounded by its grace period.
    let _ = http_stop_tx.send(true);
    let _ = http.await;
    match bus_handle {
        BusHandle::Embedded(h) => h.stop().await,
        BusHandle::External { client, .. } => client.stop().await,
    }
    let _ = stop_tx.send(true);
    let coord_result = coord.await.context("coordinator task")?;
    coord_result.context("coordinator")?;
    db.flush_async().await.context("final store flush")?;
    drop(db);
    tracing::info!("extbus stopped; store flushed");
    Ok(())
}

/// Applies the run-time limits of each reloaded configuration (`reload::LIVE_LIMITS`) to the
/// HTTP listener, the login throttle and the MQTT gate, answering once they hold.
async fn apply_limits(
    mut rx: mpsc::Receiver<coordinator::Reconfigure>,
    http: watch::Sender<crate::http::Limits>,
    verifier: Arc<crate::auth::Verifier>,
    gate: Option<mqtt::GateLimits>,
) {
    while let Some(r) = rx.recv().await {
        let c = &r.config;
        http.send_replace(crate::http::Limits::from(&c.http));
        verifier.set_limits(&c.auth);
        if let Some(g) = &gate {
            let timeout = std::time::Duration::from_millis(c.mqtt.connect_timeout_ms);
            g.set(timeout, c.mqtt.subscriptions);
        }
        let _ = r.done.send(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How many of `n` simultaneous connects to a listener that accepts nothing complete
    /// within a second: the rest wait in vain for room in the listen queue.
    async fn queued(backlog: u32, n: usize) -> usize {
        let l = bind("127.0.0.1:0".parse().unwrap(), backlog).unwrap();
        let addr = l.local_addr().unwrap();
        let tries = (0..n).map(|_| {
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
        });
        let done = futures::future::join_all(tries).await;
        drop(l);
        done.into_iter().filter(|r| matches!(r, Ok(Ok(_)))).count()
    }

    #[tokio::test]
    async fn the_listen_queue_holds_a_burst_of_connects() {
        assert_eq!(queued(1024, 400).await, 400);
        // The queue is what holds them: a short one drops the rest of the burst.
        assert!(queued(16, 400).await < 100);
    }
}
