//! `extbus entity ...`: list, show, create, update, resolve and delete defined entities and
//! list entity types over MQTT (`entities/*`). Tables by default, the broker's JSON with
//! `--json`; content is read from a file or `-` (stdin). Secure fields never reach here.

use super::connect::{block_on, Conn, ConnectArgs};
use super::table::{cell, render};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use extbus_schema::query::Selectors;
use serde_json::{json, Value};
use std::io::Read;

#[derive(Debug, Args)]
pub struct EntityArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(subcommand)]
    pub cmd: EntityCmd,
}

#[derive(Debug, Subcommand)]
pub enum EntityCmd {
    /// List entities in id (creation) order.
    List {
        /// Only this type id, urn:extbus:type:<vendor>:<nss>:<version>.
        #[arg(long = "type")]
        type_id: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, value_parser = ["pre_created", "resolved", "resolution_error", "in_deletion"])]
        state: Option<String>,
        /// A metadata search, e.g. 'billing|cost-center==\'cc-42\'' (checked before sending).
        #[arg(long)]
        metadata: Option<String>,
        /// A search over content paths, e.g. 'entity.spec.size=ge=3;name==\'prod*\''.
        #[arg(long)]
        filter: Option<String>,
        /// Most entities to list (the broker caps it at 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this entity id (paging).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one entity with its history.
    Get { id: String },
    /// Create an entity; its content (a JSON object) from FILE or `-` for stdin.
    Create {
        #[arg(long = "type")]
        type_id: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        file: String,
    },
    /// Replace an entity's content at REVISION, from FILE or `-` for stdin.
    Update {
        id: String,
        #[arg(long)]
        revision: u64,
        file: String,
    },
    /// Validate an entity against its type again.
    Resolve { id: String },
    /// Delete an entity (only at REVISION, if given).
    Delete {
        id: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// List the registered entity types.
    Types,
}

pub fn run(args: EntityArgs) -> Result<()> {
    block_on(async move {
        // Bad input is refused before anything is sent.
        let (suffix, body) = request(&args.cmd, &mut std::io::stdin())?;
        let mut conn = Conn::open(&args.conn).await?;
        let outcome = conn.command(&suffix, body).await;
        conn.close().await;
        let result = outcome?;
        if args.conn.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", readable(&args.cmd, &result));
        }
        Ok(())
    })
}

