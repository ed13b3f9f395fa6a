//! The durable audit-event log: gap-free `seq` numbers, idempotent re-sends by (source, id),
//! range reads for replay, and retention by age and count in small chunks.
//! A batch's events and retention are written into the coordinator's batch `Txn`, committed
//! with the batch's tasks in one sled transaction. The highest seq ever written is kept apart
//! from the events, so numbering never restarts after retention has emptied the log.
//! Consecutive events share a key (`chunk`): the events tree maps the first event's seq to
//! the value holding it and the events after it.

mod chunk;

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

/// Where `EventLog::stage` put an event: its seq and id, and false when it was a re-send of
/// one already logged (whose seq and id these are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub seq: u64,
    pub id: String,
    pub fresh: bool,
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
        let last = match events.last()? {
            Some((k, v)) => last_seq(&k, &v),
            None => 0,
        };
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
    /// (source, id) stages nothing and names the logged event instead.
    pub fn stage(
        &self,
        staged: &mut Staged,
        mut ev: CloudEvent,
        dedupe: bool,
    ) -> Result<Logged, LogError> {
        let prior = |e: &CloudEvent| Logged {
            seq: e.seq,
            id: e.id.clone(),
            fresh: false,
        };
        if dedupe {
            let key = id_key(&ev.source, &ev.id);
            if let Some(seq) = staged.ids.get(&key) {
                if let Some(e) = staged.events.iter().find(|e| e.seq == *seq) {
                    return Ok(prior(e));
                }
            }
            if let Some(seq) = self.ids.get(&key)? {
                if let Some(e) = self.get(seq_of(&seq))? {
                    return Ok(prior(&e));
                }
            }
            staged.ids.insert(key, staged.next_seq);
        }
        ev.seq = staged.next_seq;
        staged.next_seq += 1;
        let logged = Logged {
            seq: ev.seq,
            id: ev.id.clone(),
            fresh: true,
        };
        staged.events.push(ev);
        Ok(logged)
    }

    /// Stamps `ev` with the batch's next seq and stages it, without de-duplication (the
    /// broker's own events have fresh ids) and without handing a copy back.
    pub fn stage_fresh(&self, staged: &mut Staged, mut ev: CloudEvent) {
        ev.seq = staged.next_seq;
        staged.next_seq += 1;
        staged.events.push(ev);
    }

    /// Writes a batch's staged events into its `txn`, several to a key, and keeps each one's
    /// JSON in `staged` for publishing. A key must be new to the log: the commit fails rather
    /// than overwrite one.
    pub fn write(&self, staged: &mut Staged, txn: &mut Txn) {
        let Some(last) = staged.events.last() else {
            return;
        };
        // In the same transaction as the events, so never durable without them.
        txn.insert(TreeId::EventMeta, HIGH_WATER, last.seq.to_be_bytes());
        staged.encoded = staged
            .events
            .iter()
            .map(|ev| Bytes::from(serde_json::to_vec(ev).unwrap_or_default()))
            .collect();
        let values = chunk::pack(staged.encoded.iter().map(|b| &b[..]));
        for (first, value) in values {
            let seq = staged.events[first].seq;
            txn.insert_new(TreeId::Events, seq.to_be_bytes(), value);
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
        // The value holding `seq` is the one under the greatest key not after it.
        let Some(item) = self.events.range(..=seq.to_be_bytes()).next_back() else {
            return Ok(None);
        };
        let (k, v) = item?;
        for json in parts(&k, &v)? {
            let ev = decode(seq_of(&k), json)?;
            if ev.seq == seq {
                return Ok(Some(ev));
            }
        }
        Ok(None)
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
        let mut scanned = 0usize;
        // From the value that holds `from_seq`, which may start before it.
        let start = match self.events.range(..=from_seq.to_be_bytes()).next_back() {
            Some(item) => item?.0.to_vec(),
            None => from_seq.to_be_bytes().to_vec(),
        };
        for item in self.events.range(start..) {
            let (k, v) = item?;
            for json in parts(&k, &v)? {
                let ev = decode(seq_of(&k), json)?;
                if ev.seq < from_seq {
                    continue;
                }
                if out.len() >= limit
                    || scanned >= budget
                    || (bytes >= max_bytes && !out.is_empty())
                {
                    return Ok((out, ev.seq, true));
                }
                scanned += 1;
                next = ev.seq + 1;
                if keep(&ev) {
                    bytes += json.len();
                    out.push(ev);
                }
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
    /// A stored value losing only some of its events is written again under its new first
    /// seq.
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
        let mut over_count = None;
        let mut removed = 0usize;
        let mut freed = Vec::new();
        let mut edits: Vec<Edit> = Vec::new();
        'values: for item in txn.iter_range(TreeId::Events, &[], &AFTER_ALL) {
            if removed >= chunk {
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
            // An unreadable value goes whole.
            let Ok(jsons) = chunk::split(&v) else {
                removed += 1;
                edits.push((k, None));
                continue;
            };
            for (i, json) in jsons.iter().enumerate() {
                let ev: Option<CloudEvent> = serde_json::from_slice(json).ok();
                let old = ev.as_ref().is_some_and(|e| e.time < cutoff);
                let doomed = (removed as u64) < over || old || ev.is_none();
                if removed < chunk && doomed {
                    removed += 1;
                    freed.extend(ev);
                    continue;
                }
                if i > 0 {
                    // Seqs within a value are consecutive from its key.
                    let first = ev.map_or(seq_of(&k) + i as u64, |e| e.seq);
                    edits.push((k, Some((first, chunk::join(&jsons[i..])))));
                }
                break 'values;
            }
            edits.push((k, None));
        }
        for ev in freed {
            let id = id_key(&ev.source, &ev.id);
            // Only the mark of this very event: a later one may have taken the id over.
            if txn.get(TreeId::EventIds, &id)?.as_deref() == Some(&ev.seq.to_be_bytes()[..]) {
                txn.remove(TreeId::EventIds, id);
            }
        }
        for (k, rest) in edits {
            txn.remove(TreeId::Events, k);
            if let Some((first, value)) = rest {
                txn.insert(TreeId::Events, first.to_be_bytes(), value);
            }
        }
        Ok(removed)
    }
}

/// A stored value retention removes, with what it keeps of it (the value it stops in) under
/// the first kept seq.
type Edit = (Vec<u8>, Option<(u64, Vec<u8>)>);

/// The events' JSON a stored value holds.
fn parts<'v>(k: &[u8], v: &'v [u8]) -> Result<Vec<&'v [u8]>, LogError> {
    chunk::split(v).map_err(|why| LogError::Corrupt {
        seq: seq_of(k),
        why: why.to_string(),
    })
}

fn decode(seq: u64, json: &[u8]) -> Result<CloudEvent, LogError> {
    serde_json::from_slice(json).map_err(|e| LogError::Corrupt {
        seq,
        why: e.to_string(),
    })
}

/// The seq of the last event under key `k`; the key's own when its value is unreadable.
fn last_seq(k: &[u8], v: &[u8]) -> u64 {
    chunk::split(v)
        .ok()
        .and_then(|p| {
            p.last()
                .and_then(|j| serde_json::from_slice::<CloudEvent>(j).ok())
        })
        .map_or(seq_of(k), |e| e.seq)
}

fn seq_of(k: &[u8]) -> u64 {
    u64::from_be_bytes(k.try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests;
