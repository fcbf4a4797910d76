//! The fused kernel: one CubeCL kernel that evaluates a whole Program per
//! Philox block (four consecutive samples) in registers, specialised per
//! Program through a `#[comptime]` argument.
//!
//! The comptime [`KProgram`] is walked by a plain Rust `for` during kernel
//! expansion, so each op becomes straight-line code (no opcode switch at
//! run time); values live in a `Sequence<f32>` indexed by comptime indices
//! (SSA: value `v` of lane `r` is entry `4v + r`), which the shader compiler
//! turns into registers. Constants are baked in; parameter values come from
//! a buffer so a new parameter value does not recompile the kernel; the seed
//! and the chunk position are runtime scalars.
//!
//! Units: a [`KOp::Units`] is a runtime loop over the units of the sample
//! (the unit count is the last entry of the parameter buffer), its body
//! straight-line code like the rest, each aggregate folded into a local
//! accumulator array in unit order, exactly as the CPU's unit loop does.
//! Unit covariates come in through `inputs` (`inputs[c · units + u]`).
//! Values are numbered in schedule order (`crate::lower`), so value `v` of
//! lane `r` is still entry `4v + r`; a body's entries are only read inside
//! the loop.
//!
//! Outputs are written column by column (`out[o · n_pad + lane]`). Numeric
//! faults are counted per (reduction block, probe) with atomics, only on
//! the rare non-finite lanes: `faults[2·(blk·P + p)]` is the count,
//! `faults[2·(blk·P + p) + 1]` the smallest block-relative lane (atomic min,
//! initialised to `u32::MAX` by the host).

use super::dists::*;
use super::math::*;
use cubecl::prelude::*;

/// Unary op codes (order of `whatif_ir::UnaryOp`).
pub mod un {
    pub const NEG: u32 = 0;
    pub const NOT: u32 = 1;
    pub const EXP: u32 = 2;
    pub const LOG: u32 = 3;
    pub const SQRT: u32 = 4;
    pub const ABS: u32 = 5;
    pub const SIGMOID: u32 = 6;
    pub const LOGIT: u32 = 7;
    pub const TANH: u32 = 8;
    pub const FLOOR: u32 = 9;
    pub const CEIL: u32 = 10;
    pub const ROUND: u32 = 11;
}

/// Binary op codes (order of `whatif_ir::BinaryOp`).
pub mod bin {
    pub const ADD: u32 = 0;
    pub const SUB: u32 = 1;
    pub const MUL: u32 = 2;
    pub const DIV: u32 = 3;
    pub const POW: u32 = 4;
    pub const MIN: u32 = 5;
    pub const MAX: u32 = 6;
    pub const LT: u32 = 7;
    pub const LE: u32 = 8;
    pub const GT: u32 = 9;
    pub const GE: u32 = 10;
    pub const EQ: u32 = 11;
    pub const NE: u32 = 12;
    pub const AND: u32 = 13;
    pub const OR: u32 = 14;
}

/// One op of the comptime program. Operands are value indices (SSA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KOp {
    /// An f32 constant, stored as bits (f32 is not `Eq`/`Hash`).
    Const(u32),
    /// `params[k]`.
    Param(u32),
    /// Input column `c` (`inputs[c · n_pad + lane]`): how the tensor path
    /// feeds per-lane distribution arguments into a draw-only kernel.
    Input(u32),
    /// A draw: distribution code, site hash, up to two argument values
    /// (the second is ignored by one-parameter distributions), the period
    /// (Philox key) and whether the unit index enters the counter.
    Draw {
        dist: u32,
        site: u32,
        a0: u32,
        a1: u32,
        period: u32,
        unit: bool,
    },
    /// Covariate `c` of the current unit.
    Covariate(u32),
    /// For every unit: `body`, then fold each aggregate; then the aggregates
    /// are the next values, in order.
    Units {
        body: Vec<KOp>,
        aggs: Vec<KAgg>,
    },
    Unary(u32, u32),
    Binary(u32, u32, u32),
    /// `cond != 0 ? a : b`.
    Select(u32, u32, u32),
}

/// Aggregate kinds (order of `whatif_ir::UnitAgg`).
pub mod agg {
    pub const SUM: u32 = 0;
    pub const MEAN: u32 = 1;
    pub const COUNT: u32 = 2;
    pub const MAX: u32 = 3;
}

/// One aggregate of a unit loop: its kind, its slot in the accumulator
/// array, and the body value it folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KAgg {
    pub kind: u32,
    pub slot: u32,
    pub value: u32,
}

/// A slot of an output or probe list: its position and the value it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KSlot {
    pub idx: u32,
    pub value: u32,
}

