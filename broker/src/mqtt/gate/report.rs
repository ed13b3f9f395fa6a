//! How the gate reports what it refused: a counter, a notice to the coordinator (dropped when
//! its queue is full, so a flood never blocks a connection) and a warning line, at most
//! `LINES_PER_SECOND` per second for the whole process, then a count of the lines skipped.

use crate::metrics::Metrics;
use crate::notices::GateNotice;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const LINES_PER_SECOND: u32 = 10;

struct Window {
    start: Option<Instant>,
    lines: u32,
    skipped: u64,
}

static WINDOW: Mutex<Window> = Mutex::new(Window {
    start: None,
    lines: 0,
    skipped: 0,
});

/// Whether a warning may be written now; also returns how many were skipped in the last
/// window when a new one starts.
fn allow_line() -> (bool, u64) {
    let mut w = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut skipped = 0;
    if w.start
        .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
    {
        skipped = std::mem::take(&mut w.skipped);
        w.start = Some(now);
        w.lines = 0;
    }
    if w.lines < LINES_PER_SECOND {
        w.lines += 1;
        (true, skipped)
    } else {
        w.skipped += 1;
        (false, skipped)
    }
}

/// Shared by all connections of a gate.
pub(crate) struct Reporter {
    pub metrics: Arc<Metrics>,
    pub notices: mpsc::Sender<GateNotice>,
}

impl Reporter {
    /// Records one refused publish or subscribe.
    pub fn denied(
        &self,
        principal: &str,
        client_id: &str,
        action: &'static str,
        topic: &str,
        reason: &str,
    ) {
        self.metrics
            .inc("extbus_gate_denied_total", &[("action", action)]);
        let _ = self.notices.try_send(GateNotice::Denied {
            principal: principal.to_string(),
            client_id: client_id.to_string(),
            action,
            topic: topic.to_string(),
            reason: reason.to_string(),
        });
        let (write, skipped) = allow_line();
        if skipped > 0 {
            tracing::warn!(skipped, "gate refusals not logged in the last second");
        }
        if write {
            tracing::warn!(principal, client_id, action, topic, reason, "gate refused");
        }
    }

    /// Records a filter refused because a subscription cap (`cap`: connection or principal)
    /// was reached. Not a `security.denied` event: the client has the right, just too many.
    pub fn over_cap(
        &self,
        principal: &str,
        client_id: &str,
        filter: &str,
        cap: &str,
        limit: usize,
    ) {
        self.metrics
            .inc("extbus_gate_subscriptions_refused_total", &[("cap", cap)]);
        let (write, skipped) = allow_line();
        if skipped > 0 {
            tracing::warn!(skipped, "gate refusals not logged in the last second");
        }
        if write {
            tracing::warn!(
                principal,
                client_id,
                filter,
                cap,
                limit,
                "subscription cap reached"
            );
        }
    }

    /// Records an inbox publish above the payload limit, for a `payload_too_large` reply.
    pub fn oversized(
        &self,
        principal: &str,
        suffix: &str,
        size: usize,
        limit: usize,
        correlation_data: Option<&[u8]>,
        payload: &[u8],
    ) {
        self.metrics.inc("extbus_gate_oversized_total", &[]);
        // The JSON is not parsed: its `correlation_id` is looked for within the first `limit` bytes.
        let correlation_id = extbus_schema::correlation_scan::correlation_id_in_prefix(
            &payload[..payload.len().min(limit)],
        );
        let _ = self.notices.try_send(GateNotice::Oversized {
            principal: principal.to_string(),
            suffix: suffix.to_string(),
            size,
            limit,
            correlation_data: correlation_data.map(<[u8]>::to_vec),
            correlation_id,
        });
    }

    /// Records a refused CONNECT.
    pub fn connect_refused(&self, reason: &'static str) {
        self.metrics
            .inc("extbus_connect_refused_total", &[("reason", reason)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_limited_per_second() {
        let allowed = (0..100).filter(|_| allow_line().0).count();
        assert!(allowed <= LINES_PER_SECOND as usize, "{allowed}");
    }

    #[test]
    fn a_full_notice_queue_does_not_block() {
        let (tx, mut rx) = mpsc::channel(1);
        let r = Reporter {
            metrics: Arc::new(Metrics::new()),
            notices: tx,
        };
        for _ in 0..3 {
            r.denied("a", "c", "publish", "t", "no");
        }
        assert_eq!(
            r.metrics
                .get("extbus_gate_denied_total", &[("action", "publish")]),
            3
        );
        assert!(matches!(rx.try_recv(), Ok(GateNotice::Denied { .. })));
        assert!(rx.try_recv().is_err());
    }
}
