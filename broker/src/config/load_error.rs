//! A configuration that does not load, in the README's terms: the setting as it is written in
//! the file (`tasks.renotify_ms`) or the environment variable that set it, what it must be, and
//! a near name for a typo. Replaces figment's rendering (`default.` profile prefixes, Rust type
//! names, doubled backticks).

use figment::error::{Actual, Kind};

/// Every error figment found, one per line.
pub fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| one(&e))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let source = match &e.metadata {
        Some(md) => match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(path) => format!(" in {}", path.display()),
            None if md.name.contains("environment") && !e.path.is_empty() => {
                format!(" from environment variable {}", env_name(&e.path))
            }
            None => String::new(),
        },
        None => String::new(),
    };
    let setting = if key.is_empty() {
        "the configuration".to_string()
    } else {
        format!("setting `{key}`")
    };
    match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => format!(
            "{setting}{source}: expected {}, found {}",
            expected_words(expected),
            actual_words(actual)
        ),
        Kind::UnknownField(field, known) => {
            let parent = e.path[..e.path.len().saturating_sub(1)].join(".");
            let full = if parent.is_empty() {
                field.clone()
            } else {
                format!("{parent}.{field}")
            };
            let hint = extbus_schema::unknown_fields::suggest(field, known)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            format!(
                "unknown setting `{full}`{source}; {hint}known here: {}",
                known.join(", ")
            )
        }
        Kind::UnknownVariant(v, known) => format!(
            "{setting}{source}: '{v}' is not one of {}",
            known.join(", ")
        ),
        Kind::MissingField(f) => {
            let full = if key.is_empty() {
                f.to_string()
            } else {
                format!("{key}.{f}")
            };
            format!("setting `{full}`{source} is required")
        }
        Kind::Message(m) => format!("{setting}{source}: {}", message_words(m)),
        other => format!("{setting}{source}: {other}"),
    }
}

/// The variable as `Config::load` reads it: `EXTBUS_`, levels joined by `__`, upper case.
fn env_name(path: &[String]) -> String {
    format!("EXTBUS_{}", path.join("__").to_ascii_uppercase())
}

fn expected_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" => "a string in quotes".into(),
        other => other.replace("``", "`"),
    }
}

fn actual_words(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("the string \"{s}\""),
        Actual::Unsigned(n) => format!("the number {n}"),
        Actual::Signed(n) => format!("the number {n}"),
        Actual::Float(n) => format!("the number {n}"),
        Actual::Bool(b) => format!("{b}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string(),
    }
}

/// TOML parse errors come as a multi-line excerpt; keep the position and the reason.
fn message_words(m: &str) -> String {
    let lines: Vec<&str> = m.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() <= 1 {
        return m.trim().to_string();
    }
    // "TOML parse error at line 1, column 5", the excerpt ("|", "1 | x =", "^"), the reason.
    let reason: Vec<&str> = lines[1..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with('|') && !l.contains(" | ") && !l.starts_with('^'))
        .collect();
    format!("{}: {}", lines[0], reason.join("; "))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::io::Write;

    fn load(toml: &str) -> String {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        Config::load(Some(f.path()), serde_json::json!({}))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_setting_as_written_with_a_hint() {
        let e = load("[tasks]\nrenotify_ms = \"x\"\n");
        assert!(
            e.contains("setting `tasks.renotify_ms` in ")
                && e.contains("expected a whole number (0 or more), found the string \"x\""),
            "{e}"
        );
        assert!(!e.contains("default.") && !e.contains("``"), "{e}");
        let e = load("[tasks]\nrenotfy_ms = 5\n");
        assert!(
            e.contains("unknown setting `tasks.renotfy_ms`")
                && e.contains("did you mean `renotify_ms`?"),
            "{e}"
        );
        let e = load("[mqtt]\nlisten = \"nope\"\n");
        assert!(
            e.contains("setting `mqtt.listen`") && e.contains("socket address"),
            "{e}"
        );
        let e = load("x = \n");
        assert!(e.contains("line 1, column 5") && !e.contains('|'), "{e}");
    }
}
