//! A password argument of a custom action never reaches the log: the real binary, at debug
//! level in JSON, runs an executable extension's action invoked over HTTP (the program repeats
//! the secret in its answer), refuses a bad invoke carrying the secret in another field, and
//! its whole stderr is searched for the secret.

mod support;

use std::io::{Read, Write};
use std::process::Stdio;

const SECRET: &str = "Log-Secret-7731";

fn post(http: u16, path: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    // operator:operator
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic b3BlcmF0b3I6b3BlcmF0b3I=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn passwords_stay_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("vault.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\npw=$(grep -o '\"password\":\"[^\"]*\"' \"$2\" | cut -d'\"' -f4)\n\
         echo \"{\\\"status\\\":\\\"success\\\",\\\"message\\\":\\\"stored $pw\\\"}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.path().join("extbus.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[exec]]
name = "vault"
path = "{}"
[[exec.actions]]
name = "store"
roles = ["operator"]
parameters = {{ type = "object", properties = {{ password = {{ type = "string", format = "password" }}, mode = {{ enum = ["a", "b"] }} }} }}
success_message = "stored {{{{password}}}}"
"#,
            script.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut served = support::serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
        Stdio::piped(),
    );
    let ok = post(
        served.http,
        "/api/actions/vault/store",
        &format!(r#"{{"arguments": {{"password": "{SECRET}"}}}}"#),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("stored ********"), "{ok}");
    assert!(!ok.contains(SECRET), "{ok}");
    let bad = post(
        served.http,
        "/api/actions/vault/store",
        &format!(r#"{{"arguments": {{"password": "{SECRET}", "mode": "{SECRET}"}}}}"#),
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(!bad.contains(SECRET), "{bad}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe {
        libc::kill(served.child.id() as i32, libc::SIGTERM);
    }
    let mut err = String::new();
    served
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("action run finished"), "{err}");
    assert!(err.contains("action run sent"), "{err}");
    assert!(!err.contains(SECRET), "the log carries the secret:\n{err}");
}
