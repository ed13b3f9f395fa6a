//! `cargo run -p extbus-samples --bin event_logger -- --url mqtt://127.0.0.1:1883 --user observer
//! --secret observer [--org acme] [--log events.jsonl] [--state event-logger.state.json]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    let cfg = extbus_samples::event_logger::Config::from_opts(&opts)?;
    println!("event_logger: {} -> {}", cfg.org, cfg.log.display());
    extbus_samples::event_logger::run(&opts, cfg, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
