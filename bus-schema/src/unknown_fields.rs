//! Closed command bodies and manifests: the message for an unknown field names it and, when a
//! known field of the same object is close (a typo, or a common other name such as `callouts`
//! for `rules`), suggests that one.

use serde_json::Value;

/// Other names people reach for, and the field they mean.
const SYNONYMS: &[(&str, &str)] = &[
    ("callout", "rules"),
    ("callouts", "rules"),
    ("rule", "rules"),
    ("service", "services"),
    ("timeout", "timeout_ms"),
    ("max_timeout", "max_timeout_ms"),
    ("extend", "extend_ms"),
    ("correlation", "correlation_id"),
    ("correlationid", "correlation_id"),
    ("payload", "data"),
];

/// "unknown field `x`" (several: "unknown fields `x`, `y`"), with a suggestion when one is
/// close. `schema_path` is the failing `additionalProperties` keyword's location in `schema`.
pub fn describe(unexpected: &[String], schema: &Value, schema_path: &str) -> String {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    let known: Vec<&str> = schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let names: Vec<String> = unexpected.iter().map(|u| format!("`{u}`")).collect();
    let mut out = match names.len() {
        1 => format!("unknown field {}", names[0]),
        _ => format!("unknown fields {}", names.join(", ")),
    };
    if let Some((u, s)) = unexpected
        .iter()
        .find_map(|u| suggest(u, &known).map(|s| (u, s)))
    {
        if unexpected.len() == 1 {
            out.push_str(&format!(" (did you mean `{s}`?)"));
        } else {
            out.push_str(&format!(" (`{u}`: did you mean `{s}`?)"));
        }
    }
    if !known.is_empty() {
        out.push_str(&format!("; known fields: {}", known.join(", ")));
    }
    out
}

/// The known field `unknown` most likely means, if any.
pub fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase().replace('-', "_");
    if let Some(k) = known.iter().find(|k| **k == lower) {
        return Some(k);
    }
    if let Some((_, to)) = SYNONYMS.iter().find(|(from, _)| *from == lower) {
        if let Some(k) = known.iter().find(|k| *k == to) {
            return Some(k);
        }
    }
    let limit = (lower.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (distance(&lower, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suggestions_come_from_typos_and_synonyms_only() {
        let known = ["correlation_id", "rules", "services"];
        assert_eq!(suggest("callouts", &known), Some("rules"));
        assert_eq!(suggest("rule", &known), Some("rules"));
        assert_eq!(suggest("servics", &known), Some("services"));
        assert_eq!(suggest("Rules", &known), Some("rules"));
        assert_eq!(suggest("color", &known), None);
        // A synonym whose target this object lacks suggests nothing.
        assert_eq!(suggest("timeout", &known), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
    }

    #[test]
    fn the_message_names_the_field_and_the_known_ones() {
        let schema =
            json!({"properties": {"rules": {}, "services": {}}, "additionalProperties": false});
        assert_eq!(
            describe(&["callouts".into()], &schema, "/additionalProperties"),
            "unknown field `callouts` (did you mean `rules`?); known fields: rules, services"
        );
        let nested = json!({"$defs": {"rule": {"properties": {"operation": {}}}}});
        assert_eq!(
            describe(
                &["x".into(), "y".into()],
                &nested,
                "/$defs/rule/additionalProperties"
            ),
            "unknown fields `x`, `y`; known fields: operation"
        );
    }
}
