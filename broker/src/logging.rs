//! Installs the tracing subscriber for the binary: human-readable or JSON lines on stderr,
//! with a filter that a configuration reload can swap.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Crates whose lines describe their own internals: at `warn` unless the filter names them.
const DEPENDENCIES: &[&str] = &[
    "sled",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "axum",
    "rustls",
    "tokio_rustls",
    "mio",
    "tokio",
    "jsonschema",
    "rumqttc",
];

/// The filter: the configured level (or `RUST_LOG`), with the embedded broker off and the
/// dependencies at `warn`, except those the filter names itself.
pub fn filter(level: &str) -> EnvFilter {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let named = |c: &str| {
        spec.split(',').any(|d| {
            d.split('=')
                .next()
                .is_some_and(|t| t.trim() == c || t.trim().starts_with(&format!("{c}::")))
        })
    };
    // rumqttd logs every client disconnect as an error; the gate reports what matters, so the
    // embedded broker stays quiet unless the filter names it (e.g. `info,rumqttd=warn`).
    if !named("rumqttd") {
        filter = filter.add_directive("rumqttd=off".parse().expect("static directive"));
    }
    for c in DEPENDENCIES {
        if !named(c) {
            filter = filter.add_directive(format!("{c}=warn").parse().expect("crate directive"));
        }
    }
    filter
}

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Swaps the installed subscriber's filter (SIGHUP applies a new `log.level` with it).
static RELOAD: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

pub fn init(cfg: &LogConfig) {
    let filter = filter(&cfg.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.format {
        LogFormat::Human => {
            let builder = builder.with_filter_reloading();
            let h = builder.reload_handle();
            let _ = RELOAD.set(Box::new(move |f| h.reload(f).map_err(|e| e.to_string())));
            builder.init()
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let h = builder.reload_handle();
            let _ = RELOAD.set(Box::new(move |f| h.reload(f).map_err(|e| e.to_string())));
            builder.init()
        }
    }
}

/// Applies a new log filter to the running subscriber (`RUST_LOG`, when set, still wins).
pub fn set_level(level: &str) -> Result<(), String> {
    match RELOAD.get() {
        Some(set) => set(filter(level)),
        None => Err("no log subscriber installed".into()),
    }
}
