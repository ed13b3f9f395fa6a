//! A real Mosquitto 2 (Debian's `/usr/sbin/mosquitto`) for external-bus tests: started on a
//! free port with a generated config (one listener, no anonymous clients, the dynamic-security
//! plugin with a generated dynsec.json, persistence in a temp dir). Missing Mosquitto is
//! installed with apt-get when running as root; otherwise the test fails saying how.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
/// The broker principal extbus connects as (dynsec admin, plus publishing under `extbus/`).
pub const BUS_USER: &str = "extbus";
pub const BUS_SECRET: &str = "extbus-bus-secret";

pub struct Mosquitto {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Makes sure Mosquitto and its dynsec plugin are installed.
fn ensure_installed() {
    if Path::new(MOSQUITTO).exists() && Path::new(DYNSEC_PLUGIN).exists() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let ok = Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto"])
            .status()
            .is_ok_and(|s| s.success());
        if ok && Path::new(MOSQUITTO).exists() {
            return;
        }
    }
    panic!("the external-bus tests need Mosquitto 2 with its dynamic-security plugin: run `apt-get install -y mosquitto` ({MOSQUITTO}, {DYNSEC_PLUGIN})");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        ensure_installed();
        let dir = tempfile::tempdir().expect("temp dir");
        let dynsec = dir.path().join("dynsec.json");
        write_dynsec(&dynsec);
        let port = free_port();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nplugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {}\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nmax_inflight_messages 100\nlog_dest file {}\nlog_type all\nuser {user}\n",
            dynsec.display(),
            dir.path().display(),
            dir.path().join("mosquitto.log").display(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut m = Mosquitto {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child: None,
        };
        m.launch().await;
        m
    }

    async fn launch(&mut self) {
        let mut cmd = Command::new(MOSQUITTO);
        cmd.arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Killed when the thread that started it ends, should nothing else stop it (a test
        // that panics, a parked instance nobody claims).
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start mosquitto");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("mosquitto did not listen on {}: {}", self.addr, self.log());
    }

    /// `mqtt://` URL for `[bus] url`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Stops Mosquitto (SIGTERM: it saves its persistence file) and starts it again.
    pub async fn restart(&mut self) {
        self.terminate();
        self.launch().await;
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Mosquitto's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // A failing test's Mosquitto side, for its failure output.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of mosquitto.log ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A dynsec.json with the bus principal as its admin (`mosquitto_ctrl dynsec init`), whose
/// role may also publish under `extbus/`.
fn write_dynsec(path: &Path) {
    let out = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(path)
        .args([BUS_USER, BUS_SECRET])
        .output()
        .expect("mosquitto_ctrl dynsec init");
    assert!(
        path.exists(),
        "mosquitto_ctrl dynsec init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read dynsec.json")).expect("json");
    for role in v["roles"].as_array_mut().expect("roles") {
        if role["rolename"] == "admin" {
            role["acls"]
                .as_array_mut()
                .expect("acls")
                .push(serde_json::json!({"acltype": "publishClientSend", "topic": "extbus/#", "allow": true}));
        }
    }
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).expect("write dynsec.json");
}
