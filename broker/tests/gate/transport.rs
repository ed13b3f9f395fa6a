//! The connection itself: malformed frames, TLS, shutdown, the unchecked relay.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let b = bus().await;
    let mut watcher = c5(&b, "admin").await;
    assert!(raw(b.addr, b"GET / HTTP/1.1\r\n\r\n").await.is_empty());
    assert_eq!(
        raw(b.addr, &connect_frame(3, b"MQIsdp", "plat", SECRET)).await,
        [0x20, 2, 0, 1]
    );
    assert_eq!(
        raw(b.addr, &connect_frame(4, b"MQTT", "plat", "bad")).await,
        [0x20, 2, 0, 4]
    );
    // Authenticated, then a PUBLISH announcing 8 MiB: closed without reading it.
    let mut bytes = connect_frame(4, b"MQTT", "plat", SECRET);
    bytes.extend_from_slice(&[0x30, 0x80, 0x80, 0x80, 0x04]);
    assert_eq!(raw(b.addr, &bytes).await, [0x20, 2, 0, 0]);
    // A remaining length over four bytes is malformed: MQTT 5 clients hear why.
    let mut bytes = connect_frame(5, b"MQTT", "plat", SECRET);
    bytes.extend_from_slice(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let out = raw(b.addr, &bytes).await;
    assert!(out.ends_with(&[0xe0, 2, 0x81, 0]), "{out:?}");
    // A client that only opens a socket is not counted as a connection.
    let refused = |r| {
        b.metrics
            .get("extbus_connect_refused_total", &[("reason", r)])
    };
    assert_eq!(
        (refused("not_connect"), refused("unsupported_protocol")),
        (1, 1)
    );
    // Everyone else is unaffected.
    watcher.sub(&["extbus/out/admin/#"], P1).await;
    b.publish("extbus/out/admin/replies", "still here");
    assert_eq!(watcher.publish().await.payload, "still here".as_bytes());
}

/// Sockets that never finish a CONNECT (silent, or half a frame) are closed after
/// `connect_timeout`, counted as `connect_timeout` refusals; a prompt client still gets in.
#[tokio::test]
async fn connections_without_a_connect_are_closed_after_the_timeout() {
    let limit = Duration::from_millis(300);
    let b = start(
        MqttSettings {
            connect_timeout: limit,
            ..Default::default()
        },
        None,
    )
    .await;
    let started = std::time::Instant::now();
    let silent = TcpStream::connect(b.addr).await.unwrap();
    let mut half = TcpStream::connect(b.addr).await.unwrap();
    let frame = connect_frame(4, b"MQTT", "plat", SECRET);
    half.write_all(&frame[..frame.len() / 2]).await.unwrap();
    for mut s in [silent, half] {
        let mut buf = [0u8; 16];
        let n = timeout(WAIT, s.read(&mut buf))
            .await
            .expect("still open long after the CONNECT timeout")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    assert_eq!(
        b.metrics.get(
            "extbus_connect_refused_total",
            &[("reason", "connect_timeout")]
        ),
        2
    );
    let mut prompt = TcpStream::connect(b.addr).await.unwrap();
    prompt.write_all(&frame).await.unwrap();
    let mut ack = [0u8; 4];
    timeout(WAIT, prompt.read_exact(&mut ack))
        .await
        .expect("CONNACK")
        .unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
}

const CA_PEM: &str = include_str!("../certs/ca.pem");

/// Signed by `CA_PEM`, for `localhost` and 127.0.0.1; a test-only key.
const LEAF_PEM: &str = include_str!("../certs/leaf.pem");

const LEAF_KEY: &str = include_str!("../certs/leaf.key");

#[tokio::test]
async fn tls_clients_pass_the_same_gate() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let files = mqtt::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, LEAF_PEM).unwrap();
    std::fs::write(&files.key, LEAF_KEY).unwrap();
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut b = start(MqttSettings::default(), Some((tls_listener, files))).await;
    let tls_addr = b.handle.tls_local_addr().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(CA_PEM.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let transport =
        || m4::Transport::tls_with_config(m4::TlsConfiguration::Rustls(Arc::new(config.clone())));
    let mut o = opts4(tls_addr, "plat", Some(SECRET));
    o.set_transport(transport());
    let mut c = up4(o).await;
    c.sub(&["extbus/out/plat/#"], Q1).await;
    b.publish("extbus/out/plat/replies", "over tls");
    assert_eq!(c.publish().await.payload, "over tls".as_bytes());
    c.send("extbus/in/ext/x", Q1, "spoof").await;
    c.closed().await;
    let mut o = opts4(tls_addr, "plat", Some("wrong"));
    o.set_transport(transport());
    let e = C4::spawn(o).closed().await;
    assert!(
        matches!(
            e,
            m4::ConnectionError::ConnectionRefused(m4::ConnectReturnCode::BadUserNamePassword)
        ),
        "{e:?}"
    );
    assert_eq!(b.denied(), [("publish", "extbus/in/ext/x".to_string())]);
}

#[tokio::test]
async fn stop_closes_clients_and_the_listener() {
    let b = bus().await;
    let mut c = c5(&b, "op").await;
    let mut old = c4(&b, "op").await;
    let Bus {
        addr,
        handle,
        metrics,
        ..
    } = b;
    timeout(WAIT, handle.stop()).await.expect("stop hangs");
    let e = c.closed().await;
    assert!(
        matches!(
            e,
            m5::ConnectionError::MqttState(m5::StateError::ServerDisconnect {
                reason_code: p5::DisconnectReasonCode::ServerShuttingDown,
                ..
            })
        ),
        "{e:?}"
    );
    old.closed().await;
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(metrics.get("extbus_connections_open", &[]), 0);
}

#[tokio::test]
async fn unchecked_mode_relays_without_auth_and_keep_alive_zero_works() {
    let mut b = start(
        MqttSettings {
            gate: false,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut sub = up4(opts4(b.addr, "anyone", Some("anything"))).await;
    sub.sub(&["extbus/in/#"], Q1).await;
    let mut publ = up5(opts5(b.addr, "whoever", None)).await;
    publ.send("extbus/in/someone/x", P1, "unchecked").await;
    assert_eq!(sub.publish().await.payload, "unchecked".as_bytes());
    assert_eq!(b.inbound().await.topic, "extbus/in/someone/x");
    // The gate itself maps keep alive 0 (which rumqttd refuses) to the longest interval.
    let g = bus().await;
    let mut f = connect_frame(4, b"MQTT", "plat", SECRET);
    f[11] = 0;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(&f).await.unwrap();
    let mut ack = [0u8; 4];
    timeout(WAIT, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
}
