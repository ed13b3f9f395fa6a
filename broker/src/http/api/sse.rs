//! `GET /api/events/stream`: stored events from `from_seq` (or after `Last-Event-ID`), then
//! live ones, as Server-Sent Events (`id:` seq, `event:` type, `data:` the CloudEvent). The
//! live feed is joined before the replay starts and events are deduplicated by seq, so each
//! seq the reader may see arrives once and in order. Replay pages are `events/replay` commands
//! (the same org rules as over MQTT); live events get the same check. A reader that falls
//! `http.sse_buffer` events behind is sent `event: cut` with the seq to resume from, and closed.
//! Live events go out as the feed's shared frames; those ready together go in one write.

use super::{error, Api};
use crate::feed::{sse_frame, LiveEvent};
use crate::metrics::Metrics;
use crate::principals::Principal;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use extbus_schema::{topics, CommandError, ErrorCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::sync::watch;

/// One reader's place in the stream.
struct Reader {
    api: Arc<Api>,
    metrics: Arc<Metrics>,
    principal: Principal,
    filter: String,
    limit: Option<Value>,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    /// Every seq below it was sent or is not for this reader.
    cursor: u64,
    page: VecDeque<Value>,
    /// Where the replay continues once `page` is sent.
    page_next: u64,
    /// Replaying from the store; else following the feed.
    replaying: bool,
    /// The feed has not yet delivered since the replay ended: a lag now means the replay was
    /// slow, not the reader, so it replays again instead of being cut.
    caught_up: bool,
    draining: watch::Receiver<bool>,
    /// A quiet stream sends a `:` comment this often.
    keepalive: Duration,
    /// What the feed said while a chunk was being gathered, for once that chunk is sent.
    lagged: Option<RecvError>,
    done: bool,
}

/// Bytes gathered into one write at most (a burst of live events, a replay page's events).
/// hyper queues at most 16 buffers (a chunk and its framing) per connection for a reader that
/// does not keep up, so this also bounds what one stream holds beside the shared feed.
const CHUNK: usize = 8 * 1024;

/// Counts an open stream for as long as it lives.
struct Open(Arc<Metrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.sse_streams.dec();
    }
}

