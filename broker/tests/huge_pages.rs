//! `extbus serve` runs with transparent huge pages off (the kernel's per-process flag, shown
//! as `THP_enabled` in `/proc/<pid>/status`); the process that started it keeps its own.

mod support;

use std::process::Stdio;

/// The `THP_enabled` field of a process's status.
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled in /proc/{pid}/status (Linux 5.0 or later)"))
        .trim()
        .to_string()
}

#[test]
fn a_serving_broker_has_huge_pages_off_and_its_parent_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = support::serve(&["--data-dir", data.to_str().unwrap()], Stdio::null());
    assert_eq!(thp_enabled(b.child.id()), "0");
    assert_eq!(thp_enabled(std::process::id()), "1");
}
