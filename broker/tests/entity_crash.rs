//! Entities under `kill -9`: the real binary takes a stream of entity creates and updates and
//! is killed with SIGKILL mid-stream, several times. After each restart every acknowledged
//! create is there, every acknowledged update's revision and content are there, and nothing
//! half-written shows (revisions move by one, content and revision agree).

mod support;
use support::session::{session, Session};
use support::{free_port, serve_on, Served};

use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TYPE_ID: &str = "urn:extbus:type:acme:counter:1.0.0";

fn start(dir: &Path, mqtt: u16, http: u16) -> Served {
    serve_on(
        &["--data-dir", dir.to_str().unwrap()],
        mqtt,
        http,
        Stdio::null(),
    )
}

impl Session {
    /// Every entity as id -> (revision, content `n`), via paged `entities/query`.
    async fn all(&self, tag: &str) -> HashMap<String, (u64, i64)> {
        let mut out = HashMap::new();
        let mut after: Option<String> = None;
        for page in 0.. {
            let q = json!({"limit": 500, "after": after});
            let r = self
                .call("entities/query", &format!("{tag}-q{page}"), q)
                .await;
            assert_eq!(r["ok"], true, "{r}");
            for e in r["result"]["entities"].as_array().unwrap() {
                let rev = e["revision"].as_u64().unwrap();
                let n = e["entity"]["n"].as_i64().unwrap();
                out.insert(e["id"].as_str().unwrap().to_string(), (rev, n));
            }
            match r["result"]["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_and_updates_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mqtt, http) = (free_port(), free_port());
    let mut broker = start(&data, mqtt, http);
    let ext = session("extension", mqtt).await;
    let types = json!({"entity_types": [{"vendor": "acme", "nss": "counter", "version": "1.0.0",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "access": {"read": ["platform"], "write": ["platform"]}}]});
    assert_eq!(ext.call("register", "reg", types).await["ok"], true);

    // What was acknowledged: id -> (revision, n).
    let mut acked: HashMap<String, (u64, i64)> = HashMap::new();
    for round in 0..3usize {
        let p = session("platform", mqtt).await;
        let before = p.all(&format!("r{round}-before")).await;
        for (id, want) in &acked {
            let got = before
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged {id} lost"));
            assert!(
                got.0 >= want.0,
                "{id}: revision {} < acknowledged {}",
                got.0,
                want.0
            );
            // Content and revision agree: n is written with revision n + 1 below.
            assert_eq!(got.1 + 1, got.0 as i64, "{id}: {got:?}");
        }
        let mut sent = Vec::new();
        // One update per known entity (at its current revision) and new creates, pipelined.
        for (i, (id, (rev, _))) in before.iter().enumerate() {
            let corr = format!("r{round}-u{i}");
            let body = json!({"revision": rev, "entity": {"n": *rev as i64}});
            p.send(&format!("entities/{id}/update"), &corr, body).await;
            sent.push((corr, Some((id.clone(), rev + 1))));
        }
        for i in 0..300 {
            let corr = format!("r{round}-c{i}");
            let body = json!({"type": TYPE_ID, "org": "acme", "name": "c", "entity": {"n": 0}});
            p.send("entities/create", &corr, body).await;
            sent.push((corr, None));
            if i == 150 {
                // Some of the first half is acknowledged; the second half meets the kill.
                let t = Instant::now();
                while !sent.iter().any(|(c, _)| p.reply(c).is_some()) {
                    assert!(
                        t.elapsed() < Duration::from_secs(10),
                        "no reply in round {round}"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        // Killed while the second half is still arriving.
        drop(broker);
        let mut n_acked = 0;
        for (corr, update) in &sent {
            let Some(r) = p.reply(corr) else { continue };
            assert_eq!(r["ok"], true, "{r}");
            n_acked += 1;
            match update {
                Some((id, rev)) => {
                    acked.insert(id.clone(), (*rev, *rev as i64 - 1));
                }
                None => {
                    let id = r["result"]["id"].as_str().unwrap().to_string();
                    acked.insert(id, (1, 0));
                }
            }
        }
        assert!(
            n_acked > 0,
            "round {round}: nothing was acknowledged before the kill"
        );
        broker = start(&data, mqtt, http);
    }
    let p = session("platform", mqtt).await;
    let last = p.all("final").await;
    for (id, want) in &acked {
        let got = last
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} lost"));
        assert!(got.0 >= want.0, "{id}");
    }
    drop(broker);
}
