//! Recovering a command's `correlation_id` from the start of a payload that is too large to
//! parse: a top-level scan of the JSON object that skips values without building them, so
//! a `payload_too_large` reply can still carry the id the client sent.

use crate::decode::CORRELATION_ID;
use serde_json::Value;

/// The top-level `correlation_id` (a string or a number) of the JSON object that `prefix`
/// starts, if it appears complete within `prefix`. Values before it are skipped, not parsed,
/// so nested objects and strings that mention `correlation_id` do not count. On a repeated
/// key the first one wins (the rest of the payload may not have been read).
pub fn correlation_id_in_prefix(prefix: &[u8]) -> Option<Value> {
    let mut s = Scanner { b: prefix, i: 0 };
    s.ws();
    s.eat(b'{')?;
    loop {
        s.ws();
        if s.peek()? == b'}' {
            return None;
        }
        let key = s.span(Scanner::string)?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        let value = s.span(Scanner::value)?;
        if is_correlation_key(key) {
            let v: Value = serde_json::from_slice(value).ok()?;
            return (v.is_string() || v.is_number()).then_some(v);
        }
        s.ws();
        if s.next()? != b',' {
            return None;
        }
    }
}

fn is_correlation_key(quoted: &[u8]) -> bool {
    let plain = quoted.len() == CORRELATION_ID.len() + 2
        && &quoted[1..quoted.len() - 1] == CORRELATION_ID.as_bytes();
    // A key spelled with escapes (`"correlation\u005fid"`) is the same key.
    plain
        || (quoted.contains(&b'\\')
            && serde_json::from_slice::<String>(quoted).is_ok_and(|k| k == CORRELATION_ID))
}

/// A cursor over bytes; every method returns `None` when the input ends first.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Runs `f` and returns the bytes it consumed.
    fn span(&mut self, f: fn(&mut Self) -> Option<()>) -> Option<&'a [u8]> {
        let start = self.i;
        f(self)?;
        Some(&self.b[start..self.i])
    }

    /// A string, quotes included.
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Any value; objects and arrays are skipped by depth, minding strings.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => self.string()?,
                        b'{' | b'[' => {
                            depth += 1;
                            self.i += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.i += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.i += 1,
                    }
                }
            }
            _ => {
                // A number, `true`, `false` or `null`: it must end before the prefix does,
                // or a cut number would be taken for a shorter one.
                let start = self.i;
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scan(s: &str) -> Option<Value> {
        correlation_id_in_prefix(s.as_bytes())
    }

    #[test]
    fn finds_a_top_level_string_or_number() {
        assert_eq!(
            scan(r#"{"correlation_id": "c-1", "x": 1}"#),
            Some(json!("c-1"))
        );
        assert_eq!(scan(r#" {"a":1,"correlation_id":42,"b":"#), Some(json!(42)));
        assert_eq!(
            scan(r#"{"correlation\u005fid": "esc\"aped", "b": 2}"#),
            Some(json!("esc\"aped"))
        );
    }

    #[test]
    fn skips_earlier_values_whatever_they_hold() {
        let s = r#"{"data": {"correlation_id": "inner", "s": "}\"{"}, "list": [1, [2, {"a": "]"}]],
            "t": true, "n": null, "correlation_id": "outer", "blob": "xxxxxxxx"#;
        assert_eq!(scan(s), Some(json!("outer")));
        assert_eq!(
            scan(r#"{"note": "\"correlation_id\": \"fake\"", "k": 1"#),
            None
        );
    }

    #[test]
    fn nothing_when_cut_short_absent_or_not_an_id() {
        // The id itself is cut: a number could be longer, a string is unfinished.
        assert_eq!(scan(r#"{"correlation_id": 12"#), None);
        assert_eq!(scan(r#"{"correlation_id": "c-"#), None);
        // Cut before the key.
        assert_eq!(scan(r#"{"data": {"a": "#), None);
        assert_eq!(scan(r#"{"a": 1}"#), None);
        assert_eq!(scan(r#"{"correlation_id": {"a": 1}, "x": 1}"#), None);
        assert_eq!(scan(r#"{"correlation_id": null}"#), None);
        assert_eq!(scan(r#"["correlation_id", "c"]"#), None);
        assert_eq!(scan(""), None);
        assert_eq!(scan("{}"), None);
        assert_eq!(correlation_id_in_prefix(&[0xff, 0xfe, b'{']), None);
        // Not JSON after the value: stop rather than guess.
        assert_eq!(scan(r#"{"a": 1 "correlation_id": "c"}"#), None);
    }
}
