//! Common-subexpression elimination within one scope (the shared set, or
//! one world): identical ops are merged. Two distribution calls are never
//! identical unless they are the same noise site with the same transform
//! and arguments (then they are the same value by the RNG contract), so CSE
//! never merges two distinct draws.

use super::{OpKey, Rewrite, key, rebuild};
use crate::program::{Program, ValueId};
use std::collections::HashMap;

pub fn run(p: Program) -> Program {
    let mut seen: HashMap<(Option<u32>, OpKey), ValueId> = HashMap::new();
    rebuild(p, |out, op, w| {
        let k = (w, key(&op));
        if let Some(&v) = seen.get(&k) {
            return Rewrite::Alias(v);
        }
        seen.insert(k, ValueId(out.ops.len() as u32));
        Rewrite::Keep(op, w)
    })
}
