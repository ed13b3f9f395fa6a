//! `cargo run -p extbus-samples --bin placer -- --url mqtt://127.0.0.1:1883 --user placer
//! --secret SECRET [--operation vm.create]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    let mut placer = extbus_samples::placer::Placer::default();
    placer.operation = opts.get("operation", placer.operation)?;
    println!("placer: placing {} as {}", placer.operation, opts.user);
    extbus_samples::placer::run(&opts, placer, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
