//! Device math: Philox4x32-10 and the f32 polynomials of the CPU kernels
//! (`whatif_cpu::kernels::math`), ported to CubeCL so that the GPU computes
//! the same formulas on the same words.
//!
//! Why port rather than call the device's `log`/`sin`/`cos`: WGSL/Vulkan only
//! promise ~2^-11 absolute error for `sin`/`cos` and ~3 ULP for `log`, and
//! the Box–Muller radius near `u → 1` needs the integer-space complement of
//! `ln_uniform` anyway. With the same polynomials and the same fused
//! multiply-adds the GPU lanes agree with the CPU to the last bit or two
//! (WGSL does not promise that `fma` is fused, and division/sqrt may be off
//! by ~2 ULP on real GPUs), and with the f64 reference to ~1e-6 relative.
//!
//! Two portability rules shape this code:
//! - u32/i32 → f32 conversions are done in two exact halves and one
//!   correctly rounded addition, because WGSL leaves the rounding of a
//!   direct conversion to the implementation;
//! - non-finite values are detected on the bits and produced from a runtime
//!   value (`nan`, passed in by the kernel), because shader compilers may
//!   fold float NaN/inf checks and constants away.

// The polynomial coefficients are written exactly as in the CPU kernels'
// source (some with more digits than f32 holds): they round to the same
// f32, and keeping the text identical makes the two easy to compare.
#![allow(clippy::excessive_precision)]

use cubecl::prelude::*;

/// Philox multipliers and Weyl increments (`whatif_ir::rng`).
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// Evaluated in f32 by rustc exactly as the CPU kernel evaluates it.
const ONE_M_SQRT_HALF: f32 = 1.0 - SQRT_HALF;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const ROUND_MAGIC: f32 = 12_582_912.0;
/// 2^-32.
pub const TWO_M32: f32 = 2.328_306_4e-10;
/// 2π · 2^-32, folded in f32 like the CPU's `TAU * TWO_M32`.
const TURN: f32 = std::f32::consts::TAU * TWO_M32;

/// The four output words of one Philox call.
#[derive(CubeType, Clone, Copy, Debug)]
#[expand(derive(Clone, Copy))]
pub struct Words {
    pub w0: u32,
    pub w1: u32,
    pub w2: u32,
    pub w3: u32,
}

/// Two f32 values (a Box–Muller pair, a gamma draw in `(g, b)` form).
#[derive(CubeType, Clone, Copy, Debug)]
#[expand(derive(Clone, Copy))]
pub struct Pair {
    pub a: f32,
    pub b: f32,
}

/// Philox4x32-10 of counter `(c0, c1, c2, c3)` and key `(k0, k1)`. The ten
/// rounds stay a runtime loop: unrolled, every draw site would add ~200
/// instructions and compile time on lavapipe grows superlinearly.
#[cube]
pub fn philox(c0: u32, c1: u32, c2: u32, c3: u32, k0: u32, k1: u32) -> Words {
    let m0 = PHILOX_M0;
    let m1 = PHILOX_M1;
    let mut x0 = c0;
    let mut x1 = c1;
    let mut x2 = c2;
    let mut x3 = c3;
    let mut a = k0;
    let mut b = k1;
    for r in 0..10u32 {
        if r > 0 {
            a += PHILOX_W0;
            b += PHILOX_W1;
        }
        let hi0 = x0.mul_hi(m0);
        let lo0 = x0 * m0;
        let hi1 = x2.mul_hi(m1);
        let lo1 = x2 * m1;
        let n0 = hi1 ^ x1 ^ a;
        let n2 = hi0 ^ x3 ^ b;
        x0 = n0;
        x1 = lo1;
        x2 = n2;
        x3 = lo0;
    }
    Words {
        w0: x0,
        w1: x1,
        w2: x2,
        w3: x3,
    }
}

/// The words of Philox block `(q_lo, q_hi)` of `(seed, site, substream)`
/// (unit and period 0): `whatif_ir::rng::block_words`.
#[cube]
pub fn block_words(seed: u32, site: u32, substream: u32, q_lo: u32, q_hi: u32) -> Words {
    philox(q_lo, q_hi, site, 0u32, seed, substream)
}

/// Word `r` (comptime, 0..4) of a block.
#[cube]
pub fn word_at(w: Words, #[comptime] r: u32) -> u32 {
    let mut out = w.w3;
    if comptime![r == 0] {
        out = w.w0;
    } else if comptime![r == 1] {
        out = w.w1;
    } else if comptime![r == 2] {
        out = w.w2;
    }
    out
}

/// `k as f32`, correctly rounded: two exact halves, one rounding.
#[cube]
pub fn u2f(k: u32) -> f32 {
    f32::cast_from(k >> 16) * 65536.0f32 + f32::cast_from(k & 0xFFFFu32)
}

/// `f as f32` for an i32, correctly rounded (see [`u2f`]).
#[cube]
pub fn i2f(f: i32) -> f32 {
    f32::cast_from(f >> 16) * 65536.0f32 + f32::cast_from(f & 0xFFFFi32)
}

