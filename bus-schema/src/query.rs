//! The search language of `metadata` (entities/query, tasks/query) and entity `filter`:
//! clauses `[namespace|]key<op>value` joined by `;` (and, binds tighter) and `,` (or), with
//! parentheses. Parsing and evaluation only; which index serves a query is the broker's.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

use crate::errors::{CommandError, ErrorCode, ErrorDetail};

/// A typed value: of a metadata entry, or a literal of a clause. On the wire
/// `{"type": "string"|"number"|"boolean", "value": ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum TypedValue {
    String(String),
    Number(f64),
    Boolean(bool),
}

/// Largest integer an f64 holds exactly.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

impl Serialize for TypedValue {
    /// A whole number is written as an integer (`8`, not `8.0`), as it was given.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TypedValue", 2)?;
        st.serialize_field("type", self.type_name())?;
        match self {
            TypedValue::String(v) => st.serialize_field("value", v)?,
            TypedValue::Boolean(v) => st.serialize_field("value", v)?,
            TypedValue::Number(n) if n.fract() == 0.0 && n.abs() <= EXACT_INT => {
                st.serialize_field("value", &(*n as i64))?
            }
            TypedValue::Number(n) => st.serialize_field("value", n)?,
        }
        st.end()
    }
}

impl TypedValue {
    /// Order within one type; values of different types do not compare.
    pub fn compare(&self, other: &TypedValue) -> Option<Ordering> {
        match (self, other) {
            (TypedValue::String(a), TypedValue::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (TypedValue::Number(a), TypedValue::Number(b)) => a.partial_cmp(b),
            (TypedValue::Boolean(a), TypedValue::Boolean(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            TypedValue::String(_) => "string",
            TypedValue::Number(_) => "number",
            TypedValue::Boolean(_) => "boolean",
        }
    }

    /// A JSON scalar as a typed value (content filters); other JSON is not comparable.
    pub fn from_json(v: &serde_json::Value) -> Option<TypedValue> {
        match v {
            serde_json::Value::String(s) => Some(TypedValue::String(s.clone())),
            serde_json::Value::Number(n) => n.as_f64().map(TypedValue::Number),
            serde_json::Value::Bool(b) => Some(TypedValue::Boolean(*b)),
            _ => None,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub const ALL: [Op; 6] = [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "=lt=",
            Op::Le => "=le=",
            Op::Gt => "=gt=",
            Op::Ge => "=ge=",
        }
    }
}

/// The right-hand side of a clause: a value, or a string prefix (`'prod*'`).
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Value(TypedValue),
    Prefix(String),
}

/// `[namespace|]key<op>operand`. Without a namespace the key matches in every namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub namespace: Option<String>,
    pub key: String,
    pub op: Op,
    pub operand: Operand,
}

impl Clause {
    /// Whether one value held under the clause's key satisfies it.
    pub fn test(&self, v: &TypedValue) -> bool {
        match &self.operand {
            Operand::Prefix(p) => {
                let is = matches!(v, TypedValue::String(s) if s.starts_with(p.as_str()));
                if self.op == Op::Ne {
                    !is
                } else {
                    is
                }
            }
            Operand::Value(lit) => match self.op {
                Op::Ne => v != lit,
                op => match v.compare(lit) {
                    None => false,
                    Some(o) => match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    },
                },
            },
        }
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Clause(Clause),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Whether an object matches, given the values it holds (and the requester may see) under
    /// a clause's selector. A clause matches when some such value satisfies it, so an object
    /// without a visible value for the key matches no clause, `!=` included. Lower and upper
    /// bounds on one selector in an `and` are a range: one value must satisfy them all
    /// (`query_range`).
    pub fn eval<'a, F>(&self, values: &F) -> bool
    where
        F: Fn(Option<&str>, &str) -> Vec<&'a TypedValue>,
    {
        match self {
            Expr::Clause(c) => values(c.namespace.as_deref(), &c.key)
                .into_iter()
                .any(|v| c.test(v)),
            Expr::And(xs) => {
                let (ranges, rest) = crate::query_range::split(xs);
                rest.iter().all(|x| x.eval(values))
                    && ranges.iter().all(|r| {
                        values(r[0].namespace.as_deref(), &r[0].key)
                            .into_iter()
                            .any(|v| r.iter().all(|c| c.test(v)))
                    })
            }
            Expr::Or(xs) => xs.iter().any(|x| x.eval(values)),
        }
    }

    /// Every clause, left to right.
    pub fn clauses(&self) -> Vec<&Clause> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Clause>) {
            match e {
                Expr::Clause(c) => out.push(c),
                Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| walk(x, out)),
            }
        }
        walk(self, &mut out);
        out
    }
}

