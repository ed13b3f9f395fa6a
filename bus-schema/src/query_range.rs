//! Ranges in a query: lower and upper bounds (`=gt=`/`=ge=` and `=lt=`/`=le=`) on the same
//! selector and value type inside one `and` bound one value together, so `n=ge=2;n=lt=5`
//! matches an object with a value in [2, 5), not one holding 1 and 10. The evaluator and the
//! planner (which walks such a pair as one index range) share this grouping.

use crate::query::{Clause, Expr, Op, Operand};

/// The bounds of one `and` on one selector and value type.
struct Group<'a> {
    first: &'a Clause,
    ty: &'static str,
    members: Vec<&'a Expr>,
    lower: bool,
    upper: bool,
}

/// A bound clause, its value type, and whether it bounds from below.
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
    let mut groups: Vec<Group> = Vec::new();
    let mut rest = Vec::new();
    for x in xs {
        let Some((c, ty, lower)) = bound(x) else {
            rest.push(x);
            continue;
        };
        let same =
            |g: &&mut Group| g.first.key == c.key && g.first.namespace == c.namespace && g.ty == ty;
        match groups.iter_mut().find(same) {
            Some(g) => {
                g.members.push(x);
                g.lower |= lower;
                g.upper |= !lower;
            }
            None => groups.push(Group {
                first: c,
                ty,
                members: vec![x],
                lower,
                upper: !lower,
            }),
        }
    }
    let mut ranges = Vec::new();
    for g in groups {
        if g.lower && g.upper {
            let clauses = g.members.iter().filter_map(|x| match x {
                Expr::Clause(c) => Some(c),
                _ => None,
            });
            ranges.push(clauses.collect());
        } else {
            rest.extend(g.members);
        }
    }
    (ranges, rest)
}
