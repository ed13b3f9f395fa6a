//! The operators' CLI against the real `extbus` binary serving on free ports: every `task` and
//! `events` subcommand, success and failure (broker errors, bad credentials, bad flags), the
//! three ways to give credentials, `ext scaffold`, and `ext list|disable|enable`.

mod support;
use support::free_port;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn extbus() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_extbus"));
    for v in [
        "EXTBUS_URL",
        "EXTBUS_USER",
        "EXTBUS_SECRET",
        "EXTBUS_CREDENTIALS",
    ] {
        c.env_remove(v);
    }
    c
}

/// A broker child process, killed when dropped.
struct Broker {
    child: Child,
    mqtt: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("extbus.toml");
        std::fs::write(
            &cfg,
            "[[tasks.rules]]\noperation = \"vm.create\"\nextension = \"extension\"\ntimeout_ms = 600000\n",
        )
        .unwrap();
        let (mqtt, http) = (free_port(), free_port());
        let child = extbus()
            .args(["serve", "--dev", "--config", cfg.to_str().unwrap()])
            .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let b = Broker {
            child,
            mqtt,
            _dir: dir,
        };
        // Ready once the CLI gets an answer.
        let start = Instant::now();
        loop {
            if b.cli("operator", &["task", "list"]).status.success() {
                return b;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "broker not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt)
    }

    /// Runs the CLI as `user` (secret = name).
    fn cli(&self, user: &str, args: &[&str]) -> Output {
        extbus()
            .args(args)
            .args(["--url", &self.url(), "--user", user, "--secret", user])
            .output()
            .unwrap()
    }

    fn ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.cli(user, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, user: &str, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(user, &a)).unwrap()
    }

    /// The stderr of a command that must fail.
    fn fails(&self, user: &str, args: &[&str]) -> String {
        let out = self.cli(user, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Sends commands as the platform over plain MQTT and returns their replies.
    fn platform(&self, cmds: &[(&str, Value)]) -> Vec<Value> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut o = rumqttc::MqttOptions::new("cli-test-platform", "127.0.0.1", self.mqtt);
            o.set_credentials("platform", "platform");
            let (c, mut el) = rumqttc::AsyncClient::new(o, 64);
            c.subscribe("extbus/out/platform/replies", rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap();
            let mut replies = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    // One command at a time: after the SUBACK, then after each reply.
                    let send = match el.poll().await.unwrap() {
                        rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => true,
                        rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                            replies.push(serde_json::from_slice::<Value>(&p.payload).unwrap());
                            true
                        }
                        _ => false,
                    };
                    if replies.len() == cmds.len() {
                        return;
                    }
                    if send {
                        let (suffix, body) = &cmds[replies.len()];
                        c.publish(
                            format!("extbus/in/platform/{suffix}"),
                            rumqttc::QoS::AtLeastOnce,
                            false,
                            serde_json::to_vec(body).unwrap(),
                        )
                        .await
                        .unwrap();
                    }
                }
            })
            .await
            .expect("platform replies");
            replies
        })
    }
}

fn submit(id: &str) -> (&'static str, Value) {
    (
        "tasks/submit",
        json!({"request_id": id, "operation": "vm.create", "org": "acme", "data": {"cpu": 2}}),
    )
}

fn event(n: u64) -> (&'static str, Value) {
    (
        "events",
        json!({"type": "vm.create", "org": "acme", "subject": format!("urn:acme:vm:{n}"), "outcome": "succeeded"}),
    )
}

