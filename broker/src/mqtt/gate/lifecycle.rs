//! What an operator sees of MQTT connections at `info`: each connect and disconnect (peer,
//! principal, client id, protocol, reason) and each refused login, within a per-second budget
//! shared by all of them so a reconnect storm or a password-guessing flood stays readable.

use crate::log_limit::LineLimit;
use std::net::SocketAddr;
use std::time::Duration;

static LINES: LineLimit = LineLimit::new(50);

fn allowed() -> bool {
    let (write, skipped) = LINES.allow();
    if skipped > 0 {
        tracing::info!(skipped, "MQTT connection lines skipped in the last second");
    }
    write
}

fn protocol(v5: bool) -> &'static str {
    if v5 {
        "5"
    } else {
        "3.1.1"
    }
}

pub(crate) fn connected(peer: SocketAddr, principal: &str, client_id: &str, v5: bool) {
    if allowed() {
        tracing::info!(%peer, principal, client_id, protocol = protocol(v5), "MQTT client connected");
    }
}

pub(crate) fn disconnected(
    peer: SocketAddr,
    principal: &str,
    client_id: &str,
    reason: &str,
    connected_for: Duration,
) {
    if allowed() {
        tracing::info!(
            %peer,
            principal,
            client_id,
            reason,
            connected_ms = connected_for.as_millis() as u64,
            "MQTT client disconnected"
        );
    }
}

pub(crate) fn login_refused(
    peer: SocketAddr,
    principal: Option<&str>,
    client_id: &str,
    v5: bool,
    reason: &str,
) {
    if allowed() {
        tracing::info!(
            %peer,
            principal = principal.unwrap_or(""),
            client_id,
            protocol = protocol(v5),
            reason,
            "MQTT login refused"
        );
    }
}
