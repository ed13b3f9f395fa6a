//! `extbus events tail`: replays stored events from `--from-seq` in `events/replay` pages, then
//! follows live events on `extbus/events/<org>/...`. The live subscription opens before the
//! replay starts, and events are printed once each, in `seq` order, de-duplicated by `seq`.

use super::connect::{block_on, Conn, ConnectArgs};
use super::table::cell;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(subcommand)]
    pub cmd: EventsCmd,
}

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Print events as they happen, optionally starting with stored ones.
    Tail(Tail),
}

#[derive(Debug, Clone, Args)]
pub struct Tail {
    /// Only this org's events.
    #[arg(long)]
    pub org: Option<String>,
    /// Only this type: `vapp.instantiate`, or an entity alone (`vapp`).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Replay stored events from this sequence number first.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Stop after the replay instead of following live events.
    #[arg(long)]
    pub no_follow: bool,
    /// Stop after printing this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

/// The MQTT filter over event topics that `tail` selects.
pub fn filter(org: Option<&str>, kind: Option<&str>) -> Result<String> {
    let org = org.unwrap_or("+");
    let rest = match kind {
        None => "#".to_string(),
        Some(k) => match k.split_once('.') {
            Some((entity, op)) => format!("{entity}/{op}"),
            None => format!("{k}/#"),
        },
    };
    let f = extbus_schema::topics::events_filter(org, &rest);
    if !extbus_schema::topics::valid_filter(&f) || org.contains('#') {
        bail!("--org/--type give an invalid topic filter '{f}'");
    }
    Ok(f)
}

const HEADERS: [&str; 7] = ["SEQ", "TIME", "ORG", "TYPE", "OUTCOME", "SUBJECT", "SOURCE"];
/// A stream cannot size its columns to the widest cell, so they have fixed widths that fit
/// the usual values (a millisecond RFC 3339 time is 24 characters); longer cells push on.
const WIDTHS: [usize; 6] = [6, 24, 12, 24, 8, 24];

/// One line of the events table: SEQ right-aligned, the rest left-aligned, the last unpadded.
fn row(cells: &[String; 7]) -> String {
    let mut s = format!("{:>w$}", cells[0], w = WIDTHS[0]);
    for (c, w) in cells[1..6].iter().zip(&WIDTHS[1..]) {
        s.push_str(&format!("  {c:<w$}"));
    }
    s.push_str("  ");
    s.push_str(&cells[6]);
    s.trim_end().to_string()
}

/// Prints events once each; remembers the highest `seq` printed.
struct Printer {
    json: bool,
    last_seq: Option<u64>,
    printed: u64,
    count: Option<u64>,
}

impl Printer {
    /// Prints `ev` unless it was already printed; `true` once `--count` is reached.
    fn print(&mut self, ev: &Value) -> bool {
        let Some(seq) = ev["seq"].as_u64() else {
            return false;
        };
        if self.last_seq.is_some_and(|l| seq <= l) {
            return false;
        }
        self.last_seq = Some(seq);
        if self.json {
            println!("{ev}");
        } else {
            println!(
                "{}",
                row(&[
                    seq.to_string(),
                    cell(&ev["time"]),
                    cell(&ev["org"]),
                    cell(&ev["type"]),
                    cell(&ev["outcome"]),
                    cell(&ev["subject"]),
                    cell(&ev["source"]),
                ])
            );
        }
        self.printed += 1;
        self.count.is_some_and(|c| self.printed >= c)
    }
}

pub fn run(args: EventsArgs) -> Result<()> {
    let EventsCmd::Tail(t) = args.cmd;
    block_on(async move {
        let f = filter(t.org.as_deref(), t.kind.as_deref())?;
        let mut conn = Conn::open(&args.conn).await?;
        let r = tail(&mut conn, &f, &t, args.conn.json).await;
        conn.close().await;
        r
    })
}

async fn tail(conn: &mut Conn, f: &str, t: &Tail, json: bool) -> Result<()> {
    let mut p = Printer {
        json,
        last_seq: None,
        printed: 0,
        count: t.count,
    };
    if t.count == Some(0) {
        return Ok(());
    }
    if !json {
        println!("{}", row(&HEADERS.map(String::from)));
    }
    if !t.no_follow {
        conn.subscribe(f).await?;
    }
    if let Some(mut from) = t.from_seq {
        loop {
            let page = conn
                .command("events/replay", json!({"from_seq": from, "filter": f}))
                .await?;
            let empty = Vec::new();
            for ev in page["events"].as_array().unwrap_or(&empty) {
                if p.print(ev) {
                    return Ok(());
                }
            }
            let next = page["next_seq"].as_u64().unwrap_or(from);
            if page["more"] != true || next <= from {
                break;
            }
            from = next;
        }
    }
    if t.no_follow {
        return Ok(());
    }
    // Live events that arrived during the replay, in seq order, then the stream.
    let mut held: Vec<Value> = conn
        .take_held()
        .into_iter()
        .filter(|(topic, _)| extbus_schema::topics::filter_matches(f, topic))
        .filter_map(|(_, payload)| serde_json::from_slice(&payload).ok())
        .collect();
    held.sort_by_key(|ev| ev["seq"].as_u64().unwrap_or(0));
    for ev in &held {
        if p.print(ev) {
            return Ok(());
        }
    }
    loop {
        let (topic, payload) = conn.next_message().await?;
        if !extbus_schema::topics::filter_matches(f, &topic) {
            continue;
        }
        if let Ok(ev) = serde_json::from_slice::<Value>(&payload) {
            if p.print(&ev) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_under_the_headers() {
        let head = row(&HEADERS.map(String::from));
        let line = row(&[
            "7".into(),
            "2026-12-02T14:00:00.000Z".into(),
            "acme".into(),
            "vapp.instantiate".into(),
            "success".into(),
            "vapp-1".into(),
            "/platform".into(),
        ]);
        // SEQ is right-aligned: the number ends where its header does.
        assert_eq!(
            head.find("SEQ").map(|i| i + 3),
            line.find('7').map(|i| i + 1)
        );
        assert_eq!(head.find("ORG"), line.find("acme"));
        assert_eq!(head.find("TYPE"), line.find("vapp.instantiate"));
        assert_eq!(head.find("SOURCE"), line.find("/platform"));
    }

    #[test]
    fn filters_follow_org_and_type() {
        assert_eq!(filter(None, None).unwrap(), "extbus/events/+/#");
        assert_eq!(
            filter(Some("acme"), Some("vapp.instantiate")).unwrap(),
            "extbus/events/acme/vapp/instantiate"
        );
        assert_eq!(filter(None, Some("vm")).unwrap(), "extbus/events/+/vm/#");
        assert!(filter(Some("a#"), None).is_err());
    }

    #[test]
    fn printer_deduplicates_by_seq_and_counts() {
        let mut p = Printer {
            json: true,
            last_seq: None,
            printed: 0,
            count: Some(2),
        };
        assert!(!p.print(&json!({"seq": 1})));
        assert!(!p.print(&json!({"seq": 1})));
        assert!(!p.print(&json!({"no": "seq"})));
        assert!(p.print(&json!({"seq": 2})));
        assert_eq!(p.printed, 2);
    }
}
