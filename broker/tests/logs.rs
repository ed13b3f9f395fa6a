//! What an operator reads at the default level, from the real binary's JSON log: each MQTT
//! connect and disconnect (peer, principal, client id, protocol, reason), each refused login,
//! and one access line per HTTP request.

mod support;

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

/// Connects as `user`, waits for the CONNACK's verdict, then DISCONNECTs; true when accepted.
fn login(port: u16, user: &str, secret: &str, client_id: &str) -> bool {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(user, secret);
    let (client, mut conn) = Client::new(o, 8);
    let accepted = loop {
        match conn.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break true,
            Ok(Err(_)) => break false,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("no CONNACK"),
        }
    };
    if accepted {
        client.disconnect().unwrap();
        // Drive the connection until the DISCONNECT is out, and no further (a later poll
        // would connect again).
        for _ in 0..10 {
            match conn.recv_timeout(Duration::from_millis(500)) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Err(_) => break,
                _ => {}
            }
        }
    }
    accepted
}

fn lines_with<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == message)
        .collect()
}

#[test]
fn connections_logins_and_http_requests_are_logged_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut served = support::serve(&["--log-format", "json", "--data-dir", d], Stdio::piped());
    let (mqtt, http) = (served.mqtt, served.http);
    assert!(login(mqtt, "platform", "platform", "plat-1"));
    assert!(!login(mqtt, "platform", "wrong", "plat-2"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.write_all(b"GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(served.child.id() as i32, libc::SIGTERM);
    }
    let mut err = String::new();
    let mut stderr = served.child.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();

    let up = lines_with(&lines, "MQTT client connected");
    assert_eq!(up.len(), 1, "{err}");
    let f = &up[0]["fields"];
    assert_eq!(f["principal"], "platform");
    assert_eq!(f["client_id"], "plat-1");
    assert_eq!(f["protocol"], "3.1.1");
    assert!(f["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{f}");
    assert_eq!(up[0]["level"], "INFO");

    let down = lines_with(&lines, "MQTT client disconnected");
    assert_eq!(down.len(), 1, "{err}");
    assert_eq!(down[0]["fields"]["client_id"], "plat-1");
    assert_eq!(down[0]["fields"]["reason"], "the client sent DISCONNECT");

    let refused = lines_with(&lines, "MQTT login refused");
    assert_eq!(refused.len(), 1, "{err}");
    assert_eq!(refused[0]["fields"]["principal"], "platform");
    assert_eq!(refused[0]["fields"]["client_id"], "plat-2");
    assert_eq!(refused[0]["fields"]["reason"], "bad_credentials");

    let http_lines = lines_with(&lines, "HTTP request");
    assert_eq!(http_lines.len(), 1, "{err}");
    let f = &http_lines[0]["fields"];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/healthz", "the query is not logged");
    assert_eq!(f["status"], 200);
    // No secret ever reaches the log.
    assert!(!err.contains("wrong"), "{err}");
}
