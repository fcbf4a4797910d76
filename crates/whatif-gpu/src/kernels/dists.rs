//! Device distribution transforms: the contract of `whatif_ir::dist`, lane
//! by lane, with the same f32 formulas as the CPU kernels
//! (`whatif_cpu::kernels::dists`).
//!
//! A thread evaluates the four samples of one Philox block, so one call of
//! Philox on substream 0 serves all four lanes of a draw (the Box–Muller
//! pairs live inside the block). Gamma, student-t and beta need up to 17
//! further substreams per sample; they are rare and run lane by lane with
//! a runtime loop over the attempts (unrolled, compile time explodes).

// `a <= x && x <= b` is spelled out: the `#[cube]` macro expands
// comparisons, not `RangeInclusive::contains`.
#![allow(clippy::manual_range_contains)]

use super::math::*;
use cubecl::prelude::*;

/// Distribution codes carried in the comptime program.
pub const D_NORMAL: u32 = 0;
pub const D_LOGNORMAL: u32 = 1;
pub const D_UNIFORM: u32 = 2;
pub const D_BERNOULLI: u32 = 3;
pub const D_EXPONENTIAL: u32 = 4;
pub const D_LAPLACE: u32 = 5;
pub const D_LOGISTIC: u32 = 6;
pub const D_GAMMA: u32 = 7;
pub const D_STUDENT_T: u32 = 8;
pub const D_BETA: u32 = 9;

/// Fixed Marsaglia–Tsang attempts (`whatif_ir::dist::GAMMA_ATTEMPTS`).
const GAMMA_ATTEMPTS: u32 = 8;
/// Substream base of `Y` in beta and of the gamma in student-t.
const BETA_Y_BASE: u32 = 32;
const STUDENT_T_GAMMA_BASE: u32 = 1;

/// Where a lane's randomness comes from: the run seed, the site, the
/// lane's Philox block, the unit (counter word 3) and the period
/// (`key_hi = period << 16`, the high half of key word 1).
#[derive(CubeType, Clone, Copy, Debug)]
#[expand(derive(Clone, Copy))]
pub struct Stream {
    pub seed: u32,
    pub site: u32,
    pub q_lo: u32,
    pub q_hi: u32,
    pub unit: u32,
    pub key_hi: u32,
}

/// The words of the lane's Philox block on `substream`:
/// `whatif_ir::rng::block_words(seed, site, unit, period, substream, q)`.
#[cube]
pub fn stream_words(s: Stream, substream: u32) -> Words {
    philox(s.q_lo, s.q_hi, s.site, s.unit, s.seed, s.key_hi | substream)
}

/// Marsaglia–Tsang core for shape `k` at substream `base`, lane `r`:
/// `Pair { a: g, b }` with the draw `g · e^b` (`b = ln(u0)/k` when boosted),
/// exactly the CPU's `gamma_core` per lane.
#[cube]
pub fn gamma_core(s: Stream, k: f32, base: u32, #[comptime] r: u32) -> Pair {
    let boost = k < 1.0f32;
    let kp = select(boost, k + 1.0f32, k);
    let d = kp - 1.0f32 / 3.0f32;
    let c = 1.0f32 / f32::sqrt(9.0f32 * d);
    let mut g = 0.0f32;
    let mut acc = false;
    let mut last_v = 0.0f32;
    for j in 0..GAMMA_ATTEMPTS {
        if !acc {
            let zw = stream_words(s, base + 1 + 2 * j);
            let z = normal_at(zw, r);
            let vw = stream_words(s, base + 2 + 2 * j);
            let t = fma(c, z, 1.0f32);
            let vv = t * t * t;
            let lv = ln_uniform(word_at(vw, r));
            // ln V is garbage for V <= 0, but then z <= -1/c rejects first.
            let rhs = fma(d, ln_pos_any(vv), fma(-d, vv, fma(0.5f32 * z, z, d)));
            let ok = z > -1.0f32 / c && lv < rhs;
            if ok {
                g = d * vv;
                acc = true;
            }
            last_v = vv;
        }
    }
    if !acc {
        g = d * select(last_v > 1.175_494_4e-38f32, last_v, 1.175_494_4e-38f32);
    }
    let mut b = 0.0f32;
    if boost {
        let w0 = stream_words(s, base);
        b = ln_uniform(word_at(w0, r)) / k;
    }
    Pair { a: g, b }
}

