//! `cargo run -p extbus-samples --bin cluster -- --url mqtt://127.0.0.1:1883 --user extension
//! --secret extension`: owns the `acme:cluster` entity type and answers its hook and behavior.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    println!(
        "cluster: owning {} as {}",
        extbus_samples::cluster::TYPE_ID,
        opts.user
    );
    extbus_samples::cluster::run(&opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
