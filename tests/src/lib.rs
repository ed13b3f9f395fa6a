//! Test harness: a real extbus broker started in-process on free ports with a temporary data
//! dir and a manual clock, and real MQTT clients (rumqttc, v3.1.1 and v5) that collect what
//! they receive and send commands with correlation ids, plus a small HTTP/1.1 client (`http`)
//! and a Server-Sent Events reader (`sse`), and a WebDriver client for browser tests
//! (`webdriver`); `actions` sets up custom-action tests.
//! No part of the bus or store is mocked.
//!
//! The bus is embedded unless the suite runs in external mode (`EXTBUS_TEST_BUS=external`, or
//! a test binary named `on_mosquitto*`): then every `start`/`start_with` also starts a real
//! Mosquitto with dynamic security (`mosquitto`) and puts the broker in external bus mode on it.

pub mod actions;
pub mod client;
pub mod console;
pub mod http;
pub mod mosquitto;
pub mod sse;
pub mod webdriver;

pub use client::{BusClient, Msg, Proto};

use extbus::clock::{Clock, ManualClock};
use extbus::config::Config;
use extbus::server::{self, Listeners};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running broker. Dropping it without `stop` leaves the task running until the test ends.
pub struct TestBroker {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// The MQTT-over-TLS listener, when `config.mqtt.tls` is set.
    pub mqtt_tls: Option<SocketAddr>,
    pub config: Config,
    pub clock: ManualClock,
    dir: Arc<tempfile::TempDir>,
    /// The Mosquitto of external mode, kept across restarts.
    bus: Option<Arc<mosquitto::Mosquitto>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestBroker {
    /// A broker with the five `--dev` principals (secret = name).
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// A broker whose config `tweak` may change before it starts.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let clock = ManualClock::new(extbus::clock::SystemClock.now_ms());
        let mut config = Config {
            data_dir: dir.path().join("data"),
            dev: true,
            ..Config::default()
        };
        tweak(&mut config);
        let mut bus = None;
        if external_mode() && !config.bus.external() {
            let m = Arc::new(mosquitto::Mosquitto::start().await);
            on_mosquitto(&mut config, &m);
            bus = Some(m);
        }
        Self::launch(config, dir, clock, bus).await
    }

    async fn launch(
        config: Config,
        dir: Arc<tempfile::TempDir>,
        clock: ManualClock,
        bus: Option<Arc<mosquitto::Mosquitto>>,
    ) -> TestBroker {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let tls = config.mqtt.tls.as_ref().map(|t| t.listen);
        Self::launch_at(config, dir, clock, bus, (any, any, tls)).await
    }

    /// Starts on the given addresses (port 0: any free one).
    async fn launch_at(
        config: Config,
        dir: Arc<tempfile::TempDir>,
        clock: ManualClock,
        bus: Option<Arc<mosquitto::Mosquitto>>,
        (mqtt, http, tls): (SocketAddr, SocketAddr, Option<SocketAddr>),
    ) -> TestBroker {
        let mut tries = 0;
        let (mut mqtt, mut http, mut tls) = (mqtt, http, tls);
        loop {
            // External bus mode: no MQTT listener; clients use the external broker.
            let mqtt_l = match external_addr(&config) {
                Some(_) => None,
                None => Some(bind_retry(mqtt).await),
            };
            let http_l = bind_retry(http).await;
            let tls_l = match tls {
                Some(a) => Some(bind_retry(a).await),
                None => None,
            };
            mqtt = match &mqtt_l {
                Some(l) => l.local_addr().unwrap(),
                None => external_addr(&config).expect("bus.url"),
            };
            http = http_l.local_addr().unwrap();
            tls = tls_l.as_ref().map(|l| l.local_addr().unwrap());
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let listeners = Listeners {
                mqtt: mqtt_l,
                http: http_l,
                mqtt_tls: tls_l,
            };
            let cfg = config.clone();
            let clk: Arc<dyn Clock> = Arc::new(clock.clone());
            let task = tokio::spawn(async move {
                server::run(cfg, listeners, clk, async move {
                    let _ = stop_rx.await;
                })
                .await
            });
            let mut b = TestBroker {
                mqtt,
                http,
                mqtt_tls: tls,
                config: config.clone(),
                clock: clock.clone(),
                dir: dir.clone(),
                bus: bus.clone(),
                stop: Some(stop_tx),
                task: Some(task),
            };
            let Err(e) = b.wait_ready().await else {
                return b;
            };
            // It stopped while starting: say why. A store still held by the instance just
            // stopped (its last handles drop a moment after) is retried.
            let task = b.task.take().expect("task");
            let why = match tokio::time::timeout(std::time::Duration::from_secs(10), task).await {
                Ok(Ok(Err(err))) => format!("{err:#}"),
                Ok(Ok(Ok(()))) => format!("it stopped without error ({e})"),
                Ok(Err(err)) => format!("it panicked: {err}"),
                Err(_) => format!("it runs but does not answer: {e}"),
            };
            b.stop.take();
            tries += 1;
            if why.contains("another extbus") && tries < 50 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            panic!("the broker did not start: {why}");
        }
    }