impl fmt::Display for TypedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedValue::String(s) => write!(f, "'{}'", escape(s)),
            TypedValue::Number(n) => write!(f, "{n}"),
            TypedValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\'' | '\\' | '*') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

impl fmt::Display for Expr {
    /// The query text that parses back to this expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, xs: &[Expr], sep: &str| -> fmt::Result {
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "({x})")?;
            }
            Ok(())
        };
        match self {
            Expr::Clause(c) => {
                if let Some(ns) = &c.namespace {
                    write!(f, "{ns}|")?;
                }
                write!(f, "{}{}", c.key, c.op.as_str())?;
                match &c.operand {
                    Operand::Value(v) => write!(f, "{v}"),
                    Operand::Prefix(p) => write!(f, "'{}*'", escape(p)),
                }
            }
            Expr::And(xs) => join(f, xs, ";"),
            Expr::Or(xs) => join(f, xs, ","),
        }
    }
}

/// Where a query failed to parse: the character offset and what was expected there.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub position: usize,
    pub expected: String,
}

impl ParseError {
    /// The error as the reply to a command whose field `field` (`/metadata`, `/filter`) held it.
    pub fn to_command_error(&self, field: &str) -> CommandError {
        let message = format!("at position {}: {}", self.position, self.expected);
        CommandError::new(ErrorCode::SchemaViolation, format!("{field}: {message}")).with_details(
            vec![ErrorDetail {
                path: field.to_string(),
                message,
            }],
        )
    }
}

/// What a selector may hold: metadata names are `[a-z0-9._-]`; content paths also take
/// upper case (`entity.spec.nodeCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selectors {
    Metadata,
    Content,
}

/// Longest query text accepted.
pub const MAX_QUERY_LEN: usize = 4096;
/// Deepest parenthesis nesting accepted.
const MAX_DEPTH: usize = 32;

/// Parses a query.
pub fn parse(text: &str, kind: Selectors) -> Result<Expr, ParseError> {
    if text.len() > MAX_QUERY_LEN {
        return Err(ParseError {
            position: MAX_QUERY_LEN,
            expected: format!("a query of at most {MAX_QUERY_LEN} bytes"),
        });
    }
    let mut p = Parser {
        s: text.chars().collect(),
        i: 0,
        kind,
        depth: 0,
    };
    let e = p.or()?;
    if p.i < p.s.len() {
        return Err(p.err("';', ',' or the end of the query"));
    }
    Ok(e)
}

struct Parser {
    s: Vec<char>,
    i: usize,
    kind: Selectors,
    depth: usize,
}

