//! Installs the tracing subscriber for the binary: human-readable or JSON lines on stderr.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    // rumqttd logs every client disconnect as an error; the gate reports what matters, so the
    // embedded broker stays quiet unless the filter names it (e.g. `info,rumqttd=warn`).
    let filter = if cfg.level.contains("rumqttd") {
        filter
    } else {
        filter.add_directive("rumqttd=off".parse().expect("static directive"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
