//! `--help` for the sample binaries, and the flags each one reads: one table, so a typo in a
//! flag is refused instead of silently ignored.

/// One sample: what it does and its own flags (`name`, default, meaning).
pub struct Usage {
    pub bin: &'static str,
    pub about: &'static str,
    pub flags: &'static [(&'static str, &'static str, &'static str)],
}

pub const SAMPLES: &[Usage] = &[
    Usage {
        bin: "approver",
        about: "Answers callouts for an operation: resumes small requests, aborts large ones with the reason.",
        flags: &[
            ("operation", "vm.create", "the operation whose tasks it answers"),
            ("max-cpu", "8", "largest data.cpu it resumes"),
            ("max-memory-gb", "32", "largest data.memory_gb it resumes"),
            ("priority", "60", "its rule's priority (higher runs first)"),
        ],
    },
    Usage {
        bin: "placer",
        about: "Resumes callouts with a placement {host, storage_profile} in the result.",
        flags: &[("operation", "vm.create", "the operation whose tasks it answers")],
    },
    Usage {
        bin: "greeter",
        about: "An extension service: answers GET /ext/acme/greeter/<name>?lang=en|fr|de.",
        flags: &[],
    },
    Usage {
        bin: "cluster",
        about: "Owns the acme:cluster entity type: its post_create hook fills status, its scale behavior resizes.",
        flags: &[],
    },
    Usage {
        bin: "vm_tools",
        about: "Custom actions snapshot and inventory, and the UI plugin vm-ui served at /ext/acme/vm-tools/ui/index.html.",
        flags: &[],
    },
    Usage {
        bin: "event_logger",
        about: "Appends audit events to a JSON-lines file and keeps its place by seq across restarts.",
        flags: &[
            ("org", "+", "only this org's events (+ is every org it may see)"),
            ("log", "events.jsonl", "the file events are appended to"),
            ("state", "event-logger.state.json", "where the last seq written is kept"),
        ],
    },
    Usage {
        bin: "platform_sim",
        about: "Emits events and submits operations at a rate, then reports the outcomes.",
        flags: &[
            ("count", "10", "operations to submit"),
            ("rate", "2", "operations per second"),
            ("operation", "vm.create", "the operation submitted"),
            ("org", "acme", "the org of events and operations"),
            ("wait-secs", "60", "how long to wait for the last outcome"),
        ],
    },
];

/// The flags every sample takes.
const COMMON: &[(&str, &str, &str)] = &[
    (
        "url",
        "mqtt://127.0.0.1:1883",
        "the broker (env EXTBUS_URL)",
    ),
    ("user", "extension", "principal name (env EXTBUS_USER)"),
    (
        "secret",
        "the user name",
        "the principal's secret (env EXTBUS_SECRET)",
    ),
];

pub fn find(bin: &str) -> Option<&'static Usage> {
    SAMPLES.iter().find(|u| u.bin == bin)
}

/// The sample's help text.
pub fn text(u: &Usage) -> String {
    let mut s = format!(
        "{}\n\nUsage: {} [--flag value]...\n\nFlags:\n",
        u.about, u.bin
    );
    for (name, default, what) in COMMON.iter().chain(u.flags) {
        s.push_str(&format!("  --{name:<14} {what} [default: {default}]\n"));
    }
    s.push_str("  --help           print this help\n");
    s
}

/// Is `key` a flag this sample reads? (Unknown samples, e.g. tests, accept any.)
pub fn knows(u: Option<&Usage>, key: &str) -> bool {
    u.is_none_or(|u| COMMON.iter().chain(u.flags).any(|(n, _, _)| *n == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_binary_has_its_help() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let bin = p.file_stem().unwrap().to_str().unwrap().to_string();
            let u = find(&bin).unwrap_or_else(|| panic!("no usage for {bin}"));
            assert!(text(u).contains("--url"));
            assert!(knows(Some(u), "user") && !knows(Some(u), "usr"));
        }
    }
}
