//! The event log on real sled: numbering, retention, chunks, old stores, and a model check.

use super::*;

fn event(id: &str, time: u64) -> CloudEvent {
    serde_json::from_value(serde_json::json!({
        "specversion": "1.0", "id": id, "source": "urn:test", "type": "vm.create",
        "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
        "seq": 0, "org": "acme"
    }))
    .map(|mut e: CloudEvent| {
        e.time = time;
        e
    })
    .unwrap()
}

/// A new store in a temp dir (kept while the first value lives) and its log.
fn fresh() -> (tempfile::TempDir, sled::Db, Trees, EventLog) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let (trees, log) = open(&db);
    (dir, db, trees, log)
}

fn open(db: &sled::Db) -> (Trees, EventLog) {
    let trees = Trees::open(db).unwrap();
    let log = EventLog::open(&trees).unwrap();
    (trees, log)
}

fn append(trees: &Trees, log: &mut EventLog, ids: &[&str], time: u64) -> Vec<u64> {
    append_events(trees, log, ids.iter().map(|id| event(id, time)).collect())
}

fn retention(trees: &Trees, log: &EventLog, now: u64, age: u64, count: u64) -> usize {
    let mut txn = Txn::new(trees.clone());
    let n = log
        .enforce_retention(&mut txn, &log.begin(), now, age, count, 100)
        .unwrap();
    txn.commit().unwrap();
    n
}

#[test]
fn numbering_continues_after_retention_empties_the_log_and_a_reopen() {
    let (_dir, db, trees, mut log) = fresh();
    assert_eq!(append(&trees, &mut log, &["a", "b", "c"], 1_000), [1, 2, 3]);
    // Everything is older than the age limit: the log empties.
    assert_eq!(retention(&trees, &log, 10_000, 5_000, 0), 3);
    assert_eq!((log.first_seq().unwrap(), log.count().unwrap()), (None, 0));
    db.flush().unwrap();
    drop(log);

    let (trees, mut log) = open(&db);
    assert_eq!(log.next_seq(), 4);
    // The expired ids are free again, but they get new seqs.
    assert_eq!(append(&trees, &mut log, &["a", "d"], 20_000), [4, 5]);
    assert_eq!(log.count().unwrap(), 2);
    drop(log);
    let (_, log) = open(&db);
    assert_eq!(log.next_seq(), 6);
}

#[test]
fn retention_by_count_counts_the_batch_and_frees_the_ids_it_removes() {
    let (_dir, _db, trees, mut log) = fresh();
    append(&trees, &mut log, &["a", "b"], 1_000);
    // A batch that stages two more; with at most 3 kept, seq 1 goes in the same txn.
    let mut staged = log.begin();
    for id in ["c", "d"] {
        log.stage(&mut staged, event(id, 2_000), true).unwrap();
    }
    let mut txn = Txn::new(trees.clone());
    log.write(&mut staged, &mut txn);
    let n = log
        .enforce_retention(&mut txn, &staged, 3_000, 0, 3, 100)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(log.first_seq().unwrap(), Some(1), "nothing before commit");
    txn.commit().unwrap();
    log.committed(&staged);
    assert_eq!(
        (log.first_seq().unwrap(), log.count().unwrap()),
        (Some(2), 3)
    );
    // "a" is forgotten with its event, so it is logged again under a new seq; "b" is not.
    assert_eq!(append(&trees, &mut log, &["a", "b"], 4_000), [5, 2]);
}

#[test]
fn a_batch_that_fails_to_commit_leaves_numbering_where_it_was() {
    let (_dir, _db, trees, mut log) = fresh();
    append(&trees, &mut log, &["a"], 1_000);
    // Someone else wrote seq 2 behind the log's back: the batch must not overwrite it.
    trees
        .tree(TreeId::Events)
        .insert(2u64.to_be_bytes(), b"{}".to_vec())
        .unwrap();
    let mut staged = log.begin();
    log.stage(&mut staged, event("b", 2_000), true).unwrap();
    let mut txn = Txn::new(trees.clone());
    log.write(&mut staged, &mut txn);
    assert!(txn.commit().is_err());
    assert_eq!(log.next_seq(), 2);
    let ids = trees.tree(TreeId::EventIds);
    assert!(ids.get(id_key("urn:test", "b")).unwrap().is_none());
}

/// An event of about `pad` more bytes than `event`'s.
fn padded(id: &str, time: u64, pad: usize) -> CloudEvent {
    let mut e = event(id, time);
    e.data = serde_json::json!({ "pad": "x".repeat(pad) });
    e
}

