//! `extbus task ...`: operators list, inspect and resolve blocked tasks over MQTT
//! (`tasks/query`, `tasks/<id>/get`, `tasks/<id>/resume|cancel|abort|extend`).
//! Readable tables by default, the broker's JSON with `--json`; a refused command is an error.

use super::connect::{block_on, parse_duration, Conn, ConnectArgs};
use super::table::{cell, render};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use extbus_schema::query::Selectors;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(subcommand)]
    pub cmd: TaskCmd,
}

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// List tasks, oldest first (in id order); page on with --after.
    List {
        /// blocked, resumed, cancelled or aborted.
        #[arg(long, value_parser = ["blocked", "resumed", "cancelled", "aborted"])]
        state: Option<String>,
        /// Only this operation, e.g. vapp.instantiate.
        #[arg(long)]
        operation: Option<String>,
        /// Only this org's tasks (an org-limited principal sees only its own orgs).
        #[arg(long)]
        org: Option<String>,
        /// A metadata search, e.g. 'billing|cost-center==\'cc-42\'' (checked before sending).
        #[arg(long)]
        metadata: Option<String>,
        /// Most tasks to list (the broker caps it at 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this task id (paging).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one task with its history.
    Get {
        /// The task id, as in `task list` or the notice.
        id: String,
    },
    /// Let the operation continue.
    Resume(Resolve),
    /// Stop the operation and roll it back.
    Cancel(Resolve),
    /// Stop the operation as failed.
    Abort(Resolve),
    /// Move the task's deadline to now + DURATION (bounded by the rule's max).
    Extend {
        /// The task id, as in `task list` or the notice.
        id: String,
        /// e.g. 500ms, 90s, 10m, 1h, 2d; a bare number is seconds. The stage's start plus the
        /// rule's `max_timeout_ms` caps it (the CLI says when it did).
        #[arg(long, value_parser = parse_duration)]
        by: Duration,
        /// Why; recorded in the task's history.
        #[arg(short = 'm', long)]
        message: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct Resolve {
    /// The task id, as in `task list` or the notice.
    pub id: String,
    /// Why; recorded in the task's history and sent with the outcome.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// JSON object handed to the platform with the outcome (resume only).
    #[arg(long)]
    pub result: Option<String>,
}

pub fn run(args: TaskArgs) -> Result<()> {
    block_on(async move {
        // Bad input is refused before anything is sent.
        let (suffix, body) = request(&args.cmd)?;
        let mut conn = Conn::open(&args.conn).await?;
        let sent_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let outcome = conn.command(&suffix, body).await;
        conn.close().await;
        let result = outcome?;
        if args.conn.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", readable(&args.cmd, &result));
        }
        if let Some(note) = note(&args.cmd, &result, &conn_user(&args.conn), sent_at) {
            eprintln!("note: {note}");
        }
        Ok(())
    })
}

/// The command suffix and body for a subcommand.
fn request(cmd: &TaskCmd) -> Result<(String, Value)> {
    Ok(match cmd {
        TaskCmd::List {
            state,
            operation,
            org,
            metadata,
            limit,
            after,
        } => {
            super::metadata::check_search("metadata", metadata, Selectors::Metadata)?;
            let q = super::connect::query_body(
                &[
                    ("state", state),
                    ("operation", operation),
                    ("org", org),
                    ("metadata", metadata),
                    ("after", after),
                ],
                *limit,
            );
            ("tasks/query".into(), q)
        }
        TaskCmd::Get { id } => (format!("tasks/{id}/get"), json!({})),
        TaskCmd::Resume(r) => resolve("resume", r)?,
        TaskCmd::Cancel(r) => resolve("cancel", r)?,
        TaskCmd::Abort(r) => resolve("abort", r)?,
        TaskCmd::Extend { id, by, message } => {
            let mut b = json!({"extend_ms": by.as_millis() as u64});
            if let Some(m) = message {
                b["message"] = m.clone().into();
            }
            (format!("tasks/{id}/extend"), b)
        }
    })
}

fn resolve(action: &str, r: &Resolve) -> Result<(String, Value)> {
    let mut b = json!({});
    if let Some(m) = &r.message {
        b["message"] = m.clone().into();
    }
    if let Some(text) = &r.result {
        let v: Value = serde_json::from_str(text).context("--result is not valid JSON")?;
        b["result"] = v;
    }
    Ok((format!("tasks/{}/{action}", r.id), b))
}

fn readable(cmd: &TaskCmd, result: &Value) -> String {
    match cmd {
        TaskCmd::List { .. } => list_table(result),
        TaskCmd::Get { .. } => task_details(result),
        _ => {
            let mut s = format!("task {}: {}", cell(&result["id"]), cell(&result["state"]));
            if result["state"] == "blocked" {
                // Stages count from 1 here, as in `task get` and `task list`.
                s.push_str(&format!(
                    " (stage {}, deadline {})",
                    stage_names(result),
                    cell(&result["deadline"])
                ));
            }
            s.push('\n');
            s
        }
    }
}

fn conn_user(c: &super::connect::ConnectArgs) -> String {
    c.target().map(|t| t.user).unwrap_or_default()
}

/// What the reply leaves unsaid: an extension the rule capped, or an empty list that an org
/// limit may explain.
fn note(cmd: &TaskCmd, result: &Value, user: &str, sent_at: u64) -> Option<String> {
    match cmd {
        TaskCmd::Extend { by, .. } => {
            let deadline = result["deadline"].as_str()?;
            let got = extbus_schema::time_fmt::parse_ms(deadline).ok()?;
            let asked = sent_at.saturating_add(by.as_millis() as u64);
            // A second of slack for the time the command took.
            (got.saturating_add(1_000) < asked).then(|| {
                format!(
                    "the deadline was capped at {deadline}: the rule's max_timeout_ms from the stage's start ends before --by {}",
                    humanize(*by)
                )
            })
        }
        TaskCmd::List { org: Some(org), .. } if result["tasks"].as_array()?.is_empty() => Some(
            format!("no task of org '{org}' is visible to '{user}'; a principal limited to other orgs sees none"),
        ),
        _ => None,
    }
}

fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1_000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1_000)
    }
}