/// A JSON object from `file`, or from `stdin` for `-`.
fn content(file: &str, stdin: &mut dyn Read) -> Result<Value> {
    let text = if file == "-" {
        let mut s = String::new();
        stdin.read_to_string(&mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
    if !v.is_object() {
        bail!("{file}: the content must be a JSON object");
    }
    Ok(v)
}

/// The command suffix and body for a subcommand.
fn request(cmd: &EntityCmd, stdin: &mut dyn Read) -> Result<(String, Value)> {
    Ok(match cmd {
        EntityCmd::List {
            type_id,
            org,
            state,
            metadata,
            filter,
            limit,
            after,
        } => {
            super::metadata::check_search("metadata", metadata, Selectors::Metadata)?;
            super::metadata::check_search("filter", filter, Selectors::Content)?;
            let q = super::connect::query_body(
                &[
                    ("type", type_id),
                    ("org", org),
                    ("state", state),
                    ("metadata", metadata),
                    ("filter", filter),
                    ("after", after),
                ],
                *limit,
            );
            ("entities/query".into(), q)
        }
        EntityCmd::Get { id } => (format!("entities/{id}/get"), json!({})),
        EntityCmd::Create {
            type_id,
            org,
            name,
            file,
        } => (
            "entities/create".into(),
            json!({"type": type_id, "org": org, "name": name, "entity": content(file, stdin)?}),
        ),
        EntityCmd::Update { id, revision, file } => (
            format!("entities/{id}/update"),
            json!({"revision": revision, "entity": content(file, stdin)?}),
        ),
        EntityCmd::Resolve { id } => (format!("entities/{id}/resolve"), json!({})),
        EntityCmd::Delete { id, revision } => {
            let mut b = json!({});
            if let Some(r) = revision {
                b["revision"] = (*r).into();
            }
            (format!("entities/{id}/delete"), b)
        }
        EntityCmd::Types => ("entities/types".into(), json!({})),
    })
}

fn readable(cmd: &EntityCmd, result: &Value) -> String {
    let empty = Vec::new();
    match cmd {
        EntityCmd::List { .. } => {
            let rows: Vec<Vec<String>> = result["entities"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|e| {
                    [
                        "id",
                        "type",
                        "org",
                        "name",
                        "state",
                        "revision",
                        "updated_at",
                    ]
                    .iter()
                    .map(|k| cell(&e[*k]))
                    .collect()
                })
                .collect();
            let mut out = render(
                &["ID", "TYPE", "ORG", "NAME", "STATE", "REV", "UPDATED"],
                &rows,
            );
            if let Some(next) = result["next"].as_str() {
                out.push_str(&format!("(more: --after {next})\n"));
            }
            out
        }
        EntityCmd::Types => {
            let rows: Vec<Vec<String>> = result["types"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|t| {
                    vec![
                        cell(&t["id"]),
                        cell(&t["spec"]["name"]),
                        cell(&t["owner"]),
                        cell(&t["in_use"]),
                        cell(&t["secure"]),
                    ]
                })
                .collect();
            render(&["ID", "NAME", "OWNER", "IN USE", "SECURE"], &rows)
        }
        _ => details(result),
    }
}

fn details(e: &Value) -> String {
    let mut out = String::new();
    for key in [
        "id",
        "type",
        "org",
        "name",
        "state",
        "revision",
        "owner",
        "created_at",
        "updated_at",
    ] {
        out.push_str(&format!("{key:<12}{}\n", cell(&e[key])));
    }
    out.push_str(&format!("{:<12}{}\n", "entity", cell(&e["entity"])));
    if let Some(errors) = e["errors"].as_array() {
        out.push_str("\nerrors:\n");
        let rows: Vec<Vec<String>> = errors
            .iter()
            .map(|d| vec![cell(&d["path"]), cell(&d["message"])])
            .collect();
        out.push_str(&render(&["PATH", "MESSAGE"], &rows));
    }
    if let Some(history) = e["history"].as_array() {
        out.push_str("\nhistory:\n");
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| {
                ["at", "by", "action", "revision", "paths"]
                    .iter()
                    .map(|k| cell(&h[*k]))
                    .collect()
            })
            .collect();
        out.push_str(&render(&["AT", "BY", "ACTION", "REV", "PATHS"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_from_flags_and_content() {
        let cmd = EntityCmd::Update {
            id: "urn:extbus:entity:1".into(),
            revision: 3,
            file: "-".into(),
        };
        let (s, b) = request(&cmd, &mut &br#"{"spec": {"nodes": 2}}"#[..]).unwrap();
        assert_eq!(s, "entities/urn:extbus:entity:1/update");
        assert_eq!(b, json!({"revision": 3, "entity": {"spec": {"nodes": 2}}}));
        assert!(request(&cmd, &mut &b"[1]"[..]).is_err());
        assert!(request(&cmd, &mut &b"{nope"[..]).is_err());
        let list = EntityCmd::List {
            type_id: Some("t".into()),
            org: None,
            state: Some("resolved".into()),
            metadata: None,
            filter: Some("entity.spec.size=ge=3".into()),
            limit: Some(5),
            after: None,
        };
        let (s, b) = request(&list, &mut std::io::empty()).unwrap();
        assert_eq!(s, "entities/query");
        assert_eq!(
            b,
            json!({"type": "t", "state": "resolved", "limit": 5, "filter": "entity.spec.size=ge=3"})
        );
        let del = EntityCmd::Delete {
            id: "e".into(),
            revision: None,
        };
        assert_eq!(request(&del, &mut std::io::empty()).unwrap().1, json!({}));
    }

    #[test]
    fn details_show_errors_and_history() {
        let e = json!({"id": "e1", "state": "resolution_error", "entity": {"a": 1},
                       "errors": [{"path": "/a", "message": "bad"}],
                       "history": [{"at": "t", "by": "p", "action": "create", "revision": 1}]});
        let text = readable(&EntityCmd::Get { id: "e1".into() }, &e);
        assert!(
            text.contains("resolution_error") && text.contains("/a") && text.contains("create")
        );
    }
}