/// `u(k) = (k + 1) · 2^-32` exactly as the CPU's `uniform_f32`.
#[cube]
pub fn uniform(k: u32) -> f32 {
    (u2f(k) + 1.0f32) * TWO_M32
}

/// Not NaN and not ±inf, from the bits.
#[cube]
pub fn finite(x: f32) -> bool {
    (u32::reinterpret(x) & 0x7f80_0000u32) != 0x7f80_0000u32
}

/// NaN, from the bits.
#[cube]
pub fn is_nan(x: f32) -> bool {
    (u32::reinterpret(x) & 0x7fff_ffffu32) > 0x7f80_0000u32
}

/// `x` when `ok`, else NaN (`nan` is a runtime NaN).
#[cube]
pub fn nan_unless(ok: bool, x: f32, nan: f32) -> f32 {
    select(ok, x, nan)
}

#[cube]
fn ln_reduced(r: f32, e: f32) -> f32 {
    let z = r * r;
    let mut p = 7.037_683_6e-2f32;
    p = fma(p, r, -1.151_461e-1f32);
    p = fma(p, r, 1.167_699_9e-1f32);
    p = fma(p, r, -1.242_014_1e-1f32);
    p = fma(p, r, 1.424_932_3e-1f32);
    p = fma(p, r, -1.666_805_8e-1f32);
    p = fma(p, r, 2.000_071_5e-1f32);
    p = fma(p, r, -2.499_999_4e-1f32);
    p = fma(p, r, 3.333_333e-1f32);
    let mut y = (r * z) * p;
    y = fma(e, LN2_LO, y);
    y = fma(-0.5f32, z, y);
    fma(e, LN2_HI, r + y)
}

/// `x = (1 + r) · 2^e` for a positive normal `x`, as `(r, e)`.
#[cube]
fn ln_reduce(x: f32) -> Pair {
    let bits = u32::reinterpret(x);
    let e = i32::cast_from(bits >> 23) - 126;
    let m = f32::reinterpret((bits & 0x007f_ffffu32) | 0x3f00_0000u32);
    let small = m < SQRT_HALF;
    let e = i2f(e - select(small, 1i32, 0i32));
    let r = select(small, (m + m) - 1.0f32, m - 1.0f32);
    Pair { a: r, b: e }
}

/// `ln x` for positive, normal, finite `x`.
#[cube]
pub fn ln_pos(x: f32) -> f32 {
    let re = ln_reduce(x);
    ln_reduced(re.a, re.b)
}

/// `ln u(k)`, accurate over the whole range (complement in integer space
/// for `u > ½`), as the CPU's `ln_uniform`.
#[cube]
pub fn ln_uniform(k: u32) -> f32 {
    let ra = ln_reduce(uniform(k));
    let c = u2f(k ^ 0xFFFF_FFFFu32) * TWO_M32;
    let low = c > ONE_M_SQRT_HALF;
    let rb = select(low, fma(-2.0f32, c, 1.0f32), -c);
    let eb = select(low, -1.0f32, 0.0f32);
    let upper = k >= 0x8000_0000u32;
    ln_reduced(select(upper, rb, ra.a), select(upper, eb, ra.b))
}

/// `ln x` for any f32 (NaN below 0, −inf at 0, +inf at +inf).
#[cube]
pub fn ln_f32(x: f32, nan: f32) -> f32 {
    let sub = x < 1.175_494_4e-38f32;
    let xs = select(sub, x * 8_388_608.0f32, x);
    let adj = select(sub, -23.0f32, 0.0f32);
    let core = fma(adj, LN2_HI, fma(adj, LN2_LO, ln_pos(xs)));
    let bits = u32::reinterpret(x);
    let pinf = f32::reinterpret(u32::reinterpret(nan) & 0xFF80_0000u32);
    let r = select(bits == 0x7f80_0000u32, x, core);
    let r = select(x == 0.0f32, -pinf, r);
    select(x < 0.0f32 || is_nan(x), nan, r)
}

/// `e^x` (Cephes `expf`, as the CPU's `exp_f32`).
#[cube]
pub fn exp_f32(x: f32) -> f32 {
    let xc = select(x > -104.0f32, x, -104.0f32);
    let xc = select(xc < 89.0f32, xc, 89.0f32);
    let k = fma(xc, LOG2E, ROUND_MAGIC);
    // The integer comes from k's bits, and n from the integer: written as
    // `k - ROUND_MAGIC` (as on the CPU), shader compilers that treat float
    // math as reassociable fold it to `xc · log2 e` (unrounded), seen on
    // lavapipe, and every result becomes a bare power of two.
    let ni = i32::cast_from(u32::reinterpret(k)) - 0x4b40_0000i32;
    let n = i2f(ni);
    let r = fma(n, -LN2_HI, xc);
    let r = fma(n, -LN2_LO, r);
    let z = r * r;
    let mut p = 1.987_569_1e-4f32;
    p = fma(p, r, 1.398_199_9e-3f32);
    p = fma(p, r, 8.333_452e-3f32);
    p = fma(p, r, 4.166_579_6e-2f32);
    p = fma(p, r, 1.666_666_5e-1f32);
    p = fma(p, r, 5.000_000_1e-1f32);
    let y = fma(p, z, r) + 1.0f32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::reinterpret(u32::cast_from(n1 + 127) << 23);
    let s2 = f32::reinterpret(u32::cast_from(n2 + 127) << 23);
    let res = (y * s1) * s2;
    select(is_nan(x), x, res)
}

