//! `cargo run -p extbus-samples --bin greeter -- --url mqtt://127.0.0.1:1883 --user extension
//! --secret extension`, then `curl -u admin:admin http://127.0.0.1:8080/ext/acme/greeter/Ada?lang=fr`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = extbus_samples::Opts::from_args()?;
    extbus_samples::greeter::run(&opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
