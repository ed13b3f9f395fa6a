//! The event logger, an observer app: appends every audit event of its org to a log file (one
//! JSON line each) and keeps its place by `seq` in a state file. After a restart it replays what
//! it missed with `events/replay`, then follows live events, writing each `seq` once.

use crate::{Bus, Opts};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where to log and what to follow.
#[derive(Debug, Clone)]
pub struct Config {
    /// `+` for every org the principal may see.
    pub org: String,
    /// The JSON-lines log of events.
    pub log: PathBuf,
    /// Holds `{"next_seq": N}`: the first event not yet logged.
    pub state: PathBuf,
}

impl Config {
    pub fn from_opts(o: &Opts) -> Result<Config> {
        Ok(Config {
            org: o.get("org", "+".to_string())?,
            log: o.get("log", PathBuf::from("events.jsonl"))?,
            state: o.get("state", PathBuf::from("event-logger.state.json"))?,
        })
    }
}

fn read_state(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["next_seq"].as_u64())
        .unwrap_or(1)
}

/// Writes the state atomically (temp file, then rename), so a crash never leaves half a file.
fn write_state(path: &Path, next_seq: u64) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({"next_seq": next_seq}).to_string())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

struct Logger {
    cfg: Config,
    next_seq: u64,
    file: std::fs::File,
}

impl Logger {
    /// Logs an event unless it is older than our place; then moves the place on.
    fn log(&mut self, ev: &Value) -> Result<()> {
        let Some(seq) = ev["seq"].as_u64() else {
            return Ok(());
        };
        if seq < self.next_seq {
            return Ok(()); // seen already (replay and live overlap)
        }
        writeln!(self.file, "{ev}")?;
        self.file.flush()?;
        self.next_seq = seq + 1;
        write_state(&self.cfg.state, self.next_seq)
    }
}

/// Runs until `shutdown`: catch up from the state file, then follow.
pub async fn run(opts: &Opts, cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (bus, mut rx) = Bus::connect(opts).await?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.log)
        .with_context(|| format!("opening {}", cfg.log.display()))?;
    let filter = extbus_client::wire::topics::events_org_filter(&cfg.org);
    let mut l = Logger {
        next_seq: read_state(&cfg.state),
        cfg,
        file,
    };
    // Subscribe first, then replay: nothing falls between the two; duplicates are skipped.
    bus.subscribe(&filter).await?;
    loop {
        let page = bus
            .command(
                "events/replay",
                json!({"from_seq": l.next_seq, "filter": filter}),
            )
            .await?;
        for ev in page["events"].as_array().into_iter().flatten() {
            l.log(ev)?;
        }
        // Events filtered out still advance the place, so we never re-read them.
        let next = page["next_seq"].as_u64().unwrap_or(l.next_seq);
        if next > l.next_seq {
            l.next_seq = next;
            write_state(&l.cfg.state, next)?;
        }
        if page["more"] != true {
            break;
        }
    }
    println!("caught up; following {filter} from seq {}", l.next_seq);
    tokio::pin!(shutdown);
    let r = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            m = rx.recv() => match m {
                Some(m) => if let Some(ev) = m.json() { l.log(&ev)? },
                None => break Err(anyhow::anyhow!("connection closed")),
            },
        }
    };
    bus.disconnect().await;
    r
}
