//! The vm-tools sample end to end: it registers two actions and a UI plugin, runs of both
//! actions over HTTP answer with its messages (text of the template, an object, a table, an
//! error), its plugin is listed and its page is served by its own service through the HTTP
//! gateway, and the page, run by a real headless Chromium in a sandboxed iframe, takes the
//! console's `extbus.context` message and answers `extbus.notify`. Chromium (Debian's
//! `chromium` and `chromium-driver` packages) is installed when running as root; otherwise the
//! test fails naming the command.

use extbus_samples::{vm_tools, Opts};
use extbus_tests::http::{basic, request, HttpResponse};
use extbus_tests::webdriver::Browser;
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use tokio::sync::oneshot;

async fn http(b: &TestBroker, who: &str, method: &str, target: &str, body: &Value) -> HttpResponse {
    let auth = basic(who, who);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(b.http, method, target, &[("authorization", &auth)], &body).await
}

async fn started() -> (
    TestBroker,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let b = TestBroker::start().await;
    let opts = Opts::new(b.mqtt, "extension", "extension");
    let (bus, rx) = vm_tools::start(&opts).await.unwrap();
    let (stop, s) = oneshot::channel::<()>();
    let h = tokio::spawn(vm_tools::serve(bus, rx, async move {
        let _ = s.await;
    }));
    (b, stop, h)
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_tools_answers_its_actions_and_serves_its_plugin() {
    let (b, stop, h) = started().await;
    let r = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"resource_id": "task-42", "arguments": {"label": "nightly", "mode": "safe",
            "quiesce": true, "keep": 7, "password": "pw-123456"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let j = r.json();
    assert_eq!(j["status"], "success");
    assert_eq!(
        j["message"],
        json!({"snapshot": "snap-nightly", "protected": true})
    );
    assert_eq!(j["text"], "Snapshot nightly of task-42 taken");
    let r = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": "x", "mode": "fast", "quiesce": true}}),
    )
    .await;
    assert_eq!(
        (r.json()["status"].clone(), r.json()["text"].clone()),
        (json!("error"), Value::Null)
    );
    let r = http(
        &b,
        "operator",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": "x", "keep": 99, "at": "soon"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let mut paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/at", "/keep"]);
    let r = http(
        &b,
        "observer",
        "POST",
        "/api/actions/extension/inventory",
        &json!({"arguments": {"org": "beta"}}),
    )
    .await;
    assert_eq!(
        r.json()["message"][0],
        json!({"name": "beta-web-1", "state": "running", "cpu": 2})
    );
    let r = http(
        &b,
        "observer",
        "POST",
        "/api/actions/extension/snapshot",
        &json!({"arguments": {"label": "x"}}),
    )
    .await;
    assert_eq!(r.status, 403);

    // The plugin is listed, and its entry is served by the sample's own service.
    let list = http(&b, "observer", "GET", "/api/ui-plugins", &Value::Null)
        .await
        .json();
    let p = &list["ui_plugins"][0];
    assert_eq!(
        (p["name"].clone(), p["entry"].clone()),
        (json!("vm-ui"), json!(vm_tools::ENTRY))
    );
    let page = http(&b, "operator", "GET", vm_tools::ENTRY, &Value::Null).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert_eq!(html, vm_tools::PAGE);
    assert_eq!(
        http(
            &b,
            "operator",
            "GET",
            "/ext/acme/vm-tools/nope",
            &Value::Null
        )
        .await
        .status,
        404
    );

    // In a real browser: the console's context goes in, a notice comes out.
    let notice = r#"{"level":"info","text":"vm-tools received task-1","type":"extbus.notify"}"#;
    let got = run_in_chromium(&html, notice).await;
    assert_eq!(got, notice);
    let _ = stop.send(());
    h.await.unwrap().unwrap();
    b.stop().await;
}

/// Mounts `page` as the console does (sandboxed iframe, no same-origin), posts it a context
/// and waits for the plugin's message that reads `notice`; returns that message as the host
/// page logged it.
async fn run_in_chromium(page: &str, notice: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let host = format!(
        r#"<!doctype html><html><body><div id="log"></div>
<iframe id="p" sandbox="allow-scripts allow-forms"></iframe>
<script>
const f = document.getElementById("p");
window.addEventListener("message", (e) => {{
  if (e.source !== f.contentWindow) return;
  const d = document.createElement("div");
  d.className = "got";
  const m = e.data, keys = Object.keys(m).sort(), o = {{}};
  for (const k of keys) o[k] = m[k];
  d.textContent = JSON.stringify(o);
  document.getElementById("log").appendChild(d);
}});
f.addEventListener("load", () => f.contentWindow.postMessage({{type: "extbus.context",
  object: {{id: "task-1", operation: "vm.create"}}, point: {{type: "task-action", operation: "vm.create"}},
  token: "t", expires_at: "2026-12-02T19:00:00Z", api: "/api"}}, "*"));
f.srcdoc = {page};
</script></body></html>"#,
        // `</script>` inside the page must not end the host's script.
        page = serde_json::to_string(page).unwrap().replace("</", "<\\/")
    );
    let path = dir.path().join("host.html");
    std::fs::write(&path, host).unwrap();
    // Driven over WebDriver and waited for: a one-shot `--dump-dom` can print the page before
    // the plugin's frame, in its own process, has answered.
    let browser = Browser::start(800, 600).await;
    browser.goto(&format!("file://{}", path.display())).await;
    let found = browser.wait_for(".got", |t| t.contains(notice)).await;
    let got = browser.text(&found).await;
    browser.quit().await;
    got
}
