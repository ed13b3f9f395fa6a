//! Credential checks shared by the MQTT gate and the HTTP listener. Known-good credentials
//! (cached) are answered inline; anything else passes the failure throttle (`throttle`), then
//! waits in a bounded queue for one of a fixed number of worker threads, each reusing its
//! argon2 work area (`hashing`). A full queue refuses at once; a check whose caller went away
//! (client hung up, future dropped) is skipped before hashing.

pub mod hashing;
pub mod throttle;

use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::metrics::Metrics;
use crate::principals::{Principal, Principals};
use hashing::Hasher;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use throttle::{Key, Throttle};
use tokio::sync::oneshot;

/// What is being presented.
#[derive(Debug, Clone)]
pub enum Creds {
    Named {
        name: String,
        secret: String,
    },
    /// A secret without a name (HTTP Bearer).
    Bearer {
        secret: String,
    },
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong name or secret.
    Bad,
    /// The verification queue is full: try again later.
    Busy,
    /// Too many recent failures from this address or for this principal.
    Throttled { retry_after_ms: u64 },
}

struct Job {
    creds: Creds,
    reply: oneshot::Sender<Option<Principal>>,
}

/// The shared credential checker.
pub struct Verifier {
    principals: Arc<Principals>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    throttle: Mutex<Throttle>,
    queue: SyncSender<Job>,
}

impl Verifier {
    /// Starts `cfg.workers` worker threads; they end when the verifier is dropped.
    pub fn start(
        principals: Arc<Principals>,
        cfg: &AuthConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Arc<Verifier> {
        let (tx, rx) = sync_channel::<Job>(cfg.queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..cfg.workers {
            let (rx, p, m) = (rx.clone(), principals.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("extbus-auth-{i}"))
                .spawn(move || work(&rx, &p, &m))
                .expect("spawning an auth worker thread");
        }
        Arc::new(Verifier {
            principals,
            clock,
            metrics,
            throttle: Mutex::new(Throttle::new(cfg)),
            queue: tx,
        })
    }

    /// A verifier with the default `[auth]` settings and wall-clock time.
    pub fn with_defaults(principals: Arc<Principals>, metrics: Arc<Metrics>) -> Arc<Verifier> {
        let clock = Arc::new(crate::clock::SystemClock);
        Self::start(principals, &AuthConfig::default(), clock, metrics)
    }

    /// Applies reloaded login-throttle settings (`auth.free_failures`, `penalty_*`,
    /// `forget_after_ms`, `max_tracked`); workers and queue stay as started.
    pub fn set_limits(&self, cfg: &AuthConfig) {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_limits(cfg);
    }

    pub fn principals(&self) -> &Arc<Principals> {
        &self.principals
    }

    fn count(&self, result: &'static str) {
        let r = crate::metrics::CheckResult { result };
        self.metrics.auth_checks.get_or_create(&r).inc();
    }

    /// Checks `creds` from `peer` (if known). Dropping the future abandons the check.
    pub async fn check(&self, peer: Option<IpAddr>, creds: Creds) -> Result<Principal, Refused> {
        let cached = match &creds {
            Creds::Named { name, secret } => self.principals.verify_cached(name, secret),
            Creds::Bearer { secret } => self.principals.bearer_cached(secret),
        };
        if let Some(p) = cached {
            self.count("cached");
            return Ok(p);
        }
        let mut keys: Vec<Key> = peer.map(Key::addr).into_iter().collect();
        if let Creds::Named { name, .. } = &creds {
            if self.principals.may_log_in(name) {
                keys.push(Key::Principal(name.clone()));
            } else {
                // No such principal: nothing to hash, but it counts against the address.
                self.admit(&keys)?;
                self.finish(&keys, Some(true));
                self.count("bad");
                return Err(Refused::Bad);
            }
        }
        self.admit(&keys)?;
        let (reply, answer) = oneshot::channel();
        self.metrics.auth_queue.inc();
        if let Err(e) = self.queue.try_send(Job { creds, reply }) {
            self.metrics.auth_queue.dec();
            self.finish(&keys, None);
            let full = matches!(e, TrySendError::Full(_));
            self.count(if full { "busy" } else { "stopped" });
            return Err(Refused::Busy);
        }
        // Ends the throttle's in-flight count even if this future is dropped while waiting.
        let mut pending = Pending {
            verifier: self,
            keys,
            failed: None,
        };
        let Ok(verdict) = answer.await else {
            // The worker is gone (the broker is stopping): not the client's failure.
            self.count("stopped");
            return Err(Refused::Busy);
        };
        pending.failed = Some(verdict.is_none());
        drop(pending);
        match verdict {
            Some(p) => {
                self.count("ok");
                Ok(p)
            }
            None => {
                self.count("bad");
                Err(Refused::Bad)
            }
        }
    }

    fn admit(&self, keys: &[Key]) -> Result<(), Refused> {
        let now = self.clock.now_ms();
        let r = self.throttle.lock().unwrap().admit(keys, now);
        r.map_err(|retry_after_ms| {
            self.count("throttled");
            Refused::Throttled { retry_after_ms }
        })
    }

    fn finish(&self, keys: &[Key], failed: Option<bool>) {
        let now = self.clock.now_ms();
        let throttled = self.throttle.lock().unwrap().done(keys, failed, now);
        if throttled {
            self.metrics.auth_throttled.inc();
            tracing::debug!(?keys, "credential failures: throttled");
        }
    }
}

struct Pending<'a> {
    verifier: &'a Verifier,
    keys: Vec<Key>,
    failed: Option<bool>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.verifier.finish(&self.keys, self.failed);
    }
}

/// A worker: takes jobs until the verifier is gone; skips those nobody waits for.
fn work(rx: &Mutex<Receiver<Job>>, principals: &Principals, metrics: &Metrics) {
    let mut hasher = Hasher::default();
    loop {
        let job = match rx.lock().unwrap().recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        metrics.auth_queue.dec();
        if job.reply.is_closed() {
            let r = crate::metrics::CheckResult {
                result: "abandoned",
            };
            metrics.auth_checks.get_or_create(&r).inc();
            continue;
        }
        let before = hasher.runs;
        metrics.auth_running.inc();
        let verdict = match &job.creds {
            Creds::Named { name, secret } => principals.verify_with(name, secret, &mut hasher),
            Creds::Bearer { secret } => principals.verify_bearer_with(secret, &mut hasher),
        };
        metrics.auth_running.dec();
        metrics.auth_hashes.inc_by(hasher.runs - before);
        let _ = job.reply.send(verdict);
    }
}
