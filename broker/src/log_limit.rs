//! Rate-limited log lines: at most a fixed number of lines per second for one kind of line,
//! then a count of the lines skipped, so a flood (bad logins, refusals, connection churn)
//! cannot fill the disk or drown the other lines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Window {
    start: Option<Instant>,
    lines: u32,
    skipped: u64,
}

/// A per-second budget of lines, shared process-wide (use it in a `static`).
pub struct LineLimit {
    per_second: u32,
    window: Mutex<Window>,
}

impl LineLimit {
    pub const fn new(per_second: u32) -> Self {
        LineLimit {
            per_second,
            window: Mutex::new(Window {
                start: None,
                lines: 0,
                skipped: 0,
            }),
        }
    }

    /// Whether a line may be written now; also how many were skipped in the previous window,
    /// once, when a new window starts.
    pub fn allow(&self) -> (bool, u64) {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> (bool, u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let mut skipped = 0;
        if w.start
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            skipped = std::mem::take(&mut w.skipped);
            w.start = Some(now);
            w.lines = 0;
        }
        if w.lines < self.per_second {
            w.lines += 1;
            (true, skipped)
        } else {
            w.skipped += 1;
            (false, skipped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_limit_is_logged_per_second_and_the_rest_counted() {
        let w = LineLimit::new(10);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let first: Vec<(bool, u64)> = (0..100).map(|i| w.allow_at(ms(i * 9))).collect();
        let allowed: Vec<usize> = (0..100).filter(|i| first[*i].0).collect();
        assert_eq!(allowed, (0..10).collect::<Vec<_>>());
        assert!(first.iter().all(|(_, skipped)| *skipped == 0));
        // Still inside the first second: refused.
        assert_eq!(w.allow_at(ms(999)), (false, 0));
        // The next window logs again and reports the 91 lines skipped in the last one.
        assert_eq!(w.allow_at(ms(1000)), (true, 91));
        let more = (1..20).filter(|i| w.allow_at(ms(1000 + i)).0).count();
        assert_eq!(more, 9);
        assert_eq!(w.allow_at(ms(2000)), (true, 10));
    }
}
