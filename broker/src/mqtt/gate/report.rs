//! How the gate reports what it refused: a counter, a notice to the coordinator (dropped when
//! its queue is full, so a flood never blocks a connection) and a warning line, at most
//! `LINES_PER_SECOND` per second for the whole process, then a count of the lines skipped.

use crate::log_limit::LineLimit;
use crate::metrics::Metrics;
use crate::notices::GateNotice;
use std::sync::Arc;
use tokio::sync::mpsc;

const LINES_PER_SECOND: u32 = 10;

/// The refusal lines of the whole process.
static REFUSALS: LineLimit = LineLimit::new(LINES_PER_SECOND);

fn allow_line() -> (bool, u64) {
    REFUSALS.allow()
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
        let a = crate::metrics::Action { action };
        self.metrics.gate_denied.get_or_create(&a).inc();
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
        cap: &'static str,
        limit: usize,
    ) {
        let c = crate::metrics::Cap { cap };
        self.metrics
            .gate_subscriptions_refused
            .get_or_create(&c)
            .inc();
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

    /// An extension now hears blocked-task notices on `filters`.
    pub fn listening(&self, principal: &str, filters: Vec<String>) {
        let _ = self.notices.try_send(GateNotice::Listening {
            principal: principal.to_string(),
            filters,
        });
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
        self.metrics.gate_oversized.inc();
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
        let r = crate::metrics::Reason { reason };
        self.metrics.connect_refused.get_or_create(&r).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_wide_limiter_holds_its_budget() {
        assert!((0..100).filter(|_| allow_line().0).count() <= LINES_PER_SECOND as usize);
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
