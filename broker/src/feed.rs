//! The live feed of logged events for readers inside the broker (the HTTP event stream): the
//! coordinator hands each flushed batch's events over, in seq order, after they are durable.
//! A broadcast ring, so a slow reader never holds the coordinator; it finds out it lagged.
//! Each event's Server-Sent Events frame is encoded here once and shared by every reader.

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
    /// `id: <seq>\nevent: <type>\ndata: <CloudEvent JSON>\n\n`, sent as is by every reader.
    pub frame: Bytes,
}

/// One Server-Sent Events frame. `data` is compact JSON (one line); should it ever hold line
/// breaks, each line becomes a `data:` line of its own, as the format requires.
pub fn sse_frame(id: Option<u64>, kind: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    out.extend_from_slice(b"event: ");
    out.extend(kind.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
    out.push(b'\n');
    for line in data.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
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
                frame: sse_frame(Some(ev.seq), &ev.r#type, json),
            };
            // No receiver left is not an error: nobody is reading.
            let _ = self.tx.send(Arc::new(live));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sse_frame;

    #[test]
    fn frames_carry_id_event_and_one_data_line_per_line() {
        assert_eq!(
            &sse_frame(Some(7), "vm.create", br#"{"a":1}"#)[..],
            b"id: 7\nevent: vm.create\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &sse_frame(None, "cut", b"a\r\nb")[..],
            b"event: cut\ndata: a\ndata: b\n\n"
        );
    }
}
