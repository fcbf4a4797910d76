//! Cross-world sharing: an op whose operands are all shared computes the
//! same lanes in every world, so it moves to the shared set and identical
//! shared ops are merged. What remains per world is exactly what that
//! world's edits reach. Override parameter slots stay with their world.

use super::{OpKey, Rewrite, key, rebuild};
use crate::program::{Op, Program};
use std::collections::HashMap;

pub fn run(p: Program) -> Program {
    let mut seen: HashMap<OpKey, crate::program::ValueId> = HashMap::new();
    rebuild(p, |out, op, w| {
        let hoistable = op
            .operands()
            .iter()
            .all(|v| out.op_world[v.index()].is_none())
            && !matches!(op, Op::Param(k) if out.params[k as usize].world.is_some());
        if w.is_none() || hoistable {
            let k = key(&op);
            if let Some(&v) = seen.get(&k) {
                return Rewrite::Alias(v);
            }
            let v = crate::program::ValueId(out.ops.len() as u32);
            seen.insert(k, v);
            Rewrite::Keep(op, None)
        } else {
            Rewrite::Keep(op, w)
        }
    })
}
