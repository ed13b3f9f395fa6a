//! Process-wide counters, gauges and histograms, rendered in Prometheus text format on
//! `/metrics`. Plain atomics keyed by metric name and labels: cheap to bump from any task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    gauges: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    histograms: RwLock<BTreeMap<(String, String), Arc<Histogram>>>,
    help: RwLock<BTreeMap<String, &'static str>>,
}

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One histogram series: a count per bucket (not cumulative), the sum in microseconds.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
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

    /// Records one observation (seconds) in the histogram `name`.
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], seconds: f64) {
        let key = (name.to_string(), labels_key(labels));
        let existing = self.histograms.read().unwrap().get(&key).cloned();
        let h = match existing {
            Some(h) => h,
            None => self
                .histograms
                .write()
                .unwrap()
                .entry(key)
                .or_default()
                .clone(),
        };
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        let us = (seconds.max(0.0) * 1e6) as u64;
        h.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations in the histogram `name` (its `_count`).
    pub fn observed(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = (name.to_string(), labels_key(labels));
        self.histograms
            .read()
            .unwrap()
            .get(&key)
            .map_or(0, |h| h.count.load(Ordering::Relaxed))
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
        self.render_histograms(&help, &mut out);
        out
    }

    fn render_histograms(&self, help: &BTreeMap<String, &'static str>, out: &mut String) {
        let mut last = String::new();
        for ((name, labels), h) in self.histograms.read().unwrap().iter() {
            if *name != last {
                if let Some(text) = help.get(name) {
                    out.push_str(&format!("# HELP {name} {text}\n"));
                }
                out.push_str(&format!("# TYPE {name} histogram\n"));
                last = name.clone();
            }
            let sep = if labels.is_empty() { "" } else { "," };
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                out.push_str(&format!(
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}\n"
                ));
            }
            let count = h.count.load(Ordering::Relaxed);
            out.push_str(&format!(
                "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n"
            ));
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let braces = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            };
            out.push_str(&format!("{name}_sum{braces} {sum}\n"));
            out.push_str(&format!("{name}_count{braces} {count}\n"));
        }
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

    #[test]
    fn histograms_render_cumulative_buckets() {
        let m = Metrics::new();
        m.observe("extbus_x_seconds", &[], 0.0003);
        m.observe("extbus_x_seconds", &[], 0.003);
        m.observe("extbus_x_seconds", &[], 100.0);
        assert_eq!(m.observed("extbus_x_seconds", &[]), 3);
        let text = m.render();
        assert!(text.contains("# TYPE extbus_x_seconds histogram"), "{text}");
        assert!(
            text.contains("extbus_x_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("extbus_x_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("extbus_x_seconds_bucket{le=\"60\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("extbus_x_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("extbus_x_seconds_count 3"), "{text}");
        assert!(text.contains("extbus_x_seconds_sum 100.0033"), "{text}");
    }
}
