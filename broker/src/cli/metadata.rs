//! `extbus metadata get|set|delete` over MQTT (`metadata/<object_id>/*`), and the syntax check
//! of `--metadata` / `--filter` search flags before anything is sent. Tables by default, the
//! broker's JSON with `--json`.

use super::connect::{block_on, Conn, ConnectArgs};
use super::table::{cell, render};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use extbus_schema::query::{parse, Selectors};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct MetadataArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(subcommand)]
    pub cmd: MetadataCmd,
}

#[derive(Debug, Subcommand)]
pub enum MetadataCmd {
    /// The entries of an entity or task that you may see.
    Get {
        /// An entity id (urn:extbus:entity:...) or a task id.
        id: String,
    },
    /// Add or replace one entry.
    Set {
        id: String,
        namespace: String,
        key: String,
        value: String,
        /// How VALUE is read.
        #[arg(long = "type", default_value = "string", value_parser = ["string", "number", "boolean"])]
        value_type: String,
        /// A provider entry (seen only by principals with all orgs).
        #[arg(long)]
        provider: bool,
        /// Only principals with all orgs may change it afterwards.
        #[arg(long)]
        read_only: bool,
    },
    /// Remove one entry.
    Delete {
        id: String,
        namespace: String,
        key: String,
        #[arg(long)]
        provider: bool,
    },
}

/// Refuses a search that does not parse, saying where (the broker would say the same).
pub fn check_search(flag: &str, q: &Option<String>, kind: Selectors) -> Result<()> {
    if let Some(text) = q {
        if let Err(e) = parse(text, kind) {
            bail!("--{flag}: at position {}: {}", e.position, e.expected);
        }
    }
    Ok(())
}

fn domain(provider: bool) -> &'static str {
    if provider {
        "provider"
    } else {
        "tenant"
    }
}

/// The command suffix and body for a subcommand.
pub fn request(cmd: &MetadataCmd) -> Result<(String, Value)> {
    Ok(match cmd {
        MetadataCmd::Get { id } => (format!("metadata/{id}/get"), json!({})),
        MetadataCmd::Set {
            id,
            namespace,
            key,
            value,
            value_type,
            provider,
            read_only,
        } => {
            let v: Value = match value_type.as_str() {
                "number" => match value.parse::<f64>() {
                    Ok(n) if n.is_finite() => json!(n),
                    _ => bail!("'{value}' is not a number"),
                },
                "boolean" => match value.as_str() {
                    "true" => json!(true),
                    "false" => json!(false),
                    _ => bail!("'{value}' is not true or false"),
                },
                _ => json!(value),
            };
            let entry = json!({"domain": domain(*provider), "namespace": namespace, "key": key,
                               "value": {"type": value_type, "value": v}, "read_only": read_only});
            (format!("metadata/{id}/set"), json!({"entries": [entry]}))
        }
        MetadataCmd::Delete {
            id,
            namespace,
            key,
            provider,
        } => (
            format!("metadata/{id}/delete"),
            json!({"domain": domain(*provider), "namespace": namespace, "key": key}),
        ),
    })
}

/// The entries as a table.
fn readable(result: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = result["metadata"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            vec![
                cell(&e["domain"]),
                cell(&e["namespace"]),
                cell(&e["key"]),
                cell(&e["value"]["type"]),
                cell(&e["value"]["value"]),
                cell(&e["read_only"]),
            ]
        })
        .collect();
    render(
        &["DOMAIN", "NAMESPACE", "KEY", "TYPE", "VALUE", "READ_ONLY"],
        &rows,
    )
}

pub fn run(args: MetadataArgs) -> Result<()> {
    block_on(async move {
        let (suffix, body) = request(&args.cmd)?;
        let mut conn = Conn::open(&args.conn).await?;
        let outcome = conn.command(&suffix, body).await;
        conn.close().await;
        let result = outcome?;
        if args.conn.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else {
            print!("{}", readable(&result));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_built_from_arguments() {
        let set = MetadataCmd::Set {
            id: "t-1".into(),
            namespace: "billing".into(),
            key: "cost-center".into(),
            value: "42".into(),
            value_type: "number".into(),
            provider: true,
            read_only: false,
        };
        let (suffix, body) = request(&set).unwrap();
        assert_eq!(suffix, "metadata/t-1/set");
        assert_eq!(
            body["entries"][0]["value"],
            json!({"type": "number", "value": 42.0})
        );
        assert_eq!(body["entries"][0]["domain"], "provider");
        let bad = MetadataCmd::Set {
            id: "t".into(),
            namespace: "n".into(),
            key: "k".into(),
            value: "x".into(),
            value_type: "number".into(),
            provider: false,
            read_only: false,
        };
        assert!(request(&bad).is_err());
        let e = check_search("metadata", &Some("k=='open".into()), Selectors::Metadata);
        assert!(e.unwrap_err().to_string().contains("at position 3"));
        assert!(check_search(
            "metadata",
            &Some("billing|cost-center=='cc-42'".into()),
            Selectors::Metadata
        )
        .is_ok());
    }
}
