//! The MQTT bus: an embedded rumqttd (`embed`), the gate in front of it that authenticates
//! principals and enforces the protocol's publish/subscribe rights (`gate`), and the coordinator's
//! in-process link (`bus`); or, in external mode, a client of an existing broker (`external`).
//! The only way in from outside; no rumqttd type leaves this module.

mod bus;
mod embed;
pub mod external;
mod gate;
pub mod grants;

pub use bus::{BusError, BusRx, BusTx, InboundPublish, PublishProps};
pub use gate::acl::{may_publish, may_subscribe, Denial};
pub use gate::acl_unfiltered::may_subscribe_unfiltered;
pub use gate::tls::TlsFiles;

use crate::auth::Verifier;
use crate::config::SubscriptionLimits;
use crate::metrics::Metrics;
use crate::notices::GateNotice;
use crate::registry::Registry;
use gate::{Gate, Reporter};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bus settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// Largest command payload (bytes) on `extbus/in/...`; larger ones get `payload_too_large`.
    pub max_payload: usize,
    /// `false` is for throughput comparisons only: clients are relayed byte for byte,
    /// without authentication or any check.
    pub gate: bool,
    /// Caps on the filters a connection and a principal may hold.
    pub subscriptions: SubscriptionLimits,
    /// A new connection that has not sent its CONNECT after this long is closed.
    pub connect_timeout: std::time::Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            max_payload: 256 * 1024,
            gate: true,
            subscriptions: SubscriptionLimits::default(),
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("embedded MQTT broker: {0}")]
    Embed(String),
    #[error("MQTT TLS: {0}")]
    Tls(String),
    #[error("external MQTT broker: {0}")]
    External(String),
    #[error("MQTT listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The running gate. Dropping it leaves everything running; `stop` ends it.
pub struct MqttHandle {
    gate: Arc<Gate>,
    tasks: Vec<JoinHandle<()>>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
}

/// The gate's limits a reload changes.
pub struct GateLimits(Arc<Gate>);

impl GateLimits {
    /// Applies reloaded `[mqtt]` limits (CONNECT timeout, subscription caps) to what comes
    /// next; the payload limit and the listeners stay as started.
    pub fn set(&self, connect_timeout: std::time::Duration, subs: SubscriptionLimits) {
        self.0.set_limits(connect_timeout, subs);
    }
}

impl MqttHandle {
    /// What changes the gate's run-time limits.
    pub fn limits(&self) -> GateLimits {
        GateLimits(self.gate.clone())
    }

    /// The plain MQTT listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS listener's address, if there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Stops accepting, closes every client connection (MQTT 5 clients get DISCONNECT
    /// 0x8B) and waits until they are gone. The embedded broker itself keeps running.
    pub async fn stop(self) {
        self.gate.stop();
        for t in self.tasks {
            let _ = t.await;
        }
        self.gate.idle().await;
    }
}

/// Starts the embedded broker and the gate on `listener` (and `tls`, if given). Returns the
/// handle to stop the gate and the coordinator's link.
pub async fn start(
    cfg: MqttSettings,
    listener: TcpListener,
    tls: Option<(TcpListener, TlsFiles)>,
    auth: Arc<Verifier>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    notices: mpsc::Sender<GateNotice>,
) -> Result<(MqttHandle, BusTx, BusRx), MqttError> {
    let tls = match tls {
        Some((l, files)) => Some((l, gate::tls::acceptor(&files).map_err(MqttError::Tls)?)),
        None => None,
    };
    let embedded = embed::launch(cfg.max_payload).await?;
    if !cfg.gate {
        tracing::warn!("MQTT gate disabled: clients are relayed without authentication or checks");
    }
    let reporter = Reporter {
        metrics: metrics.clone(),
        notices,
    };
    let (commands, commands_rx) = mpsc::channel(bus::COMMAND_QUEUE);
    let (link_tx, link_rx) = embedded.link;
    let pump = tokio::spawn(bus::pump(link_rx, commands.clone()));
    let gate = Gate::new(
        cfg.gate,
        cfg.max_payload,
        cfg.connect_timeout,
        embedded.internal,
        commands,
        auth,
        registry,
        metrics,
        reporter,
        cfg.subscriptions,
    );
    let addr = listener.local_addr()?;
    let mut tasks = vec![tokio::spawn(gate::accept_tcp(gate.clone(), listener))];
    // The link lives as long as the process; its pump is not waited for at stop.
    drop(pump);
    let mut tls_addr = None;
    if let Some((l, acceptor)) = tls {
        tls_addr = Some(l.local_addr()?);
        tasks.push(tokio::spawn(gate::tls::accept_tls(
            gate.clone(),
            l,
            acceptor,
        )));
    }
    Ok((
        MqttHandle {
            gate,
            tasks,
            addr,
            tls_addr,
        },
        BusTx::new(link_tx),
        BusRx::new(commands_rx),
    ))
}