/// A Program as the kernel sees it: ops, the values to write out, the
/// values to watch for faults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KProgram {
    pub ops: Vec<KOp>,
    pub outputs: Vec<KSlot>,
    pub probes: Vec<KSlot>,
    /// Index in the parameter buffer of the unit count (as f32); only read
    /// when `ops` has a unit loop.
    pub units_param: u32,
}

#[cube]
fn reg(regs: &mut Sequence<f32>, #[comptime] v: u32, #[comptime] r: u32) -> f32 {
    *regs.index(comptime![(4 * v + r) as usize])
}

#[cube]
fn flag(c: bool) -> f32 {
    select(c, 1.0f32, 0.0f32)
}

/// `x != 0`, true for NaN. WGSL's `!=` on lavapipe is the ordered
/// comparison (false when an operand is NaN), so NaN is tested on the bits.
#[cube]
fn nonzero(x: f32) -> bool {
    is_nan(x) || x != 0.0f32
}

#[cube]
fn unary(x: f32, nan: f32, #[comptime] op: u32) -> f32 {
    let mut o = 0.0f32;
    if comptime![op == un::NEG] {
        o = -x;
    } else if comptime![op == un::NOT] {
        o = flag(x == 0.0f32);
    } else if comptime![op == un::EXP] {
        o = exp_f32(x);
    } else if comptime![op == un::LOG] {
        o = ln_f32(x, nan);
    } else if comptime![op == un::SQRT] {
        o = select(x < 0.0f32, nan, f32::sqrt(x));
    } else if comptime![op == un::ABS] {
        o = f32::abs(x);
    } else if comptime![op == un::SIGMOID] {
        o = sigmoid_f32(x);
    } else if comptime![op == un::LOGIT] {
        o = ln_f32(x, nan) - ln_f32(1.0f32 - x, nan);
    } else if comptime![op == un::TANH] {
        o = tanh_f32(x);
    } else if comptime![op == un::FLOOR] {
        o = f32::floor(x);
    } else if comptime![op == un::CEIL] {
        o = f32::ceil(x);
    } else {
        o = round_away(x);
    }
    o
}

#[cube]
fn binary(a: f32, b: f32, nan: f32, #[comptime] op: u32) -> f32 {
    let mut o = 0.0f32;
    if comptime![op == bin::ADD] {
        o = a + b;
    } else if comptime![op == bin::SUB] {
        o = a - b;
    } else if comptime![op == bin::MUL] {
        o = a * b;
    } else if comptime![op == bin::DIV] {
        o = a / b;
    } else if comptime![op == bin::POW] {
        o = pow_f32(a, b, nan);
    } else if comptime![op == bin::MIN] {
        // NaN-propagating, like the reference semantics.
        o = select(is_nan(a) || is_nan(b), nan, select(b < a, b, a));
    } else if comptime![op == bin::MAX] {
        o = select(is_nan(a) || is_nan(b), nan, select(b > a, b, a));
    } else if comptime![op == bin::LT] {
        o = flag(a < b);
    } else if comptime![op == bin::LE] {
        o = flag(a <= b);
    } else if comptime![op == bin::GT] {
        o = flag(a > b);
    } else if comptime![op == bin::GE] {
        o = flag(a >= b);
    } else if comptime![op == bin::EQ] {
        o = flag(a == b);
    } else if comptime![op == bin::NE] {
        // True when either is NaN (see `nonzero`).
        o = flag(is_nan(a) || is_nan(b) || a != b);
    } else if comptime![op == bin::AND] {
        o = flag(nonzero(a) && nonzero(b));
    } else {
        o = flag(nonzero(a) || nonzero(b));
    }
    o
}

