//! Shared bench helpers: the real `extbus` binary and a Mosquitto started as child processes
//! on free loopback ports, rumqttc clients at default (Nagle on) or NODELAY socket options
//! whose received messages arrive on a channel, a publisher window, and the figures table.
#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A count from the environment, or `default`.
/// Where a bench keeps its store: the directory `var` names, so a later run can reuse what
/// this one filled, or else `tmp` (removed at exit).
pub fn store_root(var: &str, tmp: &tempfile::TempDir) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf())
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// `BENCH_BUS=external`: the extbus rows run in external bus mode on a Mosquitto (see
/// `Broker::start_external`) instead of the embedded bus.
pub fn external_bus() -> bool {
    match std::env::var("BENCH_BUS").as_deref() {
        Ok("external") => true,
        Ok("embedded") | Ok("") | Err(_) => false,
        Ok(other) => panic!("BENCH_BUS={other:?}: expected embedded or external"),
    }
}

/// Socket options of a bench client. `Default` is what rumqttc, paho-mqtt, libmosquitto and
/// MQTT.js ship (Nagle on) and gives the headline figure; `NoDelay` sets TCP_NODELAY.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sock {
    Default,
    NoDelay,
}

impl Sock {
    pub const BOTH: [Sock; 2] = [Sock::Default, Sock::NoDelay];

    pub fn label(self) -> &'static str {
        match self {
            Sock::Default => "default sockets",
            Sock::NoDelay => "NODELAY",
        }
    }
}

/// Spawns `cmd` so that it dies with the bench, even when the bench is killed.
fn spawn_child(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
}

fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < limit, "{what} did not start within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The broker binary: `BENCH_EXTBUS_BIN` when set (to compare two builds in one sitting),
/// else this tree's `extbus` (release under `cargo bench`).
fn broker_bin() -> PathBuf {
    std::env::var_os("BENCH_EXTBUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_extbus")))
}

/// The `extbus` binary (see `broker_bin`), stopped with SIGTERM when dropped.
pub struct Broker {
    pub child: Child,
    pub mqtt: u16,
    pub http: u16,
    pub data: PathBuf,
}

impl Broker {
    /// Starts the binary and returns once its MQTT and HTTP ports accept connections.
    pub fn start(data: &Path, config_toml: &str) -> Broker {
        std::fs::create_dir_all(data).unwrap();
        let cfg = data.with_extension("toml");
        std::fs::write(&cfg, config_toml).unwrap();
        let (mqtt, http) = (free_port(), free_port());
        let child = spawn_child(
            Command::new(broker_bin())
                .args(["serve", "--dev", "--config", cfg.to_str().unwrap()])
                .args(["--data-dir", data.to_str().unwrap()])
                .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
                .args(["--http-listen", &format!("127.0.0.1:{http}")])
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .expect("spawn extbus");
        wait_for_port(http, Duration::from_secs(120), "extbus");
        wait_for_port(mqtt, Duration::from_secs(10), "extbus MQTT");
        Broker {
            child,
            mqtt,
            http,
            data: data.to_path_buf(),
        }
    }

    /// Starts the binary in external bus mode on Mosquitto `m` (anonymous: it enforces
    /// nothing, so the figures are the bus's and extbus's work, not ACL checks) and returns
    /// once its coordinator answers; `mqtt` is then Mosquitto's port.
    pub async fn start_external(data: &Path, config_toml: &str, m: &Mosquitto) -> Broker {
        let id = data
            .file_name()
            .map_or("x".into(), |n| n.to_string_lossy().to_string());
        let config = format!(
            "[bus]\nmode = \"external\"\nurl = \"mqtt://127.0.0.1:{}\"\nuser = \"extbus\"\nsecret = \"bench\"\nclient_id_prefix = \"bench-{id}\"\n\n{config_toml}",
            m.port
        );
        std::fs::create_dir_all(data).unwrap();
        let cfg = data.with_extension("toml");
        std::fs::write(&cfg, config).unwrap();
        let http = free_port();
        let child = spawn_child(
            Command::new(env!("CARGO_BIN_EXE_extbus"))
                .args(["serve", "--dev", "--config", cfg.to_str().unwrap()])
                .args(["--data-dir", data.to_str().unwrap()])
                .args(["--http-listen", &format!("127.0.0.1:{http}")])
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .expect("spawn extbus");
        wait_for_port(http, Duration::from_secs(120), "extbus");
        let b = Broker {
            child,
            mqtt: m.port,
            http,
            data: data.to_path_buf(),
        };
        // Mosquitto drops what nobody is subscribed to: wait for the coordinator's answer.
        let mut probe = client(
            m.port,
            "admin",
            &["extbus/out/admin/replies"],
            Sock::Default,
        )
        .await;
        let t = Instant::now();
        loop {
            probe
                .client
                .publish("extbus/in/admin/tasks/query", QoS::AtLeastOnce, false, "{}")
                .await
                .unwrap();
            if tokio::time::timeout(Duration::from_millis(300), probe.rx.recv())
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "extbus never answered on Mosquitto"
            );
        }
        let _ = probe.client.disconnect().await;
        b
    }

    /// Resident set size of the broker process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// CPU seconds (user and system, all threads) the broker process has used.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.child.id().to_string())
    }