    /// Waits until the broker answers a command (the coordinator is subscribed).
    async fn wait_ready(&self) -> Result<(), String> {
        let secret = if self.config.dev {
            "admin".to_string()
        } else {
            let path = self.config.data_dir.join("admin.secret");
            let start = std::time::Instant::now();
            loop {
                match std::fs::read_to_string(&path) {
                    Ok(s) if !s.trim().is_empty() => break s.trim().to_string(),
                    _ if start.elapsed() > std::time::Duration::from_secs(10) => {
                        panic!("{} never written", path.display())
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        };
        let mut tries = 0;
        let c = loop {
            match BusClient::connect(self, Proto::V5, "admin", &secret).await {
                Ok(c) => break c,
                // An external broker knows the principals once extbus has started: wait.
                Err(_) if self.config.bus.external() && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                // The listeners are bound before the broker runs: a refusal means it stopped.
                Err(e) => return Err(format!("admin connects: {e}")),
            }
        };
        for _ in 0..100 {
            if tokio::time::timeout(
                std::time::Duration::from_millis(200),
                c.command("tasks/query", serde_json::json!({})),
            )
            .await
            .is_ok()
            {
                c.disconnect().await;
                return Ok(());
            }
        }
        panic!("broker did not become ready");
    }

    /// A broker on the external Mosquitto `m` with dynamic security, `--dev` principals
    /// (their passwords set at start-up), then `tweak`.
    pub async fn start_external(
        m: &mosquitto::Mosquitto,
        tweak: impl FnOnce(&mut Config),
    ) -> TestBroker {
        Self::start_with(|c| {
            on_mosquitto(c, m);
            tweak(c);
        })
        .await
    }

    /// The Mosquitto this broker runs on, in external mode.
    pub fn mosquitto(&self) -> Option<&mosquitto::Mosquitto> {
        self.bus.as_deref()
    }

    /// `add_principal`, and on an external broker with dynamic security its client and
    /// password too, as `extbus principal add` does.
    pub async fn add_principal_external(
        &self,
        name: &str,
        roles: &[extbus_schema::Role],
        orgs: &[&str],
    ) {
        self.add_principal(name, roles, orgs);
    }

    /// Adds a principal (secret = name) to the running broker's principals file; on an
    /// external broker with dynamic security also its client, as `extbus principal add` does.
    pub fn add_principal(&self, name: &str, roles: &[extbus_schema::Role], orgs: &[&str]) {
        let p =
            extbus::principals::Principals::open(&self.config.data_dir).expect("principals file");
        p.add(
            name,
            roles.to_vec(),
            orgs.iter().map(|o| o.to_string()).collect(),
            Some(name.to_string()),
        )
        .expect("add principal");
        if self.config.bus.external() && self.config.bus.dynsec {
            // Callers are synchronous and may run on a single-threaded runtime: a thread of
            // its own waits for Mosquitto.
            let (cfg, name) = (self.config.clone(), name.to_string());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(extbus::external::principal_added(&cfg, &name, &name))
            })
            .join()
            .expect("dynsec thread")
            .expect("dynsec client for the new principal");
        }
    }

    /// Connects `name` (secret = name) over MQTT 5.
    pub async fn client(&self, name: &str) -> std::sync::Arc<BusClient> {
        BusClient::connect(self, Proto::V5, name, name)
            .await
            .unwrap_or_else(|e| panic!("{name} connects: {e}"))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// Stops the broker and waits for it to finish (store flushed and closed). The Mosquitto
    /// of external mode keeps running for `start_again` with the same config.
    pub async fn stop(mut self) -> (Config, Arc<tempfile::TempDir>, ManualClock) {
        self.shutdown().await;
        if let Some(m) = self.bus.take() {
            parked().insert(self.config.bus.url.clone(), m);
        }
        (self.config.clone(), self.dir.clone(), self.clock.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await
                .expect("broker task")
                .expect("broker stopped cleanly");
        }
    }

    /// Stops and starts again on the same data dir and clock (new ports).
    pub async fn restart(mut self) -> TestBroker {
        self.shutdown().await;
        let (config, dir, clock, bus) = (
            self.config.clone(),
            self.dir.clone(),
            self.clock.clone(),
            self.bus.take(),
        );
        Self::launch(config, dir, clock, bus).await
    }

    /// Stops and starts again on the same data dir, clock and ports: what clients see when
    /// the broker restarts.
    pub async fn restart_in_place(self) -> TestBroker {
        let at = (self.mqtt, self.http, self.mqtt_tls);
        let mut s = self;
        s.shutdown().await;
        let (config, dir, clock, bus) = (
            s.config.clone(),
            s.dir.clone(),
            s.clock.clone(),
            s.bus.take(),
        );
        Self::launch_at(config, dir, clock, bus, at).await
    }

    /// Starts again after `stop`, possibly with the clock moved meanwhile.
    pub async fn start_again(
        config: Config,
        dir: Arc<tempfile::TempDir>,
        clock: ManualClock,
    ) -> TestBroker {
        let bus = parked().remove(&config.bus.url);
        Self::launch(config, dir, clock, bus).await
    }
}

/// Mosquittos of stopped external-mode brokers, by `bus.url`, until started again. One never
/// claimed goes when the test's thread ends (`mosquitto` spawns it so).
fn parked(
) -> std::sync::MutexGuard<'static, std::collections::HashMap<String, Arc<mosquitto::Mosquitto>>> {
    static PARKED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<mosquitto::Mosquitto>>>,
    > = std::sync::OnceLock::new();
    PARKED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether brokers run in external bus mode beside Mosquitto: `EXTBUS_TEST_BUS=external`, or
/// a test binary whose name starts with `on_mosquitto` (the suites re-run in that mode).
pub fn external_mode() -> bool {
    static MODE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        if let Ok(v) = std::env::var("EXTBUS_TEST_BUS") {
            return match v.as_str() {
                "external" => true,
                "embedded" | "" => false,
                other => panic!("EXTBUS_TEST_BUS={other:?}: expected embedded or external"),
            };
        }
        std::env::current_exe().ok().is_some_and(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("on_mosquitto"))
        })
    })
}

