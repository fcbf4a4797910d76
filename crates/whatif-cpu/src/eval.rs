//! Evaluating one chunk of a plan: one loop per instruction, written so that
//! LLVM vectorises every loop (no calls, no branches that depend on data
//! except as selects).

use crate::math;
use crate::plan::{AggInstr, Instr, Plan, Src};
use whatif_ir::rng::RngStream;
use whatif_ir::{BinaryOp, UnaryOp, UnitAgg};

/// Per-thread registers, reused for every chunk.
#[derive(Debug)]
pub struct Scratch {
    pub regs: Vec<Vec<f32>>,
}

impl Scratch {
    pub fn new(plan: &Plan, chunk: usize) -> Self {
        Scratch {
            regs: vec![vec![0.0; chunk]; plan.n_regs],
        }
    }
}

/// Evaluate lanes `start .. start + n` (`start` a multiple of 4) into the
/// registers of `scratch`.
pub fn eval_chunk(plan: &Plan, scratch: &mut Scratch, start: u64, n: usize) {
    crate::dispatch::eval_chunk(plan, scratch, start, n)
}

/// The portable body; `dispatch` compiles it once per instruction set.
#[inline(always)]
pub(crate) fn eval_chunk_body(plan: &Plan, scratch: &mut Scratch, start: u64, n: usize) {
    for ins in &plan.instrs {
        match ins {
            Instr::UnitLoop { body, aggs } => {
                for a in aggs {
                    let init = if a.agg == UnitAgg::Max {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    };
                    scratch.regs[a.acc as usize][..n].fill(init);
                }
                for u in 0..plan.units {
                    for b in body {
                        exec(plan, b, scratch, start, n, u);
                    }
                    for a in aggs {
                        fold(plan, a, scratch, n, u);
                    }
                }
                let units = plan.units as f32;
                for a in aggs {
                    if a.agg == UnitAgg::Mean {
                        for x in &mut scratch.regs[a.acc as usize][..n] {
                            *x /= units;
                        }
                    }
                }
            }
            _ => exec(plan, ins, scratch, start, n, 0),
        }
    }
}

/// Fold one unit's value into an aggregate's accumulator.
#[inline(always)]
fn fold(plan: &Plan, a: &AggInstr, scratch: &mut Scratch, n: usize, unit: u32) {
    let mut acc = std::mem::take(&mut scratch.regs[a.acc as usize]);
    {
        let x = view(&scratch.regs, &plan.covariates, a.src, n, unit);
        let o = &mut acc[..n];
        let f = |o: &mut [f32], g: &dyn Fn(f32, f32) -> f32| match x {
            View::L(x) => {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = g(*o, x);
                }
            }
            View::S(x) => {
                for o in o.iter_mut() {
                    *o = g(*o, x);
                }
            }
        };
        match a.agg {
            UnitAgg::Sum | UnitAgg::Mean => f(o, &|acc, x| acc + x),
            UnitAgg::Count => f(o, &|acc, x| acc + flag(x != 0.0)),
            UnitAgg::Max => f(o, &|acc, x| {
                if acc.is_nan() || x.is_nan() {
                    f32::NAN
                } else if x > acc {
                    x
                } else {
                    acc
                }
            }),
        }
    }
    scratch.regs[a.acc as usize] = acc;
}

/// Run one (non-loop) instruction over the chunk, for unit `unit`.
#[inline(always)]
fn exec(plan: &Plan, ins: &Instr, scratch: &mut Scratch, start: u64, n: usize, unit: u32) {
    let dst = match ins {
        Instr::Fill { dst, .. }
        | Instr::Input { dst, .. }
        | Instr::Draw { dst, .. }
        | Instr::Unary { dst, .. }
        | Instr::Binary { dst, .. }
        | Instr::Select { dst, .. } => *dst,
        Instr::UnitLoop { .. } => unreachable!("unit loops do not nest"),
    };
    let cov = &plan.covariates;
    // Take the destination out so sources can be borrowed alongside it.
    let mut out = std::mem::take(&mut scratch.regs[dst as usize]);
    {
        let regs = &scratch.regs;
        let o = &mut out[..n];
        match ins {
            Instr::Fill { value, .. } => o.fill(*value),
            Instr::Input { col, .. } => {
                let s = start as usize;
                o.copy_from_slice(&plan.inputs[*col as usize][s..s + n]);
            }
            Instr::Draw {
                dist,
                site,
                args,
                period,
                unit: per_unit,
                ..
            } => {
                // No allocation per chunk: distributions take at most
                // two parameters.
                let mut a = [crate::kernels::Arg::Scalar(0.0); 2];
                assert!(
                    args.len() <= a.len(),
                    "{} takes {} arguments",
                    dist.name(),
                    args.len()
                );
                for (d, s) in a.iter_mut().zip(args) {
                    *d = match view(regs, cov, *s, n, unit) {
                        View::S(x) => crate::kernels::Arg::Scalar(x),
                        View::L(x) => crate::kernels::Arg::Lanes(x),
                    };
                }
                let stream = RngStream {
                    seed: plan.seed,
                    site: *site,
                    unit: if *per_unit { unit } else { 0 },
                    period: *period,
                };
                crate::kernels::fill_stream(*dist, &a[..args.len()], &stream, start, o);
            }
            Instr::Unary { op, a, .. } => unary(*op, view(regs, cov, *a, n, unit), o),
            Instr::Binary { op, a, b, .. } => binary(
                *op,
                view(regs, cov, *a, n, unit),
                view(regs, cov, *b, n, unit),
                o,
            ),
            Instr::Select { c, a, b, .. } => {
                let (c, a, b) = (
                    view(regs, cov, *c, n, unit),
                    view(regs, cov, *a, n, unit),
                    view(regs, cov, *b, n, unit),
                );
                map3(c, a, b, o, |c, a, b| if c != 0.0 { a } else { b });
            }
            Instr::UnitLoop { .. } => unreachable!(),
        }
    }
    scratch.regs[dst as usize] = out;
}

