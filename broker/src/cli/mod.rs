//! Command-line interface: argument types (clap) and one file per command family.
//! Parsing lives here; each command calls into the library and prints for people.

pub mod acl;
pub mod admin;
pub mod connect;
pub mod docs;
pub mod entity;
pub mod events;
pub mod ext;
pub mod metadata;
pub mod registrations;
pub mod table;
pub mod task;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "extbus",
    version,
    about = "Event-driven extension broker on an embedded MQTT bus"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker in the foreground (MQTT, HTTP, coordinator) until SIGINT/SIGTERM.
    Serve(ConfigArgs),
    /// Inspect the effective configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Manage principals (identities with roles and secrets).
    #[command(subcommand)]
    Principal(PrincipalCmd),
    /// Export the wire contract.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// External bus mode: keep the broker's own access control in step.
    #[command(subcommand)]
    Bus(BusCmd),
    /// Print the role table as rules for a broker managed by hand (the broker must be
    /// stopped: the rules include what its store has registered).
    #[command(subcommand)]
    Acl(AclCmd),
    /// Operators: list, inspect and resolve blocked tasks on a running broker.
    Task(task::TaskArgs),
    /// Defined entities on a running broker: list, get, create, update, resolve, delete, types.
    Entity(entity::EntityArgs),
    /// Object metadata on a running broker: get, set and delete entries of entities and tasks.
    Metadata(metadata::MetadataArgs),
    /// Follow audit events on a running broker.
    Events(events::EventsArgs),
    /// Extensions: list registrations, switch them off and on, write a skeleton script.
    Ext(ext::ExtArgs),
    /// Copy the data dir (store, principals, secrets) into DEST, checked; the broker must be
    /// stopped. Restore by serving DEST (`--data-dir DEST`) or copying it back.
    Backup {
        /// A new or empty directory outside the data dir.
        dest: PathBuf,
        #[command(flatten)]
        config: StoreArgs,
    },
    /// Print a shell completion script, e.g. `extbus completions bash > /etc/bash_completion.d/extbus`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `extbus man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (defaults, file, environment, flags) as TOML.
    Print(ConfigArgs),
    /// Check a configuration file (with the environment and flags) as `serve` would, without
    /// starting; exit 1 naming the field at fault.
    Check {
        /// The file to check (else --config / EXTBUS_CONFIG).
        file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCmd {
    /// Write the JSON Schema files, an AsyncAPI 3.0 document (MQTT) and an OpenAPI 3.1
    /// document (HTTP API) into DIR.
    Export {
        /// Where the files go (created if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BusCmd {
    /// Apply every principal's client, role and ACLs to Mosquitto's dynamic security and
    /// report what had drifted (the broker must be stopped: it does this at its start).
    Sync {
        #[command(flatten)]
        config: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AclCmd {
    /// Every principal's publish and subscribe rules, in a broker's own format.
    Export {
        /// mosquitto-acl (acl_file), dynsec-json ($CONTROL/dynamic-security/v1 commands) or
        /// emqx-acl (EMQX's acl.conf).
        #[arg(long, value_enum)]
        format: acl::AclFormat,
        #[command(flatten)]
        config: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCmd {
    /// Add a principal and print its new secret (shown once).
    Add {
        /// The principal's name: its MQTT user name and inbox (`[a-z0-9-]{1,64}`).
        name: String,
        /// platform, extension, operator, observer or admin; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Limit to these orgs; repeat for several; default all (*).
        #[arg(long = "org")]
        orgs: Vec<String>,
        #[command(flatten)]
        config: StoreArgs,
    },
    /// List principals (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: StoreArgs,
    },
    /// Remove a principal.
    Remove {
        /// The principal to remove.
        name: String,
        #[command(flatten)]
        config: StoreArgs,
    },
}

/// Where the data dir is, for the commands that work on it offline (principals, backup):
/// the serve-only flags (listeners, `--dev`, logging) do not apply to them.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// TOML config file.
    #[arg(long, short = 'c', env = "EXTBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (store and principals).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The same layers as `serve` reads, without its own flags.
    pub fn config_args(&self) -> ConfigArgs {
        ConfigArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..ConfigArgs::default()
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Human,
    Json,
}

/// Flags that override the config file and environment.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML config file.
    #[arg(long, short = 'c', env = "EXTBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (store and principals).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// MQTT listen address (MQTT 3.1.1 and 5).
    #[arg(long)]
    pub mqtt_listen: Option<SocketAddr>,
    /// HTTP listen address.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// Create the sample principals platform, extension, operator, observer, admin (secret = name); loopback only.
    #[arg(long)]
    pub dev: bool,
    /// Log lines for people (human) or for collectors (json).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log filter, e.g. info or extbus=debug.
    #[arg(long)]
    pub log_level: Option<String>,
}

impl ConfigArgs {
    /// The flags as a partial config, merged last.
    pub fn overrides(&self) -> serde_json::Value {
        let mut o = serde_json::json!({});
        if let Some(d) = &self.data_dir {
            o["data_dir"] = d.display().to_string().into();
        }
        if let Some(a) = self.mqtt_listen {
            o["mqtt"] = serde_json::json!({"listen": a.to_string()});
        }
        if let Some(a) = self.http_listen {
            o["http"] = serde_json::json!({"listen": a.to_string()});
        }
        if self.dev {
            o["dev"] = true.into();
        }
        let mut log = serde_json::json!({});
        if let Some(f) = self.log_format {
            log["format"] = match f {
                LogFormatArg::Human => "human",
                LogFormatArg::Json => "json",
            }
            .into();
        }
        if let Some(l) = &self.log_level {
            log["level"] = l.clone().into();
        }
        if log.as_object().is_some_and(|m| !m.is_empty()) {
            o["log"] = log;
        }
        o
    }

    pub fn load(&self) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::Config::load(self.config.as_deref(), self.overrides())
    }
}