fn stage_names(t: &Value) -> String {
    let Some(stages) = t["stages"].as_array() else {
        return "-".into();
    };
    let idx = t["stage"].as_u64().unwrap_or(0) as usize;
    match stages.get(idx).and_then(Value::as_array) {
        Some(names) if t["state"] == "blocked" => format!(
            "{}/{} {}",
            idx + 1,
            stages.len(),
            names.iter().map(cell).collect::<Vec<_>>().join(",")
        ),
        _ => "-".into(),
    }
}

fn list_table(result: &Value) -> String {
    let empty = Vec::new();
    let tasks = result["tasks"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                cell(&t["id"]),
                cell(&t["state"]),
                cell(&t["operation"]),
                cell(&t["org"]),
                stage_names(t),
                cell(&t["deadline"]),
                cell(&t["subject"]),
            ]
        })
        .collect();
    let mut out = render(
        &[
            "ID",
            "STATE",
            "OPERATION",
            "ORG",
            "STAGE",
            "DEADLINE",
            "SUBJECT",
        ],
        &rows,
    );
    if let Some(next) = result["next"].as_str() {
        out.push_str(&format!("(more: --after {next})\n"));
    }
    out
}

fn task_details(t: &Value) -> String {
    let mut rows = Vec::new();
    for key in [
        "id",
        "request_id",
        "operation",
        "org",
        "subject",
        "state",
        "submitted_by",
        "created_at",
        "deadline",
        "default_action",
        "resolved_by",
        "message",
    ] {
        rows.push(vec![key.to_string(), cell(&t[key])]);
    }
    rows.push(vec!["stage".into(), stage_names(t)]);
    rows.push(vec!["stages".into(), cell(&t["stages"])]);
    rows.push(vec!["result".into(), cell(&t["result"])]);
    rows.push(vec!["data".into(), cell(&t["data"])]);
    let mut out = String::new();
    for r in &rows {
        out.push_str(&format!("{:<15}{}\n", r[0], r[1]));
    }
    let empty = Vec::new();
    let history: Vec<Vec<String>> = t["history"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|h| {
            vec![
                cell(&h["at"]),
                cell(&h["by"]),
                cell(&h["action"]),
                cell(&h["stage"]),
                cell(&h["message"]),
            ]
        })
        .collect();
    out.push_str("\nhistory:\n");
    out.push_str(&render(
        &["AT", "BY", "ACTION", "STAGE", "MESSAGE"],
        &history,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_from_flags() {
        let (s, b) = request(&TaskCmd::Extend {
            id: "t1".into(),
            by: Duration::from_secs(600),
            message: Some("later".into()),
        })
        .unwrap();
        assert_eq!(s, "tasks/t1/extend");
        assert_eq!(b, json!({"extend_ms": 600_000, "message": "later"}));
        let r = Resolve {
            id: "t1".into(),
            message: None,
            result: Some("{not json".into()),
        };
        assert!(request(&TaskCmd::Resume(r)).is_err());
        let (s, b) = request(&TaskCmd::List {
            state: Some("blocked".into()),
            operation: None,
            org: Some("acme".into()),
            metadata: Some("billing|cost-center=='cc-42'".into()),
            limit: Some(5),
            after: None,
        })
        .unwrap();
        assert_eq!(s, "tasks/query");
        assert_eq!(
            b,
            json!({"state": "blocked", "org": "acme", "limit": 5,
                   "metadata": "billing|cost-center=='cc-42'"})
        );
        let bad = TaskCmd::List {
            state: None,
            operation: None,
            org: None,
            metadata: Some("k=~1".into()),
            limit: None,
            after: None,
        };
        assert!(request(&bad)
            .unwrap_err()
            .to_string()
            .contains("position 1"));
    }
}
