//! Unit-test fixture shared by the store-level modules: a fresh store in a temp dir with an
//! engine whose one rule blocks `vm.create` on `ext`, and submit requests for it.

use crate::{Engine, EngineConfig, Rules, Store};
use extbus_schema::tasks::{DefaultAction, RuleSpec, SubmitRequest};

/// A store and an engine with one `vm.create` rule (60 s, abort) answered by `ext`.
pub(crate) fn engine(renotify_ms: u64) -> (tempfile::TempDir, Store, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rule = RuleSpec {
        operation: "vm.create".into(),
        orgs: vec!["*".into()],
        priority: 50,
        timeout_ms: 60_000,
        max_timeout_ms: 60_000,
        default_action: DefaultAction::Abort,
        extension: Some("ext".into()),
    };
    let engine = Engine::new(
        Rules::load(&store, vec![rule]).unwrap(),
        EngineConfig {
            renotify_ms,
            ..EngineConfig::default()
        },
    );
    (dir, store, engine)
}

/// A `vm.create` submit for org `acme` with `request_id`.
pub(crate) fn submit(request_id: &str) -> SubmitRequest {
    SubmitRequest {
        request_id: request_id.into(),
        operation: "vm.create".into(),
        org: "acme".into(),
        subject: None,
        data: serde_json::Value::Null,
        metadata: Vec::new(),
    }
}