/// Returns early from a test that checks what only the embedded bus does (its gate's
/// refusals, rumqttd's limits, the internal token), saying so, when the suite runs in
/// external mode.
#[macro_export]
macro_rules! embedded_only {
    () => {
        if $crate::external_mode() {
            eprintln!("embedded bus only: not run in external mode");
            return;
        }
    };
}

/// Puts `c` in external bus mode on Mosquitto `m` with dynamic security.
fn on_mosquitto(c: &mut Config, m: &mosquitto::Mosquitto) {
    c.bus.mode = extbus::config::BusMode::External;
    c.bus.url = m.url();
    c.bus.user = mosquitto::BUS_USER.into();
    c.bus.secret = mosquitto::BUS_SECRET.into();
    c.bus.client_id_prefix = format!("extbus-{}", uuid::Uuid::new_v4().simple());
    c.bus.dynsec = true;
}

/// The external broker's address, in external bus mode.
fn external_addr(config: &Config) -> Option<SocketAddr> {
    if !config.bus.external() {
        return None;
    }
    let u = extbus::config::bus::parse_url(&config.bus.url).ok()?;
    format!("{}:{}", u.host, u.port).parse().ok()
}

/// Binds `addr`, retrying a moment while a just-stopped broker still holds it.
async fn bind_retry(addr: SocketAddr) -> TcpListener {
    let mut tries = 0;
    loop {
        match extbus::server::bind(addr, 1024) {
            Ok(l) => return l,
            Err(e) if tries >= 100 => panic!("bind {addr}: {e}"),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Writes `<dir>/<name>.sh`, a `#!/bin/sh` script with `body`, mode 755 (executable
/// extensions under test).
pub fn write_script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.sh"));
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    p
}

/// Waits up to `within` for process `pid` to be gone (no such process, or a zombie nobody
/// reaped: it no longer runs). Linux `/proc`.
pub async fn process_gone(pid: u32, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // The state follows the parenthesised command name, which may hold spaces.
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
            });
        match state.as_deref() {
            None | Some("Z") | Some("X") => return true,
            _ if std::time::Instant::now() >= deadline => return false,
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Shell lines that start a grandchild (`sleep`) in the background, write its pid and the
/// script's own to `pids`, then wait: a script that hangs with a descendant of its own.
pub fn hang_with_grandchild(pids: &std::path::Path) -> String {
    format!(
        "sleep 30 &\necho \"$$ $!\" > {p}.tmp && mv {p}.tmp {p}\nwait",
        p = pids.display()
    )
}

/// The two pids `hang_with_grandchild` wrote (script, grandchild).
pub fn running_pids(pids: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(pids).expect("the hanging script wrote its pids");
    let out: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(out.len(), 2, "script and grandchild: {text}");
    out
}
