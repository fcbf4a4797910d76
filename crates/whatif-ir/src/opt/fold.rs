//! Constant folding: ops whose operands are all constants become constants
//! (evaluated with the f64 reference semantics), and `select` on a constant
//! condition becomes the chosen branch. Draws and params are never folded:
//! params stay runtime values so sweeps and GPU param buffers need no
//! recompilation.

use super::{Rewrite, rebuild};
use crate::program::{Op, Program, ValueId};

pub fn run(p: Program) -> Program {
    rebuild(p, |out, op, w| {
        let c = |v: ValueId| match out.ops[v.index()] {
            Op::Const(x) => Some(x),
            _ => None,
        };
        match op {
            Op::Unary(u, a) => match c(a) {
                Some(x) => Rewrite::Keep(Op::Const(u.eval(x)), w),
                None => Rewrite::Keep(op, w),
            },
            Op::Binary(b, x, y) => match (c(x), c(y)) {
                (Some(x), Some(y)) => Rewrite::Keep(Op::Const(b.eval(x, y)), w),
                _ => Rewrite::Keep(op, w),
            },
            Op::Select(cond, a, b) => match c(cond) {
                Some(x) => Rewrite::Alias(if x != 0.0 { a } else { b }),
                None => Rewrite::Keep(op, w),
            },
            _ => Rewrite::Keep(op, w),
        }
    })
}
