//! A new client connection up to the relay: read the first frame (it must be a CONNECT),
//! check the protocol level, the client id, the credentials (`auth::Verifier`; a client
//! that hangs up while its check waits is dropped before hashing) and the will, then open the internal broker connection and hand over a CONNECT that
//! carries the internal token instead of the client's secret. Refusals answer with CONNACK.

use super::codec::{self, FrameError, FrameStatus};
use super::connect::{connack_refusal, encode_connect, parse_connect, Connect, ConnectError};
use super::connection::{self, Duplex};
use super::session::Session;
use super::{acl, Gate, Live};
use crate::auth::{Creds, Refused};
use crate::principals::Principal;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

/// How long a refusal may take to reach the client.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Client ids the broker uses for its own links.
const RESERVED_CLIENT_ID_PREFIX: &str = "extbus-";

/// A CONNECT refusal: 3.1.1 return code, MQTT 5 reason code, metric label.
struct Refusal(u8, u8, &'static str);

const BAD_CREDENTIALS: Refusal = Refusal(0x04, 0x86, "bad_credentials");
const NO_CREDENTIALS: Refusal = Refusal(0x04, 0x86, "no_credentials");
const RESERVED_ID: Refusal = Refusal(0x02, 0x85, "reserved_client_id");
const INVALID_ID: Refusal = Refusal(0x02, 0x85, "invalid_client_id");
const WILL_DENIED: Refusal = Refusal(0x05, 0x87, "will_denied");
const WILL_TOO_LARGE: Refusal = Refusal(0x05, 0x95, "will_too_large");
const UNAVAILABLE: Refusal = Refusal(0x03, 0x88, "broker_unavailable");
/// The verification queue is full (MQTT 5: Server busy).
const BUSY: Refusal = Refusal(0x03, 0x89, "auth_busy");
/// Too many recent failures from this address or for this principal (MQTT 5: Connection
/// rate exceeded); no check was run.
const THROTTLED: Refusal = Refusal(0x03, 0x9F, "throttled");

pub(crate) async fn run<S: Duplex>(gate: Arc<Gate>, mut client: S, peer: SocketAddr, live: Live) {
    let mut stop = gate.stopping();
    let mut buf = BytesMut::with_capacity(4096);
    let first = tokio::select! {
        r = tokio::time::timeout(gate.connect_timeout(), read_frame(&mut client, &mut buf, gate.hard_cap)) => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    let (header, total) = match first {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return gate.reporter.connect_refused("not_connect")
        }
        Ok(Err(_)) => return gate.reporter.connect_refused("malformed"),
        Err(_) => return gate.reporter.connect_refused("connect_timeout"),
    };
    let frame = buf.split_to(total);
    let connect = match parse_connect(&frame, header) {
        Ok(c) => c,
        Err(ConnectError::Unsupported(level)) => {
            tracing::debug!(%peer, level, "unsupported MQTT protocol level");
            refuse(
                &gate,
                &mut client,
                false,
                Refusal(0x01, 0x84, "unsupported_protocol"),
                Some(&Who {
                    peer,
                    principal: None,
                    client_id: "",
                }),
            )
            .await;
            return;
        }
        Err(ConnectError::Malformed(m)) => {
            tracing::debug!(%peer, why = m.0, "malformed CONNECT");
            return gate.reporter.connect_refused("malformed");
        }
    };
    let v5 = connect.v5();
    let who = Who {
        peer,
        principal: connect.username,
        client_id: connect.client_id,
    };
    if !gate.check {
        return relay_unchecked(gate, client, &connect, buf, live).await;
    }
    if connect.client_id.starts_with(RESERVED_CLIENT_ID_PREFIX) {
        return refuse(&gate, &mut client, v5, RESERVED_ID, Some(&who)).await;
    }
    // rumqttd drops such ids without a CONNACK; refuse them properly.
    if connect.client_id.contains(['+', '#', '/', '$']) {
        return refuse(&gate, &mut client, v5, INVALID_ID, Some(&who)).await;
    }
    let (Some(name), Some(secret)) = (connect.username, connect.password) else {
        return refuse(&gate, &mut client, v5, NO_CREDENTIALS, Some(&who)).await;
    };
    let Ok(secret) = std::str::from_utf8(secret) else {
        return refuse(&gate, &mut client, v5, BAD_CREDENTIALS, Some(&who)).await;
    };
    let creds = Creds::Named {
        name: name.to_string(),
        secret: secret.to_string(),
    };
    let principal = match verify(&gate, &mut client, &mut buf, peer, creds).await {
        Some(Ok(p)) => p,
        Some(Err(r)) => {
            let code = match r {
                Refused::Bad => BAD_CREDENTIALS,
                Refused::Busy => BUSY,
                Refused::Throttled { .. } => THROTTLED,
            };
            return refuse(&gate, &mut client, v5, code, Some(&who)).await;
        }
        None => return gate.reporter.connect_refused("abandoned"),
    };
    if let Some(will) = &connect.will {
        if let Err(d) = acl::may_publish(&principal, will.topic) {
            gate.reporter.denied(
                &principal.name,
                connect.client_id,
                "publish",
                will.topic,
                &d.reason,
            );
            return refuse(&gate, &mut client, v5, WILL_DENIED, Some(&who)).await;
        }
        if will.payload.len() > gate.max_payload
            && acl::inbox_suffix(&principal.name, will.topic).is_some()
        {
            return refuse(&gate, &mut client, v5, WILL_TOO_LARGE, Some(&who)).await;
        }
    }
    let Some(broker) = dial(&gate, true).await else {
        return refuse(&gate, &mut client, v5, UNAVAILABLE, Some(&who)).await;
    };
    let mut to_b = Vec::with_capacity(frame.len() + 64);
    let token = gate.internal.token.as_bytes();
    encode_connect(&connect, &principal.name, token, true, &mut to_b);
    let span = tracing::info_span!(
        "mqtt",
        %peer,
        principal = %principal.name,
        client_id = %connect.client_id
    );
    let client_id = connect.client_id.to_string();
    let name = principal.name.clone();
    let session = Session::new(
        gate.clone(),
        principal,
        client_id.clone(),
        v5,
        connect.wants_reasons(),
    );
    gate.metrics.connections.inc();
    gate.metrics.connections_open.inc();
    let since = std::time::Instant::now();
    super::lifecycle::connected(peer, &name, &client_id, v5);
    gate.registry.presence.connected(&name);
    drop(frame);
    let reason = connection::relay(client, broker, session, buf, to_b)
        .instrument(span)
        .await;
    gate.registry.presence.disconnected(&name);
    super::lifecycle::disconnected(peer, &name, &client_id, reason, since.elapsed());
    gate.metrics.connections_open.dec();
    drop(live);
}

/// Reads until `buf` starts with a whole CONNECT frame; `None` when the peer closed first.
/// Anything that does not start like a CONNECT fails at once (`InvalidInput`).
async fn read_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    cap: usize,
) -> std::io::Result<Option<(usize, usize)>> {
    loop {
        if buf.first().is_some_and(|&b| b != codec::CONNECT << 4) {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        match codec::frame(buf, cap) {
            Ok(FrameStatus::Ready { header, total }) => return Ok(Some((header, total))),
            Ok(FrameStatus::Partial(total)) => {
                buf.reserve(total.unwrap_or(0).saturating_sub(buf.len()).max(1024));
                if s.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(FrameError::TooLarge(_) | FrameError::Malformed) => {
                return Err(std::io::ErrorKind::InvalidData.into())
            }
        }
    }
}

/// Checks the credentials while watching the client: frames it sends meanwhile are kept in
/// `buf` (up to the frame cap), and if it hangs up the check is dropped (`None`).
async fn verify<S: AsyncRead + Unpin>(
    gate: &Gate,
    client: &mut S,
    buf: &mut BytesMut,
    peer: SocketAddr,
    creds: Creds,
) -> Option<Result<Principal, Refused>> {
    let check = gate.auth.check(Some(peer.ip()), creds);
    tokio::pin!(check);
    loop {
        tokio::select! {
            // The check first: it queues its job on the first poll, so a client that has
            // already hung up still leaves a job for the worker to skip.
            biased;
            r = &mut check => return Some(r),
            n = client.read_buf(buf), if buf.len() < gate.hard_cap => {
                if !matches!(n, Ok(k) if k > 0) {
                    return None;
                }
            }
        }
    }
}

/// Opens a connection to the internal listener for this protocol version.
async fn dial(gate: &Gate, v5: bool) -> Option<TcpStream> {
    let addr = if v5 {
        gate.internal.v5
    } else {
        gate.internal.v4
    };
    match TcpStream::connect(addr).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        Err(e) => {
            tracing::error!(error = %e, %addr, "cannot reach the embedded MQTT broker");
            None
        }
    }
}

/// Who a refused CONNECT came from, for its log line.
struct Who<'a> {
    peer: SocketAddr,
    principal: Option<&'a str>,
    client_id: &'a str,
}

