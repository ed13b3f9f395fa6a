//! Installs the tracing subscriber for the binary: human-readable or JSON lines on stderr.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    // rumqttd logs every accept and connection at info; keep it to warnings unless asked.
    let filter = if cfg.level.contains("rumqttd") {
        filter
    } else {
        filter.add_directive("rumqttd=warn".parse().expect("static directive"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
