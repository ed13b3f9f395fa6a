//! The gate: the public MQTT listener in front of rumqttd (which cannot authorize). It
//! authenticates each CONNECT as a principal, relays frames to an internal port, checks every
//! publish and subscription against the role table and filters what extensions receive.
//! Files: `handshake` (CONNECT), `connection` (relay loop), `session` (per-frame decisions),
//! `acl`, `subcap` (subscription caps), `codec`, `connect`, `translate`, `ackorder`, `report`,
//! `tls`.

mod ackorder;
pub mod acl;
pub mod acl_unfiltered;
pub(crate) mod codec;
mod connect;
mod connection;
mod handshake;
mod lifecycle;
mod quickack;
mod report;
mod session;
mod subcap;
pub(crate) mod tls;
mod translate;

#[cfg(test)]
mod codec_props;
#[cfg(test)]
mod session_tests;

use super::InboundPublish;
use crate::auth::Verifier;
use crate::config::SubscriptionLimits;
use crate::metrics::Metrics;
use crate::registry::Registry;
pub(crate) use report::Reporter;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

/// Where and how the gate reaches the embedded broker.
#[derive(Debug, Clone)]
pub(crate) struct Internal {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
    /// The password the internal listeners accept; never leaves the process.
    pub token: Arc<str>,
}

/// State shared by the accept loops and every connection.
pub(crate) struct Gate {
    /// false: benchmark-only relay without authentication or checks.
    pub check: bool,
    /// Largest command payload accepted on an inbox topic.
    pub max_payload: usize,
    /// Frames with a larger remaining length are not read at all; the connection is closed.
    pub hard_cap: usize,
    /// How long (ms) a new connection may take to send its CONNECT; a reload may change it.
    connect_timeout_ms: AtomicU64,
    pub internal: Internal,
    /// Commands (`extbus/in/...`) go straight to the coordinator, never through rumqttd.
    pub commands: mpsc::Sender<InboundPublish>,
    /// Checks credentials (shared with the HTTP listener).
    pub auth: Arc<Verifier>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// Subscription caps and what each principal holds.
    pub subcaps: Arc<subcap::SubCaps>,
    stop: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

/// Counts a live connection; dropping it lets `Gate::idle` finish.
pub(crate) struct Live(Arc<Gate>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Gate {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        check: bool,
        max_payload: usize,
        connect_timeout: Duration,
        internal: Internal,
        commands: mpsc::Sender<InboundPublish>,
        auth: Arc<Verifier>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        reporter: Reporter,
        limits: SubscriptionLimits,
    ) -> Arc<Self> {
        Arc::new(Gate {
            check,
            max_payload,
            hard_cap: hard_cap(max_payload),
            connect_timeout_ms: AtomicU64::new(connect_timeout.as_millis() as u64),
            internal,
            commands,
            auth,
            registry,
            metrics,
            reporter,
            subcaps: subcap::SubCaps::new(limits),
            stop: watch::channel(false).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.load(Ordering::Relaxed))
    }

    /// Applies reloaded limits to connections from now on.
    pub fn set_limits(&self, connect_timeout: Duration, subscriptions: SubscriptionLimits) {
        let ms = connect_timeout.as_millis() as u64;
        self.connect_timeout_ms.store(ms, Ordering::Relaxed);
        self.subcaps.set_limits(subscriptions);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the accept loops and every connection to finish.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn live(self: &Arc<Self>) -> Live {
        self.active.fetch_add(1, Ordering::AcqRel);
        Live(self.clone())
    }

    /// Waits until no connection is left.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Serves one accepted client stream (plain TCP or TLS) until it ends.
    pub async fn serve<S: connection::Duplex>(
        self: Arc<Self>,
        stream: S,
        peer: SocketAddr,
        live: Live,
    ) {
        handshake::run(self, stream, peer, live).await;
    }
}

/// The largest frame the gate reads: four times the payload limit (commands above the limit
/// are still read, to answer them with `payload_too_large`).
pub(crate) fn hard_cap(max_payload: usize) -> usize {
    max_payload.saturating_mul(4).max(64 * 1024)
}

/// Accepts plain TCP clients until the gate stops.
pub(crate) async fn accept_tcp(gate: Arc<Gate>, listener: TcpListener) {
    let mut stop = gate.stopping();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let live = gate.live();
                tokio::spawn(gate.clone().serve(stream, peer, live));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