fn append_events(trees: &Trees, log: &mut EventLog, events: Vec<CloudEvent>) -> Vec<u64> {
    let mut staged = log.begin();
    let seqs = events
        .into_iter()
        .map(|ev| log.stage(&mut staged, ev, true).unwrap().seq)
        .collect();
    let mut txn = Txn::new(trees.clone());
    log.write(&mut staged, &mut txn);
    txn.commit().unwrap();
    log.committed(&staged);
    seqs
}

fn all(log: &EventLog) -> Vec<(u64, String)> {
    let (events, _, more) = log.read(0, usize::MAX, usize::MAX, |_| true).unwrap();
    assert!(!more);
    events.into_iter().map(|e| (e.seq, e.id)).collect()
}

#[test]
fn a_batch_shares_keys_and_every_event_reads_back_from_any_seq() {
    let (_dir, _db, trees, mut log) = fresh();
    let ids: Vec<String> = (0..60).map(|i| format!("e{i}")).collect();
    let seqs = append_events(
        &trees,
        &mut log,
        ids.iter().map(|id| padded(id, 1_000, 300)).collect(),
    );
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    let keys = trees.tree(TreeId::Events).len();
    assert!(
        keys > 1 && keys <= 10,
        "60 events of ~550 B under {keys} keys"
    );
    for from in 1..=60u64 {
        let (page, next, more) = log.read(from, 7, usize::MAX, |_| true).unwrap();
        let want: Vec<u64> = (from..=60).take(7).collect();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
        assert_eq!((next, more), (from + want.len() as u64, from + 7 <= 60));
        assert_eq!(log.get(from).unwrap().unwrap().id, ids[from as usize - 1]);
    }
    assert!(log.get(61).unwrap().is_none());
    assert_eq!(
        (log.first_seq().unwrap(), log.count().unwrap()),
        (Some(1), 60)
    );
    // A re-send of a logged id finds its event inside a shared value.
    let again = append_events(&trees, &mut log, vec![padded("e33", 2_000, 10)]);
    assert_eq!(again, [34]);
}

#[test]
fn a_store_of_one_key_per_event_reads_on_with_shared_keys_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let trees = Trees::open(&db).unwrap();
    // As stores were written before keys were shared: each event alone under its seq, and
    // (oldest stores) no high-water mark.
    for seq in 1..=5u64 {
        let mut e = event(&format!("old{seq}"), 1_000);
        e.seq = seq;
        let json = serde_json::to_vec(&e).unwrap();
        trees
            .tree(TreeId::Events)
            .insert(seq.to_be_bytes(), json)
            .unwrap();
        let ids = trees.tree(TreeId::EventIds);
        ids.insert(id_key("urn:test", &e.id), &seq.to_be_bytes())
            .unwrap();
    }
    let mut log = EventLog::open(&trees).unwrap();
    assert_eq!(log.next_seq(), 6);
    let new: Vec<CloudEvent> = (0..10).map(|i| event(&format!("new{i}"), 2_000)).collect();
    assert_eq!(
        append_events(&trees, &mut log, new),
        (6..=15).collect::<Vec<_>>()
    );
    assert_eq!(
        all(&log).iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=15).collect::<Vec<_>>()
    );
    assert_eq!(
        append_events(&trees, &mut log, vec![event("old3", 3_000)]),
        [3]
    );
    // Count retention crosses from the old keys into the shared ones.
    assert_eq!(retention(&trees, &log, 5_000, 0, 8), 7);
    assert_eq!(log.first_seq().unwrap(), Some(8));
    assert_eq!(all(&log).first().unwrap(), &(8, "new2".to_string()));
    // The ids of removed events are free again; the old3 re-send gets a new seq now.
    assert_eq!(
        append_events(&trees, &mut log, vec![event("old3", 6_000)]),
        [16]
    );
}

