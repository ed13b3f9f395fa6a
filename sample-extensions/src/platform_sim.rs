//! The platform simulator: plays the system being extended. At a chosen rate it emits an audit
//! event and submits an operation (alternating small and large `vm.create` requests), waits for
//! every outcome on its outcomes topic, and reports how each one ended.

use crate::{Bus, Opts};
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Sim {
    pub operation: String,
    pub org: String,
    /// Operations to submit.
    pub count: u64,
    /// Operations per second.
    pub rate: f64,
    /// How long to wait for the last outcome.
    pub wait: Duration,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            operation: "vm.create".into(),
            org: "acme".into(),
            count: 10,
            rate: 2.0,
            wait: Duration::from_secs(60),
        }
    }
}

impl Sim {
    pub fn from_opts(o: &Opts) -> Result<Sim> {
        let d = Sim::default();
        Ok(Sim {
            operation: o.get("operation", d.operation)?,
            org: o.get("org", d.org)?,
            count: o.get("count", d.count)?,
            rate: o.get("rate", d.rate)?,
            wait: Duration::from_secs(o.get("wait-secs", 60)?),
        })
    }
}

/// How the submitted operations ended, by final state, plus each outcome.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub by_state: HashMap<String, u64>,
    pub outcomes: Vec<Value>,
    /// Submitted but not finished before `wait` ran out.
    pub pending: u64,
}

/// Runs the simulation and returns (and prints) its report.
pub async fn run(opts: &Opts, sim: Sim) -> Result<Report> {
    let (bus, mut rx) = Bus::connect(opts).await?;
    bus.subscribe(&extbus_client::wire::topics::outcomes(&opts.user))
        .await?;
    let run_id = std::process::id();
    let gap = Duration::from_secs_f64(1.0 / sim.rate.max(0.001));
    let mut report = Report::default();
    let mut open: HashMap<String, u64> = HashMap::new();
    for n in 0..sim.count {
        let subject = format!("urn:{}:vm:{run_id}-{n}", sim.org);
        // Small and large requests in turn, so a policy has something to refuse.
        let cpu = if n % 2 == 0 { 2 } else { 16 };
        let data = json!({"cpu": cpu, "memory_gb": cpu * 2, "disk_gb": 40 + 100 * (n % 3)});
        bus.command(
            "events",
            json!({"type": format!("{}-requested", sim.operation), "org": sim.org,
            "subject": subject, "outcome": "accepted", "data": data}),
        )
        .await?;
        report.events += 1;
        let task = bus
            .command(
                "tasks/submit",
                json!({"request_id": format!("sim-{run_id}-{n}"),
            "operation": sim.operation, "org": sim.org, "subject": subject, "data": data}),
            )
            .await?;
        match task["state"].as_str() {
            // No rule matched: the operation goes ahead at once.
            Some("resumed") => finish(
                &mut report,
                json!({"id": task["id"], "state": "resumed", "resolved_by": null}),
            ),
            _ => {
                open.insert(task["id"].as_str().unwrap_or_default().to_string(), n);
            }
        }
        tokio::time::sleep(gap).await;
        drain(&mut rx, &mut open, &mut report);
    }
    let deadline = tokio::time::Instant::now() + sim.wait;
    while !open.is_empty() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) => take(m.json(), &mut open, &mut report),
            _ => break,
        }
    }
    report.pending = open.len() as u64;
    bus.disconnect().await;
    println!(
        "submitted {} operations, emitted {} events",
        sim.count, report.events
    );
    for (state, n) in &report.by_state {
        println!("  {state:<10} {n}");
    }
    println!("  pending    {}", report.pending);
    Ok(report)
}

fn finish(report: &mut Report, outcome: Value) {
    let state = outcome["state"].as_str().unwrap_or("?").to_string();
    println!(
        "outcome {} {state} by {} {}",
        outcome["id"], outcome["resolved_by"], outcome["result"]
    );
    *report.by_state.entry(state).or_default() += 1;
    report.outcomes.push(outcome);
}

fn take(outcome: Option<Value>, open: &mut HashMap<String, u64>, report: &mut Report) {
    let Some(o) = outcome else { return };
    if open.remove(o["id"].as_str().unwrap_or_default()).is_some() {
        finish(report, o);
    }
}

fn drain(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::Msg>,
    open: &mut HashMap<String, u64>,
    report: &mut Report,
) {
    while let Ok(m) = rx.try_recv() {
        take(m.json(), open, report);
    }
}