#[test]
fn task_commands_list_get_resolve_and_extend() {
    let b = Broker::start();
    let list = b.ok("operator", &["task", "list"]);
    assert!(list.starts_with("ID"), "{list}");
    let replies = b.platform(&[submit("r-1"), submit("r-2"), submit("r-3")]);
    let ids: Vec<String> = replies
        .iter()
        .map(|r| r["result"]["id"].as_str().unwrap().to_string())
        .collect();

    let all = b.json(
        "operator",
        &["task", "list", "--state", "blocked", "--org", "acme"],
    );
    assert_eq!(all["tasks"].as_array().unwrap().len(), 3);
    let one = b.json(
        "operator",
        &["task", "list", "--limit", "1", "--operation", "vm.create"],
    );
    assert_eq!(one["tasks"].as_array().unwrap().len(), 1);
    let table = b.ok("operator", &["task", "list", "--state", "blocked"]);
    for id in &ids {
        assert!(table.contains(id.as_str()), "{table}");
    }
    assert!(table.contains("1/1 extension"), "{table}");

    let details = b.ok("operator", &["task", "get", &ids[0]]);
    assert!(
        details.contains("vm.create") && details.contains("history:"),
        "{details}"
    );
    assert!(details.contains("submit"), "{details}");

    let out = b.ok(
        "operator",
        &[
            "task",
            "resume",
            &ids[0],
            "-m",
            "looks fine",
            "--result",
            r#"{"host": "h1"}"#,
        ],
    );
    assert!(out.contains("resumed"), "{out}");
    let t = b.json("operator", &["task", "get", &ids[0]]);
    assert_eq!(t["state"], "resumed");
    assert_eq!(t["result"]["host"], "h1");
    assert_eq!(t["message"], "looks fine");

    let t = b.json("operator", &["task", "cancel", &ids[1], "-m", "not today"]);
    assert_eq!(t["state"], "cancelled");

    let before = b.json("operator", &["task", "get", &ids[2]])["deadline"].clone();
    let t = b.json(
        "operator",
        &["task", "extend", &ids[2], "--by", "50m", "-m", "later"],
    );
    assert_eq!(t["state"], "blocked");
    assert!(t["deadline"].as_str().unwrap() > before.as_str().unwrap());
    let out = b.ok("operator", &["task", "abort", &ids[2], "-m", "too big"]);
    assert!(out.contains("aborted"), "{out}");
    let list = b.ok("operator", &["task", "list", "--state", "aborted"]);
    assert!(
        list.contains(ids[2].as_str()) && !list.contains(ids[0].as_str()),
        "{list}"
    );

    // Failures exit non-zero with the broker's error.
    let e = b.fails("operator", &["task", "resume", "no-such-task", "-m", "x"]);
    assert!(e.contains("not_found"), "{e}");
    let e = b.fails("operator", &["task", "get", "no-such-task"]);
    assert!(e.contains("not_found"), "{e}");
    let e = b.fails(
        "operator",
        &["task", "cancel", &ids[0], "-m", "changed my mind"],
    );
    assert!(e.contains("conflict"), "{e}");
    let e = b.fails("observer", &["task", "abort", &ids[0]]);
    assert!(e.contains("forbidden"), "{e}");
    let e = b.fails(
        "operator",
        &["task", "resume", &ids[0], "--result", "{oops"],
    );
    assert!(e.contains("--result"), "{e}");
    let e = b.fails("operator", &["task", "extend", &ids[0], "--by", "soon"]);
    assert!(e.contains("duration"), "{e}");
    let e = b.fails("operator", &["task", "list", "--state", "sleeping"]);
    assert!(e.contains("sleeping"), "{e}");
}