/// Evaluate op `op` for the four lanes, pushing four registers.
#[cube]
fn eval_op(
    regs: &mut Sequence<f32>,
    params: &[f32],
    inputs: &[f32],
    s: Stream,
    base: u32,
    n_pad: u32,
    nan: f32,
    unit: u32,
    n_units: u32,
    #[comptime] op: KOp,
) {
    match op {
        KOp::Covariate(c) => {
            let x = inputs[(c * n_units + unit) as usize];
            regs.push(x);
            regs.push(x);
            regs.push(x);
            regs.push(x);
        }
        KOp::Units { .. } => {
            // Handled by `unit_loop` at the kernel's top level.
        }
        KOp::Const(bits) => {
            let c = f32::reinterpret(bits);
            regs.push(c);
            regs.push(c);
            regs.push(c);
            regs.push(c);
        }
        KOp::Param(k) => {
            let c = params[comptime![k as usize]];
            regs.push(c);
            regs.push(c);
            regs.push(c);
            regs.push(c);
        }
        KOp::Input(col) => {
            let at = (col * n_pad + base) as usize;
            regs.push(inputs[at]);
            regs.push(inputs[at + 1]);
            regs.push(inputs[at + 2]);
            regs.push(inputs[at + 3]);
        }
        KOp::Draw {
            dist,
            site,
            a0,
            a1,
            period,
            unit: per_unit,
        } => {
            let mut su = 0u32;
            if comptime![per_unit] {
                su = unit;
            }
            let st = Stream {
                seed: s.seed,
                site,
                q_lo: s.q_lo,
                q_hi: s.q_hi,
                unit: su,
                key_hi: comptime![period << 16],
            };
            let w = stream_words(st, 0u32);
            let x0 = draw_lane(
                st,
                w,
                reg(regs, a0, 0u32),
                reg(regs, a1, 0u32),
                nan,
                dist,
                0u32,
            );
            let x1 = draw_lane(
                st,
                w,
                reg(regs, a0, 1u32),
                reg(regs, a1, 1u32),
                nan,
                dist,
                1u32,
            );
            let x2 = draw_lane(
                st,
                w,
                reg(regs, a0, 2u32),
                reg(regs, a1, 2u32),
                nan,
                dist,
                2u32,
            );
            let x3 = draw_lane(
                st,
                w,
                reg(regs, a0, 3u32),
                reg(regs, a1, 3u32),
                nan,
                dist,
                3u32,
            );
            regs.push(x0);
            regs.push(x1);
            regs.push(x2);
            regs.push(x3);
        }
        KOp::Unary(u, a) => {
            let x0 = unary(reg(regs, a, 0u32), nan, u);
            let x1 = unary(reg(regs, a, 1u32), nan, u);
            let x2 = unary(reg(regs, a, 2u32), nan, u);
            let x3 = unary(reg(regs, a, 3u32), nan, u);
            regs.push(x0);
            regs.push(x1);
            regs.push(x2);
            regs.push(x3);
        }
        KOp::Binary(b, x, y) => {
            let x0 = binary(reg(regs, x, 0u32), reg(regs, y, 0u32), nan, b);
            let x1 = binary(reg(regs, x, 1u32), reg(regs, y, 1u32), nan, b);
            let x2 = binary(reg(regs, x, 2u32), reg(regs, y, 2u32), nan, b);
            let x3 = binary(reg(regs, x, 3u32), reg(regs, y, 3u32), nan, b);
            regs.push(x0);
            regs.push(x1);
            regs.push(x2);
            regs.push(x3);
        }
        KOp::Select(c, a, b) => {
            let x0 = select(
                nonzero(reg(regs, c, 0u32)),
                reg(regs, a, 0u32),
                reg(regs, b, 0u32),
            );
            let x1 = select(
                nonzero(reg(regs, c, 1u32)),
                reg(regs, a, 1u32),
                reg(regs, b, 1u32),
            );
            let x2 = select(
                nonzero(reg(regs, c, 2u32)),
                reg(regs, a, 2u32),
                reg(regs, b, 2u32),
            );
            let x3 = select(
                nonzero(reg(regs, c, 3u32)),
                reg(regs, a, 3u32),
                reg(regs, b, 3u32),
            );
            regs.push(x0);
            regs.push(x1);
            regs.push(x2);
            regs.push(x3);
        }
    }
}

/// Fold `x` into accumulator `a` (NaN-propagating max; count treats NaN as
/// non-zero), as the CPU's unit loop does.
#[cube]
fn fold(a: f32, x: f32, nan: f32, #[comptime] kind: u32) -> f32 {
    let mut o = a + x;
    if comptime![kind == agg::COUNT] {
        o = a + flag(nonzero(x));
    } else if comptime![kind == agg::MAX] {
        o = select(is_nan(a) || is_nan(x), nan, select(x > a, x, a));
    }
    o
}

