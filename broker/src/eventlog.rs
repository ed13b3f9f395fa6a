//! The durable audit-event log: gap-free `seq` numbers, idempotent re-sends by (source, id),
//! range reads for replay, and retention by age and count in small chunks.
//! A batch's events and retention are written into the coordinator's batch `Txn`, committed
//! with the batch's tasks in one sled transaction. The highest seq ever written is kept apart
//! from the events, so numbering never restarts after retention has emptied the log.

use bytes::Bytes;
use extbus_callouts::{CalloutError, TreeId, Trees, Txn};
use extbus_schema::events::CloudEvent;
use std::collections::HashMap;

/// The highest seq written, big-endian; never lowered.
const HIGH_WATER: &[u8] = b"high_water";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event store: {0}")]
    Store(#[from] sled::Error),
    #[error("event store: {0}")]
    Txn(#[from] CalloutError),
    #[error("event store holds an unreadable event at seq {seq}: {why}")]
    Corrupt { seq: u64, why: String },
}

pub struct EventLog {
    events: sled::Tree,
    ids: sled::Tree,
    /// The seq the next committed event gets; advanced only by `committed`.
    next_seq: u64,
}

/// Events staged by one batch, not yet committed (`EventLog::begin`).
pub struct Staged {
    events: Vec<CloudEvent>,
    ids: HashMap<Vec<u8>, u64>,
    /// The seq the next event of this batch gets.
    next_seq: u64,
    /// Each event's JSON as `write` stored it, so that publishing reuses the same bytes.
    encoded: Vec<Bytes>,
}

impl Staged {
    pub fn events(&self) -> &[CloudEvent] {
        &self.events
    }

    /// The events with their stored JSON (encoded again if `write` did not run).
    pub fn into_encoded(self) -> Vec<(CloudEvent, Bytes)> {
        let mut encoded = self.encoded.into_iter();
        self.events
            .into_iter()
            .map(|ev| {
                let bytes = encoded
                    .next()
                    .unwrap_or_else(|| Bytes::from(serde_json::to_vec(&ev).unwrap_or_default()));
                (ev, bytes)
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

fn id_key(source: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(source.len() + id.len() + 1);
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Past every 8-byte seq key: the end of a range over all events.
const AFTER_ALL: [u8; 9] = [0xff; 9];

impl EventLog {
    pub fn open(trees: &Trees) -> Result<Self, LogError> {
        let events = trees.tree(TreeId::Events).clone();
        let ids = trees.tree(TreeId::EventIds).clone();
        let meta = trees.tree(TreeId::EventMeta);
        let last = events.last()?.map_or(0, |(k, _)| seq_of(&k));
        let high_water = meta.get(HIGH_WATER)?.map_or(0, |v| seq_of(&v));
        Ok(EventLog {
            events,
            ids,
            next_seq: last.max(high_water) + 1,
        })
    }

    /// The seq the next committed event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Starts a batch's events, numbered from the next committed seq.
    pub fn begin(&self) -> Staged {
        Staged {
            events: Vec::new(),
            ids: HashMap::new(),
            next_seq: self.next_seq,
            encoded: Vec::new(),
        }
    }

    /// Stamps `ev` with the batch's next seq and stages it; a re-send of an already logged
    /// (source, id) returns the logged event instead and stages nothing.
    pub fn stage(
        &self,
        staged: &mut Staged,
        mut ev: CloudEvent,
        dedupe: bool,
    ) -> Result<(CloudEvent, bool), LogError> {
        if dedupe {
            let key = id_key(&ev.source, &ev.id);
            if let Some(seq) = staged.ids.get(&key) {
                let prior = staged.events.iter().find(|e| e.seq == *seq).cloned();
                if let Some(prior) = prior {
                    return Ok((prior, false));
                }
            }
            if let Some(seq) = self.ids.get(&key)? {
                if let Some(prior) = self.get(seq_of(&seq))? {
                    return Ok((prior, false));
                }
            }
            staged.ids.insert(key, staged.next_seq);
        }
        ev.seq = staged.next_seq;
        staged.next_seq += 1;
        staged.events.push(ev.clone());
        Ok((ev, true))
    }

    /// Stamps `ev` with the batch's next seq and stages it, without de-duplication (the
    /// broker's own events have fresh ids) and without handing a copy back.
    pub fn stage_fresh(&self, staged: &mut Staged, mut ev: CloudEvent) {
        ev.seq = staged.next_seq;
        staged.next_seq += 1;
        staged.events.push(ev);
    }

    /// Writes a batch's staged events into its `txn` and keeps their JSON in `staged` for
    /// publishing. A seq must be new to the log: the commit fails rather than overwrite one.
    pub fn write(&self, staged: &mut Staged, txn: &mut Txn) {
        let Some(last) = staged.events.last() else {
            return;
        };
        // In the same transaction as the events, so never durable without them.
        txn.insert(TreeId::EventMeta, HIGH_WATER, last.seq.to_be_bytes());
        staged.encoded.clear();
        for ev in &staged.events {
            let json = Bytes::from(serde_json::to_vec(ev).unwrap_or_default());
            txn.insert_new(TreeId::Events, ev.seq.to_be_bytes(), json.to_vec());
            staged.encoded.push(json);
        }
        for (k, seq) in &staged.ids {
            txn.insert(TreeId::EventIds, k.as_slice(), seq.to_be_bytes());
        }
    }

    /// Takes a batch's seqs as used, once its transaction has committed. A batch that failed
    /// to commit is not passed here, so its seqs go to the next batch: numbering stays
    /// gap-free.
    pub fn committed(&mut self, staged: &Staged) {
        self.next_seq = self.next_seq.max(staged.next_seq);
    }

    pub fn get(&self, seq: u64) -> Result<Option<CloudEvent>, LogError> {
        match self.events.get(seq.to_be_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| LogError::Corrupt {
                    seq,
                    why: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Up to `limit` events (and about `max_bytes` of them, at least one) with seq >=
    /// `from_seq` that `keep` accepts, the seq to continue from, and whether more may follow.
    /// Scans at most `limit * 20` events per call, so a sparse filter cannot stall the loop.
    pub fn read(
        &self,
        from_seq: u64,
        limit: usize,
        max_bytes: usize,
        keep: impl Fn(&CloudEvent) -> bool,
    ) -> Result<(Vec<CloudEvent>, u64, bool), LogError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut next = from_seq.max(self.first_seq()?.unwrap_or(from_seq));
        let budget = limit.saturating_mul(20).max(1000);
        for (scanned, item) in self.events.range(from_seq.to_be_bytes()..).enumerate() {
            let (k, v) = item?;
            let seq = seq_of(&k);
            if out.len() >= limit || scanned >= budget || (bytes >= max_bytes && !out.is_empty()) {
                return Ok((out, seq, true));
            }
            next = seq + 1;
            let ev: CloudEvent = serde_json::from_slice(&v).map_err(|e| LogError::Corrupt {
                seq,
                why: e.to_string(),
            })?;
            if keep(&ev) {
                bytes += v.len();
                out.push(ev);
            }
        }
        Ok((out, next, false))
    }

    pub fn first_seq(&self) -> Result<Option<u64>, LogError> {
        Ok(self.events.first()?.map(|(k, _)| seq_of(&k)))
    }

    /// Events held; seqs are gap-free and retention removes from the front, so no scan.
    pub fn count(&self) -> Result<u64, LogError> {
        Ok(self.first_seq()?.map_or(0, |first| self.next_seq - first))
    }

    /// Removes, in `txn`, at most `chunk` of the oldest events that are older than
    /// `max_age_ms` or beyond `max_count` (0 disables either), counting the batch's `staged`
    /// events as logged. Returns how many; call again next batch while it returns `chunk`.
    pub fn enforce_retention(
        &self,
        txn: &mut Txn,
        staged: &Staged,
        now_ms: u64,
        max_age_ms: u64,
        max_count: u64,
        chunk: usize,
    ) -> Result<usize, LogError> {
        let cutoff = if max_age_ms > 0 {
            now_ms.saturating_sub(max_age_ms)
        } else {
            0
        };
        let mut doomed = Vec::new();
        let mut over_count = None;
        for item in txn.iter_range(TreeId::Events, &[], &AFTER_ALL) {
            if doomed.len() >= chunk {
                break;
            }
            let (k, v) = item?;
            // Seqs are gap-free from the first one held, so the count needs no scan.
            let over = *over_count.get_or_insert_with(|| {
                let held = staged.next_seq.saturating_sub(seq_of(&k));
                if max_count > 0 {
                    held.saturating_sub(max_count)
                } else {
                    0
                }
            });
            let ev: Option<CloudEvent> = serde_json::from_slice(&v).ok();
            let old = ev.as_ref().is_some_and(|e| e.time < cutoff);
            if (doomed.len() as u64) < over || old || ev.is_none() {
                doomed.push((k, ev));
            } else {
                break;
            }
        }
        let removed = doomed.len();
        for (k, ev) in doomed {
            if let Some(ev) = ev {
                let id = id_key(&ev.source, &ev.id);
                // Only the mark of this very event: a later one may have taken the id over.
                if txn.get(TreeId::EventIds, &id)?.as_deref() == Some(k.as_slice()) {
                    txn.remove(TreeId::EventIds, id);
                }
            }
            txn.remove(TreeId::Events, k);
        }
        Ok(removed)
    }
}

fn seq_of(k: &[u8]) -> u64 {
    u64::from_be_bytes(k.try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
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

    fn open(db: &sled::Db) -> (Trees, EventLog) {
        let trees = Trees::open(db).unwrap();
        let log = EventLog::open(&trees).unwrap();
        (trees, log)
    }

    fn append(trees: &Trees, log: &mut EventLog, ids: &[&str], time: u64) -> Vec<u64> {
        let mut staged = log.begin();
        let seqs = ids
            .iter()
            .map(|id| log.stage(&mut staged, event(id, time), true).unwrap().0.seq)
            .collect();
        let mut txn = Txn::new(trees.clone());
        log.write(&mut staged, &mut txn);
        txn.commit().unwrap();
        log.committed(&staged);
        seqs
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
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (trees, mut log) = open(&db);
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
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (trees, mut log) = open(&db);
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
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (trees, mut log) = open(&db);
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
}
