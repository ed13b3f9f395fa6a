//! Starts the embedded rumqttd on its own thread: one 3.1.1 and one MQTT 5 listener on
//! 127.0.0.1 ports nobody but the gate can use (they accept only a per-boot random token),
//! plus the coordinator's in-process link. rumqttd cannot be stopped; it lives as long as the
//! process. No rumqttd type leaves `mqtt/`.

use super::gate::{codec, hard_cap, Internal};
use super::MqttError;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client id of the coordinator's link (the gate refuses `extbus-` ids from outside).
pub(crate) const LINK_CLIENT_ID: &str = "extbus-coordinator";
/// How long the internal listeners may take to come up, and how often to try.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 3;

/// A running embedded broker.
pub(crate) struct Embedded {
    pub internal: Internal,
    pub link: (LinkTx, LinkRx),
}

/// 32 random bytes, hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lowest port the OS hands out to outgoing connections (Linux; else the usual 32768).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free local port for rumqttd to bind. It is taken below the ephemeral range, so no
/// outgoing connection can grab it between this check and rumqttd's bind.
fn free_port() -> Result<SocketAddr, MqttError> {
    use rand::Rng;
    let floor = ephemeral_floor();
    let low = if floor > 12_000 { 10_000 } else { 1024 };
    if floor > low {
        for _ in 0..100 {
            let port = rand::thread_rng().gen_range(low..floor);
            if let Ok(l) = StdListener::bind((Ipv4Addr::LOCALHOST, port)) {
                if let Ok(addr) = l.local_addr() {
                    return Ok(addr);
                }
            }
        }
    }
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| MqttError::Embed(format!("no free local port: {e}")))?;
    l.local_addr()
        .map_err(|e| MqttError::Embed(format!("no free local port: {e}")))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn server(name: &str, listen: SocketAddr, max_frame: usize, token: &Arc<str>) -> ServerSettings {
    let mut s = ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: max_frame,
            max_inflight_count: 200,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let token = token.clone();
    s.set_auth_handler(move |_client: String, _user: String, pass: String| {
        let ok = same(pass.as_bytes(), token.as_bytes());
        async move { ok }
    });
    s
}

/// rumqttd configuration. rumqttd keeps one in-memory log per subscribed filter and drops
/// its oldest segment when a log is full, even if a slow subscriber has not read it (that
/// subscriber skips ahead). So a busy filter holds at most `max_segment_count` segments, and
/// the coordinator's `extbus/in/#` gets a deeper log than the rest. Other sizes follow
/// rumqttd's sample config.
fn config(v4: SocketAddr, v5: SocketAddr, max_payload: usize, token: &Arc<str>) -> Config {
    // Above the gate's own cap: the gate enforces the public limits.
    let max_frame = hard_cap(max_payload) + 64 * 1024;
    let segment = (2 * max_frame).max(8 * 1024 * 1024);
    let commands = SegmentConfig {
        max_segment_size: 4 * segment,
        max_segment_count: 4,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: segment,
            max_segment_count: 4,
            custom_segment: Some(HashMap::from([(
                extbus_schema::topics::INBOX_ALL.to_string(),
                commands,
            )])),
            ..Default::default()
        },
        v4: Some(HashMap::from([(
            "gate-v4".to_string(),
            server("gate-v4", v4, max_frame, token),
        )])),
        v5: Some(HashMap::from([(
            "gate-v5".to_string(),
            server("gate-v5", v5, max_frame, token),
        )])),
        ..Default::default()
    }
}

/// Starts rumqttd and waits until both internal listeners accept the token. If a port was
/// taken after all (rumqttd then cannot listen), it starts over on new ports.
pub(crate) async fn launch(max_payload: usize) -> Result<Embedded, MqttError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (v4, v5) = (free_port()?, free_port()?);
        let token: Arc<str> = new_token().into();
        let cfg = config(v4, v5, max_payload, &token);
        let link = spawn(cfg).await?;
        let internal = Internal { v4, v5, token };
        let ready = async {
            until_ready(internal.v4, false, &internal.token).await;
            until_ready(internal.v5, true, &internal.token).await;
        };
        if tokio::time::timeout(READY_TIMEOUT, ready).await.is_ok() {
            return Ok(Embedded { internal, link });
        }
        tracing::warn!(%v4, %v5, "embedded MQTT listeners did not come up; retrying on other ports");
        last = Some(format!("internal listeners {v4} and {v5} did not come up"));
    }
    Err(MqttError::Embed(last.unwrap_or_default()))
}

/// Creates the broker and its coordinator link, then runs it on its own thread.
async fn spawn(cfg: Config) -> Result<(LinkTx, LinkRx), MqttError> {
    // Broker::new and link() wait on the router thread: keep them off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut broker = Broker::new(cfg);
        let link = broker
            .link(LINK_CLIENT_ID)
            .map_err(|e| MqttError::Embed(format!("coordinator link: {e}")))?;
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| MqttError::Embed(format!("starting rumqttd: {e}")))?;
        Ok::<_, MqttError>(link)
    })
    .await
    .map_err(|e| MqttError::Embed(e.to_string()))?
}

/// Retries an MQTT CONNECT with the token until the listener answers with success.
async fn until_ready(addr: SocketAddr, v5: bool, token: &str) {
    loop {
        if probe(addr, v5, token).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn probe(addr: SocketAddr, v5: bool, token: &str) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        if v5 { 5 } else { 4 },
        0xc2,
        0,
        5,
    ];
    if v5 {
        body.push(0);
    }
    for field in [b"extbus-probe".as_slice(), b"extbus", token.as_bytes()] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut frame = vec![codec::CONNECT << 4];
    codec::put_varint(&mut frame, body.len());
    frame.extend_from_slice(&body);
    s.write_all(&frame).await?;
    // CONNACK: type, a short remaining length, session flag, return/reason code, properties.
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let mut rest = vec![0u8; usize::from(head[1] & 0x7f)];
    s.read_exact(&mut rest).await?;
    let ok = head[0] >> 4 == codec::CONNACK && head[1] < 0x80 && rest.get(1) == Some(&0);
    s.write_all(&[codec::DISCONNECT << 4, 0]).await?;
    // Wait for the broker to close, so it never sees a reset.
    let _ = tokio::time::timeout(Duration::from_secs(1), s.read(&mut head)).await;
    Ok(ok)
}
