//! Every metric the broker exposes, defined once: a struct of typed prometheus-client families,
//! registered with name and help in `Metrics::new`, rendered on `/metrics` in the Prometheus
//! text format (0.0.4) or, when the scraper asks for it, OpenMetrics 1.0.
//!
//! Counter families are registered without `_total`: the encoder appends it, so
//! `extbus_commands` is exposed as `extbus_commands_total`. Label sets that are closed (refusal
//! reasons, task states, each command kind's `ok`, ...) are created at zero here, so a scrape
//! shows them before they occur. A family whose label values are open (HTTP status, exec entry)
//! appears with its first series: the encoder writes no HELP or TYPE for an empty family.

use extbus_schema::commands::Command;
use extbus_schema::tasks::TaskState;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod labels;
pub use labels::{
    Action, Cap, CheckResult, CommandResult, ExecName, ExecRun, Outcome, Reason, State, Status,
};
use labels::{AUTH_RESULTS, CONNECT_REFUSED, HTTP_CLOSED, HTTP_REFUSED};

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format 0.0.4 (the default).
pub const PROMETHEUS_TEXT: &str = prometheus_text::CONTENT_TYPE;

/// The `command` label of a command topic suffix: `Command::kind`, or `unknown`.
pub fn command_kind(suffix: &str) -> &'static str {
    Command::parse(suffix).map_or("unknown", |c| c.kind())
}

