//! Connection limits against the real binary, printed as figures: a burst of simultaneous
//! MQTT CONNECTs (how many get their CONNACK, how fast), HTTP sockets that send half a header
//! (when they are closed), and silent HTTP sockets beyond `http.max_connections` (refused,
//! while MQTT still accepts). Run with `cargo bench -p extbus --bench connection_limits`;
//! `BURST_N` (2000) and `BURST_BACKLOG` (1024, `mqtt.backlog`) change the burst.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An MQTT 3.1.1 CONNECT for `operator` (the `--dev` secret is the name).
fn connect_frame(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60];
    for f in [client_id, "operator", "operator"] {
        body.extend_from_slice(&(f.len() as u16).to_be_bytes());
        body.extend_from_slice(f.as_bytes());
    }
    let mut frame = vec![0x10, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// Opens `n` connections at once, each sending CONNECT; returns (CONNACKs, slowest, total).
async fn burst(port: u16, n: usize) -> (usize, Duration, Duration) {
    let go = Arc::new(tokio::sync::Barrier::new(n + 1));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let go = go.clone();
            tokio::spawn(async move {
                go.wait().await;
                let t = Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(30), async {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
                    s.write_all(&connect_frame(&format!("burst-{i}"))).await?;
                    let mut ack = [0u8; 4];
                    s.read_exact(&mut ack).await?;
                    std::io::Result::Ok((s, ack))
                })
                .await;
                match r {
                    Ok(Ok((s, [0x20, 2, _, 0]))) => Some((s, t.elapsed())),
                    Ok(Ok((_, ack))) => {
                        eprintln!("refused: {ack:?}");
                        None
                    }
                    Ok(Err(e)) => {
                        eprintln!("failed: {e}");
                        None
                    }
                    Err(_) => {
                        eprintln!("no CONNACK within 30 s");
                        None
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    go.wait().await;
    let mut ok = Vec::new();
    for task in tasks {
        if let Ok(Some(r)) = task.await {
            ok.push(r);
        }
    }
    let slowest = ok.iter().map(|(_, d)| *d).max().unwrap_or_default();
    (ok.len(), slowest, t.elapsed())
}

/// Opens `n` HTTP sockets that send half a header; returns when each was closed (or None).
async fn slowloris(port: u16, n: usize, within: Duration) -> Vec<Option<Duration>> {
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
                    .await
                    .ok()?;
                let mut buf = [0u8; 64];
                match tokio::time::timeout(within, s.read(&mut buf)).await {
                    Ok(_) => Some(t.elapsed()),
                    Err(_) => None,
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.ok().flatten());
    }
    out
}

fn main() {
    let n = env("BURST_N", 2000);
    let backlog = env("BURST_BACKLOG", 1024);
    let dir = tempfile::tempdir().unwrap();
    let broker = common::Broker::start(
        &dir.path().join("data"),
        &format!("[mqtt]\nbacklog = {backlog}\n"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        println!(
            "kernel net.core.somaxconn = {}",
            std::fs::read_to_string("/proc/sys/net/core/somaxconn")
                .unwrap_or_default()
                .trim()
        );
        // The first CONNECT verifies the secret (argon2); the burst then uses the cache.
        let warm = burst(broker.mqtt, 1).await;
        assert_eq!(warm.0, 1, "broker not answering CONNECT");
        let (ok, slowest, total) = burst(broker.mqtt, n).await;
        println!(
            "MQTT burst: {ok}/{n} CONNACKs (mqtt.backlog {backlog}), slowest {:.0} ms, all in {:.0} ms",
            slowest.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );

        let closed = slowloris(broker.http, 100, Duration::from_secs(30)).await;
        let times: Vec<f64> = closed.iter().flatten().map(|d| d.as_secs_f64()).collect();
        println!(
            "HTTP half-sent headers: {}/100 closed within 30 s, after {:.1}-{:.1} s (http.header_read_timeout_ms 10000)",
            times.len(),
            times.iter().cloned().fold(f64::INFINITY, f64::min),
            times.iter().cloned().fold(0.0, f64::max)
        );

        // 520 silent sockets against max_connections 512 (per address 64: all from 127.0.0.1,
        // so most are refused at once); MQTT must still accept meanwhile.
        let mut silent = Vec::new();
        for _ in 0..520 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", broker.http)).await {
                silent.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (mqtt_ok, _, _) = burst(broker.mqtt, 10).await;
        let mut open = 0;
        for s in &mut silent {
            let mut buf = [0u8; 256];
            let quiet = tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf)).await;
            open += usize::from(quiet.is_err());
        }
        println!(
            "HTTP 520 silent sockets from one address: {open} held, {} refused (503); MQTT CONNECTs meanwhile: {mqtt_ok}/10",
            520 - open
        );
    });
    broker.stop();
}
