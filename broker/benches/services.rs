//! Extension services benchmark against the real binary (figures printed, nothing asserted):
//! HTTP requests through the gateway to an echo extension on MQTT. Reports requests/s and
//! p50/p99 latency for one caller, 32 keep-alive callers paced to 10,000 req/s in total
//! (latency from each request's scheduled send time, so a stalled caller cannot hide it), and
//! 32 callers as fast as they can. The echo extension's MQTT client runs at default socket
//! options for the headline rows and with NODELAY for the second; the HTTP callers set
//! TCP_NODELAY, as curl and most HTTP clients do. Then the same requests answered by an
//! executable extension (a two-line shell script run per request, `max_running` 16).
//! Run: `cargo bench -p extbus --bench services` (SERVICES_BENCH_SECS, default 5; not an
//! `EXTBUS_` variable, which the broker would read as config).

mod common;

use base64::Engine as _;
use common::{pct, Broker, Sock};
use extbus_schema::topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REQUESTS: &str = "extbus/services/bench/echo/1.0.0/requests";
const CALLERS: usize = 32;
const ECHO: &str = "/ext/bench/echo/call";
const EXEC: &str = "/ext/bench/exec/call";

/// Connects the echo extension, registers its service and answers every request until the
/// broker stops.
async fn echo_extension(port: u16, sock: Sock) -> AsyncClient {
    let mut o = MqttOptions::new(format!("echo-{}", rand::random::<u32>()), "127.0.0.1", port);
    o.set_credentials("extension", "extension")
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 100_000);
    if sock == Sock::NoDelay {
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
    }
    let manifest = json!({"services": [{"vendor": "bench", "name": "echo", "version": "1.0.0",
        "url_patterns": ["^/ext/bench/echo/"], "timeout_ms": 10000}]});
    client
        .subscribe(topics::replies("extension"), QoS::AtMostOnce)
        .await
        .unwrap();
    client
        .publish(
            topics::inbox("extension", "register"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await
        .unwrap();
    // Registered once the reply arrives; then only requests are wanted.
    loop {
        if let Event::Incoming(Packet::Publish(p)) = el.poll().await.expect("echo connects") {
            let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
            assert_eq!(v["ok"], true, "register: {v}");
            break;
        }
    }
    client
        .unsubscribe(topics::replies("extension"))
        .await
        .unwrap();
    client.subscribe(REQUESTS, QoS::AtMostOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(s)) = el.poll().await.expect("echo subscribes") {
            if s.return_codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
            {
                break;
            }
        }
    }
    let handle = client.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let req: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let resp = json!({"id": req["id"], "status": 200,
                        "headers": {"content-type": "application/json"}, "body": req["body"]});
                    let _ = client.try_publish(
                        topics::inbox("extension", "services/responses"),
                        QoS::AtMostOnce,
                        false,
                        serde_json::to_vec(&resp).unwrap(),
                    );
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                // The broker stopped.
                Err(_) => return,
            }
        }
    });
    handle
}

/// A keep-alive HTTP/1.1 connection that reads `Content-Length` bodies.
struct Caller {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Caller {
    async fn connect(addr: SocketAddr, auth: &str, path: &str) -> Caller {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let body = br#"{"hello":"echo","n":12345}"#;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: {auth}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Caller {
            stream: BufReader::new(s),
            request,
        }
    }

    /// One request; returns the status.
    async fn call(&mut self) -> u16 {
        self.stream
            .get_mut()
            .write_all(&self.request)
            .await
            .unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.unwrap();
        status
    }
}

struct Figures {
    requests: usize,
    secs: f64,
    latencies_us: Vec<u64>,
}

/// `callers` keep-alive callers for `secs`, as fast as they can or, with `rate`, paced to
/// that many requests per second in total; a paced request's latency runs from the moment
/// it was due, whether or not its caller was free to send it then.
async fn run(
    addr: SocketAddr,
    auth: &str,
    path: &str,
    callers: usize,
    secs: f64,
    rate: Option<f64>,
) -> Figures {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let interval = rate.map(|r| Duration::from_secs_f64(callers as f64 / r));
    let mut tasks = Vec::new();
    for i in 0..callers {
        let mut c = Caller::connect(addr, auth, path).await;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut due = Instant::now();
            if let Some(iv) = interval {
                due += iv.mul_f64(i as f64 / callers as f64);
            }
            while due < until && Instant::now() < until {
                let t = match interval {
                    Some(iv) => {
                        tokio::time::sleep_until(due.into()).await;
                        let t = due;
                        due += iv;
                        t
                    }
                    None => Instant::now(),
                };
                let status = c.call().await;
                assert_eq!(status, 200, "gateway answered {status}");
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Figures {
        requests: latencies_us.len(),
        secs,
        latencies_us,
    }
}

fn report(label: &str, f: &Figures) {
    println!(
        "{label}: {} requests in {:.1} s = {:.0} req/s; latency p50 {:.3} ms, p99 {:.3} ms",
        f.requests,
        f.secs,
        f.requests as f64 / f.secs,
        pct(&f.latencies_us, 50.0),
        pct(&f.latencies_us, 99.0),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs: f64 = std::env::var("SERVICES_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("observer:observer")
    );
    println!("extension services through the HTTP gateway (echo extension over MQTT)");
    for sock in Sock::BOTH {
        // A fresh broker each: two echo extensions would both answer every request.
        let broker = Broker::start(&dir.path().join(format!("data-{sock:?}")), "");
        let echo = echo_extension(broker.mqtt, sock).await;
        let addr: SocketAddr = format!("127.0.0.1:{}", broker.http).parse().unwrap();
        // Warm-up: the first request pays for argon2; later ones hit the credentials cache.
        run(addr, &auth, ECHO, 4, 1.0, None).await;
        let l = sock.label();
        let one = run(addr, &auth, ECHO, 1, secs.min(3.0), None).await;
        report(&format!("echo on {l:15}, 1 caller, closed loop    "), &one);
        let paced = run(addr, &auth, ECHO, CALLERS, secs, Some(10_000.0)).await;
        report(
            &format!("echo on {l:15}, {CALLERS} callers, 10,000 req/s"),
            &paced,
        );
        let many = run(addr, &auth, ECHO, CALLERS, secs, None).await;
        report(
            &format!("echo on {l:15}, {CALLERS} callers, closed loop  "),
            &many,
        );
        println!("broker RSS {:.1} MiB", broker.rss_mib());
        let _ = echo.disconnect().await;
        broker.stop();
    }

    println!("the same requests answered by an executable extension (a process per request)");
    let script = dir.path().join("exec-echo.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"status\":\"success\",\"result\":{\"status\":200,\"json\":{\"ok\":true}}}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "[[exec]]\nname = \"bench-exec\"\npath = \"{}\"\nmax_running = 16\n\
         [[exec.services]]\nvendor = \"bench\"\nname = \"exec\"\nversion = \"1.0.0\"\n\
         url_patterns = [\"^/ext/bench/exec/\"]\n",
        script.display()
    );
    let broker = Broker::start(&dir.path().join("data-exec"), &config);
    let addr: SocketAddr = format!("127.0.0.1:{}", broker.http).parse().unwrap();
    run(addr, &auth, EXEC, 2, 1.0, None).await;
    let one = run(addr, &auth, EXEC, 1, secs.min(3.0), None).await;
    report("exec, 1 caller, closed loop  ", &one);
    let many = run(addr, &auth, EXEC, 16, secs.min(3.0), None).await;
    report("exec, 16 callers, closed loop", &many);
    broker.stop();
}