/// Answers the request: an error status if the first replay page is refused, else the stream.
pub(super) async fn open(
    st: &crate::http::HttpState,
    principal: &Principal,
    headers: &HeaderMap,
    mut body: Value,
) -> Response {
    // Last-Event-ID is the seq the reader has; it wins over from_seq.
    if let Some(v) = headers.get("last-event-id") {
        let Some(seq) = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) else {
            return error(CommandError::new(
                ErrorCode::SchemaViolation,
                "Last-Event-ID must be an event's seq",
            ));
        };
        body["from_seq"] = json!(seq.saturating_add(1));
    }
    let (live, next) = st.api.feed.subscribe();
    if body.get("from_seq").is_none() {
        body["from_seq"] = json!(next);
    }
    let filter = body["filter"]
        .as_str()
        .unwrap_or(topics::EVENTS_ALL)
        .to_string();
    let mut reader = Reader {
        api: st.api.clone(),
        metrics: st.metrics.clone(),
        principal: principal.clone(),
        filter,
        limit: body.get("limit").cloned(),
        live,
        cursor: body["from_seq"].as_u64().unwrap_or(0),
        page: VecDeque::new(),
        page_next: 0,
        replaying: true,
        caught_up: false,
        draining: st.draining.clone(),
        keepalive: st.api.keepalive,
        lagged: None,
        done: false,
    };
    // The first page goes through the command's checks before any byte of the stream.
    let page = reader
        .api
        .call(principal, "events/replay".into(), body)
        .await;
    if let Err(e) = reader.take_page(page) {
        return error(e);
    }
    st.metrics.sse_streams.inc();
    st.metrics.sse_streams_opened.inc();
    let open = Open(st.metrics.clone());
    let stream = futures::stream::unfold((reader, open), |(mut r, open)| async move {
        let chunk = r.next().await?;
        Some((Ok::<_, Infallible>(chunk), (r, open)))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

impl Reader {
    /// Takes in a replay reply: its events, and where the next page starts.
    fn take_page(&mut self, page: crate::link::Answer) -> Result<(), CommandError> {
        let mut page = page?;
        let next = page["next_seq"].as_u64().unwrap_or(self.cursor);
        if let Value::Array(events) = page["events"].take() {
            self.page.extend(events);
        }
        if page["more"] != true {
            self.replaying = false;
            self.caught_up = false;
        }
        // Events of this page not yet sent lie below `next`; it is taken once they are.
        self.page_next = next;
        if self.page.is_empty() {
            self.cursor = self.cursor.max(next);
        }
        Ok(())
    }

    /// The next bytes to send: as many ready events as fit in `CHUNK` (one write for a
    /// burst), a keep-alive comment after a quiet `keepalive`, or `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if !self.page.is_empty() {
                let mut out = BytesMut::new();
                while out.len() < CHUNK {
                    let Some(ev) = self.page.pop_front() else {
                        break;
                    };
                    let seq = ev["seq"].as_u64().unwrap_or(0);
                    let fresh = seq >= self.cursor;
                    self.cursor = self.cursor.max(seq + 1);
                    if self.page.is_empty() {
                        self.cursor = self.cursor.max(self.page_next);
                    }
                    if fresh {
                        let kind = ev["type"].as_str().unwrap_or("event");
                        out.extend_from_slice(&sse_frame(
                            Some(seq),
                            kind,
                            ev.to_string().as_bytes(),
                        ));
                    }
                }
                if !out.is_empty() {
                    return Some(out.freeze());
                }
                continue;
            }
            if self.replaying {
                let body =
                    json!({"from_seq": self.cursor, "filter": self.filter, "limit": self.limit});
                let page = self
                    .api
                    .call(&self.principal, "events/replay".into(), body)
                    .await;
                if let Err(e) = self.take_page(page) {
                    self.done = true;
                    let data = json!({"error": e, "resume_from": self.cursor});
                    return Some(sse_frame(None, "error", data.to_string().as_bytes()));
                }
                continue;
            }
            let first = match self.lagged.take() {
                Some(r) => Err(r),
                None => {
                    tokio::select! {
                        r = self.live.recv() => r,
                        _ = tokio::time::sleep(self.keepalive) => return Some(Bytes::from_static(b": \n\n")),
                        _ = self.draining.wait_for(|d| *d) => return None,
                    }
                }
            };
            match first {
                Ok(ev) => {
                    self.caught_up = true;
                    let Some(frame) = self.take_live(&ev) else {
                        continue;
                    };
                    // Whatever else is ready joins it, up to a chunk.
                    let mut out: Option<BytesMut> = None;
                    while out.as_ref().map_or(frame.len(), BytesMut::len) < CHUNK {
                        let ev = match self.live.try_recv() {
                            Ok(ev) => ev,
                            Err(TryRecvError::Lagged(n)) => {
                                self.lagged = Some(RecvError::Lagged(n));
                                break;
                            }
                            Err(TryRecvError::Closed) => {
                                self.lagged = Some(RecvError::Closed);
                                break;
                            }
                            Err(TryRecvError::Empty) => break,
                        };
                        if let Some(more) = self.take_live(&ev) {
                            out.get_or_insert_with(|| BytesMut::from(&frame[..]))
                                .extend_from_slice(&more);
                        }
                    }
                    // A lone event goes out as the shared frame itself, uncopied.
                    return Some(out.map_or(frame, BytesMut::freeze));
                }
                Err(RecvError::Lagged(_)) if !self.caught_up => {
                    // Live events piled up during the replay: replay them from the store.
                    self.live = self.live.resubscribe();
                    self.replaying = true;
                }
                Err(RecvError::Lagged(_)) => {
                    self.done = true;
                    self.metrics.sse_streams_cut.inc();
                    let data = json!({"resume_from": self.cursor,
                        "message": "the reader fell too far behind; reconnect with from_seq = resume_from"});
                    return Some(sse_frame(None, "cut", data.to_string().as_bytes()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// A live event's frame, if it is new and for this reader; moves the cursor past it.
    fn take_live(&mut self, ev: &LiveEvent) -> Option<Bytes> {
        if ev.seq < self.cursor {
            return None;
        }
        self.cursor = ev.seq + 1;
        visible(&self.principal, &self.filter, ev).then(|| ev.frame.clone())
    }
}

/// The same org and filter rules as `events/replay`.
fn visible(p: &Principal, filter: &str, ev: &LiveEvent) -> bool {
    p.in_org(&ev.org) && topics::filter_matches(filter, &ev.topic)
}