impl Parser {
    fn err(&self, expected: &str) -> ParseError {
        let found = match self.s.get(self.i) {
            Some(c) => format!("'{c}'"),
            None => "the end".into(),
        };
        ParseError {
            position: self.i,
            expected: format!("expected {expected}, found {found}"),
        }
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut xs = vec![self.and()?];
        while self.peek() == Some(',') {
            self.i += 1;
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Expr::Or(xs)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut xs = vec![self.term()?];
        while self.peek() == Some(';') {
            self.i += 1;
            xs.push(self.term()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Expr::And(xs)
        })
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some('(') {
            if self.depth >= MAX_DEPTH {
                return Err(self.err(&format!("at most {MAX_DEPTH} nested parentheses")));
            }
            self.i += 1;
            self.depth += 1;
            let e = self.or()?;
            self.depth -= 1;
            if self.peek() != Some(')') {
                return Err(self.err("')'"));
            }
            self.i += 1;
            return Ok(e);
        }
        self.clause().map(Expr::Clause)
    }

    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-')
                || (self.kind == Selectors::Content && c.is_ascii_uppercase());
            if !ok {
                break;
            }
            self.i += 1;
        }
        let n: String = self.s[start..self.i].iter().collect();
        if n.is_empty() || n.len() > 128 {
            self.i = start;
            let rule = match self.kind {
                Selectors::Metadata => "[a-z0-9._-]{1,128}",
                Selectors::Content => "[A-Za-z0-9._-]{1,128}",
            };
            return Err(self.err(&format!("{what} ({rule})")));
        }
        Ok(n)
    }

    fn clause(&mut self) -> Result<Clause, ParseError> {
        let what = match self.kind {
            Selectors::Metadata => "a key or namespace",
            Selectors::Content => "a content path",
        };
        let first = self.name(what)?;
        let (namespace, key) = if self.kind == Selectors::Metadata && self.peek() == Some('|') {
            self.i += 1;
            (Some(first), self.name("a key")?)
        } else {
            (None, first)
        };
        let op = self.op()?;
        let operand = self.operand(op)?;
        Ok(Clause {
            namespace,
            key,
            op,
            operand,
        })
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        for op in Op::ALL {
            let t: Vec<char> = op.as_str().chars().collect();
            if self.s[self.i..].starts_with(&t) {
                self.i += t.len();
                return Ok(op);
            }
        }
        Err(self.err("an operator (==, !=, =lt=, =le=, =gt=, =ge=)"))
    }

    fn operand(&mut self, op: Op) -> Result<Operand, ParseError> {
        if self.peek() == Some('\'') {
            return self.quoted(op);
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, ';' | ',' | ')' | '(' | '\'') || c.is_whitespace() {
                break;
            }
            self.i += 1;
        }
        let word: String = self.s[start..self.i].iter().collect();
        match word.as_str() {
            "true" => return Ok(Operand::Value(TypedValue::Boolean(true))),
            "false" => return Ok(Operand::Value(TypedValue::Boolean(false))),
            _ => {}
        }
        if let Some(star) = word.find('*') {
            if word[..star].parse::<f64>().is_ok() {
                self.i = start + word[..star].chars().count();
                return Err(self.err("no '*' after a number (a prefix must be a quoted string)"));
            }
        }
        match word.parse::<f64>() {
            Ok(n) if n.is_finite() && looks_numeric(&word) => {
                Ok(Operand::Value(TypedValue::Number(if n == 0.0 {
                    0.0
                } else {
                    n
                })))
            }
            _ => {
                self.i = start;
                Err(self.err("a value: a 'quoted string', a number, true or false"))
            }
        }
    }

    fn quoted(&mut self, op: Op) -> Result<Operand, ParseError> {
        let open = self.i;
        self.i += 1;
        let mut s = String::new();
        let mut prefix = false;
        loop {
            match self.peek() {
                None => {
                    self.i = open;
                    return Err(self.err("a closing quote for the string that starts here"));
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ ('\'' | '\\' | '*')) => {
                            s.push(c);
                            self.i += 1;
                        }
                        _ => return Err(self.err("\\', \\\\ or \\* after a backslash")),
                    }
                }
                Some('\'') => {
                    self.i += 1;
                    break;
                }
                Some('*') => {
                    self.i += 1;
                    if self.peek() != Some('\'') {
                        return Err(self.err("a closing quote: '*' may only end a string"));
                    }
                    prefix = true;
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
        if !prefix {
            return Ok(Operand::Value(TypedValue::String(s)));
        }
        if !matches!(op, Op::Eq | Op::Ne) {
            self.i -= 2;
            return Err(self.err("no '*' with a range operator (a prefix takes == or !=)"));
        }
        Ok(Operand::Prefix(s))
    }
}

/// JSON-like number syntax (so `inf`, `NaN` or `1_0` are not numbers).
fn looks_numeric(w: &str) -> bool {
    let w = w.strip_prefix('-').unwrap_or(w);
    w.starts_with(|c: char| c.is_ascii_digit())
        && w.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