    pub fn stop(self) {}
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// CPU seconds of process `pid` ("self": the bench, whose clients generate the load),
/// from `/proc/<pid>/stat`: utime + stime in clock ticks.
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// CPU used over a measured run, per unit of work, in microseconds.
pub struct CpuShare {
    pub server_us: f64,
    pub clients_us: f64,
}

impl CpuShare {
    pub fn of(server_secs: f64, clients_secs: f64, units: usize) -> CpuShare {
        let per = |s: f64| s * 1e6 / units.max(1) as f64;
        CpuShare {
            server_us: per(server_secs),
            clients_us: per(clients_secs),
        }
    }

    pub fn show(&self) -> String {
        format!(
            "server {:.1} us, clients {:.1} us",
            self.server_us, self.clients_us
        )
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The configuration Mosquitto runs with: anonymous, in memory, and with its per-client
/// limits raised so QoS 1 at 64 (or 1,000) in flight and fan-out bursts are neither throttled
/// (`max_inflight_messages`, default 20) nor dropped (`max_queued_messages`, default 1,000).
pub fn mosquitto_config(port: u16) -> String {
    format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
         max_inflight_messages 1000\nmax_queued_messages 1000000\nmax_queued_bytes 0\n\
         log_dest none\n"
    )
}

/// Mosquitto (Debian's `mosquitto`, from PATH or /usr/sbin), killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts Mosquitto, or says why not and returns `None` (the ratio is then skipped).
    pub fn start() -> Option<Mosquitto> {
        let bin = ["mosquitto", "/usr/sbin/mosquitto"]
            .into_iter()
            .find(|b| Command::new(b).arg("-h").output().is_ok());
        let Some(bin) = bin else {
            println!("Mosquitto not installed (apt-get install mosquitto): its column is skipped");
            return None;
        };
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, mosquitto_config(port)).unwrap();
        let child = spawn_child(
            Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("spawn mosquitto");
        wait_for_port(port, Duration::from_secs(10), "mosquitto");
        Some(Mosquitto {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// CPU seconds Mosquitto has used.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.child.id().to_string())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes used by a directory tree.
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

/// Options of every bench client: name = secret, a unique id, 1,000 QoS 1 publishes in
/// flight, default socket options.
pub fn options(port: u16, name: &str) -> MqttOptions {
    let mut o = MqttOptions::new(
        format!("{name}-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_credentials(name, name)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    o
}

pub struct Client {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
}

/// Connects with name = secret (Mosquitto ignores it) and subscribes to `filters` at QoS 1,
/// returning once subscribed. Up to 1,000 of its own QoS 1 publishes are in flight.
pub async fn client(port: u16, name: &str, filters: &[&str], sock: Sock) -> Client {
    let o = options(port, name);
    let (client, mut el) = AsyncClient::new(o, 100_000);
    if sock == Sock::NoDelay {
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic, p.payload)).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let _ = sub_tx.send(s);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench client: {e}");
                    return;
                }
            }
        }
    });
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no SUBACK for {f} within 10 s"))
            .expect("connection closed before SUBACK");
        assert!(
            ack.return_codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
            "subscription to {f} refused"
        );
    }
    Client { client, rx }
}

