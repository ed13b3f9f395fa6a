//! Ranges in a query: lower and upper bounds (`=gt=`/`=ge=` and `=lt=`/`=le=`) on the same
//! selector and value type inside one `and` bound one value together, so `n=ge=2;n=lt=5`
//! matches an object with a value in [2, 5), not one holding 1 and 10. The evaluator and the
//! planner (which walks such a pair as one index range) share this grouping.

use crate::query::{Clause, Expr, Op, Operand};

/// A bound clause's selector, value type, and whether it is a lower bound.
fn bound(x: &Expr) -> Option<(&Clause, &'static str, bool)> {
    let Expr::Clause(c) = x else { return None };
    let Operand::Value(v) = &c.operand else {
        return None;
    };
    match c.op {
        Op::Gt | Op::Ge => Some((c, v.type_name(), true)),
        Op::Lt | Op::Le => Some((c, v.type_name(), false)),
        Op::Eq | Op::Ne => None,
    }
}

/// The sides of an `and` split into ranges (groups of bounds on one selector and value type
/// holding at least one lower and one upper bound) and everything else.
pub fn split(xs: &[Expr]) -> (Vec<Vec<&Clause>>, Vec<&Expr>) {
    let mut groups: Vec<(&Clause, &'static str, Vec<&Expr>, bool, bool)> = Vec::new();
    let mut rest = Vec::new();
    for x in xs {
        let Some((c, ty, lower)) = bound(x) else {
            rest.push(x);
            continue;
        };
        let same = |g: &&mut (&Clause, &str, Vec<&Expr>, bool, bool)| {
            g.0.key == c.key && g.0.namespace == c.namespace && g.1 == ty
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => {
                g.2.push(x);
                g.3 |= lower;
                g.4 |= !lower;
            }
            None => groups.push((c, ty, vec![x], lower, !lower)),
        }
    }
    let mut ranges = Vec::new();
    for (_, _, members, has_lower, has_upper) in groups {
        if has_lower && has_upper {
            ranges.push(
                members
                    .iter()
                    .filter_map(|x| match x {
                        Expr::Clause(c) => Some(c),
                        _ => None,
                    })
                    .collect(),
            );
        } else {
            rest.extend(members);
        }
    }
    (ranges, rest)
}