#[test]
fn retention_inside_a_shared_key_keeps_the_rest_under_its_first_seq() {
    let (_dir, db, trees, mut log) = fresh();
    let events = (1..=20)
        .map(|i| event(&format!("e{i}"), 1_000 + i))
        .collect();
    append_events(&trees, &mut log, events);
    assert!(trees.tree(TreeId::Events).len() < 20);
    // By age: events 1..=6 are older than 1_007.
    assert_eq!(retention(&trees, &log, 11_007, 10_000, 0), 6);
    assert_eq!(log.first_seq().unwrap(), Some(7));
    assert!(log.get(6).unwrap().is_none());
    assert_eq!(log.get(7).unwrap().unwrap().id, "e7");
    assert_eq!(log.count().unwrap(), 14);
    // e7 is still logged (its re-send is a duplicate); e6 is not.
    assert_eq!(
        append_events(&trees, &mut log, vec![event("e7", 9_000)]),
        [7]
    );
    assert_eq!(
        append_events(&trees, &mut log, vec![event("e6", 9_000)]),
        [21]
    );
    drop(log);
    // Reopened without the high-water mark: the last value's last event numbers on.
    trees.tree(TreeId::EventMeta).clear().unwrap();
    let (_, log) = open(&db);
    assert_eq!(log.next_seq(), 22);
}

#[test]
fn an_unreadable_value_is_an_error_for_readers_and_goes_with_retention() {
    let (_dir, _db, trees, mut log) = fresh();
    append(&trees, &mut log, &["a", "b"], 1_000);
    // Both events share key 1; a value cut inside its second event's length.
    let events = trees.tree(TreeId::Events);
    assert_eq!(events.len(), 1);
    events
        .insert(1u64.to_be_bytes(), &[0u8, 0, 0, 9][..])
        .unwrap();
    assert!(matches!(log.get(2), Err(LogError::Corrupt { seq: 1, .. })));
    assert!(log.read(1, 10, usize::MAX, |_| true).is_err());
    // Nothing is over the limits, but what cannot be read goes, and reading works again.
    assert_eq!(retention(&trees, &log, 1_000, 0, 5), 1);
    assert_eq!(all(&log), []);
    assert_eq!(append(&trees, &mut log, &["c"], 2_000), [3]);
}

mod model {
    //! Random batches and retention against a plain list of what should be held.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Events of these pad sizes; ids drawn from a small set, so some are re-sends.
        Append(Vec<(u8, usize)>),
        Count(u64),
        Age(u64),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec((0u8..40, 0usize..1500), 1..40).prop_map(Op::Append),
            1 => (0u64..60).prop_map(Op::Count),
            1 => (0u64..30).prop_map(Op::Age),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn the_log_holds_what_a_list_would(ops in proptest::collection::vec(op(), 1..14)) {
            let (_dir, db, mut trees, mut log) = fresh();
            // (seq, id, time) held, and the next seq.
            let mut held: Vec<(u64, String, u64)> = Vec::new();
            let mut next = 1u64;
            let mut clock = 0u64;
            for op in ops {
                match op {
                    Op::Append(evs) => {
                        let mut batch: Vec<CloudEvent> = Vec::new();
                        let mut want = Vec::new();
                        for (id, pad) in evs {
                            clock += 1;
                            let id = format!("i{id}");
                            let prior = held.iter().find(|h| h.1 == id).map(|h| h.0)
                                .or_else(|| batch.iter().position(|e| e.id == id).map(|p| want[p]));
                            want.push(prior.unwrap_or_else(|| {
                                held.push((next, id.clone(), clock));
                                next += 1;
                                next - 1
                            }));
                            batch.push(padded(&id, clock, pad));
                        }
                        prop_assert_eq!(append_events(&trees, &mut log, batch), want);
                    }
                    Op::Count(c) => {
                        let n = retention(&trees, &log, clock, 0, c.max(1));
                        let drop = held.len().saturating_sub(c.max(1) as usize).min(100);
                        prop_assert_eq!(n, drop);
                        held.drain(..drop);
                    }
                    Op::Age(a) => {
                        let cutoff = clock.saturating_sub(a + 1);
                        let n = retention(&trees, &log, clock, a + 1, 0);
                        let drop = held.iter().take_while(|h| h.2 < cutoff).count().min(100);
                        prop_assert_eq!(n, drop);
                        held.drain(..drop);
                    }
                    Op::Reopen => {
                        drop(log);
                        (trees, log) = open(&db);
                    }
                }
                let got: Vec<(u64, String)> = all(&log);
                let want: Vec<(u64, String)> = held.iter().map(|h| (h.0, h.1.clone())).collect();
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(log.first_seq().unwrap(), held.first().map(|h| h.0));
                prop_assert_eq!(log.count().unwrap(), held.len() as u64);
                prop_assert_eq!(log.next_seq(), next);
                for h in &held {
                    prop_assert_eq!(log.get(h.0).unwrap().map(|e| e.id), Some(h.1.clone()));
                }
            }
        }
    }
}
