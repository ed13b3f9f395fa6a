//! A small W3C WebDriver client for the console's browser tests: starts Debian's
//! `chromedriver` on a free port, opens a headless `chromium` session (browser log kept), and
//! drives it over the tests crate's HTTP client. Missing browser packages are installed with
//! apt-get when running as root; otherwise the test fails naming the command.

use crate::http::{Http, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for something to appear on a page.
pub const WAIT: Duration = Duration::from_secs(30);
/// Longest wait for one WebDriver command (screenshots and navigation are slow on a busy
/// machine).
const COMMAND: Duration = Duration::from_secs(120);

async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut c = Http::connect(addr).await.expect("connect to chromedriver");
    c.send_within(COMMAND, method, target, headers, body)
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {target}: {e}"))
}

/// Makes sure chromium and chromedriver are installed.
pub fn ensure_browser() {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return;
    }
    let install = "apt-get install -y chromium chromium-driver";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root,
        "chromium and chromedriver are needed: run `{install}` as root"
    );
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive {install}"
        ))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{install}` failed");
}

/// A chromedriver process and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct El(String);

impl Browser {
    /// A headless chromium at `width`x`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        ensure_browser();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // Its own process group, so the browser it starts can be ended with it.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", format!("--window-size={width},{height}")]},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = b.call("POST", "/session", &caps).await;
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    async fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let target = if path.starts_with("/session") && !self.session.is_empty() {
            format!("/session/{}{}", self.session, &path["/session".len()..])
        } else {
            path.to_string()
        };
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let r = request(
            self.addr,
            method,
            &target,
            &[("content-type", "application/json"), ("host", &self.host())],
            &bytes,
        )
        .await;
        let v = r.json();
        assert!(
            r.status == 200,
            "WebDriver {method} {target}: {} {v}",
            r.status
        );
        v["value"].clone()
    }

    /// Like `call`, but a WebDriver error is `None` (an element not there yet).
    async fn try_call(&self, method: &str, path: &str, body: &Value) -> Option<Value> {
        let target = format!("/session/{}{}", self.session, path);
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let r = request(
            self.addr,
            method,
            &target,
            &[("content-type", "application/json"), ("host", &self.host())],
            &bytes,
        )
        .await;
        (r.status == 200).then(|| r.json()["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/session/url", &json!({"url": url}))
            .await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/session/window/rect",
            &json!({"width": width, "height": height}),
        )
        .await;
    }

    /// The first element matching `css` now, if any.
    pub async fn find_now(&self, css: &str) -> Option<El> {
        let v = self
            .try_call(
                "POST",
                "/element",
                &json!({"using": "css selector", "value": css}),
            )
            .await?;
        v[ELEMENT].as_str().map(|s| El(s.to_string()))
    }

    /// Waits for an element matching `css` that is displayed.
    pub async fn find(&self, css: &str) -> El {
        self.wait_for(css, |_| true).await
    }

    /// Waits for a displayed element matching `css` whose text satisfies `pred`.
    pub async fn wait_for(&self, css: &str, pred: impl Fn(&str) -> bool) -> El {
        let started = Instant::now();
        loop {
            let found = self
                .try_call(
                    "POST",
                    "/elements",
                    &json!({"using": "css selector", "value": css}),
                )
                .await;
            for e in found
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let el = El(e[ELEMENT].as_str().unwrap_or_default().to_string());
                if self.displayed(&el).await && pred(&self.text(&el).await) {
                    return el;
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "no displayed {css} as expected within {WAIT:?}; page text: {}",
                self.script("return document.body.innerText", json!([]))
                    .await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn displayed(&self, el: &El) -> bool {
        let path = format!("/element/{}/displayed", el.0);
        self.try_call("GET", &path, &Value::Null)
            .await
            .is_some_and(|v| v == true)
    }

    pub async fn text(&self, el: &El) -> String {
        let path = format!("/element/{}/text", el.0);
        self.try_call("GET", &path, &Value::Null)
            .await
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn property(&self, el: &El, name: &str) -> Value {
        self.call(
            "GET",
            &format!("/session/element/{}/property/{name}", el.0),
            &Value::Null,
        )
        .await
    }

    pub async fn attribute(&self, el: &El, name: &str) -> Value {
        self.call(
            "GET",
            &format!("/session/element/{}/attribute/{name}", el.0),
            &Value::Null,
        )
        .await
    }

    pub async fn click(&self, el: &El) {
        self.call(
            "POST",
            &format!("/session/element/{}/click", el.0),
            &json!({}),
        )
        .await;
    }

    /// Types `text` into `el` (WebDriver key codes such as `\u{E007}`, Enter, work too).
    pub async fn keys(&self, el: &El, text: &str) {
        self.call(
            "POST",
            &format!("/session/element/{}/value", el.0),
            &json!({"text": text}),
        )
        .await;
    }

    pub async fn clear(&self, el: &El) {
        self.call(
            "POST",
            &format!("/session/element/{}/clear", el.0),
            &json!({}),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/session/execute/sync",
            &json!({"script": script, "args": args}),
        )
        .await
    }

    /// Switches into the iframe `el`; `None` switches back to the top page.
    pub async fn frame(&self, el: Option<&El>) {
        let id = el.map_or(Value::Null, |e| json!({ELEMENT: e.0}));
        self.call("POST", "/session/frame", &json!({ "id": id }))
            .await;
    }

    /// The value of cookie `name` (HttpOnly ones too), if set.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let v = self
            .try_call("GET", &format!("/cookie/{name}"), &Value::Null)
            .await?;
        v["value"].as_str().map(str::to_string)
    }

    /// Browser log entries since the last call.
    pub async fn log(&self) -> Vec<Value> {
        let v = self
            .call("POST", "/session/se/log", &json!({"type": "browser"}))
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG screenshot to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/session/screenshot", &Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the session and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.try_call("DELETE", "", &Value::Null).await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed midway: end the session so chromedriver closes the browser.
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let req = format!(
                    "DELETE /session/{} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    self.session,
                    self.host()
                );
                let _ = s.write_all(req.as_bytes());
                let _ = s.read(&mut [0u8; 512]);
            }
        }
        // Whatever of the browser is left (a session that did not end) goes with the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
