//! `extbus serve` as a real process: SIGTERM with a service call under way answers it 503
//! `overloaded` once `http.shutdown_grace_ms` is over and the process exits soon after; a data
//! dir that others can read is reported at start.

mod support;
use support::free_port;

use base64::Engine as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GRACE_MS: u64 = 1_000;
const REQUESTS: &str = "extbus/services/acme/slow/1.0.0/requests";

/// Sends one request on a fresh connection and reads until the server closes it.
async fn call(http: u16, target: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).await?;
    let auth = base64::engine::general_purpose::STANDARD.encode("operator:operator");
    let req = format!("GET {target} HTTP/1.1\r\nhost: extbus\r\nauthorization: Basic {auth}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).to_string())
}

#[tokio::test]
async fn sigterm_answers_waiting_service_calls_503_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("extbus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\nshutdown_grace_ms = {GRACE_MS}\n[[services.declared]]\nextension = \"extension\"\nvendor = \"acme\"\nname = \"slow\"\nversion = \"1.0.0\"\nurl_patterns = [\"^/slow\"]\ntimeout_ms = 60000\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let (mqtt, http) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_extbus"))
        .args(["serve", "--dev", "--config", cfg.to_str().unwrap()])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .env("EXTBUS_LOG__FORMAT", "human")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    // The extension is connected (so the service is not refused at once) but never answers.
    let mut o = rumqttc::MqttOptions::new("serve-test-ext", "127.0.0.1", mqtt);
    o.set_credentials("extension", "extension");
    let (ext, mut el) = rumqttc::AsyncClient::new(o, 64);
    ext.subscribe(REQUESTS, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = seen_tx.send(p.topic);
                }
                Ok(_) => {}
                // Not up yet, or gone at shutdown: retry until the test ends.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });

    // Retry until the broker is up and routes the call to the extension.
    let started = Instant::now();
    let pending = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "broker not ready"
        );
        let c = tokio::spawn(call(http, "/slow"));
        match tokio::time::timeout(Duration::from_secs(2), seen.recv()).await {
            Ok(Some(topic)) if topic == REQUESTS => break c,
            _ => c.abort(),
        }
    };

    let sent = Instant::now();
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let answer = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("no answer after SIGTERM")
        .unwrap()
        .unwrap();
    let answered = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"overloaded\""), "{answer}");
    // The call had the grace period to complete, and no more than a moment beyond it.
    assert!(
        answered >= Duration::from_millis(GRACE_MS - 100) && answered < Duration::from_secs(4),
        "answered after {answered:?}"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited = sent.elapsed();
    assert!(status.success(), "{status:?}");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        exited < Duration::from_secs(5),
        "exited after {exited:?}\n{stderr}"
    );
    assert!(stderr.contains("the data dir is not private"), "{stderr}");
    assert!(stderr.contains("755"), "{stderr}");
}
