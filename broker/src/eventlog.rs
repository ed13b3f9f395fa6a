//! The durable audit-event log: gap-free `seq` numbers, idempotent re-sends by (source, id),
//! range reads for replay, and retention by age and count in small chunks.
//! Writes are staged per coordinator batch and applied before the batch's single flush.
//! The highest seq ever written is kept apart from the events, so numbering never restarts
//! after retention has emptied the log.

use bytes::Bytes;
use extbus_schema::events::CloudEvent;
use std::collections::HashMap;

const EVENTS_TREE: &str = "events";
const IDS_TREE: &str = "event-ids";
const META_TREE: &str = "event-meta";
/// The highest seq written, big-endian; never lowered.
const HIGH_WATER: &[u8] = b"high_water";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event store: {0}")]
    Store(#[from] sled::Error),
    #[error("event store holds an unreadable event at seq {seq}: {why}")]
    Corrupt { seq: u64, why: String },
}

pub struct EventLog {
    events: sled::Tree,
    ids: sled::Tree,
    meta: sled::Tree,
    next_seq: u64,
}

/// Events staged by one batch, not yet written.
#[derive(Default)]
pub struct Staged {
    events: Vec<CloudEvent>,
    ids: HashMap<Vec<u8>, u64>,
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

impl EventLog {
    pub fn open(db: &sled::Db) -> Result<Self, LogError> {
        let events = db.open_tree(EVENTS_TREE)?;
        let ids = db.open_tree(IDS_TREE)?;
        let meta = db.open_tree(META_TREE)?;
        let last = events.last()?.map_or(0, |(k, _)| seq_of(&k));
        let high_water = meta.get(HIGH_WATER)?.map_or(0, |v| seq_of(&v));
        Ok(EventLog {
            events,
            ids,
            meta,
            next_seq: last.max(high_water) + 1,
        })
    }

    /// The seq the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Stamps `ev` with the next seq and stages it; a re-send of an already logged
    /// (source, id) returns the logged event instead and stages nothing.
    pub fn stage(
        &mut self,
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
                let seq = u64::from_be_bytes(seq.as_ref().try_into().unwrap_or([0; 8]));
                if let Some(prior) = self.get(seq)? {
                    return Ok((prior, false));
                }
            }
            staged.ids.insert(key, self.next_seq);
        }
        ev.seq = self.next_seq;
        self.next_seq += 1;
        staged.events.push(ev.clone());
        Ok((ev, true))
    }

    /// Stamps `ev` with the next seq and stages it, without de-duplication (the broker's own
    /// events have fresh ids) and without handing a copy back.
    pub fn stage_fresh(&mut self, staged: &mut Staged, mut ev: CloudEvent) {
        ev.seq = self.next_seq;
        self.next_seq += 1;
        staged.events.push(ev);
    }

    /// Writes a batch's staged events (the caller flushes the db once afterwards) and keeps
    /// their JSON in `staged` for publishing.
    pub fn write(&self, staged: &mut Staged) -> Result<(), LogError> {
        if staged.events.is_empty() {
            return Ok(());
        }
        let mut evb = sled::Batch::default();
        staged.encoded.clear();
        for ev in &staged.events {
            let json = Bytes::from(serde_json::to_vec(ev).unwrap_or_default());
            evb.insert(&ev.seq.to_be_bytes(), json.as_ref());
            staged.encoded.push(json);
        }
        self.events.apply_batch(evb)?;
        // In the same flush as the events, after them: sled recovers a prefix of its log, so
        // the mark is never durable without the events it covers.
        if let Some(last) = staged.events.last() {
            self.meta.insert(HIGH_WATER, &last.seq.to_be_bytes())?;
        }
        // An empty sled batch still takes the store's write lock and a log reservation.
        if !staged.ids.is_empty() {
            let mut idb = sled::Batch::default();
            for (k, seq) in &staged.ids {
                idb.insert(k.as_slice(), &seq.to_be_bytes());
            }
            self.ids.apply_batch(idb)?;
        }
        Ok(())
    }

    /// Forgets staged seqs after a failed write, so numbering stays gap-free.
    pub fn rollback(&mut self, staged: &Staged) {
        if let Some(first) = staged.events.first() {
            self.next_seq = first.seq;
        }
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

    /// Deletes at most `chunk` events that are older than `max_age_ms` or beyond `max_count`
    /// (0 disables either). Returns how many were removed; call again while it returns `chunk`.
    pub fn enforce_retention(
        &self,
        now_ms: u64,
        max_age_ms: u64,
        max_count: u64,
        chunk: usize,
    ) -> Result<usize, LogError> {
        let len = self.count()?;
        let over_count = if max_count > 0 {
            len.saturating_sub(max_count)
        } else {
            0
        };
        let cutoff = if max_age_ms > 0 {
            now_ms.saturating_sub(max_age_ms)
        } else {
            0
        };
        let mut evb = sled::Batch::default();
        let mut idb = sled::Batch::default();
        let mut removed = 0usize;
        for item in self.events.iter() {
            if removed >= chunk {
                break;
            }
            let (k, v) = item?;
            let ev: Option<CloudEvent> = serde_json::from_slice(&v).ok();
            let old = ev.as_ref().is_some_and(|e| e.time < cutoff);
            if (removed as u64) < over_count || old || ev.is_none() {
                evb.remove(k);
                if let Some(ev) = ev {
                    idb.remove(id_key(&ev.source, &ev.id));
                }
                removed += 1;
            } else {
                break;
            }
        }
        if removed > 0 {
            self.events.apply_batch(evb)?;
            self.ids.apply_batch(idb)?;
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

    fn append(log: &mut EventLog, ids: &[&str], time: u64) -> Vec<u64> {
        let mut staged = Staged::default();
        let seqs = ids
            .iter()
            .map(|id| log.stage(&mut staged, event(id, time), true).unwrap().0.seq)
            .collect();
        log.write(&mut staged).unwrap();
        seqs
    }

    #[test]
    fn numbering_continues_after_retention_empties_the_log_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut log = EventLog::open(&db).unwrap();
        assert_eq!(append(&mut log, &["a", "b", "c"], 1_000), [1, 2, 3]);
        // Everything is older than the age limit: the log empties.
        assert_eq!(log.enforce_retention(10_000, 5_000, 0, 100).unwrap(), 3);
        assert_eq!((log.first_seq().unwrap(), log.count().unwrap()), (None, 0));
        db.flush().unwrap();
        drop(log);

        let mut log = EventLog::open(&db).unwrap();
        assert_eq!(log.next_seq(), 4);
        // The expired ids are free again, but they get new seqs.
        assert_eq!(append(&mut log, &["a", "d"], 20_000), [4, 5]);
        assert_eq!(log.count().unwrap(), 2);
        drop(log);
        let log = EventLog::open(&db).unwrap();
        assert_eq!(log.next_seq(), 6);
    }
}
