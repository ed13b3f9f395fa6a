//! Process-wide counters, gauges and histograms, rendered in Prometheus text format on
//! `/metrics`. Plain atomics keyed by metric name and labels: cheap to bump from any task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Series by metric name, then by rendered labels: nested so that a lookup borrows the name
/// and, without labels, allocates nothing (counters are bumped per command).
type Series<T> = RwLock<BTreeMap<String, BTreeMap<String, Arc<T>>>>;

#[derive(Default)]
pub struct Metrics {
    counters: Series<AtomicU64>,
    gauges: Series<AtomicU64>,
    histograms: Series<Histogram>,
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
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            if c == '\\' || c == '"' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// The series `name{labels}`, created on first use.
fn series<T: Default>(map: &Series<T>, name: &str, labels: &[(&str, &str)]) -> Arc<T> {
    let key = labels_key(labels);
    if let Some(s) = map.read().unwrap().get(name).and_then(|m| m.get(&key)) {
        return s.clone();
    }
    map.write()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .entry(key)
        .or_default()
        .clone()
}

/// The series `name{labels}` if it exists.
fn existing<T>(map: &Series<T>, name: &str, labels: &[(&str, &str)]) -> Option<Arc<T>> {
    map.read()
        .unwrap()
        .get(name)
        .and_then(|m| m.get(&labels_key(labels)))
        .cloned()
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Documents a metric for the `# HELP` line.
    pub fn describe(&self, name: &str, help: &'static str) {
        self.help.write().unwrap().insert(name.to_string(), help);
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        series(&self.counters, name, labels).fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], v: u64) {
        series(&self.gauges, name, labels).store(v, Ordering::Relaxed);
    }

    pub fn gauge_add(&self, name: &str, labels: &[(&str, &str)], delta: i64) {
        let slot = series(&self.gauges, name, labels);
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
        let h = series(&self.histograms, name, labels);
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        let us = (seconds.max(0.0) * 1e6) as u64;
        h.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations in the histogram `name` (its `_count`).
    pub fn observed(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        existing(&self.histograms, name, labels).map_or(0, |h| h.count.load(Ordering::Relaxed))
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        existing(&self.counters, name, labels)
            .or_else(|| existing(&self.gauges, name, labels))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let help = self.help.read().unwrap();
        let mut out = String::new();
        for (kind, map) in [("counter", &self.counters), ("gauge", &self.gauges)] {
            for (name, series) in map.read().unwrap().iter() {
                if let Some(h) = help.get(name) {
                    out.push_str(&format!("# HELP {name} {h}\n"));
                }
                out.push_str(&format!("# TYPE {name} {kind}\n"));
                for (labels, v) in series {
                    let v = v.load(Ordering::Relaxed);
                    if labels.is_empty() {
                        out.push_str(&format!("{name} {v}\n"));
                    } else {
                        out.push_str(&format!("{name}{{{labels}}} {v}\n"));
                    }
                }
            }
        }
        self.render_histograms(&help, &mut out);
        out
    }

    fn render_histograms(&self, help: &BTreeMap<String, &'static str>, out: &mut String) {
        for (name, series) in self.histograms.read().unwrap().iter() {
            if let Some(text) = help.get(name) {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} histogram\n"));
            for (labels, h) in series {
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
