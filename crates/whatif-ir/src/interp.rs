//! The reference interpreter: slow, obviously correct, f64.
//!
//! It evaluates one sample at a time, op by op, with the f64 semantics of
//! [`crate::program::UnaryOp::eval`], [`crate::program::BinaryOp::eval`] and
//! [`crate::dist::sample_f64`], from the same Philox words every backend
//! uses. It is the oracle of the cross-backend equivalence suite. Programs
//! with units follow their [`crate::structure::Schedule`]: unit aggregates
//! fold units in increasing order (sum, count and max in f64; mean is the
//! sum divided by the unit count).

use crate::dist::sample_f64_stream;
use crate::program::{Op, Program, UnitAgg, ValueId};
use crate::rng::RngStream;
use crate::structure::{Step, schedule};

/// Evaluate every op of `p` for global sample `sample_idx`. Unit-level ops
/// hold their value for the last unit evaluated (NaN if none was needed).
pub fn eval_sample(p: &Program, sample_idx: u64) -> Vec<f64> {
    let mut vals: Vec<f64> = vec![f64::NAN; p.ops.len()];
    if p.units.is_none() {
        for i in 0..p.ops.len() {
            vals[i] = eval_op(p, i, &vals, sample_idx, 0);
        }
        return vals;
    }
    let units = p.unit_count();
    for step in schedule(p).steps {
        match step {
            Step::Ops(ops) => {
                for v in ops {
                    vals[v.index()] = eval_op(p, v.index(), &vals, sample_idx, 0);
                }
            }
            Step::Units { body, aggs } => {
                let mut acc: Vec<f64> = aggs
                    .iter()
                    .map(|a| match p.ops[a.index()] {
                        Op::UnitAgg(UnitAgg::Max, _) => f64::NEG_INFINITY,
                        _ => 0.0,
                    })
                    .collect();
                for u in 0..units {
                    for v in &body {
                        vals[v.index()] = eval_op(p, v.index(), &vals, sample_idx, u);
                    }
                    for (acc, a) in acc.iter_mut().zip(&aggs) {
                        let Op::UnitAgg(agg, x) = p.ops[a.index()] else {
                            unreachable!("schedule lists aggregates only")
                        };
                        let x = vals[x.index()];
                        *acc = match agg {
                            UnitAgg::Sum | UnitAgg::Mean => *acc + x,
                            UnitAgg::Count => *acc + f64::from(x != 0.0),
                            UnitAgg::Max => crate::program::BinaryOp::Max.eval(*acc, x),
                        };
                    }
                }
                for (acc, a) in acc.into_iter().zip(&aggs) {
                    vals[a.index()] = match p.ops[a.index()] {
                        Op::UnitAgg(UnitAgg::Mean, _) => acc / f64::from(units),
                        _ => acc,
                    };
                }
            }
        }
    }
    vals
}

/// Op `i` of `p` for one sample and unit, its operands taken from `vals`.
fn eval_op(p: &Program, i: usize, vals: &[f64], sample_idx: u64, unit: u32) -> f64 {
    let at = |v: &ValueId| vals[v.index()];
    match &p.ops[i] {
        Op::Const(x) => *x,
        Op::Param(k) => p.params[*k as usize].value,
        Op::Draw {
            dist,
            site,
            args,
            period,
            unit: per_unit,
        } => {
            let a: Vec<f64> = args.iter().map(at).collect();
            let stream = RngStream {
                seed: p.seed,
                site: *site,
                unit: if *per_unit { unit } else { 0 },
                period: *period,
            };
            sample_f64_stream(*dist, &a, &stream, sample_idx)
        }
        Op::Covariate(c) => p
            .units
            .as_ref()
            .map_or(f64::NAN, |u| u.columns[*c as usize][unit as usize]),
        Op::Input(c) => p
            .inputs
            .as_ref()
            .map_or(f64::NAN, |t| t.columns[*c as usize][sample_idx as usize]),
        // Only reached when a program has no units: no unit to aggregate.
        Op::UnitAgg(..) => f64::NAN,
        Op::Unary(u, a) => u.eval(at(a)),
        Op::Binary(b, x, y) => b.eval(at(x), at(y)),
        Op::Select(c, a, b) => {
            if at(c) != 0.0 {
                at(a)
            } else {
                at(b)
            }
        }
    }
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
