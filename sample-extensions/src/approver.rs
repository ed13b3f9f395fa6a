//! The approver: a callout extension with a small policy. It registers a rule for one
//! operation (default `vm.create`), then for every task blocked on it resumes small requests
//! and aborts large ones with the reason. Tasks already waiting when it starts are answered too.

use crate::{blocked_topic, serve_callouts, Bus, Opts};
use anyhow::Result;
use serde_json::{json, Value};
use std::future::Future;

/// What counts as small.
#[derive(Debug, Clone)]
pub struct Policy {
    pub operation: String,
    pub max_cpu: u64,
    pub max_memory_gb: u64,
    /// Stage order among the rules for the operation: higher runs first.
    pub priority: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            operation: "vm.create".into(),
            max_cpu: 8,
            max_memory_gb: 32,
            priority: 60,
        }
    }
}

impl Policy {
    pub fn from_opts(o: &Opts) -> Result<Policy> {
        let d = Policy::default();
        Ok(Policy {
            operation: o.get("operation", d.operation)?,
            max_cpu: o.get("max-cpu", d.max_cpu)?,
            max_memory_gb: o.get("max-memory-gb", d.max_memory_gb)?,
            priority: o.get("priority", d.priority)?,
        })
    }

    /// `("resume", body)` for a small request, `("abort", body)` with the reason otherwise.
    pub fn decide(&self, task: &Value) -> (&'static str, Value) {
        let cpu = task["data"]["cpu"].as_u64().unwrap_or(1);
        let mem = task["data"]["memory_gb"].as_u64().unwrap_or(1);
        if cpu > self.max_cpu {
            return (
                "abort",
                json!({"message": format!("{cpu} CPUs exceed the limit of {}", self.max_cpu)}),
            );
        }
        if mem > self.max_memory_gb {
            return (
                "abort",
                json!({"message": format!("{mem} GB of memory exceed the limit of {} GB", self.max_memory_gb)}),
            );
        }
        (
            "resume",
            json!({"message": format!("approved: {cpu} CPUs, {mem} GB"), "result": {"approved_by": "approver"}}),
        )
    }
}

/// Connected and registered; `serve` answers callouts.
pub struct Approver {
    bus: Bus,
    rx: tokio::sync::mpsc::UnboundedReceiver<crate::Msg>,
    policy: Policy,
}

impl Approver {
    /// Connects, registers the callout rule and subscribes to its notices.
    pub async fn start(opts: &Opts, policy: Policy) -> Result<Approver> {
        let (bus, rx) = Bus::connect(opts).await?;
        // The rule makes the operation block on us; the broker stores it, so it survives restarts.
        // Our own component: other programs under the same principal keep their registrations.
        bus.register(json!({"component": "approver", "rules": [{
            "operation": policy.operation, "priority": policy.priority,
            "timeout_ms": 300_000, "default_action": "abort"
        }]}))
        .await?;
        // Notices for the operation are allowed only once we are registered for it.
        bus.subscribe(&blocked_topic(&policy.operation)).await?;
        Ok(Approver { bus, rx, policy })
    }

    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let policy = self.policy.clone();
        let r = serve_callouts(
            &self.bus,
            &mut self.rx,
            &policy.operation,
            |t| policy.decide(t),
            shutdown,
        )
        .await;
        self.bus.disconnect().await;
        r
    }
}

/// Runs the approver until `shutdown`.
pub async fn run(opts: &Opts, policy: Policy, shutdown: impl Future<Output = ()>) -> Result<()> {
    Approver::start(opts, policy).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_pass_and_large_ones_are_refused_with_a_reason() {
        let p = Policy::default();
        assert_eq!(
            p.decide(&json!({"data": {"cpu": 2, "memory_gb": 4}})).0,
            "resume"
        );
        let (a, body) = p.decide(&json!({"data": {"cpu": 16}}));
        assert_eq!(a, "abort");
        assert!(body["message"].as_str().unwrap().contains("16 CPUs"));
        assert_eq!(p.decide(&json!({"data": {"memory_gb": 64}})).0, "abort");
    }
}
