//! Plain-text tables for the CLI's readable output: left-aligned columns sized to their
//! widest cell, and a compact one-line rendering of JSON values.

use serde_json::Value;

/// Renders `rows` under `headers`, two spaces between columns, no trailing blanks.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 < cells.len() {
                let pad = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<pad$}  "));
            } else {
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A JSON value for a table cell: strings bare, `null` as `-`, the rest compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = render(
            &["ID", "STATE"],
            &[
                vec!["a".into(), "blocked".into()],
                vec!["long-id".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID       STATE\na        blocked\nlong-id  -\n");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&serde_json::json!({"a": 1})), "{\"a\":1}");
    }
}
