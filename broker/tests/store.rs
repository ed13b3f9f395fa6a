//! The store's one write set per batch, on real sled in a temp dir: a batch's task state,
//! events and services commit together or not at all, a failed batch leaves the event
//! numbering where it was, a reopened store has everything committed, and a process killed
//! with SIGKILL in the middle of batches never comes back with a task without its event or
//! an event without its task.

use extbus::eventlog::EventLog;
use extbus_callouts::{Engine, EngineConfig, Rules, Store, TreeId, Trees, Txn};
use extbus_schema::events::CloudEvent;
use extbus_schema::tasks::{SubmitRequest, TaskQuery};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NOW: u64 = 1_795_341_600_000;
/// Set in the child process of the crash test: the store dir it writes to.
const CHILD_DIR: &str = "EXTBUS_STORE_TEST_CHILD_DIR";
/// Tasks (each with its event) per batch in the crash test.
const PER_BATCH: usize = 3;

struct Opened {
    db: sled::Db,
    trees: Trees,
    store: Store,
    engine: Engine,
    log: EventLog,
}

/// sled lets go of its file lock when its last background I/O job drops the database, a
/// moment after the test's own drop on a loaded machine: a lock error is retried for 10 s.
fn open_db(dir: &Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening the store: {e}"),
        }
    }
}

fn open(dir: &Path) -> Opened {
    let db = open_db(dir);
    let trees = Trees::open(&db).unwrap();
    let store = Store::with_trees(trees.clone());
    let rule = serde_json::from_value(json!({
        "operation": "vm.create", "extension": "ext", "timeout_ms": 3_600_000,
        "max_timeout_ms": 3_600_000
    }))
    .unwrap();
    let engine = Engine::new(
        Rules::load(&store, vec![rule]).unwrap(),
        EngineConfig {
            renotify_ms: 0,
            ..EngineConfig::default()
        },
    );
    let log = EventLog::open(&trees).unwrap();
    Opened {
        db,
        trees,
        store,
        engine,
        log,
    }
}

fn submit(request_id: &str) -> SubmitRequest {
    serde_json::from_value(json!({
        "request_id": request_id, "operation": "vm.create", "org": "acme", "data": {}
    }))
    .unwrap()
}

/// An audit event whose id is the request id of the task it goes with.
fn event(id: &str) -> CloudEvent {
    serde_json::from_value(json!({
        "specversion": "1.0", "id": id, "source": "urn:test", "type": "vm.create",
        "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
        "seq": 0, "org": "acme"
    }))
    .unwrap()
}

/// One batch as the coordinator builds it: a task per request id, its event, and a service
/// registration, all in one `Txn`, not yet committed.
fn batch(s: &Opened, request_ids: &[String]) -> (Txn, extbus::eventlog::Staged) {
    let mut txn = s.store.txn();
    let mut staged = s.log.begin();
    for rid in request_ids {
        s.engine.submit(&mut txn, "plat", submit(rid), NOW).unwrap();
        s.log.stage(&mut staged, event(rid), true).unwrap();
        txn.insert(TreeId::Services, rid.as_bytes(), b"[]".to_vec());
    }
    s.log.write(&mut staged, &mut txn);
    (txn, staged)
}

/// Request ids of every committed task, in id order.
fn task_requests(store: &Store) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let q = TaskQuery {
            after: after.clone(),
            limit: Some(1000),
            ..TaskQuery::default()
        };
        let page = store.query(&q).unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        after = Some(last.id.clone());
        out.extend(page.into_iter().map(|t| t.request_id));
    }
}

/// Ids of every committed event; panics unless their seqs are 1, 2, 3, ... without a gap.
fn event_ids(log: &EventLog) -> BTreeSet<String> {
    let (events, _, more) = log.read(1, usize::MAX, usize::MAX, |_| true).unwrap();
    assert!(!more);
    for (n, ev) in events.iter().enumerate() {
        assert_eq!(ev.seq, n as u64 + 1, "seqs are gap-free from 1");
    }
    events.into_iter().map(|e| e.id).collect()
}

#[test]
fn a_batch_commits_its_tasks_events_and_services_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let rids = vec!["r1".to_string(), "r2".to_string()];

    // A foreign value at the key the batch's events go under (their first seq): that key is
    // never reused, so the commit fails, and nothing of the batch may be left behind.
    let foreign = 1u64.to_be_bytes();
    s.trees
        .tree(TreeId::Events)
        .insert(foreign, b"foreign".to_vec())
        .unwrap();
    let (txn, _staged) = batch(&s, &rids);
    let err = txn.commit().unwrap_err();
    assert!(err.to_string().contains("events"), "{err}");
    assert!(task_requests(&s.store).is_empty(), "no task of the batch");
    let events = s.trees.tree(TreeId::Events);
    assert_eq!(
        events.len(),
        1,
        "no event of the batch beside the foreign value"
    );
    assert!(s.trees.tree(TreeId::EventIds).is_empty());
    assert!(s.trees.tree(TreeId::EventMeta).is_empty());
    assert!(s.trees.tree(TreeId::Services).is_empty());
    assert_eq!(s.log.next_seq(), 1, "a failed batch takes no seq");

    // Without the foreign write the same batch commits, and a reopened store has all of it.
    s.trees.tree(TreeId::Events).remove(foreign).unwrap();
    let (txn, staged) = batch(&s, &rids);
    assert!(txn.commit().unwrap());
    s.log.committed(&staged);
    s.db.flush().unwrap();
    drop(s);

    let s = open(dir.path());
    let want: BTreeSet<String> = rids.iter().cloned().collect();
    assert_eq!(task_requests(&s.store), want);
    assert_eq!(event_ids(&s.log), want);
    assert_eq!(s.log.next_seq(), 3);
    assert_eq!(s.trees.tree(TreeId::Services).len(), 2);
    assert!(s.store.verify().unwrap().is_empty());
}

/// The crash test's writer: batches of tasks with their events, each committed and flushed,
/// until it is killed. Does nothing unless started by that test.
#[test]
fn crash_child_writes_batches_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut s = open(Path::new(&dir));
    loop {
        let first = s.log.next_seq();
        let rids: Vec<String> = (0..PER_BATCH as u64)
            .map(|n| format!("r{}", first + n))
            .collect();
        let (txn, staged) = batch(&s, &rids);
        txn.commit().unwrap();
        s.log.committed(&staged);
        s.db.flush().unwrap();
    }
}

#[test]
fn a_store_killed_mid_batch_reopens_with_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for cycle in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_writes_batches_until_killed", "--exact"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A different moment each cycle, so the kill lands somewhere else in a batch.
        let jitter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 300;
        std::thread::sleep(Duration::from_millis(300 + u64::from(jitter) + cycle * 100));
        child.kill().unwrap();
        child.wait().unwrap();

        let s = open(dir.path());
        let tasks = task_requests(&s.store);
        let events = event_ids(&s.log);
        assert_eq!(
            tasks, events,
            "cycle {cycle}: every task has its event and back"
        );
        assert_eq!(
            tasks.len() % PER_BATCH,
            0,
            "cycle {cycle}: whole batches only"
        );
        assert_eq!(s.trees.tree(TreeId::Services).len(), tasks.len());
        assert!(s.store.verify().unwrap().is_empty());
        assert!(
            tasks.len() >= seen,
            "cycle {cycle}: nothing committed was lost"
        );
        seen = tasks.len();
    }
    assert!(seen > 0, "the writer committed nothing in four runs");
}
