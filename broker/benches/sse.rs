//! Event-stream fan-out against the real binary (figures printed, nothing asserted but
//! delivery): N concurrent `GET /api/events/stream` readers (default 500) while a platform
//! publishes ~300-byte drafts over MQTT paced at R events/s (default 1,000) for S seconds.
//! Every reader must receive every event, in seq order, exactly once. Prints the rate
//! achieved, deliveries per second, and delivery latency (from each event's scheduled send
//! time to its arrival at a reader: p50, p99, max over all readers) and the broker's RSS.
//! Run: `cargo bench -p extbus --bench sse` (SSE_STREAMS, SSE_RATE, SSE_SECS).

mod common;

use base64::Engine as _;
use common::{env_usize, pct, Broker, Sock};
use rumqttc::QoS;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one reader saw.
#[derive(Default)]
struct Seen {
    events: usize,
    out_of_order: usize,
    latencies_us: Vec<u64>,
}

// The readers parse 500 x 1,000 lines a second beside the broker on the same cores: memchr
// keeps the bench's own share of the CPU small.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn number_after(line: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(line, key)? + key.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Opens a stream and reads `total` events, checking seq order and timing each one.
async fn reader(
    port: u16,
    auth: String,
    total: usize,
    start: Arc<tokio::sync::OnceCell<(Instant, f64)>>,
    opened: tokio::sync::mpsc::Sender<()>,
) -> Seen {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let req = format!("GET /api/events/stream?filter=extbus/events/acme/%23 HTTP/1.1\r\nhost: b\r\nauthorization: {auth}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let mut seen = Seen::default();
    let mut head = true;
    let mut last_seq = 0u64;
    while seen.events < total {
        let n = match tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        if head {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                continue;
            };
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "stream refused: {}",
                String::from_utf8_lossy(&buf[..end])
            );
            buf.drain(..end + 4);
            head = false;
            let _ = opened.send(()).await;
        }
        let now = Instant::now();
        let mut used = 0;
        while let Some(eol) = memchr::memchr(b'\n', &buf[used..]) {
            let line = &buf[used..used + eol];
            if let Some(seq) = line
                .strip_prefix(b"id: ")
                .and_then(|l| std::str::from_utf8(l).ok()?.trim().parse::<u64>().ok())
            {
                if last_seq != 0 && seq != last_seq + 1 {
                    seen.out_of_order += 1;
                }
                last_seq = seq;
            } else if line.starts_with(b"data: ") {
                if let (Some(i), Some((t0, rate))) =
                    (number_after(line, b"\"bench_n\":"), start.get())
                {
                    let due = *t0 + Duration::from_secs_f64(i as f64 / rate);
                    seen.latencies_us
                        .push(now.saturating_duration_since(due).as_micros() as u64);
                    seen.events += 1;
                }
            }
            used += eol + 1;
        }
        buf.drain(..used);
    }
    seen
}

#[tokio::main]
async fn main() {
    let streams = env_usize("SSE_STREAMS", 500);
    let rate = env_usize("SSE_RATE", 1000) as f64;
    let secs = env_usize("SSE_SECS", 10);
    let total = (rate as usize) * secs;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[http]\nmax_connections = {n}\nmax_connections_per_address = {n}\n[auth]\nqueue = {n}\n",
        n = streams + 64
    );
    let broker = Broker::start(&dir.path().join("data"), &config);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("observer:observer")
    );
    // One login first: the readers' then come from the credentials cache.
    let mut s = TcpStream::connect(("127.0.0.1", broker.http))
        .await
        .unwrap();
    let req = format!("GET /api/openapi.json HTTP/1.1\r\nhost: b\r\nauthorization: {auth}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink).await;
    let start = Arc::new(tokio::sync::OnceCell::new());
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(streams);
    let readers: Vec<_> = (0..streams)
        .map(|_| {
            tokio::spawn(reader(
                broker.http,
                auth.clone(),
                total,
                start.clone(),
                opened_tx.clone(),
            ))
        })
        .collect();
    drop(opened_tx);
    for _ in 0..streams {
        opened_rx
            .recv()
            .await
            .expect("a reader failed to open its stream");
    }
    let publisher = common::client(broker.mqtt, "platform", &[], Sock::Default).await;
    let pad = "x".repeat(150);
    let t0 = Instant::now();
    start.set((t0, rate)).unwrap();
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let d = format!(
            r#"{{"type":"vm.create","org":"acme","subject":"urn:acme:vm:{i}","outcome":"succeeded","data":{{"bench_n":{i},"pad":"{pad}"}}}}"#
        );
        publisher
            .client
            .publish("extbus/in/platform/events", QoS::AtLeastOnce, false, d)
            .await
            .unwrap();
    }
    let sent_in = t0.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(streams * total);
    let (mut complete, mut disorder, mut delivered) = (0, 0, 0);
    for r in readers {
        let s = r.await.unwrap();
        delivered += s.events;
        complete += usize::from(s.events == total);
        disorder += s.out_of_order;
        lat.extend(s.latencies_us);
    }
    let done_in = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!("\nevent stream fan-out: {streams} SSE readers, {total} events paced at {rate:.0}/s over MQTT");
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| events published | {total} in {sent_in:.2} s ({:.0}/s) |",
        total as f64 / sent_in
    );
    println!("| readers with every event | {complete} of {streams} |");
    println!(
        "| deliveries | {delivered} of {} ({:.0}/s) |",
        streams * total,
        delivered as f64 / done_in
    );
    println!("| seq out of order | {disorder} |");
    println!(
        "| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        pct(&lat, 100.0)
    );
    println!("| broker RSS | {:.0} MiB |", broker.rss_mib());
    broker.stop();
}
