//! `cargo run -p extbus-samples --bin vm_tools -- --url mqtt://127.0.0.1:1883 --user extension
//! --secret extension`, then `curl -u operator:operator -X POST
//! http://127.0.0.1:8080/api/actions/extension/inventory -d '{"arguments": {}}'`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    extbus_samples::vm_tools::run(&opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
