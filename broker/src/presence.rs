//! Who is connected: open MQTT connections per principal, kept by the gate. A service whose
//! owner has no connection is answered 503 at once instead of waiting for its timeout. On an
//! external bus connections are the broker's: nobody is known to be absent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Presence {
    open: Mutex<HashMap<String, usize>>,
    untracked: AtomicBool,
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
            }
        }
    }

    /// Open connections of `principal` now.
    pub fn open(&self, principal: &str) -> usize {
        let m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        m.get(principal).copied().unwrap_or(0)
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
    }
}
