//! Who is connected: open MQTT connections per principal, and when each principal's last
//! connection closed, kept by the gate. A service whose owner has no connection is answered
//! 503 at once instead of waiting for its timeout. On an external bus connections are the
//! broker's: nobody is known to be absent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Presence {
    open: Mutex<HashMap<String, usize>>,
    untracked: AtomicBool,
    /// Unix ms at which each principal's last connection closed (since start; not persisted).
    left: Mutex<HashMap<String, u64>>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Presence {
    /// Connections are not seen here (external bus): `present` is always true.
    pub fn untracked(&self) {
        self.untracked.store(true, Ordering::Relaxed);
    }

    /// May `principal` be connected? (Known only where the gate counts connections.)
    pub fn present(&self, principal: &str) -> bool {
        self.untracked.load(Ordering::Relaxed) || self.open(principal) > 0
    }

    pub fn connected(&self, principal: &str) {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(principal.to_string()).or_default() += 1;
    }

    pub fn disconnected(&self, principal: &str) {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(principal) {
            *n -= 1;
            if *n == 0 {
                m.remove(principal);
                let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
                left.insert(principal.to_string(), unix_ms());
            }
        }
    }

    /// Open connections of `principal` now.
    pub fn open(&self, principal: &str) -> usize {
        let m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        m.get(principal).copied().unwrap_or(0)
    }

    /// When `principal` was last seen: `now_ms` while connected, else when its last
    /// connection closed; `None` if it has not been connected since start.
    pub fn last_seen(&self, principal: &str, now_ms: u64) -> Option<u64> {
        if self.open(principal) > 0 {
            return Some(now_ms);
        }
        let left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        left.get(principal).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_connection_until_the_last_leaves() {
        let p = Presence::default();
        assert_eq!(p.open("ext"), 0);
        p.connected("ext");
        p.connected("ext");
        p.disconnected("ext");
        assert_eq!(p.open("ext"), 1);
        p.disconnected("ext");
        p.disconnected("ext");
        assert_eq!(p.open("ext"), 0);
        assert_eq!(p.open("other"), 0);
        assert!(!p.present("ext"));
        p.untracked();
        assert!(p.present("ext") && p.present("other"));
        assert!(p.last_seen("ext", 7).is_some_and(|t| t > 7));
        assert_eq!(p.last_seen("other", 7), None);
        p.connected("ext");
        assert_eq!(p.last_seen("ext", 7), Some(7));
    }
}
