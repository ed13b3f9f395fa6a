//! `cargo run -p extbus-samples --bin approver -- --url mqtt://127.0.0.1:1883 --user extension
//! --secret extension [--operation vm.create] [--max-cpu 8] [--max-memory-gb 32]`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    let policy = extbus_samples::approver::Policy::from_opts(&opts)?;
    println!("approver: answering {} as {}", policy.operation, opts.user);
    extbus_samples::approver::run(&opts, policy, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
