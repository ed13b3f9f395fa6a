//! Failure throttling for credential checks, per source address and per principal. A key
//! may have `free_failures` failed checks (in flight or done); after that it is refused
//! without a check for a penalty that doubles with each further failure, and then gets one
//! probe at a time. Pure bookkeeping over caller-supplied milliseconds (the injected clock).

use crate::config::AuthConfig;
use std::collections::HashMap;
use std::net::IpAddr;

/// What a check is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// IPv4 address, or the /64 of an IPv6 address (one host usually owns a whole /64).
    Addr(IpAddr),
    Principal(String),
}

impl Key {
    pub fn addr(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Addr(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    let net = [s[0], s[1], s[2], s[3], 0, 0, 0, 0];
                    Key::Addr(IpAddr::V6(net.into()))
                }
            },
            v4 => Key::Addr(v4),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Entry {
    failures: u32,
    pending: u32,
    last_ms: u64,
    until_ms: u64,
}

pub struct Throttle {
    free: u32,
    base_ms: u64,
    max_ms: u64,
    forget_ms: u64,
    max_tracked: usize,
    map: HashMap<Key, Entry>,
}

impl Throttle {
    pub fn new(cfg: &AuthConfig) -> Throttle {
        Throttle {
            free: cfg.free_failures,
            base_ms: cfg.penalty_base_ms,
            max_ms: cfg.penalty_max_ms,
            forget_ms: cfg.forget_after_ms,
            max_tracked: cfg.max_tracked,
            map: HashMap::new(),
        }
    }

    /// Takes reloaded settings; the failures counted so far stay.
    pub fn set_limits(&mut self, cfg: &AuthConfig) {
        self.free = cfg.free_failures;
        self.base_ms = cfg.penalty_base_ms;
        self.max_ms = cfg.penalty_max_ms;
        self.forget_ms = cfg.forget_after_ms;
        self.max_tracked = cfg.max_tracked;
    }

