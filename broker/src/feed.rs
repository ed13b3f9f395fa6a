//! The live feed of logged events for readers inside the broker (the HTTP event stream): the
//! coordinator hands each flushed batch's events over, in seq order, after they are durable.
//! A broadcast ring, so a slow reader never holds the coordinator; it finds out it lagged.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// One logged event as stored.
#[derive(Debug)]
pub struct LiveEvent {
    pub seq: u64,
    pub org: String,
    pub kind: String,
    /// Its topic (`extbus/events/<org>/<entity>/<operation>`), for filter checks.
    pub topic: String,
    /// The CloudEvent JSON, the bytes stored.
    pub json: Bytes,
}

/// The coordinator's sending side; clones share one ring.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    /// The seq the next logged event will carry, as of the last batch handed over.
    next_seq: Arc<AtomicU64>,
}

impl Feed {
    /// A ring holding `capacity` events: how far one reader may fall behind.
    pub fn new(capacity: usize) -> Feed {
        Feed {
            tx: broadcast::channel(capacity.max(1)).0,
            next_seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts reading: every event handed over from now on, then the seq from which the log
    /// holds whatever the receiver will not see. Subscribe first, read the seq second: an
    /// event is either below that seq (in the log) or arrives on the receiver (or both).
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<LiveEvent>>, u64) {
        let rx = self.tx.subscribe();
        (rx, self.next_seq.load(Ordering::SeqCst))
    }

    /// Readers at this moment.
    pub fn readers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Hands over a durable batch's events; `next_seq` is the log's next seq after it.
    pub fn publish<'a>(
        &self,
        next_seq: u64,
        events: impl Iterator<Item = (&'a extbus_schema::CloudEvent, &'a Bytes)>,
    ) {
        self.next_seq.store(next_seq, Ordering::SeqCst);
        if self.tx.receiver_count() == 0 {
            return;
        }
        for (ev, json) in events {
            let live = LiveEvent {
                seq: ev.seq,
                org: ev.org.clone(),
                kind: ev.r#type.clone(),
                topic: extbus_schema::topics::events(&ev.org, &ev.r#type),
                json: json.clone(),
            };
            // No receiver left is not an error: nobody is reading.
            let _ = self.tx.send(Arc::new(live));
        }
    }
}
