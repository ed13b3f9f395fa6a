//! Shared bench helpers: start the real `extbus` binary on free ports with a config and data
//! dir, read its RSS, and plain rumqttc clients whose received messages arrive on a channel.
#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Broker {
    pub child: Child,
    pub mqtt: u16,
    pub http: u16,
    pub data: PathBuf,
}

impl Broker {
    /// Starts the binary and returns once its HTTP port accepts connections.
    pub fn start(data: &Path, config_toml: &str) -> Broker {
        std::fs::create_dir_all(data).unwrap();
        let cfg = data.with_extension("toml");
        std::fs::write(&cfg, config_toml).unwrap();
        let (mqtt, http) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_extbus"))
            .args([
                "serve",
                "--dev",
                "--config",
                cfg.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .args([
                "--mqtt-listen",
                &format!("127.0.0.1:{mqtt}"),
                "--http-listen",
                &format!("127.0.0.1:{http}"),
            ])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn extbus");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "extbus did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Broker {
            child,
            mqtt,
            http,
            data: data.to_path_buf(),
        }
    }

    /// Resident set size of the broker process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-15")
            .arg(self.child.id().to_string())
            .status();
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

pub struct Client {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
}

/// Connects with name = secret and subscribes to `filters`, returning once subscribed.
pub async fn client(port: u16, name: &str, filters: &[&str]) -> Client {
    let mut o = MqttOptions::new(
        format!("{name}-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    o.set_credentials(name, name)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 100_000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic, p.payload));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench client {e}");
                    return;
                }
            }
        }
    });
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
            .await
            .expect("suback");
    }
    Client { client, rx }
}

/// p-th percentile (0..=100) of sorted microsecond samples, in ms.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i] as f64 / 1000.0
}
