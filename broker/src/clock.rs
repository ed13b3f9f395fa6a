//! Time for deadlines and timers, injected so tests drive it: `SystemClock` in the binary,
//! `ManualClock` in tests (advanced by hand; sleepers wake when it passes their instant).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Resolves once `now_ms() >= at_ms`.
    fn sleep_until(&self, at_ms: u64) -> Sleep;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let wait = at_ms.saturating_sub(self.now_ms());
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            tx: Arc::new(tokio::sync::watch::channel(start_ms).0),
        }
    }

    pub fn advance(&self, ms: u64) {
        self.tx.send_modify(|t| *t += ms);
    }

    pub fn set(&self, ms: u64) {
        self.tx.send_modify(|t| *t = (*t).max(ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.tx.borrow()
    }

    fn sleep_until(&self, at_ms: u64) -> Sleep {
        let mut rx = self.tx.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, never wake.
            if rx.wait_for(|t| *t >= at_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_passed() {
        let c = ManualClock::new(1_000);
        let mut s = c.sleep_until(1_500);
        assert!(futures::poll!(&mut s).is_pending());
        c.advance(499);
        assert!(futures::poll!(&mut s).is_pending());
        c.advance(1);
        tokio::time::timeout(Duration::from_secs(1), s)
            .await
            .unwrap();
        assert_eq!(c.now_ms(), 1_500);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