#[test]
fn the_cli_says_what_its_replies_leave_unsaid() {
    let b = Broker::start();
    let id = b.platform(&[submit("r-1")])[0]["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Stages count from 1 everywhere; an extension past the rule's bound says so.
    let out = b.cli("operator", &["task", "extend", &id, "--by", "400d"]);
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("stage 1/1 extension"), "{stdout}");
    assert!(stderr.contains("capped at"), "{stderr}");
    let out = b.cli("operator", &["task", "extend", &id, "--by", "1m"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An empty list for an org says why it may be empty.
    let out = b.cli("operator", &["task", "list", "--org", "globex"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task of org 'globex'"));
    // Not-found errors quote the id the same way, whichever command met it.
    let get = b.fails("operator", &["task", "get", "nope"]);
    let resume = b.fails("operator", &["task", "resume", "nope"]);
    assert!(
        get.contains("no task 'nope'") && resume.contains("no task 'nope'"),
        "{get}{resume}"
    );
    // A URL naming a port that is not MQTT (here: an HTTP server) is named as such.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in http.incoming().flatten() {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let out = extbus()
        .args(["task", "list", "--user", "operator", "--secret", "operator"])
        .args(["--url", &format!("mqtt://127.0.0.1:{port}"), "--wait", "5s"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(e.contains("is not an MQTT listener"), "{e}");
}

#[test]
fn acl_export_prints_the_role_table_for_brokers_managed_by_hand() {
    let mut b = Broker::start();
    // The config's vm.create rule names `extension`; stop the broker: the export reads its store.
    let _ = b.child.kill();
    let _ = b.child.wait();
    let dir = b._dir.path().to_path_buf();
    let export = |format: &str| {
        let out = extbus()
            .args(["acl", "export", "--format", format])
            .args(["--config", dir.join("extbus.toml").to_str().unwrap()])
            .args(["--data-dir", dir.join("data").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let m = export("mosquitto-acl");
    for line in [
        "user platform\ntopic write extbus/in/platform/#\ntopic read extbus/out/platform/#\n",
        "topic read extbus/tasks/blocked/vm/create\n",
        "user admin\ntopic write #\ntopic read #\n",
    ] {
        assert!(m.contains(line), "{line} in {m}");
    }
    // An extension reads only the blocked tasks it answers, not every operation's.
    assert!(!m.contains("topic read extbus/tasks/blocked/#"), "{m}");
    let e = export("emqx-acl");
    assert!(
        e.contains("{allow, {user, \"platform\"}, publish, [\"extbus/in/platform/#\"]}.")
            && e.trim_end().ends_with("{deny, all}."),
        "{e}"
    );
    let d: Value = serde_json::from_str(&export("dynsec-json")).unwrap();
    let cmds = d["commands"].as_array().unwrap();
    let role = cmds
        .iter()
        .find(|c| c["command"] == "createRole" && c["rolename"] == "extbus:extension")
        .unwrap();
    assert!(role["acls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["acltype"] == "publishClientReceive"
            && a["topic"] == "extbus/tasks/blocked/vm/create"
            && a["allow"] == true));
    let bad = extbus()
        .args(["acl", "export", "--format", "nginx"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("mosquitto-acl"));
}

#[test]
fn offline_commands_offer_only_their_own_flags() {
    let help = extbus()
        .args(["principal", "add", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--data-dir") && help.contains("--role"),
        "{help}"
    );
    for serve_only in ["--mqtt-listen", "--http-listen", "--dev", "--log-level"] {
        assert!(!help.contains(serve_only), "{serve_only} in {help}");
    }
    let list = extbus().args(["task", "list", "--help"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("oldest first") && list.contains("Only this org"),
        "{list}"
    );
}

#[test]
fn credentials_come_from_flags_environment_or_a_file() {
    let b = Broker::start();
    let out = extbus()
        .args([
            "task",
            "list",
            "--url",
            &b.url(),
            "--user",
            "operator",
            "--secret",
            "wrong",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("bad credentials") && e.contains("operator"),
        "{e}"
    );

    let out = extbus()
        .args(["task", "list", "--json"])
        .env("EXTBUS_URL", b.url())
        .env("EXTBUS_USER", "operator")
        .env("EXTBUS_SECRET", "operator")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("op.toml");
    std::fs::write(
        &file,
        format!(
            "url = \"{}\"\nuser = \"operator\"\nsecret = \"operator\"\n",
            b.url()
        ),
    )
    .unwrap();
    let out = extbus()
        .args(["task", "list", "--credentials", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = extbus()
        .args(["task", "list", "--url", &b.url()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));

    let out = extbus()
        .args([
            "task",
            "list",
            "--url",
            &format!("mqtt://127.0.0.1:{}", free_port()),
        ])
        .args(["--user", "operator", "--secret", "operator", "--wait", "3s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reach the broker"));
}

#[test]
fn events_tail_replays_then_follows_without_duplicates() {
    let b = Broker::start();
    let replies = b.platform(&[
        event(1),
        event(2),
        ("events", json!({"type": "vapp.delete", "org": "beta"})),
    ]);
    let first = replies[0]["result"]["seq"].as_u64().unwrap();

    let out = b.ok(
        "operator",
        &[
            "events",
            "tail",
            "--from-seq",
            &first.to_string(),
            "--no-follow",
            "--json",
        ],
    );
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), 3, "{out}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    let out = b.ok(
        "operator",
        &[
            "events",
            "tail",
            "--from-seq",
            "1",
            "--no-follow",
            "--org",
            "acme",
            "--type",
            "vm.create",
        ],
    );
    assert!(
        out.contains("urn:acme:vm:1")
            && out.contains("urn:acme:vm:2")
            && !out.contains("vapp.delete"),
        "{out}"
    );

    // Follow: one stored event comes by replay, the next one live, each printed once.
    let from = replies[2]["result"]["seq"].as_u64().unwrap() + 1;
    let r = b.platform(&[event(3)]);
    let mut child = extbus()
        .args([
            "events",
            "tail",
            "--org",
            "acme",
            "--from-seq",
            &from.to_string(),
            "--count",
            "2",
            "--json",
        ])
        .args([
            "--url",
            &b.url(),
            "--user",
            "observer",
            "--secret",
            "observer",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let l1: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(l1["seq"], r[0]["result"]["seq"]);
    let r2 = b.platform(&[event(4)]);
    let l2: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(l2["seq"], r2[0]["result"]["seq"]);
    assert_eq!(l2["subject"], "urn:acme:vm:4");
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(lines.next().is_none());

    let e = b.fails(
        "operator",
        &["events", "tail", "--org", "a#b", "--no-follow"],
    );
    assert!(e.contains("filter"), "{e}");
}

#[test]
fn ext_scaffold_writes_a_runnable_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = extbus()
        .args([
            "ext",
            "scaffold",
            "checker",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = dir.path().join("checker.sh");
    let payload = dir.path().join("task.json");
    std::fs::write(&payload, r#"{"id": "t1", "operation": "vm.create"}"#).unwrap();
    let run = Command::new(&script)
        .args(["callout", payload.to_str().unwrap(), "5"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let answer: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(answer["status"], "success");
    let again = extbus()
        .args([
            "ext",
            "scaffold",
            "checker",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = extbus().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        for sub in ["serve", "task", "events", "backup"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let bad = extbus().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let man = extbus().arg("man").output().unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH extbus 1"), "{man}");
    assert!(man.contains("backup"), "{man}");
}

#[test]
fn a_closed_pipe_ends_a_cli_command_quietly() {
    // `extbus ... | head -1`: the reader is gone before the command writes.
    let mut child = extbus()
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn ext_list_disable_and_enable() {
    let b = Broker::start();
    // The config's rule for `extension` is listed as its component `config`.
    let t = b.ok("observer", &["ext", "list"]);
    assert!(t.starts_with("REGISTRATION"), "{t}");
    let line = t
        .lines()
        .find(|l| l.starts_with("extension/config"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        line.contains("enabled") && line.contains("vm.create"),
        "{line}"
    );

    let out = b.ok(
        "operator",
        &["ext", "disable", "extension", "-m", "testing"],
    );
    assert_eq!(out.trim(), "extension disabled");
    let j = b.json("observer", &["ext", "list", "--principal", "extension"]);
    assert_eq!(j["items"][0]["disabled"], true, "{j}");
    assert!(b.ok("observer", &["ext", "list"]).contains("disabled"));
    let r = b.platform(&[submit("while-off")]);
    assert_eq!(r[0]["result"]["state"], "resumed", "{r:?}");

    let err = b.fails("observer", &["ext", "disable", "extension"]);
    assert!(err.contains("forbidden"), "{err}");
    let err = b.fails("operator", &["ext", "disable", "a/b/c"]);
    assert!(err.contains("PRINCIPAL/COMPONENT"), "{err}");
    let err = b.fails("operator", &["ext", "enable", "extension/nothing"]);
    assert!(
        err.contains("not_found") || err.contains("no component"),
        "{err}"
    );

    assert_eq!(
        b.ok("operator", &["ext", "enable", "extension"]).trim(),
        "extension enabled"
    );
    let r = b.platform(&[submit("back-on")]);
    assert_eq!(r[0]["result"]["state"], "blocked", "{r:?}");
}