/// `ln` of a value that may be ≤ 0 or subnormal where the result is not
/// used (the gamma acceptance test): finite garbage instead of NaN is fine
/// there, but it must not poison the `&&` (it never does: the comparison
/// with NaN is false, and the first conjunct rejects those lanes anyway).
#[cube]
fn ln_pos_any(x: f32) -> f32 {
    let xs = select(x > 1.175_494_4e-38f32, x, 1.175_494_4e-38f32);
    ln_pos(xs)
}

/// One draw of distribution `dist` (comptime) for lane `r` (comptime) with
/// arguments `a0`, `a1` (`a1` unused by one-parameter distributions);
/// `w` are the substream-0 words of the lane's block.
#[cube]
pub fn draw_lane(
    s: Stream,
    w: Words,
    a0: f32,
    a1: f32,
    nan: f32,
    #[comptime] dist: u32,
    #[comptime] r: u32,
) -> f32 {
    let mut out = 0.0f32;
    if comptime![dist == D_NORMAL] {
        let z = normal_at(w, r);
        out = nan_unless(finite(a0) && finite(a1) && a1 > 0.0f32, fma(a1, z, a0), nan);
    } else if comptime![dist == D_LOGNORMAL] {
        let z = normal_at(w, r);
        out = nan_unless(
            finite(a0) && finite(a1) && a1 > 0.0f32,
            exp_f32(fma(a1, z, a0)),
            nan,
        );
    } else if comptime![dist == D_UNIFORM] {
        let u = uniform(word_at(w, r));
        out = nan_unless(
            finite(a0) && finite(a1) && a0 < a1,
            fma(a1 - a0, u, a0),
            nan,
        );
    } else if comptime![dist == D_BERNOULLI] {
        let k = word_at(w, r);
        // trunc(p · 2^32) for p in [0, 1) is an integer below 2^32 - 2^8,
        // so the conversion is exact; p >= 1 always hits. Clamping first
        // keeps the conversion in range for invalid p (which give NaN).
        let pc = select(a0 > 0.0f32, a0, 0.0f32);
        let pc = select(pc < 0.999_999_94f32, pc, 0.999_999_94f32);
        let t = u32::cast_from(f32::trunc(pc * 4_294_967_296.0f32));
        let hit = a0 >= 1.0f32 || k < t;
        out = nan_unless(
            a0 >= 0.0f32 && a0 <= 1.0f32,
            select(hit, 1.0f32, 0.0f32),
            nan,
        );
    } else if comptime![dist == D_EXPONENTIAL] {
        let k = word_at(w, r);
        out = nan_unless(finite(a0) && a0 > 0.0f32, -ln_uniform(k) / a0, nan);
    } else if comptime![dist == D_LAPLACE] {
        let k = word_at(w, r);
        let e = -ln_uniform(((k & 0x7fff_ffffu32) << 1) | 1);
        let se = f32::reinterpret(u32::reinterpret(e) ^ (k & 0x8000_0000u32));
        out = nan_unless(
            finite(a0) && finite(a1) && a1 > 0.0f32,
            fma(a1, se, a0),
            nan,
        );
    } else if comptime![dist == D_LOGISTIC] {
        let k = word_at(w, r);
        let lo = ln_pos((u2f(k) + 0.5f32) * TWO_M32);
        let hi = ln_pos((u2f(k ^ 0xFFFF_FFFFu32) + 0.5f32) * TWO_M32);
        out = nan_unless(
            finite(a0) && finite(a1) && a1 > 0.0f32,
            fma(a1, lo - hi, a0),
            nan,
        );
    } else if comptime![dist == D_GAMMA] {
        let gb = gamma_core(s, a0, 0u32, r);
        let ok = finite(a0) && finite(a1) && a0 > 0.0f32 && a1 > 0.0f32;
        out = nan_unless(ok, gb.a * a1 * exp_f32(gb.b), nan);
    } else if comptime![dist == D_STUDENT_T] {
        let z = normal_at(w, r);
        let gb = gamma_core(s, 0.5f32 * a0, STUDENT_T_GAMMA_BASE, r);
        let x = z * f32::sqrt(a0 / (2.0f32 * gb.a)) * exp_f32(-0.5f32 * gb.b);
        out = nan_unless(finite(a0) && a0 > 0.0f32, x, nan);
    } else if comptime![dist == D_BETA] {
        let gx = gamma_core(s, a0, 0u32, r);
        let gy = gamma_core(s, a1, BETA_Y_BASE, r);
        let ratio = (gy.a / gx.a) * exp_f32(gy.b - gx.b);
        let ok = finite(a0) && finite(a1) && a0 > 0.0f32 && a1 > 0.0f32;
        out = nan_unless(ok, 1.0f32 / (1.0f32 + ratio), nan);
    }
    out
}
