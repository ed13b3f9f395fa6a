//! Process-wide counters, rendered in Prometheus text format on `/metrics`.
//! Plain atomics keyed by metric name and labels: cheap to bump from any task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    gauges: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    help: RwLock<BTreeMap<String, &'static str>>,
}

fn labels_key(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(
        map: &RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicU64> {
        let key = (name.to_string(), labels_key(labels));
        if let Some(c) = map.read().unwrap().get(&key) {
            return c.clone();
        }
        map.write().unwrap().entry(key).or_default().clone()
    }

    /// Documents a metric for the `# HELP` line.
    pub fn describe(&self, name: &str, help: &'static str) {
        self.help.write().unwrap().insert(name.to_string(), help);
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        Self::slot(&self.counters, name, labels).fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], v: u64) {
        Self::slot(&self.gauges, name, labels).store(v, Ordering::Relaxed);
    }

    pub fn gauge_add(&self, name: &str, labels: &[(&str, &str)], delta: i64) {
        let slot = Self::slot(&self.gauges, name, labels);
        if delta >= 0 {
            slot.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(delta.unsigned_abs()))
            });
        }
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = (name.to_string(), labels_key(labels));
        let c = self
            .counters
            .read()
            .unwrap()
            .get(&key)
            .map(|c| c.load(Ordering::Relaxed));
        c.or_else(|| {
            self.gauges
                .read()
                .unwrap()
                .get(&key)
                .map(|c| c.load(Ordering::Relaxed))
        })
        .unwrap_or(0)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let help = self.help.read().unwrap();
        let mut out = String::new();
        for (kind, map) in [("counter", &self.counters), ("gauge", &self.gauges)] {
            let mut last = String::new();
            for ((name, labels), v) in map.read().unwrap().iter() {
                if *name != last {
                    if let Some(h) = help.get(name) {
                        out.push_str(&format!("# HELP {name} {h}\n"));
                    }
                    out.push_str(&format!("# TYPE {name} {kind}\n"));
                    last = name.clone();
                }
                let v = v.load(Ordering::Relaxed);
                if labels.is_empty() {
                    out.push_str(&format!("{name} {v}\n"));
                } else {
                    out.push_str(&format!("{name}{{{labels}}} {v}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new();
        m.describe("extbus_connect_refused_total", "CONNECTs refused");
        m.inc(
            "extbus_connect_refused_total",
            &[("reason", "bad_credentials")],
        );
        m.inc(
            "extbus_connect_refused_total",
            &[("reason", "bad_credentials")],
        );
        m.gauge_add("extbus_connections", &[], 1);
        m.gauge_add("extbus_connections", &[], -3);
        assert_eq!(
            m.get(
                "extbus_connect_refused_total",
                &[("reason", "bad_credentials")]
            ),
            2
        );
        let text = m.render();
        assert!(text.contains("# TYPE extbus_connect_refused_total counter"));
        assert!(text.contains("extbus_connect_refused_total{reason=\"bad_credentials\"} 2"));
        assert!(text.contains("extbus_connections 0"));
    }
}
