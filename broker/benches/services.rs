//! Extension services benchmark against the real binary (figures printed, nothing asserted):
//! HTTP requests through the gateway to an echo extension on MQTT. Reports requests/s and
//! p50/p99 latency for one caller, 32 keep-alive callers paced to 10,000 req/s, and 32 callers
//! as fast as they can, next to the echo extension's own handling time measured inside it;
//! added latency = gateway p50 - handling. Then the same requests answered by an executable
//! extension (a two-line shell script run per request, `max_running` 16), for 1 and 16 callers.
//! Run: `cargo bench -p extbus --bench services` (SERVICES_BENCH_SECS, default 5; not an
//! `EXTBUS_` variable, which the broker would read as config).

mod common;

use base64::Engine as _;
use common::{pct, Broker};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REQUESTS: &str = "extbus/services/bench/echo/1.0.0/requests";
const CALLERS: usize = 32;
const ECHO: &str = "/ext/bench/echo/call";
const EXEC: &str = "/ext/bench/exec/call";

/// Handling times (ns) the echo extension measured, from receiving a request to queueing
/// its response.
type Samples = Arc<Mutex<Vec<u64>>>;

/// Connects the echo extension, registers its service and answers every request.
async fn echo_extension(port: u16) -> Samples {
    let mut o = MqttOptions::new(format!("echo-{}", rand::random::<u32>()), "127.0.0.1", port);
    o.set_credentials("extension", "extension")
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 100_000);
    let manifest = json!({"services": [{"vendor": "bench", "name": "echo", "version": "1.0.0",
        "url_patterns": ["^/ext/bench/echo/"], "timeout_ms": 10000}]});
    client
        .subscribe("extbus/out/extension/replies", QoS::AtMostOnce)
        .await
        .unwrap();
    client
        .publish(
            "extbus/in/extension/register",
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
        .unsubscribe("extbus/out/extension/replies")
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
    let samples: Samples = Arc::default();
    let out = samples.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let t0 = Instant::now();
                    let req: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let resp = json!({"id": req["id"], "status": 200,
                        "headers": {"content-type": "application/json"}, "body": req["body"]});
                    let _ = client.try_publish(
                        "extbus/in/extension/services/responses",
                        QoS::AtMostOnce,
                        false,
                        serde_json::to_vec(&resp).unwrap(),
                    );
                    let ns = t0.elapsed().as_nanos() as u64;
                    out.lock().unwrap().push(ns);
                }
                Ok(_) => {}
                // The broker stopped.
                Err(_) => return,
            }
        }
    });
    samples
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
    handling_ns: Vec<u64>,
}

/// `callers` keep-alive callers for `secs`, as fast as they can or, with `rate`, paced to
/// that many requests per second in total.
async fn run(
    addr: SocketAddr,
    auth: &str,
    path: &str,
    samples: &Samples,
    callers: usize,
    secs: f64,
    rate: Option<f64>,
) -> Figures {
    samples.lock().unwrap().clear();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let interval = rate.map(|r| Duration::from_secs_f64(callers as f64 / r));
    let mut tasks = Vec::new();
    for i in 0..callers {
        let mut c = Caller::connect(addr, auth, path).await;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut next = tokio::time::Instant::now();
            if let Some(iv) = interval {
                next += iv.mul_f64(i as f64 / callers as f64);
            }
            while Instant::now() < until {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next).await;
                    next += iv;
                }
                let t = Instant::now();
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
    let mut handling_ns: Vec<u64> = samples.lock().unwrap().clone();
    handling_ns.sort_unstable();
    Figures {
        requests: latencies_us.len(),
        secs,
        latencies_us,
        handling_ns,
    }
}

fn report(label: &str, f: &Figures) {
    // `pct` reads microseconds; these samples are nanoseconds.
    let handling_p50_ms = pct(&f.handling_ns, 50.0) / 1000.0;
    let p50 = pct(&f.latencies_us, 50.0);
    if f.handling_ns.is_empty() {
        // Nothing measured inside the extension (the executable one).
        println!(
            "{label}: {} requests in {:.1} s = {:.0} req/s; latency p50 {p50:.3} ms, p99 {:.3} ms",
            f.requests,
            f.secs,
            f.requests as f64 / f.secs,
            pct(&f.latencies_us, 99.0),
        );
        return;
    }
    println!(
        "{label}: {} requests in {:.1} s = {:.0} req/s; latency p50 {:.3} ms, p99 {:.3} ms; \
         echo handling p50 {:.3} ms, p99 {:.3} ms; added p50 {:.3} ms",
        f.requests,
        f.secs,
        f.requests as f64 / f.secs,
        p50,
        pct(&f.latencies_us, 99.0),
        handling_p50_ms,
        pct(&f.handling_ns, 99.0) / 1000.0,
        p50 - handling_p50_ms,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs: f64 = std::env::var("SERVICES_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), "");
    let samples = echo_extension(broker.mqtt).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", broker.http).parse().unwrap();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("observer:observer")
    );
    // Warm-up: the first request pays for argon2; later ones hit the credentials cache.
    run(addr, &auth, ECHO, &samples, 4, 1.0, None).await;

    println!("extension services through the HTTP gateway (echo extension over MQTT)");
    let one = run(addr, &auth, ECHO, &samples, 1, secs.min(3.0), None).await;
    report("1 caller, closed loop            ", &one);
    let paced = run(addr, &auth, ECHO, &samples, CALLERS, secs, Some(10_000.0)).await;
    report(&format!("{CALLERS} callers paced to 10,000 req/s"), &paced);
    let many = run(addr, &auth, ECHO, &samples, CALLERS, secs, None).await;
    report(&format!("{CALLERS} callers, closed loop          "), &many);
    println!("broker RSS {:.1} MiB", broker.rss_mib());
    broker.stop();

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
    let none: Samples = Arc::default();
    run(addr, &auth, EXEC, &none, 2, 1.0, None).await;
    let one = run(addr, &auth, EXEC, &none, 1, secs.min(3.0), None).await;
    report("1 caller, closed loop            ", &one);
    let many = run(addr, &auth, EXEC, &none, 16, secs.min(3.0), None).await;
    report("16 callers, closed loop          ", &many);
    broker.stop();
}