/// A read-only operand: a lane slice or a broadcast scalar.
#[derive(Clone, Copy)]
enum View<'a> {
    L(&'a [f32]),
    S(f32),
}

#[inline(always)]
fn view<'a>(regs: &'a [Vec<f32>], cov: &[Vec<f32>], s: Src, n: usize, unit: u32) -> View<'a> {
    match s {
        Src::R(r) => View::L(&regs[r as usize][..n]),
        Src::S(x) => View::S(x),
        Src::C(c) => View::S(cov[c as usize][unit as usize]),
    }
}

#[inline(always)]
fn map1(a: View<'_>, o: &mut [f32], f: impl Fn(f32) -> f32) {
    match a {
        View::L(a) => {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = f(a);
            }
        }
        View::S(a) => o.fill(f(a)),
    }
}

#[inline(always)]
fn map2(a: View<'_>, b: View<'_>, o: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    match (a, b) {
        (View::L(a), View::L(b)) => {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        }
        (View::L(a), View::S(b)) => {
            for (o, &a) in o.iter_mut().zip(a) {
                *o = f(a, b);
            }
        }
        (View::S(a), View::L(b)) => {
            for (o, &b) in o.iter_mut().zip(b) {
                *o = f(a, b);
            }
        }
        (View::S(a), View::S(b)) => o.fill(f(a, b)),
    }
}

#[inline(always)]
fn map3(c: View<'_>, a: View<'_>, b: View<'_>, o: &mut [f32], f: impl Fn(f32, f32, f32) -> f32) {
    let at = |v: View<'_>, i: usize| match v {
        View::L(x) => x[i],
        View::S(x) => x,
    };
    for (i, o) in o.iter_mut().enumerate() {
        *o = f(at(c, i), at(a, i), at(b, i));
    }
}

#[inline(always)]
fn flag(c: bool) -> f32 {
    if c { 1.0 } else { 0.0 }
}

#[inline(always)]
fn unary(op: UnaryOp, a: View<'_>, o: &mut [f32]) {
    match op {
        UnaryOp::Neg => map1(a, o, |x| -x),
        UnaryOp::Not => map1(a, o, |x| flag(x == 0.0)),
        UnaryOp::Exp => map1(a, o, math::exp),
        UnaryOp::Log => map1(a, o, math::ln),
        UnaryOp::Sqrt => map1(a, o, f32::sqrt),
        UnaryOp::Abs => map1(a, o, f32::abs),
        UnaryOp::Sigmoid => map1(a, o, math::sigmoid),
        UnaryOp::Logit => map1(a, o, math::logit),
        UnaryOp::Tanh => map1(a, o, math::tanh),
        UnaryOp::Floor => map1(a, o, f32::floor),
        UnaryOp::Ceil => map1(a, o, f32::ceil),
        UnaryOp::Round => map1(a, o, f32::round),
    }
}

#[inline(always)]
fn binary(op: BinaryOp, a: View<'_>, b: View<'_>, o: &mut [f32]) {
    match op {
        BinaryOp::Add => map2(a, b, o, |x, y| x + y),
        BinaryOp::Sub => map2(a, b, o, |x, y| x - y),
        BinaryOp::Mul => map2(a, b, o, |x, y| x * y),
        BinaryOp::Div => map2(a, b, o, |x, y| x / y),
        BinaryOp::Pow => map2(a, b, o, math::pow),
        // NaN-propagating, like the reference semantics.
        BinaryOp::Min => map2(a, b, o, |x, y| {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else if y < x {
                y
            } else {
                x
            }
        }),
        BinaryOp::Max => map2(a, b, o, |x, y| {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else if y > x {
                y
            } else {
                x
            }
        }),
        BinaryOp::Lt => map2(a, b, o, |x, y| flag(x < y)),
        BinaryOp::Le => map2(a, b, o, |x, y| flag(x <= y)),
        BinaryOp::Gt => map2(a, b, o, |x, y| flag(x > y)),
        BinaryOp::Ge => map2(a, b, o, |x, y| flag(x >= y)),
        BinaryOp::Eq => map2(a, b, o, |x, y| flag(x == y)),
        BinaryOp::Ne => map2(a, b, o, |x, y| flag(x != y)),
        BinaryOp::And => map2(a, b, o, |x, y| flag(x != 0.0 && y != 0.0)),
        BinaryOp::Or => map2(a, b, o, |x, y| flag(x != 0.0 || y != 0.0)),
    }
}
