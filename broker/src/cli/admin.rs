//! Local administration commands that work on the data dir without a running broker:
//! `config print|check`, `principal add|list|remove`, `schema export`, `backup`, `bus sync`.

use crate::cli::ConfigArgs;
use crate::principals::Principals;
use anyhow::{bail, Context, Result};
use extbus_schema::Role;
use std::path::Path;

pub fn config_print(args: &ConfigArgs) -> Result<()> {
    let cfg = args.load()?;
    print!("{}", cfg.to_toml());
    Ok(())
}

pub fn config_check(file: Option<std::path::PathBuf>, mut args: ConfigArgs) -> Result<()> {
    if file.is_some() {
        args.config = file;
    }
    let name = args
        .config
        .as_ref()
        .map_or("the configuration".to_string(), |p| p.display().to_string());
    let cfg = args.load()?;
    println!(
        "{name}: ok ({} callout rules, {} declared services, {} executable extensions)",
        cfg.tasks.rules.len(),
        cfg.services.declared.len(),
        cfg.exec.len()
    );
    // What a SIGHUP with this file would not apply to a running broker.
    println!(
        "a running broker applies it on SIGHUP, except what is read at start only: listener \
         addresses and backlogs, TLS files, mqtt.max_payload, auth workers and queue, \
         http.sse_*, [bus], [events] and data_dir"
    );
    Ok(())
}

pub fn principal_add(
    name: &str,
    roles: &[String],
    orgs: &[String],
    args: &ConfigArgs,
) -> Result<()> {
    let cfg = args.load()?;
    let roles = roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let p = Principals::open(&cfg.data_dir)?;
    let secret = p.add(name, roles, orgs.to_vec(), None)?;
    if cfg.bus.external() && cfg.bus.dynsec {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(crate::external::principal_added(&cfg, name, &secret))
            .context("the principal is added, but the broker's client is not: run `extbus principal remove` and add it again")?;
    }
    eprintln!("added principal '{name}'; its secret is shown once, keep it safe:");
    println!("{secret}");
    Ok(())
}

pub fn principal_list(json: bool, args: &ConfigArgs) -> Result<()> {
    let cfg = args.load()?;
    let list = Principals::open(&cfg.data_dir)?.list();
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("no principals in {}", cfg.data_dir.display());
        return Ok(());
    }
    println!("{:<24} {:<36} ORGS", "NAME", "ROLES");
    for p in list {
        let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "{:<24} {:<36} {}",
            p.name,
            roles.join(","),
            p.orgs.join(",")
        );
    }
    Ok(())
}

pub fn principal_remove(name: &str, args: &ConfigArgs) -> Result<()> {
    let cfg = args.load()?;
    Principals::open(&cfg.data_dir)?.remove(name)?;
    eprintln!("removed principal '{name}'");
    Ok(())
}

pub fn schema_export(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    let mut files = extbus_schema::asyncapi::export(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    // The HTTP API's document beside the bus's; it refers to the same schemas.
    files.push(
        crate::http::api::openapi::export(dir)
            .with_context(|| format!("writing into {}", dir.display()))?,
    );
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!("wrote {} files", files.len());
    Ok(())
}

pub fn backup(dest: &Path, args: &ConfigArgs) -> Result<()> {
    let cfg = args.load()?;
    eprintln!(
        "backing up {} to {} ...",
        cfg.data_dir.display(),
        dest.display()
    );
    let r = crate::backup::backup(&cfg.data_dir, dest)?;
    println!(
        "backup written to {}: {} trees, {} keys, {} other files; store check passed",
        r.dest.display(),
        r.trees,
        r.keys,
        r.files
    );
    eprintln!(
        "restore: stop the broker, then serve the copy (--data-dir {}) or put it in place of the data dir",
        r.dest.display()
    );
    Ok(())
}

pub fn bus_sync(args: &ConfigArgs) -> Result<()> {
    let cfg = args.load()?;
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(crate::external::sync_all(&cfg))?;
    println!(
        "applied {} principals; drifted: [{}]; removed: [{}]",
        r.applied.len(),
        r.drifted.join(", "),
        r.removed.join(", ")
    );
    Ok(())
}
