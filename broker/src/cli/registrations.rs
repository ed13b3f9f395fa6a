//! `extbus ext list|disable|enable`: every registration with its presence
//! (`registrations/query`), and an operator's switch (`registrations/<p>[/<c>]/disable|enable`).
//! A table by default, the broker's JSON with `--json`; a refused command is an error.

use super::connect::{block_on, Conn, ConnectArgs};
use super::ext::ExtCmd;
use super::table::{cell, render};
use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct Switch {
    /// PRINCIPAL, or PRINCIPAL/COMPONENT for one of its programs.
    pub target: String,
    /// Why; kept in the audit event.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
}

pub fn run(conn: &ConnectArgs, cmd: ExtCmd) -> Result<()> {
    let (suffix, body) = request(&cmd)?;
    block_on(async move {
        let mut c = Conn::open(conn).await?;
        let outcome = c.command(&suffix, body).await;
        c.close().await;
        let result = outcome?;
        if conn.json {
            println!("{}", serde_json::to_string_pretty(&result)?);
        } else if matches!(cmd, ExtCmd::List { .. }) {
            print!("{}", table(&result));
        } else {
            println!("{}", switched(&result));
        }
        Ok(())
    })
}

/// The command suffix and body for a subcommand; a malformed target is refused here.
fn request(cmd: &ExtCmd) -> Result<(String, Value)> {
    let (s, verb) = match cmd {
        ExtCmd::List { principal } => {
            let body = match principal {
                Some(p) => json!({"principal": p}),
                None => json!({}),
            };
            return Ok(("registrations/query".into(), body));
        }
        ExtCmd::Disable(s) => (s, "disable"),
        ExtCmd::Enable(s) => (s, "enable"),
        ExtCmd::Scaffold { .. } => bail!("scaffold does not talk to the broker"),
    };
    let parts: Vec<&str> = s.target.split('/').collect();
    let valid = |n: &str| extbus_schema::names::valid_name(n);
    let path = match parts.as_slice() {
        [p] if valid(p) => p.to_string(),
        [p, c] if valid(p) && valid(c) => format!("{p}/{c}"),
        _ => bail!(
            "'{}' is not PRINCIPAL or PRINCIPAL/COMPONENT (names are [a-z0-9-], at most 64)",
            s.target
        ),
    };
    let body = match &s.message {
        Some(m) => json!({"message": m}),
        None => json!({}),
    };
    Ok((format!("registrations/{path}/{verb}"), body))
}

/// One line per registration; services as `vendor/name/version`.
pub fn table(result: &Value) -> String {
    let items = result["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no registrations\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let ops: Vec<String> = i["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| cell(&r["operation"]))
                .collect();
            let services: Vec<String> = i["services"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{}/{}/{}",
                        cell(&s["vendor"]),
                        cell(&s["name"]),
                        cell(&s["version"])
                    )
                })
                .collect();
            let mut state = if i["disabled"] == true {
                "disabled".to_string()
            } else {
                "enabled".to_string()
            };
            // An executable extension's readiness (operators and admins are told it).
            match i["exec"]["ready"].as_bool() {
                Some(true) => state.push_str(", ready"),
                Some(false) => state.push_str(", not ready"),
                None => {}
            }
            vec![
                format!("{}/{}", cell(&i["principal"]), cell(&i["component"])),
                state,
                cell(&i["connections"]),
                cell(&i["last_seen"]),
                list(&ops),
                list(&services),
                cell(&i["registered_at"]),
            ]
        })
        .collect();
    let mut out = render(
        &[
            "REGISTRATION",
            "STATE",
            "CONNS",
            "LAST SEEN",
            "RULES",
            "SERVICES",
            "REGISTERED",
        ],
        &rows,
    );
    // Why an executable cannot run, under the table (too long for a cell).
    for i in &items {
        if let Some(why) = i["exec"]["reason"].as_str() {
            out.push_str(&format!(
                "{}/{}: not ready: {why}\n",
                cell(&i["principal"]),
                cell(&i["component"])
            ));
        }
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn switched(result: &Value) -> String {
    let who = match result["component"].as_str() {
        Some(c) => format!("{}/{c}", cell(&result["principal"])),
        None => cell(&result["principal"]),
    };
    let state = if result["disabled"] == true {
        "disabled"
    } else {
        "enabled"
    };
    if result["changed"] == true {
        format!("{who} {state}")
    } else {
        format!("{who} was already {state}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_suffixes() {
        let sw = |t: &str| Switch {
            target: t.into(),
            message: Some("why".into()),
        };
        let (s, b) = request(&ExtCmd::Disable(sw("ext-1/approver"))).unwrap();
        assert_eq!(s, "registrations/ext-1/approver/disable");
        assert_eq!(b, json!({"message": "why"}));
        let (s, _) = request(&ExtCmd::Enable(sw("ext-1"))).unwrap();
        assert_eq!(s, "registrations/ext-1/enable");
        for bad in ["", "a/b/c", "Ext", "a/", "/b"] {
            assert!(request(&ExtCmd::Disable(sw(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn table_shows_each_registration() {
        let t = table(
            &json!({"items": [{"principal": "ext", "component": "approver",
            "connections": 2, "last_seen": "2026-11-22T10:00:00.000Z", "registered_at": null,
            "rules": [{"operation": "vm.create"}], "services": [], "disabled": true}]}),
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("REGISTRATION  STATE"), "{t}");
        assert!(lines[1].starts_with("ext/approver  disabled  2"), "{t}");
        assert!(lines[1].contains("vm.create"), "{t}");
        assert_eq!(table(&json!({"items": []})), "no registrations\n");
        let exec = |ready: bool, reason: Value| {
            json!({"items": [{"principal": "quota", "component": "config", "connections": 0,
                "rules": [], "services": [], "disabled": false,
                "exec": {"path": "/opt/q.sh", "ready": ready, "reason": reason}}]})
        };
        let t = table(&exec(false, json!("/opt/q.sh: No such file or directory")));
        assert!(t.contains("enabled, not ready"), "{t}");
        assert!(
            t.ends_with("quota/config: not ready: /opt/q.sh: No such file or directory\n"),
            "{t}"
        );
        let t = table(&exec(true, Value::Null));
        assert!(
            t.contains("enabled, ready") && !t.contains("not ready"),
            "{t}"
        );
        assert_eq!(
            switched(
                &json!({"principal": "ext", "component": null, "disabled": false, "changed": false})
            ),
            "ext was already enabled"
        );
    }
}
