//! The syntax table of the query language, and a proptest of the evaluator against a naive
//! filter written separately over the same data.

use super::*;
use proptest::prelude::*;

fn s(v: &str) -> TypedValue {
    TypedValue::String(v.into())
}

fn clause(ns: Option<&str>, key: &str, op: Op, operand: Operand) -> Expr {
    Expr::Clause(Clause {
        namespace: ns.map(str::to_string),
        key: key.into(),
        op,
        operand,
    })
}

fn md(text: &str) -> Result<Expr, ParseError> {
    parse(text, Selectors::Metadata)
}

#[test]
fn each_operator_parses() {
    let v = |n: f64| Operand::Value(TypedValue::Number(n));
    for (text, op) in [
        ("k==3", Op::Eq),
        ("k!=3", Op::Ne),
        ("k=lt=3", Op::Lt),
        ("k=le=3", Op::Le),
        ("k=gt=3", Op::Gt),
        ("k=ge=3", Op::Ge),
    ] {
        assert_eq!(md(text).unwrap(), clause(None, "k", op, v(3.0)), "{text}");
    }
}

#[test]
fn values_quoting_and_prefixes() {
    let cases: Vec<(&str, Expr)> = vec![
        (
            "billing|cost-center=='cc-42'",
            clause(
                Some("billing"),
                "cost-center",
                Op::Eq,
                Operand::Value(s("cc-42")),
            ),
        ),
        (
            "name=='prod*'",
            clause(None, "name", Op::Eq, Operand::Prefix("prod".into())),
        ),
        (
            r"name=='it\'s \* \\'",
            clause(None, "name", Op::Eq, Operand::Value(s(r"it's * \"))),
        ),
        (
            "n=ge=-1.5e2",
            clause(
                None,
                "n",
                Op::Ge,
                Operand::Value(TypedValue::Number(-150.0)),
            ),
        ),
        (
            "on==true",
            clause(
                None,
                "on",
                Op::Eq,
                Operand::Value(TypedValue::Boolean(true)),
            ),
        ),
        ("n=='3'", clause(None, "n", Op::Eq, Operand::Value(s("3")))),
    ];
    for (text, want) in cases {
        assert_eq!(md(text).unwrap(), want, "{text}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    let c = |k: &str| clause(None, k, Op::Eq, Operand::Value(TypedValue::Number(1.0)));
    assert_eq!(
        md("a==1,b==1;c==1").unwrap(),
        Expr::Or(vec![c("a"), Expr::And(vec![c("b"), c("c")])])
    );
    assert_eq!(
        md("a==1;b==1,c==1").unwrap(),
        Expr::Or(vec![Expr::And(vec![c("a"), c("b")]), c("c")])
    );
    assert_eq!(
        md("a==1;(b==1,c==1)").unwrap(),
        Expr::And(vec![c("a"), Expr::Or(vec![c("b"), c("c")])])
    );
}

#[test]
fn content_paths_take_upper_case_metadata_keys_do_not() {
    assert!(parse("entity.spec.nodeCount=ge=3", Selectors::Content).is_ok());
    assert!(md("Key==1").is_err());
    // A content path has no namespace.
    assert!(parse("a|b==1", Selectors::Content).is_err());
}

#[test]
fn malformed_queries_name_the_position_and_what_was_expected() {
    for (text, pos, expected) in [
        ("k=='open", 3, "closing quote"),
        ("k=~=1", 1, "an operator"),
        ("k==3*", 4, "no '*' after a number"),
        ("k=lt='a*'", 7, "range operator"),
        ("k=='a*b'", 6, "'*' may only end"),
        ("k==abc", 3, "a value"),
        ("", 0, "a key or namespace"),
        ("k==1;", 5, "a key or namespace"),
        ("(k==1", 5, "')'"),
        ("k==1)", 4, "the end of the query"),
        ("K==1", 0, "[a-z0-9._-]"),
        (r"k=='\x'", 5, "after a backslash"),
        ("k==1 ", 4, "the end of the query"),
    ] {
        let e = md(text).expect_err(text);
        assert_eq!(e.position, pos, "{text}: {e:?}");
        assert!(e.expected.contains(expected), "{text}: {e:?}");
    }
    let long = format!("k=='{}'", "a".repeat(MAX_QUERY_LEN));
    assert!(md(&long).is_err());
    let deep = format!("{}k==1{}", "(".repeat(40), ")".repeat(40));
    assert!(md(&deep).unwrap_err().expected.contains("nested"));
    let ce = md("k=~1").unwrap_err().to_command_error("/metadata");
    assert_eq!(ce.code, ErrorCode::SchemaViolation);
    assert_eq!(ce.details[0].path, "/metadata");
}

#[test]
fn clauses_compare_by_type() {
    let q = md("n=gt=5").unwrap();
    let vals = [TypedValue::Number(10.0)];
    assert!(q.eval(&|_, _| vals.iter().collect()));
    // Numbers compare as numbers, not as text ("10" < "5" as text).
    let q = md("n=lt=5").unwrap();
    assert!(!q.eval(&|_, _| vals.iter().collect()));
    // A string never satisfies a number range.
    let str_vals = [s("10")];
    assert!(!md("n=gt=5")
        .unwrap()
        .eval(&|_, _| str_vals.iter().collect()));
    // No value: not even != matches.
    assert!(!md("n!=5").unwrap().eval(&|_, _| Vec::new()));
}

#[test]
fn bounds_on_one_key_in_an_and_are_a_range_over_one_value() {
    let n = |v: &[f64]| -> Vec<TypedValue> { v.iter().map(|x| TypedValue::Number(*x)).collect() };
    let holds = |q: &str, vals: &[TypedValue]| md(q).unwrap().eval(&|_, _| vals.iter().collect());
    // 1 and 10: each bound alone is met, the range [2, 5) is not.
    let split = n(&[1.0, 10.0]);
    assert!(holds("n=ge=2", &split) && holds("n=lt=5", &split));
    assert!(!holds("n=ge=2;n=lt=5", &split));
    assert!(holds("n=ge=2;n=lt=5", &n(&[1.0, 3.0])));
    // Every bound of the range holds on that one value.
    assert!(!holds("n=gt=0;n=ge=2;n=lt=5", &n(&[1.0, 10.0])));
    // Bounds of other value types are no range: each side stands alone.
    let mixed = [TypedValue::Number(10.0), s("a")];
    assert!(holds("n=ge=2;n=lt='b'", &mixed));
    // Other clauses of the `and` are unaffected.
    assert!(holds("n=ge=2;n!=1", &split));
}

// ---- proptest: evaluator vs a naive filter over the same objects ----

/// One object's entries: (namespace, key, value).
type Obj = Vec<(String, String, TypedValue)>;

fn value() -> impl Strategy<Value = TypedValue> {
    prop_oneof![
        (0i32..6).prop_map(|n| TypedValue::Number(n as f64)),
        prop::sample::select(vec!["a", "ab", "b", "ba", ""]).prop_map(s),
        any::<bool>().prop_map(TypedValue::Boolean),
    ]
}

fn obj() -> impl Strategy<Value = Obj> {
    let ns = prop::sample::select(vec!["x", "y"]);
    let key = prop::sample::select(vec!["k", "m"]);
    prop::collection::vec(
        (ns, key, value()).prop_map(|(n, k, v)| (n.to_string(), k.to_string(), v)),
        0..4,
    )
}

fn gen_clause() -> impl Strategy<Value = Clause> {
    let ns = prop::option::of(prop::sample::select(vec!["x", "y"]));
    let key = prop::sample::select(vec!["k", "m"]);
    let op = prop::sample::select(Op::ALL.to_vec());
    let operand = prop_oneof![
        4 => value().prop_map(Operand::Value),
        1 => prop::sample::select(vec!["a", "b", ""]).prop_map(|p| Operand::Prefix(p.into())),
    ];
    (ns, key, op, operand).prop_map(|(ns, key, op, operand)| {
        let op = match operand {
            Operand::Prefix(_) if !matches!(op, Op::Eq | Op::Ne) => Op::Eq,
            _ => op,
        };
        Clause {
            namespace: ns.map(str::to_string),
            key: key.into(),
            op,
            operand,
        }
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    gen_clause()
        .prop_map(Expr::Clause)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
            ]
        })
}

/// `x <op> a` with Rust's own comparisons (`Ne` is handled by the caller).
fn ordered<T: PartialOrd>(op: Op, x: &T, a: &T) -> bool {
    match op {
        Op::Eq => x == a,
        Op::Lt => x < a,
        Op::Le => x <= a,
        Op::Gt => x > a,
        _ => x >= a,
    }
}

/// Written without `Clause::test`: each operator spelled out over plain Rust comparisons.
fn naive_value(c: &Clause, v: &TypedValue) -> bool {
    match (&c.operand, v) {
        (Operand::Prefix(p), TypedValue::String(x)) => (c.op == Op::Eq) == x.starts_with(p),
        (Operand::Prefix(_), _) => c.op == Op::Ne,
        (Operand::Value(lit), v) if c.op == Op::Ne => lit != v,
        (Operand::Value(TypedValue::Number(a)), TypedValue::Number(x)) => ordered(c.op, x, a),
        (Operand::Value(TypedValue::String(a)), TypedValue::String(x)) => ordered(c.op, x, a),
        (Operand::Value(TypedValue::Boolean(a)), TypedValue::Boolean(x)) => match c.op {
            Op::Eq => x == a,
            Op::Lt => !x & a,
            Op::Le => x <= a,
            Op::Gt => x & !a,
            _ => x >= a,
        },
        _ => false,
    }
}

fn selects(c: &Clause, ns: &str, k: &str) -> bool {
    k == c.key && c.namespace.as_ref().is_none_or(|n| n == ns)
}

/// A bound clause: its selector and value type, and whether it bounds from below.
fn naive_bound(x: &Expr) -> Option<(&Clause, &'static str, bool)> {
    match x {
        Expr::Clause(c) => match (&c.operand, c.op) {
            (Operand::Value(v), Op::Gt | Op::Ge) => Some((c, v.type_name(), true)),
            (Operand::Value(v), Op::Lt | Op::Le) => Some((c, v.type_name(), false)),
            _ => None,
        },
        _ => None,
    }
}

fn naive(e: &Expr, o: &Obj) -> bool {
    match e {
        // A bound whose `and` also bounds its selector (and value type) from the other side
        // holds only with those bounds, on one value.
        Expr::And(xs) => xs.iter().all(|x| {
            let Some((c, ty, _)) = naive_bound(x) else {
                return naive(x, o);
            };
            let group: Vec<(&Clause, bool)> = xs
                .iter()
                .filter_map(naive_bound)
                .filter(|(d, t, _)| d.key == c.key && d.namespace == c.namespace && *t == ty)
                .map(|(d, _, lower)| (d, lower))
                .collect();
            let ranged = group.iter().any(|g| g.1) && group.iter().any(|g| !g.1);
            o.iter().any(|(ns, k, v)| {
                selects(c, ns, k)
                    && if ranged {
                        group.iter().all(|(d, _)| naive_value(d, v))
                    } else {
                        naive_value(c, v)
                    }
            })
        }),
        Expr::Or(xs) => xs.iter().any(|x| naive(x, o)),
        Expr::Clause(c) => o
            .iter()
            .any(|(ns, k, v)| selects(c, ns, k) && naive_value(c, v)),
    }
}

proptest! {
    #[test]
    fn evaluator_agrees_with_a_naive_filter(e in expr(), objs in prop::collection::vec(obj(), 1..8)) {
        // Through the text form too: what is displayed parses back to the same query.
        let parsed = md(&e.to_string()).unwrap();
        prop_assert_eq!(&parsed, &e);
        for o in &objs {
            let lookup = |ns: Option<&str>, key: &str| -> Vec<&TypedValue> {
                o.iter()
                    .filter(|(n, k, _)| k == key && ns.is_none_or(|x| x == n))
                    .map(|(_, _, v)| v)
                    .collect()
            };
            prop_assert_eq!(parsed.eval(&lookup), naive(&e, o), "{} on {:?}", e, o);
        }
    }
}
