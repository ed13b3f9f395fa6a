//! Who is connected: open MQTT connections per principal and when each was last seen, kept by
//! the gate. A service whose owner has no connection is answered 503 at once instead of
//! waiting for its timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Open connections now.
    pub open: usize,
    /// Wall-clock ms of the last connect or disconnect.
    pub last_seen_ms: u64,
}

#[derive(Debug, Default)]
pub struct Presence {
    inner: Mutex<HashMap<String, Seen>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Presence {
    pub fn connected(&self, principal: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.entry(principal.to_string()).or_default();
        s.open += 1;
        s.last_seen_ms = now_ms();
    }

    pub fn disconnected(&self, principal: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get_mut(principal) {
            s.open = s.open.saturating_sub(1);
            s.last_seen_ms = now_ms();
        }
    }

    pub fn get(&self, principal: &str) -> Seen {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(principal).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_connection_until_the_last_leaves() {
        let p = Presence::default();
        assert_eq!(p.get("ext").open, 0);
        p.connected("ext");
        p.connected("ext");
        p.disconnected("ext");
        assert_eq!(p.get("ext").open, 1);
        p.disconnected("ext");
        p.disconnected("ext");
        let s = p.get("ext");
        assert_eq!(s.open, 0);
        assert!(s.last_seen_ms > 0);
        assert_eq!(p.get("other"), Seen::default());
    }
}