    /// Admits a check counted against every key, or says how long until one may be tried.
    pub fn admit(&mut self, keys: &[Key], now: u64) -> Result<(), u64> {
        let mut wait = 0;
        for k in keys {
            let Some(e) = self.map.get_mut(k) else {
                continue;
            };
            if e.pending == 0
                && e.until_ms <= now
                && now.saturating_sub(e.last_ms) >= self.forget_ms
            {
                e.failures = 0;
            }
            if now < e.until_ms {
                wait = wait.max(e.until_ms - now);
            } else if e.failures + e.pending >= self.free && e.pending > 0 {
                // At the limit: one probe at a time; retry when it has been decided.
                wait = wait.max(self.base_ms);
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for k in keys {
            if let Some(e) = self.entry(k, now) {
                e.pending += 1;
            }
        }
        Ok(())
    }

    /// Ends an admitted check; `failed` counts it, and returns whether a key is now throttled.
    pub fn done(&mut self, keys: &[Key], failed: Option<bool>, now: u64) -> bool {
        let mut throttled = false;
        for k in keys {
            let Some(e) = self.map.get_mut(k) else {
                continue;
            };
            e.pending = e.pending.saturating_sub(1);
            match failed {
                Some(true) => {
                    e.failures = e.failures.saturating_add(1);
                    e.last_ms = now;
                    if e.failures >= self.free {
                        let doublings = (e.failures - self.free).min(20);
                        let penalty = self.base_ms.saturating_mul(1 << doublings);
                        e.until_ms = now + penalty.min(self.max_ms);
                        throttled = true;
                    }
                }
                Some(false) => {
                    e.failures = 0;
                    e.until_ms = 0;
                }
                None => {}
            }
        }
        throttled
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.map.len()
    }

    /// The entry of `k`, created if there is room (forgotten keys make room first). When the
    /// table is full of live keys, a new key goes untracked: the bounded queue still holds.
    fn entry(&mut self, k: &Key, now: u64) -> Option<&mut Entry> {
        if !self.map.contains_key(k) && self.map.len() >= self.max_tracked {
            let forget = self.forget_ms;
            self.map.retain(|_, e| {
                e.pending > 0 || e.until_ms > now || now.saturating_sub(e.last_ms) < forget
            });
            if self.map.len() >= self.max_tracked {
                return None;
            }
        }
        Some(self.map.entry(k.clone()).or_insert_with(|| Entry {
            last_ms: now,
            ..Entry::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&AuthConfig {
            free_failures: 3,
            penalty_base_ms: 1_000,
            penalty_max_ms: 4_000,
            forget_after_ms: 60_000,
            max_tracked: 4,
            ..AuthConfig::default()
        })
    }

    fn fail(t: &mut Throttle, keys: &[Key], now: u64) -> bool {
        t.admit(keys, now).unwrap();
        t.done(keys, Some(true), now)
    }

    #[test]
    fn failures_earn_a_doubling_penalty_and_then_one_probe() {
        let mut t = throttle();
        let a = [Key::addr("10.0.0.1".parse().unwrap())];
        let b = [Key::addr("10.0.0.2".parse().unwrap())];
        assert!(!fail(&mut t, &a, 0));
        assert!(!fail(&mut t, &a, 0));
        assert!(fail(&mut t, &a, 0));
        assert_eq!(t.admit(&a, 0), Err(1_000));
        assert_eq!(t.admit(&a, 999), Err(1));
        // Another address is not affected.
        t.admit(&b, 10).unwrap();
        t.done(&b, Some(false), 10);
        // Penalty over: one probe, the next waits for it.
        t.admit(&a, 1_000).unwrap();
        assert!(t.admit(&a, 1_000).is_err());
        assert!(t.done(&a, Some(true), 1_000));
        assert_eq!(t.admit(&a, 1_000), Err(2_000));
        assert!(fail(&mut t, &a, 3_000));
        assert_eq!(t.admit(&a, 3_000), Err(4_000));
        assert!(fail(&mut t, &a, 7_000));
        assert_eq!(t.admit(&a, 7_000), Err(4_000), "capped at penalty_max_ms");
        // A success clears the key; a long quiet time forgets it.
        t.admit(&a, 11_000).unwrap();
        t.done(&a, Some(false), 11_000);
        assert!(!fail(&mut t, &a, 11_000));
        assert!(!fail(&mut t, &a, 11_000));
        assert!(!fail(&mut t, &a, 80_000));
    }

    #[test]
    fn in_flight_checks_count_against_the_free_failures() {
        let mut t = throttle();
        let a = [Key::Principal("op".into())];
        for _ in 0..3 {
            t.admit(&a, 0).unwrap();
        }
        assert!(t.admit(&a, 0).is_err());
        // Abandoned checks (no verdict) free their place without counting.
        t.done(&a, None, 0);
        t.admit(&a, 0).unwrap();
    }

    #[test]
    fn every_key_must_admit_and_the_table_is_bounded() {
        let mut t = throttle();
        let p = Key::Principal("op".into());
        let addr = |i: u8| Key::addr(std::net::Ipv4Addr::new(10, 0, 0, i).into());
        for i in 0..3 {
            fail(&mut t, &[addr(i), p.clone()], 0);
        }
        assert!(t.admit(&[addr(9), p.clone()], 0).is_err());
        assert!(t.tracked() <= 4);
        for i in 10..20 {
            t.admit(&[addr(i)], 0).unwrap();
        }
        assert!(t.tracked() <= 4);
        // IPv6 hosts count per /64; mapped IPv4 as IPv4.
        let v6a = Key::addr("2001:db8::1".parse().unwrap());
        let v6b = Key::addr("2001:db8::2".parse().unwrap());
        assert_eq!(v6a, v6b);
        assert_eq!(Key::addr("::ffff:10.0.0.1".parse().unwrap()), addr(1));
    }
}