/// Waits until the broker on `port` answers a login (it binds its ports before it opens its
/// store, so an open port is not yet service) and returns how long that took; fails loudly
/// after `limit_secs`.
pub async fn until_serving(port: u16, limit_secs: u64) -> Duration {
    let t = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let o = options(port, "observer");
        let (c, mut el) = AsyncClient::new(o, 10);
        let acked = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        let _ = c.try_disconnect();
        if acked {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(limit_secs),
            "the broker did not answer a login within {limit_secs} s ({attempt} attempts)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next message, or a loud failure after `secs` of silence (a bench must not hang).
pub async fn recv_within(
    rx: &mut mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
    secs: u64,
    what: &str,
) -> (String, bytes::Bytes) {
    match tokio::time::timeout(Duration::from_secs(secs), rx.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => panic!("{what}: connection closed"),
        Err(_) => panic!("{what}: nothing received for {secs} s"),
    }
}

/// Keeps publishers at most `window` messages ahead of the slowest of `n` receivers: neither
/// rumqttd nor Mosquitto slows a QoS 1 publisher down for a slow subscriber, they queue or
/// drop. The same window applies to both brokers.
pub struct Window {
    got: Vec<AtomicUsize>,
    window: usize,
    more: tokio::sync::Notify,
}

impl Window {
    pub fn new(receivers: usize, window: usize) -> Window {
        Window {
            got: (0..receivers).map(|_| AtomicUsize::new(0)).collect(),
            window,
            more: tokio::sync::Notify::new(),
        }
    }

    /// Counts one message at receiver `r`.
    pub fn received(&self, r: usize) {
        let got = self.got[r].fetch_add(1, Ordering::Relaxed) + 1;
        if got.is_multiple_of(256) {
            self.more.notify_waiters();
        }
    }

    fn slowest(&self) -> usize {
        self.got
            .iter()
            .map(|g| g.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Waits until `sent` (messages sent so far, by all publishers) is inside the window.
    pub async fn wait(&self, sent: usize) {
        loop {
            let more = self.more.notified();
            if sent < self.slowest() + self.window {
                return;
            }
            more.await;
        }
    }
}

/// p-th percentile (0..=100) of sorted microsecond samples, in ms.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// A figure and whether more is better (a rate) or less (a latency).
#[derive(Clone, Copy)]
pub enum Figure {
    Rate(f64),
    Millis(f64),
}

impl Figure {
    fn show(self) -> String {
        match self {
            Figure::Rate(r) => format!("{r:.0}/s"),
            Figure::Millis(m) => format!("{m:.2} ms"),
        }
    }
}

/// The printed comparison: case, extbus, Mosquitto, ratio (>= 1.00: extbus as good or
/// better, i.e. extbus/Mosquitto for rates and Mosquitto/extbus for latencies).
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, Figure, Option<Figure>)>,
}

impl Table {
    pub fn add(&mut self, case: impl Into<String>, extbus: Figure, mosquitto: Option<Figure>) {
        self.rows.push((case.into(), extbus, mosquitto));
    }

    pub fn print(&self, title: &str) {
        let w = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!("\n{title}");
        println!(
            "| {:w$} | {:>12} | {:>12} | {:>5} |",
            "case", "extbus", "Mosquitto", "ratio"
        );
        println!(
            "|{:-<w2$}|{:->14}|{:->14}|{:->7}|",
            "",
            "",
            "",
            "",
            w2 = w + 2
        );
        for (case, e, m) in &self.rows {
            let ratio = match (e, m) {
                (Figure::Rate(e), Some(Figure::Rate(m))) => format!("{:.2}", e / m),
                (Figure::Millis(e), Some(Figure::Millis(m))) => format!("{:.2}", m / e),
                _ => "-".into(),
            };
            let m = m.map_or("-".into(), Figure::show);
            println!("| {case:w$} | {:>12} | {m:>12} | {ratio:>5} |", e.show());
        }
        println!("ratio >= 1.00: extbus as good or better (rates extbus/Mosquitto, latencies Mosquitto/extbus)");
    }
}
