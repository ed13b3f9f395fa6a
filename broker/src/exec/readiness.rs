//! Readiness of executable extensions: the file exists, is a regular file and is executable.
//! Checked at start, then periodically and for each entry a reload adds or changes; reported
//! in the log (on every change), as the `/metrics` gauge `extbus_exec_ready{name}` (1 ready,
//! 0 not) and in the shared `Readiness` table that `registrations/query` answers from (with
//! the reason and the check's time). It refuses nothing.

use super::{Entries, ExecConfig};
use crate::clock::Clock;
use crate::link::{ExecReady, Readiness};
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `Ok(())` when `path` can be run, else why not.
pub fn check(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", path.display()));
        }
    }
    Ok(())
}

/// Where the checks report to.
pub struct Sinks {
    pub metrics: Arc<Metrics>,
    pub table: Arc<Readiness>,
    pub clock: Arc<dyn Clock>,
}

/// Checks one entry, sets its gauge and table row, and logs when the state changed since
/// `last`.
pub fn report(e: &ExecConfig, sinks: &Sinks, last: Option<bool>) -> bool {
    let r = check(&e.path);
    let ready = r.is_ok();
    sinks.table.set(
        &e.name,
        ExecReady {
            path: e.path.display().to_string(),
            reason: r.as_ref().err().cloned(),
            checked_at: sinks.clock.now_ms(),
        },
    );
    let metrics = &sinks.metrics;
    let name = crate::metrics::ExecName {
        name: e.name.clone(),
    };
    metrics
        .exec_ready
        .get_or_create(&name)
        .set(i64::from(ready));
    if last != Some(ready) {
        match r {
            Ok(()) => {
                tracing::info!(exec = %e.name, path = %e.path.display(), "executable extension ready")
            }
            Err(why) => {
                tracing::warn!(exec = %e.name, reason = %why, "executable extension not ready")
            }
        }
    }
    ready
}

/// Checks every entry now, then every `check_interval_ms` (the shortest of the entries in
/// service, read again after each reload), until `stop` turns true.
pub async fn watch(entries: Arc<Entries>, mut stop: watch::Receiver<bool>) {
    entries.check_all();
    loop {
        let tick = Duration::from_millis(entries.check_interval_ms());
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            // The swap checked what is new; the interval may have changed.
            _ = entries.swapped() => continue,
            _ = tokio::time::sleep(tick) => {}
        }
        entries.check_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_plain_and_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sh");
        assert!(check(&p).unwrap_err().contains("x.sh"));
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(check(&p).unwrap_err().contains("not executable"));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(check(&p).is_ok());
        assert!(check(dir.path()).is_err());
        let clock = Arc::new(crate::clock::ManualClock::new(5_000));
        let sinks = Sinks {
            metrics: Arc::new(Metrics::new()),
            table: Arc::new(Readiness::default()),
            clock: clock.clone(),
        };
        let e = ExecConfig::new("x", &p);
        assert!(report(&e, &sinks, None));
        assert_eq!(sinks.metrics.get("extbus_exec_ready", &[("name", "x")]), 1);
        let row = sinks.table.get("x").unwrap();
        assert_eq!((row.reason, row.checked_at), (None, 5_000));
        std::fs::remove_file(&p).unwrap();
        clock.advance(1_000);
        assert!(!report(&e, &sinks, Some(true)));
        let row = sinks.table.get("x").unwrap();
        assert!(row.reason.unwrap().contains("x.sh"), "a reason");
        assert_eq!(row.checked_at, 6_000);
        assert_eq!(sinks.metrics.get("extbus_exec_ready", &[("name", "x")]), 0);
    }
}
