//! Login flood benchmark against the real binary (figures printed, nothing asserted): wrong
//! passwords at 300 CONNECTs/s for 10 s (from one address; from a new address each time;
//! from one address with throttling switched off), 600 wrong CONNECTs sent and closed at
//! once, and wrong HTTP Basic logins at 300/s, while valid logins are timed: cached (a
//! principal that logged in before) and first-time (a principal not seen since the start).
//! Prints p50/p99/max latency, refused valid logins, the flood's answers, and the broker's
//! peak and settled RSS. Clients use default socket options. Run:
//! `cargo bench -p extbus --bench login_flood` (LOGIN_BENCH_SECS, default 10).

mod common;

use base64::Engine as _;
use common::{pct, Broker};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::timeout;

const RATE: u64 = 300;
const FIRST_TIMERS: usize = 400;
const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ANSWER_WAIT: Duration = Duration::from_secs(60);

fn connect_frame(user: &str, pass: &str) -> Vec<u8> {
    let id = format!("b{:x}", rand::random::<u64>());
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0xC2, 0, 60, 0];
    for s in [id.as_str(), user, pass] {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let mut frame = vec![0x10, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// One MQTT 5 login from `from`: the CONNACK reason code (`None`: no answer). With `hang_up`
/// the client closes right after its CONNECT.
async fn mqtt_login(
    from: Ipv4Addr,
    port: u16,
    user: &str,
    pass: &str,
    hang_up: bool,
) -> Option<u8> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind((from, 0).into()).ok()?;
    let mut s = sock.connect((LO, port).into()).await.ok()?;
    s.write_all(&connect_frame(user, pass)).await.ok()?;
    if hang_up {
        return Some(0xFF);
    }
    let mut ack = [0u8; 4];
    timeout(ANSWER_WAIT, s.read_exact(&mut ack))
        .await
        .ok()?
        .ok()?;
    Some(ack[3])
}

/// One HTTP request from `from` with Basic credentials on a fresh connection: its status.
async fn http_login(from: Ipv4Addr, port: u16, user: &str, pass: &str) -> Option<u16> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind((from, 0).into()).ok()?;
    let mut s = sock.connect((LO, port).into()).await.ok()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let req = format!(
        "GET /ext/none HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    timeout(ANSWER_WAIT, s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Mqtt,
    Http,
}

#[derive(Clone, Copy, PartialEq)]
enum Source {
    One,
    Many,
}

fn many(i: u64) -> Ipv4Addr {
    let i = i + 1;
    Ipv4Addr::new(127, 10 + (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Answers to the flood, by code.
type Tally = Arc<Mutex<BTreeMap<String, u64>>>;

/// Sends `RATE` wrong logins per second for `secs`; returns once every answer is in.
async fn flood(proto: Proto, src: Source, port: u16, secs: f64) -> BTreeMap<String, u64> {
    let tally: Tally = Arc::default();
    let n = (RATE as f64 * secs) as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let at = start + Duration::from_micros(i * 1_000_000 / RATE);
        tokio::time::sleep_until(at.into()).await;
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let from = if src == Source::One {
                ATTACKER
            } else {
                many(i)
            };
            let code = match proto {
                Proto::Mqtt => mqtt_login(from, port, "operator", "wrong", false)
                    .await
                    .map(|c| format!("connack 0x{c:02x}")),
                Proto::Http => http_login(from, port, "operator", "wrong")
                    .await
                    .map(|c| format!("http {c}")),
            };
            *tally
                .lock()
                .unwrap()
                .entry(code.unwrap_or_else(|| "no answer".into()))
                .or_default() += 1;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let t = tally.lock().unwrap().clone();
    t
}

/// Valid logins timed while `running`: (latencies in µs, refused count).
struct Probe {
    samples: Vec<u64>,
    refused: u64,
}

async fn probe(
    proto: Proto,
    port: u16,
    names: Vec<String>,
    every: Duration,
    running: Arc<AtomicBool>,
) -> Probe {
    let mut p = Probe {
        samples: Vec::new(),
        refused: 0,
    };
    let mut tick = tokio::time::interval(every);
    for name in names.iter().cycle() {
        tick.tick().await;
        if !running.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        let ok = match proto {
            Proto::Mqtt => mqtt_login(LO, port, name, name, false).await == Some(0),
            Proto::Http => http_login(LO, port, name, name).await == Some(404),
        };
        if ok {
            p.samples.push(t.elapsed().as_micros() as u64);
        } else {
            p.refused += 1;
        }
    }
    p.samples.sort_unstable();
    p
}

fn show(label: &str, p: &Probe) -> String {
    let s = &p.samples;
    format!(
        "{label} p50 {:.1} / p99 {:.1} / max {:.1} ms ({} ok, {} refused)",
        pct(s, 50.0),
        pct(s, 99.0),
        pct(s, 100.0),
        s.len(),
        p.refused
    )
}

/// Samples the broker's RSS every 50 ms while `running`; returns the peak (MiB).
async fn rss_peak(pid: u32, running: Arc<AtomicBool>) -> f64 {
    let mut peak: f64 = 0.0;
    while running.load(Ordering::Relaxed) {
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

fn rss(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// First-time principals `ft-<i>` (secret = name), written once into the data dir.
fn add_first_timers(data: &Path) {
    let p = extbus::principals::Principals::open(data).unwrap();
    for i in 0..FIRST_TIMERS {
        let n = format!("ft-{i}");
        p.add(
            &n,
            vec![extbus_schema::Role::Observer],
            vec![],
            Some(n.clone()),
        )
        .unwrap();
    }
}

enum Load {
    Idle,
    Flood(Proto, Source),
    /// 600 wrong CONNECTs sent and closed at once, then the probes.
    Burst,
}

async fn scenario(label: &str, data: &Path, config: &str, load: Load, secs: f64) {
    let broker = Broker::start(data, config);
    let port = |p: Proto| {
        if p == Proto::Mqtt {
            broker.mqtt
        } else {
            broker.http
        }
    };
    let proto = match load {
        Load::Flood(p, _) => p,
        _ => Proto::Mqtt,
    };
    // The cached principal logs in once before the load.
    let cached = if proto == Proto::Mqtt {
        "platform"
    } else {
        "observer"
    };
    let warm = match proto {
        Proto::Mqtt => mqtt_login(LO, broker.mqtt, cached, cached, false).await == Some(0),
        Proto::Http => http_login(LO, broker.http, cached, cached).await == Some(404),
    };
    assert!(warm, "{cached} could not log in");
    let rss_before = rss(broker.child.id());
    let running = Arc::new(AtomicBool::new(true));
    let peak = tokio::spawn(rss_peak(broker.child.id(), running.clone()));
    if matches!(load, Load::Burst) {
        let mut burst = Vec::new();
        for i in 0..600 {
            burst.push(tokio::spawn(mqtt_login(
                many(i),
                broker.mqtt,
                "operator",
                "wrong",
                true,
            )));
        }
        for b in burst {
            let _ = b.await;
        }
    }
    let p_cached = tokio::spawn(probe(
        proto,
        port(proto),
        vec![cached.to_string()],
        Duration::from_millis(20),
        running.clone(),
    ));
    let first: Vec<String> = (0..FIRST_TIMERS).map(|i| format!("ft-{i}")).collect();
    let p_first = tokio::spawn(probe(
        proto,
        port(proto),
        first,
        Duration::from_millis(50),
        running.clone(),
    ));
    let answers = match load {
        Load::Flood(p, src) => Some(flood(p, src, port(p), secs).await),
        _ => {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            None
        }
    };
    running.store(false, Ordering::Relaxed);
    let (c, f) = (p_cached.await.unwrap(), p_first.await.unwrap());
    let peak = peak.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(broker.child.id());
    println!("{label}");
    println!("  {}", show("cached    ", &c));
    println!("  {}", show("first-time", &f));
    println!("  RSS {rss_before:.0} MiB before, {peak:.0} MiB peak, {after:.0} MiB 2 s after");
    if let Some(a) = answers {
        let a: Vec<String> = a.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("  flood answers: {}", a.join(", "));
    }
    broker.stop();
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("LOGIN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_first_timers(&data);
    let unthrottled = "[auth]\nfree_failures = 1000000\n";
    let secs_label = format!("{secs:.0} s");
    let runs: Vec<(String, &str, Load)> = vec![
        ("idle (no flood)".into(), "", Load::Idle),
        (
            format!("MQTT: 300 wrong CONNECTs/s for {secs_label} from one address"),
            "",
            Load::Flood(Proto::Mqtt, Source::One),
        ),
        (
            format!("MQTT: 300 wrong CONNECTs/s for {secs_label}, a new address each"),
            "",
            Load::Flood(Proto::Mqtt, Source::Many),
        ),
        (
            format!("MQTT: 300 wrong CONNECTs/s for {secs_label}, throttling off (queue only)"),
            unthrottled,
            Load::Flood(Proto::Mqtt, Source::One),
        ),
        (
            "MQTT: 600 wrong CONNECTs sent and closed at once, then valid logins".into(),
            unthrottled,
            Load::Burst,
        ),
        (
            format!("HTTP: 300 wrong Basic logins/s for {secs_label}"),
            "",
            Load::Flood(Proto::Http, Source::One),
        ),
        (
            format!("HTTP: 300 wrong Basic logins/s for {secs_label}, throttling off"),
            unthrottled,
            Load::Flood(Proto::Http, Source::One),
        ),
    ];
    for (label, config, load) in runs {
        let s = if matches!(load, Load::Burst) {
            2.0
        } else {
            secs
        };
        scenario(&label, &data, config, load, s).await;
    }
}
