//! Shared fixtures of the integration tests: a real sled store in a temp dir, an engine with
//! given rules, and helpers that run one batch (commit + flush) the way the broker does.
#![allow(dead_code)]

use extbus_callouts::{Effects, Engine, EngineConfig, Rules, Store, Txn};
use extbus_schema::tasks::{DefaultAction, RuleSpec, SubmitRequest, Task, TaskAction};
use extbus_schema::{CommandError, ErrorCode};
use serde_json::Value;

/// 2026-11-22T10:00:00.000Z
pub const T0: u64 = 1_795_341_600_000;
pub const RENOTIFY: u64 = 30_000;

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub engine: Engine,
    pub config_rules: Vec<RuleSpec>,
}

/// Opens a store just dropped in this process. sled releases its file lock only when its
/// last background I/O job lets go of the database, which on a loaded machine can be a moment
/// after the drop: a lock error is retried for up to 10 s, any other error fails.
pub fn open_again(path: &std::path::Path) -> Store {
    let started = std::time::Instant::now();
    loop {
        match Store::open(path) {
            Ok(s) => return s,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

pub fn rule(
    op: &str,
    ext: &str,
    priority: i64,
    timeout_ms: u64,
    max_timeout_ms: u64,
    action: DefaultAction,
) -> RuleSpec {
    RuleSpec {
        operation: op.into(),
        orgs: vec!["*".into()],
        priority,
        timeout_ms,
        max_timeout_ms,
        default_action: action,
        extension: Some(ext.into()),
        result_schema: None,
    }
}

pub fn req(request_id: &str, op: &str) -> SubmitRequest {
    SubmitRequest {
        request_id: request_id.into(),
        operation: op.into(),
        org: "acme".into(),
        subject: Some("urn:acme:vapp:42".into()),
        data: serde_json::json!({"cpu": 2}),
        metadata: Vec::new(),
    }
}

impl Fx {
    pub fn new(rules: Vec<RuleSpec>) -> Fx {
        Fx::with_renotify(rules, RENOTIFY)
    }

    pub fn with_renotify(rules: Vec<RuleSpec>, renotify_ms: u64) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine = Engine::new(
            Rules::load(&store, rules.clone()).unwrap(),
            EngineConfig {
                renotify_ms,
                ..EngineConfig::default()
            },
        );
        Fx {
            dir,
            store,
            engine,
            config_rules: rules,
        }
    }

    /// Runs `f` in one batch, then commits and flushes, as the coordinator does.
    pub fn batch<R>(&self, f: impl FnOnce(&Engine, &mut Txn) -> R) -> R {
        let mut txn = self.store.txn();
        let r = f(&self.engine, &mut txn);
        txn.commit().unwrap();
        self.store.flush().unwrap();
        r
    }

    pub fn submit(&self, request_id: &str, op: &str, now: u64) -> (Task, Effects) {
        self.batch(|e, t| e.submit(t, "platform-1", req(request_id, op), now))
            .unwrap()
    }

    pub fn act(
        &self,
        who: &str,
        id: &str,
        action: TaskAction,
        now: u64,
    ) -> Result<(Task, Effects), CommandError> {
        let privileged = who == "operator";
        self.batch(|e, t| e.resolve(t, who, privileged, id, action, None, None, now))
    }

    pub fn resume_with(
        &self,
        who: &str,
        id: &str,
        result: Value,
        now: u64,
    ) -> Result<(Task, Effects), CommandError> {
        self.batch(|e, t| {
            e.resolve(
                t,
                who,
                false,
                id,
                TaskAction::Resume,
                Some(format!("{who} says ok")),
                Some(result),
                now,
            )
        })
    }

    pub fn extend(
        &self,
        who: &str,
        id: &str,
        extend_ms: u64,
        now: u64,
    ) -> Result<(Task, Effects), CommandError> {
        self.batch(|e, t| e.extend(t, who, false, id, extend_ms, None, now))
    }

    pub fn due(&self, now: u64) -> Vec<Effects> {
        self.batch(|e, t| e.due(t, now, 1000)).unwrap()
    }

    pub fn assert_consistent(&self) {
        let problems: Vec<String> = self.store.verify().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    pub fn reopen(self) -> Fx {
        let Fx {
            dir,
            store,
            engine,
            config_rules,
        } = self;
        let config = *engine.config();
        drop(engine);
        store.flush().unwrap();
        drop(store);
        let store = open_again(dir.path());
        let engine = Engine::new(Rules::load(&store, config_rules.clone()).unwrap(), config);
        Fx {
            dir,
            store,
            engine,
            config_rules,
        }
    }
}

pub fn code(r: Result<(Task, Effects), CommandError>) -> ErrorCode {
    match r {
        Ok((t, _)) => panic!("expected an error, got task in state {}", t.state),
        Err(e) => e.code,
    }
}
