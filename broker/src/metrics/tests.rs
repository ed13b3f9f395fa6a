//! Unit tests of `metrics`: typed families render with HELP and TYPE, at zero from start, in
//! both exposition formats.

use super::*;

#[test]
fn counts_and_renders() {
    let m = Metrics::new();
    let bad = Reason {
        reason: "bad_credentials",
    };
    m.connect_refused.get_or_create(&bad).inc();
    m.connect_refused.get_or_create(&bad).inc();
    m.connections_open.inc();
    m.connections_open.dec();
    assert_eq!(
        m.get(
            "extbus_connect_refused_total",
            &[("reason", "bad_credentials")]
        ),
        2
    );
    let text = m.render();
    assert!(text.contains("# HELP extbus_connect_refused_total MQTT CONNECTs refused, by reason"));
    assert!(text.contains("# TYPE extbus_connect_refused_total counter"));
    assert!(text.contains("extbus_connect_refused_total{reason=\"bad_credentials\"} 2"));
    assert!(text.contains("# TYPE extbus_connections_open gauge"));
    assert!(text.contains("extbus_connections_open 0"));
}

#[test]
fn closed_label_sets_and_plain_series_start_at_zero() {
    let text = Metrics::new().render();
    for line in [
        "extbus_connections_total 0",
        "extbus_connect_refused_total{reason=\"auth_busy\"} 0",
        "extbus_auth_checks_total{result=\"cached\"} 0",
        "extbus_tasks_resolved_total{state=\"aborted\"} 0",
        "extbus_http_closed_total{reason=\"shutdown\"} 0",
        "extbus_service_request_duration_seconds_count 0",
        "extbus_auth_queue 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    // Every command kind has its `ok` series, under the label a real suffix of it gets.
    for spec in extbus_schema::spec::all() {
        let kind = command_kind(&spec.sample());
        assert_eq!(kind, spec.kind);
        let line = format!("extbus_commands_total{{command=\"{kind}\",result=\"ok\"}} 0");
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(text.contains("extbus_commands_total{command=\"tasks/resume\",result=\"ok\"} 0"));
}

#[test]
fn histograms_render_cumulative_buckets() {
    let m = Metrics::new();
    for s in [0.0003, 0.003, 100.0] {
        m.service_request_duration.observe(s);
    }
    let name = "extbus_service_request_duration_seconds";
    let text = m.render();
    assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
    for (le, n) in [("0.0005", 1), ("0.005", 2), ("60", 2), ("+Inf", 3)] {
        let line = format!("{name}_bucket{{le=\"{le}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert_eq!(m.get(&format!("{name}_count"), &[]), 3);
    assert_eq!(m.get(&format!("{name}_sum"), &[]), 100);
}

#[test]
fn command_labels_come_from_the_command_kind() {
    let m = Metrics::new();
    m.command_replied(command_kind("tasks/0193/resume"), "ok");
    m.command_replied(command_kind("tasks/0193/resume"), "conflict");
    m.command_replied(command_kind("no/such/thing"), "unknown_command");
    let get = |c, r| m.get("extbus_commands_total", &[("command", c), ("result", r)]);
    assert_eq!(get("tasks/resume", "ok"), 1);
    assert_eq!(get("tasks/resume", "conflict"), 1);
    assert_eq!(get("unknown", "unknown_command"), 1);
}

#[test]
fn openmetrics_names_counters_once_and_ends_with_eof() {
    let m = Metrics::new();
    m.connections.inc();
    let text = m.render_openmetrics();
    assert!(text.contains("# TYPE extbus_connections counter"), "{text}");
    assert!(text.contains("extbus_connections_total 1"), "{text}");
    assert!(
        text.contains("# TYPE extbus_connections_open gauge"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}
