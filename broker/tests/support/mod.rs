//! Helpers shared by the binary-level tests in `broker/tests/`.

pub mod session;

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary serving on free ports (`extbus serve --dev` plus `args`); killed on drop.
#[allow(dead_code)] // not every test binary starts one
pub struct Served {
    pub child: std::process::Child,
    pub mqtt: u16,
    pub http: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the broker with `args` (and `RUST_LOG` unset) and waits until its HTTP port answers.
#[allow(dead_code)]
pub fn serve(args: &[&str], stderr: std::process::Stdio) -> Served {
    serve_on(args, free_port(), free_port(), stderr)
}

/// As `serve`, on the given ports: a restarted broker keeps its clients' addresses.
#[allow(dead_code)]
pub fn serve_on(args: &[&str], mqtt: u16, http: u16, stderr: std::process::Stdio) -> Served {
    use std::time::{Duration, Instant};
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_extbus"))
        .args(["serve", "--dev"])
        .args(args)
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let served = Served { child, mqtt, http };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    served
}
