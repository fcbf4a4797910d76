//! The reference interpreter: slow, obviously correct, f64.
//!
//! It evaluates one sample at a time, op by op, with the f64 semantics of
//! [`crate::program::UnaryOp::eval`], [`crate::program::BinaryOp::eval`] and
//! [`crate::dist::sample_f64`], from the same Philox words every backend
//! uses. It is the oracle of the cross-backend equivalence suite.

use crate::dist::sample_f64;
use crate::program::{Op, Program};

/// Evaluate every op of `p` for global sample `sample_idx`.
pub fn eval_sample(p: &Program, sample_idx: u64) -> Vec<f64> {
    let mut vals: Vec<f64> = Vec::with_capacity(p.ops.len());
    for op in &p.ops {
        let v = match op {
            Op::Const(x) => *x,
            Op::Param(k) => p.params[*k as usize].value,
            Op::Draw { dist, site, args } => {
                let a: Vec<f64> = args.iter().map(|v| vals[v.index()]).collect();
                sample_f64(*dist, &a, p.seed, *site, sample_idx)
            }
            Op::Unary(u, a) => u.eval(vals[a.index()]),
            Op::Binary(b, x, y) => b.eval(vals[x.index()], vals[y.index()]),
            Op::Select(c, a, b) => {
                if vals[c.index()] != 0.0 {
                    vals[a.index()]
                } else {
                    vals[b.index()]
                }
            }
        };
        vals.push(v);
    }
    vals
}

/// The outputs of `p` (in `p.outputs` order) for each sample in `range`:
/// `result[o][i]` is output `o` of sample `range.start + i`.
pub fn eval_outputs(p: &Program, range: std::ops::Range<u64>) -> Vec<Vec<f64>> {
    let mut cols = vec![Vec::with_capacity((range.end - range.start) as usize); p.outputs.len()];
    for i in range {
        let vals = eval_sample(p, i);
        for (o, out) in p.outputs.iter().enumerate() {
            cols[o].push(vals[out.value.index()]);
        }
    }
    cols
}
