//! `cargo run -p extbus-samples --bin platform_sim -- --url mqtt://127.0.0.1:1883 --user platform
//! --secret platform [--count 10] [--rate 2] [--operation vm.create] [--org acme]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    let sim = extbus_samples::platform_sim::Sim::from_opts(&opts)?;
    let report = extbus_samples::platform_sim::run(&opts, sim).await?;
    if report.pending > 0 {
        anyhow::bail!("{} operations got no outcome in time", report.pending);
    }
    Ok(())
}
