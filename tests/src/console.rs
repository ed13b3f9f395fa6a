//! Steps the console's browser tests share: sign in through the form, screenshots under
//! `target/console-shots/`, scrolling, the phone-width check and the browser-log check.

use crate::webdriver::Browser;
use crate::TestBroker;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where screenshot `name` goes.
pub fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/console-shots")
        .join(format!("{name}.png"))
}

/// Fails on any browser log entry at level SEVERE or WARNING, but those `allowed` names.
pub async fn assert_clean_log(b: &Browser, allowed: &[&str]) {
    let bad: Vec<Value> = b
        .log()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            !allowed.iter().any(|a| m.contains(a))
        })
        .collect();
    assert!(bad.is_empty(), "browser log has errors: {bad:#?}");
}

pub async fn sign_in(b: &Browser, broker: &TestBroker, name: &str) {
    b.goto(&format!("http://{}/console/", broker.http)).await;
    let user = b.find("#signin input[name=name]").await;
    b.keys(&user, name).await;
    let secret = b.find("#signin input[name=secret]").await;
    // Enter submits: the form works from the keyboard.
    b.keys(&secret, &format!("{name}\u{E007}")).await;
    b.wait_for("#who", |t| t.starts_with(name)).await;
}

/// Scrolls the first `css` element into the middle of the window (for screenshots).
pub async fn scroll_to(b: &Browser, css: &str) {
    let js = "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})";
    b.script(js, json!([css])).await;
}

/// Fails if the page is wider than the window (content cut off on a phone).
pub async fn assert_fits(b: &Browser) {
    let v = b
        .script(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            json!([]),
        )
        .await;
    assert!(
        v[0].as_u64() <= v[1].as_u64(),
        "page wider than window: {v}"
    );
}
