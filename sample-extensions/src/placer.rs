//! The placer, in the style of an object extension: for every `vm.create` task blocked on it,
//! it chooses a host (the least loaded that fits) and a storage profile, and resumes the task
//! with that choice as `result`, which the platform receives with the outcome.

use crate::{blocked_topic, serve_callouts, Bus, Opts};
use anyhow::Result;
use serde_json::{json, Value};
use std::future::Future;

/// A host and how many CPUs it has left.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub free_cpu: u64,
}

/// Placement state: the hosts, updated as VMs are placed.
#[derive(Debug, Clone)]
pub struct Placer {
    pub operation: String,
    pub hosts: Vec<Host>,
    /// Stage order: below the approver's 60, so approval comes first.
    pub priority: i64,
}

impl Default for Placer {
    fn default() -> Self {
        let hosts = [("host-a", 32), ("host-b", 64), ("host-c", 16)]
            .iter()
            .map(|(n, c)| Host {
                name: n.to_string(),
                free_cpu: *c,
            })
            .collect();
        Placer {
            operation: "vm.create".into(),
            hosts,
            priority: 40,
        }
    }
}

impl Placer {
    /// The resume (with placement) or abort (no room) for a task.
    pub fn decide(&mut self, task: &Value) -> (&'static str, Value) {
        let cpu = task["data"]["cpu"].as_u64().unwrap_or(1);
        let disk = task["data"]["disk_gb"].as_u64().unwrap_or(20);
        let Some(host) = self
            .hosts
            .iter_mut()
            .filter(|h| h.free_cpu >= cpu)
            .max_by_key(|h| h.free_cpu)
        else {
            return (
                "abort",
                json!({"message": format!("no host has {cpu} free CPUs")}),
            );
        };
        host.free_cpu -= cpu;
        // Large disks go to cheap capacity storage, small ones to fast SSDs.
        let profile = match task["data"]["storage_tier"].as_str() {
            Some(t) => t.to_string(),
            None if disk > 100 => "capacity-hdd".into(),
            None => "fast-ssd".into(),
        };
        let placement = json!({"host": host.name, "storage_profile": profile});
        (
            "resume",
            json!({"message": format!("placed on {}", host.name), "result": {"placement": placement}}),
        )
    }
}

/// Runs the placer until `shutdown`; registers its rule first.
pub async fn run(opts: &Opts, placer: Placer, shutdown: impl Future<Output = ()>) -> Result<()> {
    let (bus, rx) = start(opts, &placer).await?;
    serve(bus, rx, placer, shutdown).await
}

/// Connects, registers and subscribes (exposed so a test knows when the placer is ready).
pub async fn start(
    opts: &Opts,
    placer: &Placer,
) -> Result<(Bus, tokio::sync::mpsc::UnboundedReceiver<crate::Msg>)> {
    let (bus, rx) = Bus::connect(opts).await?;
    bus.register(json!({"component": "placer", "rules": [{"operation": placer.operation, "priority": placer.priority, "timeout_ms": 300_000}]}))
        .await?;
    bus.subscribe(&blocked_topic(&placer.operation)).await?;
    Ok((bus, rx))
}

/// Serves a placer started with `start`.
pub async fn serve(
    bus: Bus,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::Msg>,
    mut placer: Placer,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let op = placer.operation.clone();
    let r = serve_callouts(&bus, &mut rx, &op, |t| placer.decide(t), shutdown).await;
    bus.disconnect().await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_least_loaded_host_that_fits_and_a_profile_by_disk() {
        let mut p = Placer::default();
        let (a, b) = p.decide(&json!({"data": {"cpu": 4, "disk_gb": 500}}));
        assert_eq!(a, "resume");
        assert_eq!(
            b["result"]["placement"],
            json!({"host": "host-b", "storage_profile": "capacity-hdd"})
        );
        let (_, b) = p.decide(&json!({"data": {"cpu": 60}}));
        assert_eq!(b["result"]["placement"]["host"], "host-b");
        assert_eq!(p.decide(&json!({"data": {"cpu": 100}})).0, "abort");
    }
}