/// `(sin θ, cos θ)` for `θ = 2π · w · 2^-32` (exact integer range
/// reduction, Cephes polynomials), as the CPU's `sincos_turn`; returns
/// `Pair { a: sin, b: cos }`.
#[cube]
pub fn sincos_turn(w: u32) -> Pair {
    let j = (w + (1u32 << 29)) >> 30;
    let f = i32::reinterpret(w - (j << 30));
    let x = i2f(f) * TURN;
    let z = x * x;
    let ps = fma(
        fma(-1.951_529_6e-4f32, z, 8.332_161e-3f32),
        z,
        -1.666_665_5e-1f32,
    );
    let s = fma(ps * z, x, x);
    let pc = fma(
        fma(2.443_315_7e-5f32, z, -1.388_731_6e-3f32),
        z,
        4.166_664_6e-2f32,
    );
    let c = fma(pc, z * z, fma(-0.5f32, z, 1.0f32));
    let odd = (j & 1) == 1;
    let a = select(odd, c, s);
    let b = select(odd, s, c);
    let sin = f32::reinterpret(u32::reinterpret(a) ^ ((j & 2) << 30));
    let cos = f32::reinterpret(u32::reinterpret(b) ^ (((j + 1) & 2) << 30));
    Pair { a: sin, b: cos }
}

/// Box–Muller on one word pair: `Pair { a: r cos θ, b: r sin θ }`.
#[cube]
pub fn box_muller(w_even: u32, w_odd: u32) -> Pair {
    let r = f32::sqrt(-2.0f32 * ln_uniform(w_even));
    let sc = sincos_turn(w_odd);
    Pair {
        a: r * sc.b,
        b: r * sc.a,
    }
}

/// The standard normal of lane `r` (comptime) of a block of words.
#[cube]
pub fn normal_at(w: Words, #[comptime] r: u32) -> f32 {
    let mut out = 0.0f32;
    if comptime![r < 2] {
        let p = box_muller(w.w0, w.w1);
        out = p.b;
        if comptime![r == 0] {
            out = p.a;
        }
    } else {
        let p = box_muller(w.w2, w.w3);
        out = p.b;
        if comptime![r == 2] {
            out = p.a;
        }
    }
    out
}

/// Logistic sigmoid as the CPU's `sigmoid_f32`.
#[cube]
pub fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-f32::abs(x));
    let s = 1.0f32 / (1.0f32 + e);
    select(x >= 0.0f32, s, e * s)
}

/// `tanh` as the CPU's `tanh_f32`.
#[cube]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = f32::abs(x);
    let z = x * x;
    let p = fma(
        fma(
            fma(
                fma(-5.704_988_7e-3f32, z, 2.063_908_9e-2f32),
                z,
                -5.373_971_6e-2f32,
            ),
            z,
            1.333_144_2e-1f32,
        ),
        z,
        -3.333_328_2e-1f32,
    );
    let small = fma(p * z, x, x);
    let big = 1.0f32 - 2.0f32 / (exp_f32(2.0f32 * ax) + 1.0f32);
    let big = f32::reinterpret(u32::reinterpret(big) | (u32::reinterpret(x) & 0x8000_0000u32));
    select(ax < 0.625f32, small, big)
}

/// `x^y`: `e^(y ln|x|)` with the sign of `x` for odd integer `y`, NaN for
/// a negative base with a non-integer exponent, `x^0 = 1^y = 1`.
#[cube]
pub fn pow_f32(x: f32, y: f32, nan: f32) -> f32 {
    let ax = f32::abs(x);
    let mag = exp_f32(y * ln_f32(ax, nan));
    let yint = f32::floor(y) == y;
    let half = y * 0.5f32;
    let odd = yint && f32::floor(half) != half;
    let neg = x < 0.0f32;
    let signed = select(neg && odd, -mag, mag);
    let r = select(neg && !yint, nan, signed);
    let r = select(y == 0.0f32 || x == 1.0f32, 1.0f32, r);
    select(
        is_nan(x) || is_nan(y),
        select(x == 1.0f32 || y == 0.0f32, 1.0f32, nan),
        r,
    )
}

/// Round half away from zero (WGSL's `round` is half-to-even).
#[cube]
pub fn round_away(x: f32) -> f32 {
    let t = f32::trunc(x);
    let d = x - t;
    let up = f32::abs(d) >= 0.5f32;
    let s = select(x < 0.0f32, -1.0f32, 1.0f32);
    select(up, t + s, t)
}
