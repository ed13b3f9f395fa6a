//! HTTP connections: the accept loop with total and per-address limits (refused ones get a
//! 503 `overloaded` and close), each connection served by hyper under a watch that closes it
//! when a request's headers or body stall or when it sits idle, and a bounded shutdown:
//! idle connections close at once, requests under way get the grace period, then service
//! calls still waiting are answered 503 and whatever is left is closed.

use crate::config::HttpConfig;
use crate::metrics::{Metrics, Reason};
use axum::body::Body;
use axum::Router;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// The connection limits and timeouts of `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_total: usize,
    pub max_per_address: usize,
    pub grace: Duration,
}

impl From<&HttpConfig> for Limits {
    fn from(c: &HttpConfig) -> Self {
        Limits {
            header_read: Duration::from_millis(c.header_read_timeout_ms),
            idle: Duration::from_millis(c.idle_timeout_ms),
            max_total: c.max_connections,
            max_per_address: c.max_connections_per_address,
            grace: Duration::from_millis(c.shutdown_grace_ms),
        }
    }
}

/// After the grace period, how long 503 answers get to reach their callers.
const FLUSH: Duration = Duration::from_millis(500);
/// Refusals written at once at most; beyond that a refused socket is just closed.
const REFUSERS: usize = 64;

/// Open connections, in all and per address.
#[derive(Default)]
struct Counts {
    total: usize,
    per: HashMap<IpAddr, usize>,
}

/// A connection's place in `Counts`, given back when dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per.remove(&self.ip);
            }
        }
        self.metrics.http_connections.dec();
    }
}

fn admit(
    counts: &Arc<Mutex<Counts>>,
    ip: IpAddr,
    limits: &Limits,
    metrics: &Arc<Metrics>,
) -> Result<Slot, &'static str> {
    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
    if c.total >= limits.max_total {
        return Err("connection_limit");
    }
    let mine = c.per.entry(ip).or_insert(0);
    if *mine >= limits.max_per_address {
        return Err("address_limit");
    }
    *mine += 1;
    c.total += 1;
    metrics.http_connections.inc();
    Ok(Slot {
        counts: counts.clone(),
        ip,
        metrics: metrics.clone(),
    })
}

/// Serves `app` on `listener` until `shutdown`, then drains as the module doc says.
/// `closing` is set when the grace period is over.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    live: watch::Receiver<Limits>,
    metrics: Arc<Metrics>,
    closing: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let refusers = Arc::new(Semaphore::new(REFUSERS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let limits = *live.borrow();
        match admit(&counts, peer.ip(), &limits, &metrics) {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                let conn = serve_conn(
                    stream,
                    peer,
                    app.clone(),
                    limits,
                    metrics.clone(),
                    stop_rx.clone(),
                );
                conns.spawn(async move {
                    conn.await;
                    drop(slot);
                });
            }
            Err(reason) => {
                metrics.http_refused.get_or_create(&Reason { reason }).inc();
                tracing::debug!(%peer, reason, "HTTP connection refused");
                if let Ok(permit) = refusers.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = live.borrow().grace;
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(
            open = conns.len(),
            "shutdown grace period over: answering waiting service calls 503"
        );
        let _ = closing.send(true);
        let _ =
            tokio::time::timeout(FLUSH, async { while conns.join_next().await.is_some() {} }).await;
        let left = conns.len() as u64;
        if left > 0 {
            let shutdown = Reason { reason: "shutdown" };
            metrics.http_closed.get_or_create(&shutdown).inc_by(left);
        }
        conns.shutdown().await;
    }
}

/// Answers a refused connection with 503 `overloaded` and closes it. The request is read
/// (briefly) first: closing with unread data would reset the connection under the answer.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str =
        r#"{"error":{"code":"overloaded","message":"too many HTTP connections; try again later"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// What a connection is doing, for its deadlines.
struct State {
    /// A request handed to the app and not yet answered.
    busy: bool,
    /// The current request's body has been read to its end (or it has none).
    body_done: bool,
    /// When the request under way (headers, or the body once busy) started arriving.
    started: Option<Instant>,
    /// Last byte read or written.
    last_io: Instant,
}

struct Activity {
    state: Mutex<State>,
    /// Wakes the watch when a deadline may have moved earlier.
    changed: Notify,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.last_io = now;
        if !s.busy && s.started.is_none() {
            s.started = Some(now);
            drop(s);
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.lock().last_io = Instant::now();
    }

    fn begin(&self, body_done: bool) {
        let mut s = self.lock();
        s.busy = true;
        s.body_done = body_done;
        s.started = Some(Instant::now());
        drop(s);
        self.changed.notify_one();
    }

    fn body_done(&self) {
        self.lock().body_done = true;
    }

    fn end(&self) {
        let mut s = self.lock();
        s.busy = false;
        s.started = None;
        s.last_io = Instant::now();
        drop(s);
        self.changed.notify_one();
    }

    /// When the connection is due to be closed, and why; `None` while the app works.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        let s = self.lock();
        match (s.busy, s.started) {
            (true, _) if s.body_done => None,
            (true, Some(t)) => Some((t + limits.header_read, "body_timeout")),
            (_, Some(t)) => Some((t + limits.header_read, "header_timeout")),
            _ => Some((s.last_io + limits.idle, "idle_timeout")),
        }
    }
}

/// The socket, reporting reads and writes to `Activity`.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that tells `Activity` when it has been read to its end.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl hyper::body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.activity.body_done();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks the request answered when the app's future ends, however it ends.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        state: Mutex::new(State {
            busy: false,
            body_done: false,
            started: None,
            last_io: Instant::now(),
        }),
        changed: Notify::new(),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let act = activity.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let activity = act.clone();
        async move {
            activity.begin(req.body().is_end_stream());
            let _busy = Busy(activity.clone());
            let mut req = req.map(|inner| Body::new(WatchedBody { inner, activity }));
            // The peer address feeds the per-address login throttle.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.oneshot(req).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watch below does header timeouts; hyper's own would also cut idle connections.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let due = activity.deadline(&limits);
        let wake = async {
            match due {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = activity.changed.notified() => {}
            _ = wake => {
                // Past its deadline still (a read may have moved it): close.
                if let Some((at, why)) = activity.deadline(&limits) {
                    if at <= Instant::now() {
                        metrics.http_closed.get_or_create(&Reason { reason: why }).inc();
                        tracing::debug!(reason = why, "HTTP connection closed");
                        return;
                    }
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
