//! Entity types over their life: a component's re-register removes the types it no longer
//! lists unless entities use them (those are kept and reported), other components' types are
//! untouched, and `registrations/query` lists each component's types; all kept across a restart.

use extbus_tests::TestBroker;
use serde_json::{json, Value};

fn ty(nss: &str) -> Value {
    json!({"vendor": "acme", "nss": nss, "version": "1.0.0", "schema": {"type": "object"},
           "access": {"read": ["platform"], "write": ["platform"]}})
}

fn id(nss: &str) -> String {
    format!("urn:extbus:type:acme:{nss}:1.0.0")
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    &r["result"]
}

async fn type_ids(c: &extbus_tests::BusClient) -> Vec<String> {
    let r = c.command("entities/types", json!({})).await;
    ok(&r)["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn re_register_removes_unused_types_and_keeps_used_ones() {
    let b = TestBroker::start().await;
    let ext = b.client("extension").await;
    ok(&ext
        .command(
            "register",
            json!({"component": "a", "entity_types": [ty("one"), ty("two"), ty("three")]}),
        )
        .await);
    ok(&ext
        .command(
            "register",
            json!({"component": "b", "entity_types": [ty("other")]}),
        )
        .await);
    let plat = b.client("platform").await;
    ok(&plat
        .command(
            "entities/create",
            json!({"type": id("two"), "org": "acme", "name": "x", "entity": {}}),
        )
        .await);

    let r = ext
        .command(
            "register",
            json!({"component": "a", "entity_types": [ty("one")]}),
        )
        .await;
    let res = ok(&r);
    assert_eq!(res["entity_types"], json!([id("one")]));
    assert_eq!(res["removed"]["entity_types"], json!([id("three")]));
    assert_eq!(res["entity_types_kept"], json!([id("two")]));
    let mut want = vec![id("one"), id("other"), id("two")];
    want.sort();
    assert_eq!(type_ids(&plat).await, want);
    // A removed type takes no entities.
    let r = plat
        .command(
            "entities/create",
            json!({"type": id("three"), "org": "acme", "name": "y", "entity": {}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");

    let q = ok(&ext.command("registrations/query", json!({})).await).clone();
    let of = |c: &str| {
        q["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["component"] == c)
            .map(|i| i["entity_types"].clone())
    };
    assert_eq!(of("a"), Some(json!([id("one"), id("two")])));
    assert_eq!(of("b"), Some(json!([id("other")])));

    let b = b.restart().await;
    let plat = b.client("platform").await;
    assert_eq!(type_ids(&plat).await, want);
    b.stop().await;
}

const CONFIG_TYPE: &str = r#"
[[entities.types]]
extension = "extension"
vendor = "acme"
nss = "site"
version = "1.0.0"
name = "Site"
hooks = { post_create = true }
behaviors = [{ name = "ping", timeout_ms = 5000 }]
access = { read = ["platform"], write = ["platform"] }
[entities.types.schema]
type = "object"
required = ["region"]
properties = { region = { type = "string" }, token = { type = "string", "x-extbus-secure" = true } }
"#;

fn load(text: &str) -> Result<extbus::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extbus.toml");
    std::fs::write(&path, text).unwrap();
    extbus::config::Config::load(Some(&path), json!({})).map_err(|e| e.to_string())
}

#[test]
fn config_types_are_checked_when_the_config_is_loaded() {
    let cfg = load(CONFIG_TYPE).expect("a valid config type");
    assert_eq!(cfg.entities.types[0].spec().id(), id("site"));
    let bad_schema = CONFIG_TYPE.replace("type = \"object\"\nrequired", "type = 7\nrequired");
    let e = load(&bad_schema).unwrap_err();
    assert!(e.contains("entities.types[0].schema"), "{e}");
    let bad_version = CONFIG_TYPE.replace("version = \"1.0.0\"", "version = \"one\"");
    let e = load(&bad_version).unwrap_err();
    assert!(e.contains("entities.types[0].version"), "{e}");
    let typo = CONFIG_TYPE.replace("nss = \"site\"", "nss = \"site\"\nnamespace = \"x\"");
    let e = load(&typo).unwrap_err();
    assert!(e.contains("namespace"), "{e}");
}

#[tokio::test]
async fn config_types_are_registered_at_start_with_their_hooks() {
    let cfg = load(CONFIG_TYPE).unwrap();
    let b = TestBroker::start_with(|c| c.entities.types = cfg.entities.types.clone()).await;
    let ext = b.client("extension").await;
    ext.subscribe("extbus/tasks/blocked/#").await;
    let plat = b.client("platform").await;
    assert_eq!(type_ids(&plat).await, vec![id("site")]);
    let e = ok(&plat
        .command(
            "entities/create",
            json!({"type": id("site"), "org": "acme", "name": "s1",
                   "entity": {"region": "eu", "token": "sekrit-token"}}),
        )
        .await)
    .clone();
    assert_eq!(e["state"], "pre_created");
    let notice = ext
        .expect_on(&extbus_schema::topics::tasks_blocked("site.post-create"))
        .await;
    assert!(!String::from_utf8_lossy(&notice.payload).contains("sekrit-token"));
    // A manifest of the owner's other component leaves the config's type alone.
    ok(&ext
        .command("register", json!({"component": "x", "entity_types": []}))
        .await);
    assert_eq!(type_ids(&plat).await, vec![id("site")]);
    // Kept across a restart with the same config.
    let b = b.restart().await;
    let plat = b.client("platform").await;
    assert_eq!(type_ids(&plat).await, vec![id("site")]);
    b.stop().await;
}