pub struct Metrics {
    registry: Registry,
    // MQTT connections and the gate.
    pub connections_open: Gauge,
    pub connections: Counter,
    pub connect_refused: Family<Reason, Counter>,
    pub gate_denied: Family<Action, Counter>,
    pub gate_subscriptions_refused: Family<Cap, Counter>,
    pub gate_oversized: Counter,
    // Commands and the coordinator's store.
    pub commands: Family<CommandResult, Counter>,
    pub commands_batched: Counter,
    pub store_flushes: Counter,
    pub store_errors: Counter,
    pub events_logged: Counter,
    pub events_duplicate: Counter,
    pub events_expired: Counter,
    pub tasks_resolved: Family<State, Counter>,
    pub tasks_blocked: Counter,
    pub tasks_purged: Counter,
    pub config_reloads: Family<Outcome, Counter>,
    // Logins.
    pub auth_checks: Family<CheckResult, Counter>,
    pub auth_hashes: Counter,
    pub auth_queue: Gauge,
    pub auth_running: Gauge,
    pub auth_throttled: Counter,
    // Extension services.
    pub service_requests: Family<Status, Counter>,
    pub service_request_duration: Histogram,
    pub service_requests_pending: Gauge,
    pub service_late_responses: Counter,
    // Custom actions.
    pub action_runs: Family<Outcome, Counter>,
    pub action_runs_pending: Gauge,
    // HTTP connections.
    pub http_connections: Gauge,
    pub http_refused: Family<Reason, Counter>,
    pub http_closed: Family<Reason, Counter>,
    // The HTTP API's event streams.
    pub sse_streams: Gauge,
    pub sse_streams_opened: Counter,
    pub sse_streams_cut: Counter,
    // Executable extensions.
    pub exec_ready: Family<ExecName, Gauge>,
    pub exec_runs: Family<ExecRun, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            connect_refused: Family::default(),
            gate_denied: Family::default(),
            gate_subscriptions_refused: Family::default(),
            gate_oversized: Counter::default(),
            commands: Family::default(),
            commands_batched: Counter::default(),
            store_flushes: Counter::default(),
            store_errors: Counter::default(),
            events_logged: Counter::default(),
            events_duplicate: Counter::default(),
            events_expired: Counter::default(),
            tasks_resolved: Family::default(),
            tasks_blocked: Counter::default(),
            tasks_purged: Counter::default(),
            config_reloads: Family::default(),
            auth_checks: Family::default(),
            auth_hashes: Counter::default(),
            auth_queue: Gauge::default(),
            auth_running: Gauge::default(),
            auth_throttled: Counter::default(),
            service_requests: Family::default(),
            service_request_duration: Histogram::new(LATENCY_BUCKETS),
            service_requests_pending: Gauge::default(),
            service_late_responses: Counter::default(),
            action_runs: Family::default(),
            action_runs_pending: Gauge::default(),
            http_connections: Gauge::default(),
            http_refused: Family::default(),
            http_closed: Family::default(),
            sse_streams: Gauge::default(),
            sse_streams_opened: Counter::default(),
            sse_streams_cut: Counter::default(),
            exec_ready: Family::default(),
            exec_runs: Family::default(),
        };
        m.zero_closed_label_sets();
        m.register()
    }

    fn zero_closed_label_sets(&self) {
        for reason in CONNECT_REFUSED {
            let _ = self.connect_refused.get_or_create(&Reason { reason });
        }
        for action in ["publish", "subscribe"] {
            let _ = self.gate_denied.get_or_create(&Action { action });
        }
        for cap in ["connection", "principal"] {
            let _ = self.gate_subscriptions_refused.get_or_create(&Cap { cap });
        }
        for s in [TaskState::Resumed, TaskState::Cancelled, TaskState::Aborted] {
            let _ = self
                .tasks_resolved
                .get_or_create(&State { state: s.as_str() });
        }
        // One `ok` series per command kind, from the command tables.
        for spec in extbus_schema::spec::all() {
            let _ = self.commands.get_or_create(&CommandResult {
                command: spec.kind,
                result: "ok",
            });
        }
        for result in ["ok", "partial", "refused"] {
            let _ = self.config_reloads.get_or_create(&Outcome { result });
        }
        for result in ["success", "error", "timeout"] {
            let _ = self.action_runs.get_or_create(&Outcome { result });
        }
        for result in AUTH_RESULTS {
            let _ = self.auth_checks.get_or_create(&CheckResult { result });
        }
        for reason in HTTP_REFUSED {
            let _ = self.http_refused.get_or_create(&Reason { reason });
        }
        for reason in HTTP_CLOSED {
            let _ = self.http_closed.get_or_create(&Reason { reason });
        }
    }

    /// Registers every family under its exposed name (counters without `_total`).
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "extbus_connections_open",
            "open MQTT client connections",
            self.connections_open.clone(),
        );
        // Exposed as `extbus_connections_total`; the open-connections gauge therefore cannot be
        // `extbus_connections` (OpenMetrics parsers read both as one family).
        r.register(
            "extbus_connections",
            "MQTT client connections accepted",
            self.connections.clone(),
        );
        r.register(
            "extbus_connect_refused",
            "MQTT CONNECTs refused, by reason",
            self.connect_refused.clone(),
        );
        r.register(
            "extbus_gate_denied",
            "publishes and subscriptions refused by the gate, by action",
            self.gate_denied.clone(),
        );
        r.register(
            "extbus_gate_subscriptions_refused",
            "filters refused because a subscription cap was reached, by cap (connection, principal)",
            self.gate_subscriptions_refused.clone(),
        );
        r.register(
            "extbus_gate_oversized",
            "inbox publishes above the payload limit",
            self.gate_oversized.clone(),
        );
        r.register(
            "extbus_commands",
            "commands replied to, by command kind and result (ok or the error code)",
            self.commands.clone(),
        );
        r.register(
            "extbus_commands_batched",
            "commands applied in group-committed batches",
            self.commands_batched.clone(),
        );
        r.register(
            "extbus_store_flushes",
            "store batches committed and flushed",
            self.store_flushes.clone(),
        );
        r.register(
            "extbus_store_errors",
            "store batches that failed to commit or flush",
            self.store_errors.clone(),
        );
        r.register(
            "extbus_events_logged",
            "events written to the events log",
            self.events_logged.clone(),
        );
        r.register(
            "extbus_events_duplicate",
            "events refused as duplicates of an earlier id",
            self.events_duplicate.clone(),
        );
        r.register(
            "extbus_events_expired",
            "events removed from the log by retention",
            self.events_expired.clone(),
        );
        r.register(
            "extbus_tasks_resolved",
            "tasks that reached a final state, by state",
            self.tasks_resolved.clone(),
        );
        r.register(
            "extbus_tasks_blocked",
            "tasks that entered the blocked state",
            self.tasks_blocked.clone(),
        );
        r.register(
            "extbus_tasks_purged",
            "finished tasks removed after the retention period",
            self.tasks_purged.clone(),
        );
        r.register(
            "extbus_config_reloads",
            "configuration reloads on SIGHUP, by result (ok, partial: some changes wait for a restart, refused)",
            self.config_reloads.clone(),
        );
        r.register(
            "extbus_auth_checks",
            "credential checks by result (ok, bad, busy, stopped, throttled, abandoned, cached)",
            self.auth_checks.clone(),
        );
        r.register(
            "extbus_auth_hashes",
            "argon2 computations run for credential checks",
            self.auth_hashes.clone(),
        );
        r.register(
            "extbus_auth_queue",
            "credential checks waiting for a worker",
            self.auth_queue.clone(),
        );
        r.register(
            "extbus_auth_running",
            "credential checks a worker is running",
            self.auth_running.clone(),
        );
        r.register(
            "extbus_auth_throttled",
            "credential checks refused by the failure throttle",
            self.auth_throttled.clone(),
        );
        r.register(
            "extbus_service_requests",
            "extension service requests, by response status",
            self.service_requests.clone(),
        );
        r.register(
            "extbus_service_request_duration_seconds",
            "time from receiving a service request to answering it",
            self.service_request_duration.clone(),
        );
        r.register(
            "extbus_service_requests_pending",
            "service requests waiting for a response",
            self.service_requests_pending.clone(),
        );
        r.register(
            "extbus_service_late_responses",
            "service responses dropped because their request had timed out",
            self.service_late_responses.clone(),
        );
        r.register(
            "extbus_action_runs",
            "finished custom action runs, by result (success, error, timeout)",
            self.action_runs.clone(),
        );
        r.register(
            "extbus_action_runs_pending",
            "custom action runs waiting for their extension's answer",
            self.action_runs_pending.clone(),
        );
        r.register(
            "extbus_http_event_streams",
            "open GET /api/events/stream responses",
            self.sse_streams.clone(),
        );
        r.register(
            "extbus_http_event_streams_opened",
            "GET /api/events/stream responses started",
            self.sse_streams_opened.clone(),
        );
        r.register(
            "extbus_http_event_streams_cut",
            "event streams cut off because their reader fell too far behind",
            self.sse_streams_cut.clone(),
        );
        r.register(
            "extbus_http_connections",
            "open HTTP connections",
            self.http_connections.clone(),
        );
        r.register(
            "extbus_http_refused",
            "HTTP connections refused by a connection limit, by reason",
            self.http_refused.clone(),
        );
        r.register(
            "extbus_http_closed",
            "HTTP connections closed by the broker, by reason",
            self.http_closed.clone(),
        );
        r.register(
            "extbus_exec_ready",
            "1 when the executable extension's file exists and is executable",
            self.exec_ready.clone(),
        );
        r.register(
            "extbus_exec_runs",
            "runs of executable extensions, by entry, action and outcome",
            self.exec_runs.clone(),
        );
        self
    }

    /// Counts one reply to a command of kind `command` (`Command::kind`, or `command_kind` of
    /// its suffix when it did not decode); the hot path passes the decoded kind, no re-parse.
    pub fn command_replied(&self, command: &'static str, result: &'static str) {
        self.commands
            .get_or_create(&CommandResult { command, result })
            .inc();
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// OpenMetrics 1.0 text, `# EOF` included.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = text::encode(&mut out, &self.registry);
        out
    }

    /// What a scrape shows for the sample `name{labels}` (labels in exposition order), 0 when
    /// it is absent. For tests and in-process readers; instrumentation uses the typed fields.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut key = name.to_string();
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            key = format!("{key}{{{}}}", inner.join(","));
        }
        key.push(' ');
        self.render()
            .lines()
            .find_map(|l| l.strip_prefix(&key)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

#[cfg(test)]
mod tests;