async fn refuse<S: AsyncWrite + Unpin>(
    gate: &Gate,
    client: &mut S,
    v5: bool,
    r: Refusal,
    who: Option<&Who<'_>>,
) {
    gate.reporter.connect_refused(r.2);
    if let Some(w) = who {
        super::lifecycle::login_refused(w.peer, w.principal, w.client_id, v5, r.2);
    }
    let ack = connack_refusal(v5, if v5 { r.1 } else { r.0 });
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        client.write_all(&ack).await?;
        client.flush().await?;
        client.shutdown().await
    })
    .await;
}

/// Benchmark-only mode: no authentication and no checks; the CONNECT gets the internal token
/// and the rest is copied byte for byte.
async fn relay_unchecked<S: Duplex>(
    gate: Arc<Gate>,
    mut client: S,
    connect: &Connect<'_>,
    rest: BytesMut,
    live: Live,
) {
    let Some(mut broker) = dial(&gate, connect.v5()).await else {
        return refuse(&gate, &mut client, connect.v5(), UNAVAILABLE, None).await;
    };
    let mut first = Vec::new();
    let user = connect.username.unwrap_or("unchecked");
    let token = gate.internal.token.as_bytes();
    encode_connect(connect, user, token, connect.v5(), &mut first);
    first.extend_from_slice(&rest);
    gate.metrics.connections.inc();
    gate.metrics.connections_open.inc();
    let mut stop = gate.stopping();
    if broker.write_all(&first).await.is_ok() {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    gate.metrics.connections_open.dec();
    drop(live);
}
