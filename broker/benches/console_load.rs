//! The console's first load against the real binary (figures printed, nothing asserted): the
//! bytes on the wire (status lines, headers and bodies) for `/console/` and every file it
//! pulls in (stylesheet, scripts and the modules they import, followed transitively), then
//! the calls it makes after sign-in (sign-in, `/api/openapi.json`), and a second load where
//! every file is revalidated with its ETag (304s). Run: `cargo bench -p extbus --bench
//! console_load` (sizes do not depend on the build profile: `--profile dev` gives the same).

mod common;

use common::Broker;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

/// One request on a fresh connection: (status, bytes on the wire, headers, body).
fn get(
    port: u16,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> (u16, usize, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\naccept-encoding: identity\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap_or(0);
    (status, raw.len(), head, raw[split..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

/// Files a page (`src=`/`href=` attributes) or module (`import ... from './x.js'`) refers
/// to, as paths under `/console/`.
fn references(from: &str, text: &str) -> Vec<String> {
    let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
    let quoted = |s: &str| s.split(['"', '\'']).nth(1).map(str::to_string);
    let found: Vec<String> = if from.ends_with(".html") {
        text.split(" src=")
            .skip(1)
            .chain(text.split(" href=").skip(1))
            .filter_map(|s| quoted(&s[..s.find('>').unwrap_or(s.len())]))
            .collect()
    } else {
        text.lines()
            .filter(|l| l.starts_with("import "))
            .filter_map(|l| quoted(l.rsplit(" from ").next().unwrap_or(l)))
            .collect()
    };
    found
        .into_iter()
        .filter(|f| (f.ends_with(".js") || f.ends_with(".css")) && !f.contains(':'))
        .map(|f| format!("{dir}/{}", f.trim_start_matches("./")))
        .collect()
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("extbus-console-bench-{}", std::process::id()));
    let broker = Broker::start(&tmp.join("data"), "");
    let port = broker.http;
    let mut files: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut todo = vec!["/console/".to_string()];
    while let Some(path) = todo.pop() {
        if files.contains_key(&path) {
            continue;
        }
        let (status, wire, head, body) = get(port, "GET", &path, "", "");
        assert_eq!(status, 200, "{path}");
        let base = if path.ends_with('/') {
            format!("{path}index.html")
        } else {
            path.clone()
        };
        todo.extend(references(&base, &String::from_utf8_lossy(&body)));
        let etag = header(&head, "etag").unwrap_or("").to_string();
        files.insert(path, (wire, etag));
    }
    let assets: usize = files.values().map(|f| f.0).sum();
    let login = r#"{"name":"operator","secret":"operator"}"#;
    let (_, signin, head, _) = get(
        port,
        "POST",
        "/api/session",
        "content-type: application/json\r\n",
        login,
    );
    let cookie = header(&head, "set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .to_string();
    let auth = format!("cookie: {cookie}\r\n");
    let (_, openapi, _, _) = get(port, "GET", "/api/openapi.json", &auth, "");
    let (_, session, _, _) = get(port, "GET", "/api/session", &auth, "");
    let mut again = 0;
    for (path, (_, etag)) in &files {
        let (status, wire, _, _) =
            get(port, "GET", path, &format!("if-none-match: {etag}\r\n"), "");
        assert_eq!(status, 304, "{path}");
        again += wire;
    }
    let kib = |n: usize| n as f64 / 1024.0;
    println!("\nconsole first load (bytes on the wire, no compression)");
    println!("| part | requests | KiB |");
    println!("|---|---:|---:|");
    println!("| console files | {} | {:.1} |", files.len(), kib(assets));
    println!(
        "| sign-in + session + openapi.json | 3 | {:.1} |",
        kib(signin + session + openapi)
    );
    println!(
        "| first load in all | {} | {:.1} |",
        files.len() + 3,
        kib(assets + signin + session + openapi)
    );
    println!(
        "| reload, files revalidated (304) | {} | {:.1} |",
        files.len(),
        kib(again)
    );
    for (path, (wire, _)) in &files {
        println!("|   {path} | 1 | {:.1} |", kib(*wire));
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&tmp);
}
