//! Readiness of executable extensions over the HTTP API and on the console's Extensions page,
//! against a real broker running three `[[exec]]` entries: one whose script runs, one whose
//! program is missing and one that is a plain (not executable) file. Operators and admins see
//! each entry's readiness with the reason and the check's time (on the broker's clock); an
//! observer sees the registrations without it; a fixed file is ready at the next check.

use extbus::clock::Clock;
use extbus::exec::ExecConfig;
use extbus_schema::tasks::{DefaultAction, RuleSpec};
use extbus_tests::console::{assert_clean_log, assert_fits, shot, sign_in};
use extbus_tests::http::{basic, request};
use extbus_tests::webdriver::Browser;
use extbus_tests::TestBroker;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn entry(name: &str, path: &Path) -> ExecConfig {
    let mut e = ExecConfig::new(name, path);
    e.check_interval_ms = 100;
    e.rules = vec![RuleSpec {
        operation: format!("{name}.create"),
        orgs: vec!["*".into()],
        priority: 50,
        timeout_ms: 600_000,
        max_timeout_ms: 3_600_000,
        default_action: DefaultAction::Abort,
        extension: None,
        result_schema: None,
    }];
    e
}

/// `GET /api/registrations` as `who`: the `config` item of each exec entry by principal.
async fn readiness(broker: &TestBroker, who: &str) -> Vec<(String, Value)> {
    let r = request(
        broker.http,
        "GET",
        "/api/registrations",
        &[("authorization", &basic(who, who))],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    let mut out: Vec<(String, Value)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["component"] == "config")
        .map(|i| {
            (
                i["principal"].as_str().unwrap().to_string(),
                i["exec"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn exec_readiness_shows_beside_the_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let good = extbus_tests::write_script(dir.path(), "quota", "echo '{\"action\": \"resume\"}'");
    let missing = dir.path().join("gone.sh");
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let broker = TestBroker::start_with(|c| {
        c.exec = vec![
            entry("quota", &good),
            entry("gone", &missing),
            entry("plain", &plain),
        ];
    })
    .await;
    let started = broker.clock.now_ms();

    // The first check runs at start; wait for it to be recorded.
    let begun = Instant::now();
    let seen = loop {
        let seen = readiness(&broker, "operator").await;
        if seen.iter().all(|(_, x)| !x["checked_at"].is_null()) {
            break seen;
        }
        assert!(begun.elapsed() < Duration::from_secs(10), "{seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["gone", "plain", "quota"]);
    let (gone, plain_r, quota) = (&seen[0].1, &seen[1].1, &seen[2].1);
    assert_eq!(quota["ready"], true, "{quota}");
    assert!(quota["reason"].is_null(), "{quota}");
    assert_eq!(quota["path"], good.display().to_string());
    assert_eq!(
        extbus_schema::time_fmt::parse_ms(quota["checked_at"].as_str().unwrap()).unwrap(),
        started
    );
    assert_eq!(gone["ready"], false, "{gone}");
    assert!(
        gone["reason"].as_str().unwrap().contains("gone.sh"),
        "{gone}"
    );
    assert_eq!(plain_r["ready"], false);
    assert!(
        plain_r["reason"]
            .as_str()
            .unwrap()
            .ends_with("is not executable"),
        "{plain_r}"
    );
    // Admins see it too; an observer gets the registrations without it.
    assert_eq!(readiness(&broker, "admin").await, seen);
    let observed = readiness(&broker, "observer").await;
    assert_eq!(observed.len(), 3);
    assert!(observed.iter().all(|(_, x)| x.is_null()), "{observed:?}");

    let b = Browser::start(1280, 800).await;
    sign_in(&b, &broker, "operator").await;
    b.click(&b.find("a[data-page=extensions]").await).await;
    let row = |name: &str| format!("#extensions tr[data-registration='{name}/config'] .readiness");
    let ready = b.wait_for(&row("quota"), |t| t.contains("checked")).await;
    assert_eq!(b.attribute(&ready, "data-ready").await, "true");
    assert!(b.text(&ready).await.starts_with("ready"));
    let gone_el = b
        .wait_for(&row("gone"), |t| t.starts_with("not ready"))
        .await;
    assert!(b.text(&gone_el).await.contains("gone.sh"));
    b.wait_for(&row("plain"), |t| {
        t.starts_with("not ready") && t.contains("is not executable") && t.contains("checked")
    })
    .await;
    // Beside the registration's own columns.
    b.wait_for("#extensions thead", |t| {
        t.contains("Connected") && t.contains("Executable")
    })
    .await;
    b.screenshot(&shot("extensions-exec")).await;

    // Made executable: ready at a later check, stamped with the clock's time then.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    broker.clock.advance(60_000);
    let begun = Instant::now();
    loop {
        let now = readiness(&broker, "operator").await;
        let p = &now[1].1;
        if p["ready"] == true {
            let at = extbus_schema::time_fmt::parse_ms(p["checked_at"].as_str().unwrap());
            assert_eq!(at.unwrap(), started + 60_000, "{p}");
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(10), "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.click(&b.find("a[data-page=tasks]").await).await;
    b.click(&b.find("a[data-page=extensions]").await).await;
    b.wait_for(&row("plain"), |t| t.starts_with("ready")).await;

    // The observer's page has no readiness column.
    b.click(&b.find("#signout").await).await;
    sign_in(&b, &broker, "observer").await;
    b.click(&b.find("a[data-page=extensions]").await).await;
    let head = b
        .wait_for("#extensions thead", |t| t.contains("Connected"))
        .await;
    assert!(!b.text(&head).await.contains("Executable"));
    b.resize(390, 844).await;
    assert_fits(&b).await;
    assert_clean_log(&b, &[]).await;
    b.quit().await;
    broker.stop().await;
}
