//! Who may read and write entities (the type's `access`, orgs, the owner, admin), each refusal
//! a `forbidden` with a `security.denied` event; and secure fields, which no reply, event or
//! query page ever carries and which the store's files do not reveal.

use extbus_schema::Role;
use extbus_tests::TestBroker;
use serde_json::{json, Value};
use std::time::Duration;

const TYPE_ID: &str = "urn:extbus:type:acme:vault:1.0.0";

fn vault_type() -> Value {
    json!({"vendor": "acme", "nss": "vault", "version": "1.0.0",
           "schema": {"type": "object", "properties": {
               "url": {"type": "string"},
               "token": {"type": "string", "minLength": 8, "x-extbus-secure": true},
               "auth": {"type": "object", "properties": {
                   "user": {"type": "string"},
                   "password": {"type": "string", "x-extbus-secure": true}}}}},
           "access": {"read": ["operator"], "write": ["platform"]}})
}

fn code(r: &Value) -> &str {
    assert_eq!(r["ok"], false, "{r}");
    r["error"]["code"].as_str().unwrap_or_default()
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

#[tokio::test]
async fn access_follows_the_type_orgs_and_owner() {
    let b = TestBroker::start().await;
    b.add_principal("op-acme", &[Role::Operator], &["acme"]);
    b.add_principal("op-globex", &[Role::Operator], &["globex"]);
    b.add_principal("obs-acme", &[Role::Observer], &["acme"]);
    let ext = b.client("extension").await;
    ok(&ext
        .command("register", json!({"entity_types": [vault_type()]}))
        .await);
    let admin = b.client("admin").await;
    admin
        .subscribe("extbus/events/system/security/denied")
        .await;
    let plat = b.client("platform").await;
    let e = plat
        .command(
            "entities/create",
            json!({"type": TYPE_ID, "org": "acme", "name": "v", "entity": {"url": "u"}}),
        )
        .await;
    let id = ok(&e)["id"].as_str().unwrap().to_string();
    let get = format!("entities/{id}/get");

    // The owner reads although platform is not in access.read; an operator of the org reads.
    ok(&plat.command(&get, json!({})).await);
    let op = b.client("op-acme").await;
    ok(&op.command(&get, json!({})).await);
    // Roles outside access: forbidden, each with its event.
    let obs = b.client("obs-acme").await;
    assert_eq!(code(&obs.command(&get, json!({})).await), "forbidden");
    let upd = format!("entities/{id}/update");
    let r = op
        .command(&upd, json!({"revision": 1, "entity": {"url": "x"}}))
        .await;
    assert_eq!(code(&r), "forbidden");
    assert_eq!(code(&ext.command(&get, json!({})).await), "forbidden");
    let r = ext
        .command(
            "entities/create",
            json!({"type": TYPE_ID, "org": "acme", "name": "w", "entity": {}}),
        )
        .await;
    assert_eq!(code(&r), "forbidden");
    // Another org's operator does not see it at all.
    let other = b.client("op-globex").await;
    assert_eq!(code(&other.command(&get, json!({})).await), "not_found");
    let q = other.command("entities/query", json!({})).await;
    assert_eq!(ok(&q)["entities"], json!([]));
    let q = obs.command("entities/query", json!({})).await;
    assert_eq!(ok(&q)["entities"], json!([]));
    let q = op.command("entities/query", json!({})).await;
    assert_eq!(ok(&q)["entities"].as_array().unwrap().len(), 1);
    // Admin always.
    ok(&admin
        .command(&upd, json!({"revision": 1, "entity": {"url": "y"}}))
        .await);

    let denied = admin
        .collect(Duration::from_millis(500), |m| {
            m.topic.ends_with("security/denied")
        })
        .await;
    let who: Vec<String> = denied
        .iter()
        .map(|m| m.json()["data"]["principal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(who, ["obs-acme", "op-acme", "extension", "extension"]);
    assert_eq!(denied[1].json()["data"]["action"], "entities/update");
    // Nothing changed by the refusals.
    let now = op.command(&get, json!({})).await;
    assert_eq!(ok(&now)["revision"], 2);
    assert_eq!(ok(&now)["entity"]["url"], "y");
}

#[tokio::test]
async fn secure_fields_never_leak() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    ok(&ext
        .command("register", json!({"entity_types": [vault_type()]}))
        .await);
    let admin = b.client("admin").await;
    // Every message of the bus: replies to everyone, events, notices.
    admin.subscribe("#").await;
    let plat = b.client("platform").await;
    let (token, password, short) = ("TOKEN-abc-123-xyz", "PASSWD-987-qwe", "Qx7s");

    let e = plat
        .command(
            "entities/create",
            json!({"type": TYPE_ID, "org": "acme", "name": "v",
                   "entity": {"url": "u", "token": token, "auth": {"user": "bob", "password": password}}}),
        )
        .await;
    let e = ok(&e).clone();
    assert_eq!(e["state"], "resolved");
    assert_eq!(e["entity"], json!({"url": "u", "auth": {"user": "bob"}}));
    let id = e["id"].as_str().unwrap().to_string();
    let upd = format!("entities/{id}/update");
    // Left out: kept (the entity stays valid, the history names the path only on change).
    let r = plat
        .command(
            &upd,
            json!({"revision": 1, "entity": {"url": "u2", "auth": {"user": "bob"}}}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "resolved");
    // A secure value failing the schema: the error names the path, not the value.
    let r = plat
        .command(
            &upd,
            json!({"revision": 2, "entity": {"url": "u2", "token": short}}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "resolution_error");
    assert_eq!(ok(&r)["errors"][0]["path"], "/token");
    let r = plat
        .command(
            &upd,
            json!({"revision": 3, "entity": {"url": "u3", "token": token}}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "resolved");
    ok(&plat
        .command(&format!("entities/{id}/resolve"), json!({}))
        .await);
    let got = plat.command(&format!("entities/{id}/get"), json!({})).await;
    assert!(ok(&got)["entity"].get("token").is_none());
    let q = plat.command("entities/query", json!({})).await;
    assert_eq!(ok(&q)["entities"].as_array().unwrap().len(), 1);
    let r = plat
        .command("events/replay", json!({"from_seq": 0, "limit": 1000}))
        .await;
    ok(&r);

    let seen = admin.collect(Duration::from_millis(600), |_| true).await;
    assert!(seen.len() > 10, "{} messages", seen.len());
    // The scan would see a value: the plain field is there.
    assert!(seen
        .iter()
        .any(|m| String::from_utf8_lossy(&m.payload).contains("bob")));
    for m in &seen {
        let text = String::from_utf8_lossy(&m.payload);
        for s in [token, password, short] {
            assert!(!text.contains(s), "{s} on {}: {text}", m.topic);
        }
    }

    // A copy of the store does not reveal them either.
    let dir = b.data_dir();
    drop((plat, ext, admin));
    let (_cfg, _tmp, _clock) = b.stop().await;
    let mut files = vec![dir.clone()];
    let mut scanned = 0;
    let mut plain_seen = false;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        scanned += bytes.len();
        plain_seen |= bytes.windows(3).any(|w| w == b"bob");
        for s in [token, password] {
            let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(!found, "{s} in {}", p.display());
        }
    }
    assert!(
        scanned > 0 && plain_seen,
        "the store's files hold the plain fields"
    );
    let key = dir.join("entity-secrets.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
