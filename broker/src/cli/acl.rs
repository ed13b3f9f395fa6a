//! `extbus acl export --format mosquitto-acl|dynsec-json|emqx-acl`: the role table as rules
//! for a broker managed by hand, from the principals and what the (stopped) broker's store has
//! registered. The rules are `mqtt::grants`, the same the dynsec sync applies.

use crate::config::Config;
use crate::mqtt::grants::{grants, Grant};
use anyhow::{anyhow, Result};
use clap::ValueEnum;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AclFormat {
    /// Mosquitto's `acl_file` (user / topic read|write lines).
    MosquittoAcl,
    /// `$CONTROL/dynamic-security/v1` commands (createRole with ACLs, createClient) as JSON.
    DynsecJson,
    /// EMQX's file authorizer (`acl.conf`, Erlang terms), ending in a deny for everything else.
    EmqxAcl,
}

/// Subscribe/read rules for brokers that cannot withhold deliveries: a `Withhold(f)` turns the
/// subscription to `f` into subscriptions to its `Receive` topics only.
fn plain(gs: &[Grant]) -> (Vec<String>, Vec<String>) {
    let withheld: Vec<&str> = gs
        .iter()
        .filter_map(|g| match g {
            Grant::Withhold(f) => Some(f.as_str()),
            _ => None,
        })
        .collect();
    let mut publish = Vec::new();
    let mut read = Vec::new();
    for g in gs {
        match g {
            Grant::Publish(t) => publish.push(t.clone()),
            Grant::Subscribe(t) if !withheld.contains(&t.as_str()) => read.push(t.clone()),
            Grant::Receive(t) => read.push(t.clone()),
            _ => {}
        }
    }
    (publish, read)
}

/// The rules for every principal, in `format`.
pub fn render(cfg: &Config, format: AclFormat) -> Result<String> {
    let principals = crate::principals::Principals::open(&cfg.data_dir)?;
    let db = crate::server::open_store(&cfg.data_dir)
        .map_err(|e| anyhow!("{e:#}: stop the broker to export its rules (they need its store)"))?;
    let registry = crate::coordinator::registrations(&db, cfg).map_err(|e| anyhow!("{e}"))?;
    drop(db);
    let mut list = principals.list();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    match format {
        AclFormat::MosquittoAcl => {
            out.push_str("# extbus role table for Mosquitto's acl_file (extbus acl export)\n");
            for p in &list {
                let (publish, read) = plain(&grants(p, &registry));
                out.push_str(&format!("\nuser {}\n", p.name));
                for t in publish {
                    out.push_str(&format!("topic write {t}\n"));
                }
                for t in read {
                    out.push_str(&format!("topic read {t}\n"));
                }
            }
        }
        AclFormat::EmqxAcl => {
            out.push_str("%% extbus role table for EMQX's file authorizer (extbus acl export)\n");
            for p in &list {
                let (publish, read) = plain(&grants(p, &registry));
                let quote = |ts: &[String]| {
                    ts.iter()
                        .map(|t| format!("\"{t}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !publish.is_empty() {
                    out.push_str(&format!(
                        "{{allow, {{user, \"{}\"}}, publish, [{}]}}.\n",
                        p.name,
                        quote(&publish)
                    ));
                }
                if !read.is_empty() {
                    out.push_str(&format!(
                        "{{allow, {{user, \"{}\"}}, subscribe, [{}]}}.\n",
                        p.name,
                        quote(&read)
                    ));
                }
            }
            out.push_str("{deny, all}.\n");
        }
        AclFormat::DynsecJson => {
            let mut commands = Vec::new();
            for p in &list {
                let role = crate::external::sync::role_name(&p.name);
                commands.push(json!({"command": "createRole", "rolename": role,
                    "acls": crate::external::sync::acls(&grants(p, &registry))}));
                commands.push(json!({"command": "createClient", "username": p.name,
                    "roles": [{"rolename": role}]}));
            }
            out = serde_json::to_string_pretty(&json!({ "commands": commands }))?;
            out.push('\n');
        }
    }
    Ok(out)
}