/// A unit loop: for every unit, the body's values, then each aggregate's
/// four lanes folded into `acc`; afterwards the aggregates become values.
#[allow(clippy::too_many_arguments)]
#[cube]
fn unit_loop(
    regs: &mut Sequence<f32>,
    params: &[f32],
    inputs: &[f32],
    s: Stream,
    base: u32,
    n_pad: u32,
    nan: f32,
    n_units: u32,
    #[comptime] body: Vec<KOp>,
    #[comptime] aggs: Vec<KAgg>,
) {
    let mut acc = Array::<f32>::new(comptime![4 * aggs.len().max(1)]);
    for a in comptime![aggs.clone()] {
        let mut init = 0.0f32;
        if comptime![a.kind == agg::MAX] {
            init = f32::reinterpret(0xFF80_0000u32);
        }
        acc[comptime![4 * a.slot as usize]] = init;
        acc[comptime![4 * a.slot as usize + 1]] = init;
        acc[comptime![4 * a.slot as usize + 2]] = init;
        acc[comptime![4 * a.slot as usize + 3]] = init;
    }
    for u in 0..n_units {
        for op in comptime![body.clone()] {
            eval_op(regs, params, inputs, s, base, n_pad, nan, u, n_units, op);
        }
        for a in comptime![aggs.clone()] {
            let k = comptime![4 * a.slot as usize];
            let v = comptime![a.value];
            let kind = comptime![a.kind];
            acc[k] = fold(acc[k], reg(regs, v, 0u32), nan, kind);
            acc[k + 1] = fold(acc[k + 1], reg(regs, v, 1u32), nan, kind);
            acc[k + 2] = fold(acc[k + 2], reg(regs, v, 2u32), nan, kind);
            acc[k + 3] = fold(acc[k + 3], reg(regs, v, 3u32), nan, kind);
        }
    }
    let units = f32::cast_from(n_units);
    for a in comptime![aggs.clone()] {
        let k = comptime![4 * a.slot as usize];
        if comptime![a.kind == agg::MEAN] {
            regs.push(acc[k] / units);
            regs.push(acc[k + 1] / units);
            regs.push(acc[k + 2] / units);
            regs.push(acc[k + 3] / units);
        } else {
            regs.push(acc[k]);
            regs.push(acc[k + 1]);
            regs.push(acc[k + 2]);
            regs.push(acc[k + 3]);
        }
    }
}

/// Count lane `r` of value `v` as a fault of probe `p` when non-finite.
#[cube]
fn watch(
    faults: &[Atomic<u32>],
    regs: &mut Sequence<f32>,
    lane: u32,
    n: u32,
    block_shift: u32,
    n_probes: u32,
    #[comptime] slot: KSlot,
    #[comptime] r: u32,
) {
    let x = reg(regs, comptime![slot.value], r);
    let p = comptime![slot.idx];
    let l = lane + r;
    if !finite(x) && l < n {
        let blk = l >> block_shift;
        let at = (2 * (blk * n_probes + p)) as usize;
        faults[at].fetch_add(1u32);
        faults[at + 1].fetch_min(l - (blk << block_shift));
    }
}

/// The fused kernel. Thread `t` evaluates samples `4(q0 + t) .. +4` where
/// `q0 = (q0_hi, q0_lo)` is the chunk's first Philox block; lanes at or
/// past `n` are computed but not written.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
pub fn fused_kernel(
    params: &[f32],
    inputs: &[f32],
    out: &mut [f32],
    faults: &[Atomic<u32>],
    seed: u32,
    q0_lo: u32,
    q0_hi: u32,
    n: u32,
    n_pad: u32,
    block_shift: u32,
    nan_bits: u32,
    #[comptime] prog: KProgram,
) {
    let t = u32::cast_from(ABSOLUTE_POS);
    let base = 4 * t;
    if base < n {
        let nan = f32::reinterpret(nan_bits);
        let q_lo = q0_lo + t;
        let q_hi = q0_hi + select(q_lo < t, 1u32, 0u32);
        let s = Stream {
            seed,
            site: 0u32,
            q_lo,
            q_hi,
            unit: 0u32,
            key_hi: 0u32,
        };
        let n_units = u32::cast_from(params[comptime![prog.units_param as usize]]);
        let mut regs = Sequence::<f32>::new();
        for op in comptime![prog.ops.clone()] {
            match op {
                KOp::Units { body, aggs } => {
                    unit_loop(
                        &mut regs, params, inputs, s, base, n_pad, nan, n_units, body, aggs,
                    );
                }
                _ => {
                    eval_op(
                        &mut regs, params, inputs, s, base, n_pad, nan, 0u32, n_units, op,
                    );
                }
            }
        }
        for slot in comptime![prog.outputs.clone()] {
            let at = (comptime![slot.idx] * n_pad + base) as usize;
            out[at] = reg(&mut regs, comptime![slot.value], 0u32);
            out[at + 1] = reg(&mut regs, comptime![slot.value], 1u32);
            out[at + 2] = reg(&mut regs, comptime![slot.value], 2u32);
            out[at + 3] = reg(&mut regs, comptime![slot.value], 3u32);
        }
        let n_probes = comptime![prog.probes.len() as u32];
        for slot in comptime![prog.probes.clone()] {
            watch(
                faults,
                &mut regs,
                base,
                n,
                block_shift,
                n_probes,
                slot,
                0u32,
            );
            watch(
                faults,
                &mut regs,
                base,
                n,
                block_shift,
                n_probes,
                slot,
                1u32,
            );
            watch(
                faults,
                &mut regs,
                base,
                n,
                block_shift,
                n_probes,
                slot,
                2u32,
            );
            watch(
                faults,
                &mut regs,
                base,
                n,
                block_shift,
                n_probes,
                slot,
                3u32,
            );
        }
    }
}
