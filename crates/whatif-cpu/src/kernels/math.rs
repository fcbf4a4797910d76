//! Polynomial f32 math (Cephes-style minimax polynomials, ~1e-7 relative
//! error): `ln`, `exp`, `sin`/`cos` of a 32-bit turn fraction, and the
//! elementwise helpers the executor applies to lanes (`sigmoid`, `tanh`,
//! `logit`).
//!
//! Why not libm: libm calls are opaque to LLVM's vectoriser, so one call per
//! lane would serialise the whole chunk loop. These are straight-line code
//! (selects, no branches, no table lookups) that vectorises to 8 or 16 lanes.
//!
//! Determinism: every fused multiply-add is written as [`f32::mul_add`]
//! (always a single rounding, with or without an FMA unit) and no other
//! contraction happens (Rust never fuses `a * b + c` on its own), so the
//! results are bit-identical across the AVX-512, AVX2 and SSE2 copies of a
//! kernel. Without hardware FMA `mul_add` becomes a (slow, correctly
//! rounded) libm `fmaf` call: the SSE2 copy is correct but slow.

// The polynomial coefficients are quoted at the precision Cephes publishes
// them; the compiler rounds them to the nearest f32, which is what is meant.
#![allow(clippy::excessive_precision)]

/// `ln 2` split for Cody–Waite reduction: `LN2_HI` has few mantissa bits so
/// `n · LN2_HI` is exact for |n| < 2^9.
const LN2_HI: f32 = 0.693_359_4; // 0.693359375
const LN2_LO: f32 = -2.121_944_4e-4;
const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2^23: adding and subtracting it rounds an |x| < 2^22 to the nearest
/// integer (ties to even) without a libm `round` call, and leaves the integer
/// in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// 2^-32 and 2^-31.
pub const TWO_M32: f32 = 2.328_306_4e-10;
/// 2^-31.
pub const TWO_M31: f32 = 4.656_612_9e-10;

/// The Cephes `logf` polynomial part: `ln(1 + r) + e ln 2` for the reduced
/// `r ∈ [√½ − 1, √2 − 1)`.
#[inline(always)]
fn ln_reduced(r: f32, e: f32) -> f32 {
    let z = r * r;
    let mut p = 7.037_683_6e-2_f32;
    p = p.mul_add(r, -1.151_461e-1);
    p = p.mul_add(r, 1.167_699_9e-1);
    p = p.mul_add(r, -1.242_014_1e-1);
    p = p.mul_add(r, 1.424_932_3e-1);
    p = p.mul_add(r, -1.666_805_8e-1);
    p = p.mul_add(r, 2.000_071_5e-1);
    p = p.mul_add(r, -2.499_999_4e-1);
    p = p.mul_add(r, 3.333_333e-1);
    let mut y = (r * z) * p;
    y = e.mul_add(LN2_LO, y);
    y = (-0.5f32).mul_add(z, y);
    e.mul_add(LN2_HI, r + y)
}

/// Cephes range reduction of a positive normal `x`: `x = (1 + r) · 2^e`.
#[inline(always)]
fn ln_reduce(x: f32) -> (f32, f32) {
    let bits = x.to_bits();
    let e = ((bits >> 23) as i32) - 126;
    // m ∈ [0.5, 1)
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    let e = (e - i32::from(small)) as f32;
    // Both branches are exact (Sterbenz), so the reduction adds no error.
    let r = if small { (m + m) - 1.0 } else { m - 1.0 };
    (r, e)
}

/// `ln x` for a positive, normal, finite `x` (no special cases: the caller
/// guarantees the domain; uniforms `(k+1)·2^-32` always qualify).
/// Cephes `logf`: `x = m · 2^e` with `m ∈ [√½, √2)`, a degree-9 polynomial
/// in `m − 1`. Max relative error ~1e-7 (see tests).
#[inline(always)]
pub fn ln_pos(x: f32) -> f32 {
    let (r, e) = ln_reduce(x);
    ln_reduced(r, e)
}

/// `ln u(k)` with `u(k) = (k + 1) · 2^-32`, accurate to ~1e-7 relative over
/// the whole range. For `u ≤ ½` it is `ln_pos(uniform_f32(k))`. For `u > ½`
/// the f32 `u` would have lost the low 8 bits of `k`, and `ln u ≈ −(1 − u)`
/// would inherit a large relative error (it feeds the Box–Muller radius
/// near z = 0 and small exponentials); there the complement
/// `1 − u = !k · 2^-32` is taken in integer space and fed straight into the
/// reduction: `r = −c` (exact) or `r = 1 − 2c, e = −1` (exact given `c`).
#[inline(always)]
pub fn ln_uniform(k: u32) -> f32 {
    let upper = (k as i32) < 0;
    // t = k below 2^31 and !k above: always < 2^31, so one signed
    // conversion (a single `cvtdq2ps`) serves both paths and equals the
    // unsigned one (`k as f32`, `!k as f32`) on the path that is used.
    let t = k ^ (((k as i32) >> 31) as u32);
    let f = (t as i32) as f32;
    let (ra, ea) = ln_reduce((f + 1.0) * TWO_M32); // = uniform_f32(k) when !upper
    let c = f * TWO_M32; // 1 − u, in [0, ½) when upper
    let low = c > 1.0 - SQRT_HALF;
    let rb = if low { (-2.0f32).mul_add(c, 1.0) } else { -c };
    let eb = if low { -1.0 } else { 0.0 };
    let (r, e) = if upper { (rb, eb) } else { (ra, ea) };
    ln_reduced(r, e)
}

/// `ln x` for any f32: NaN for `x < 0` or NaN, `−inf` at 0, `+inf` at
/// `+inf`, subnormals handled.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let sub = x < f32::MIN_POSITIVE;
    // Scale subnormals into the normal range, then take the exponent back out.
    let xs = if sub { x * 8_388_608.0 } else { x };
    let adj = if sub { -23.0f32 } else { 0.0 };
    let core = adj.mul_add(LN2_HI, adj.mul_add(LN2_LO, ln_pos(xs)));
    let r = if x == f32::INFINITY { x } else { core };
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    if x < 0.0 || x.is_nan() { f32::NAN } else { r }
}

/// `e^x` for any f32 (Cephes `expf`): round `x·log2 e` to `n`, reduce
/// `r = x − n ln 2` (two-part constant), degree-6 polynomial, scale by `2^n`
/// in two steps so the subnormal range rounds once. Overflows to `+inf`
/// above ~88.72, underflows to 0 below ~−103.97; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // A NaN input goes through as garbage bits and is restored at the end.
    let xc = x.clamp(-104.0, 89.0);
    let k = xc.mul_add(LOG2E, ROUND_MAGIC);
    let n = k - ROUND_MAGIC;
    let ni = (k.to_bits() as i32) - 0x4b40_0000;
    let r = n.mul_add(-LN2_HI, xc);
    let r = n.mul_add(-LN2_LO, r);
    let z = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5.000_000_1e-1);
    let y = p.mul_add(z, r) + 1.0;
    // n ∈ [−151, 129]: split so each factor is a normal power of two.
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let res = (y * s1) * s2;
    if x.is_nan() { x } else { res }
}

/// `(sin θ, cos θ)` for `θ = 2π · w · 2^-32`: the Box–Muller angle of a
/// 32-bit word. The range reduction is exact, in integer space: the nearest
/// quadrant `j` comes from the top bits, the remainder `f ∈ [−2^29, 2^29)`
/// is the angle `φ ∈ [−π/4, π/4)` in units of 2π·2^-32, and the result is
/// the Cephes `sinf`/`cosf` polynomials of `φ` rotated by `j · π/2`.
#[inline(always)]
pub fn sincos_turn(w: u32) -> (f32, f32) {
    let j = w.wrapping_add(1 << 29) >> 30;
    let f = w.wrapping_sub(j << 30) as i32;
    let x = (f as f32) * (std::f32::consts::TAU * TWO_M32);
    let z = x * x;
    let ps = (-1.951_529_6e-4f32)
        .mul_add(z, 8.332_161e-3)
        .mul_add(z, -1.666_665_5e-1);
    let s = (ps * z).mul_add(x, x);
    let pc = 2.443_315_7e-5f32
        .mul_add(z, -1.388_731_6e-3)
        .mul_add(z, 4.166_664_6e-2);
    let c = pc.mul_add(z * z, (-0.5f32).mul_add(z, 1.0));
    // θ = φ + jπ/2: odd quadrants swap sin and cos; signs from the quadrant.
    let (a, b) = if j & 1 == 1 { (c, s) } else { (s, c) };
    let sin = f32::from_bits(a.to_bits() ^ ((j & 2) << 30));
    let cos = f32::from_bits(b.to_bits() ^ (((j + 1) & 2) << 30));
    (sin, cos)
}

/// `u(k) = (k + 1) · 2^-32` in f32, as `((k as f32) + 1) · 2^-32`: the
/// conversion rounds to nearest (even), the `+ 1` rounds again, the scaling
/// is exact. In `(0, 1]`, exact for `k < 2^24`, so the small-`u` tail keeps
/// all 32 bits (`u(0) = 2^-32` exactly). The GPU copies this formula.
#[inline(always)]
pub fn uniform_f32(k: u32) -> f32 {
    ((k as f32) + 1.0) * TWO_M32
}

/// Logistic sigmoid `1 / (1 + e^−x)`, written as `e/(1+e)` with
/// `e = e^−|x|` on the negative side so tiny results keep relative accuracy.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

/// Hyperbolic tangent: Cephes `tanhf` polynomial for |x| < 0.625 (no
/// cancellation near 0), `1 − 2/(e^{2|x|} + 1)` with the sign restored
/// elsewhere (saturates to ±1 cleanly).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let p = (-5.704_988_7e-3f32)
        .mul_add(z, 2.063_908_9e-2)
        .mul_add(z, -5.373_971_6e-2)
        .mul_add(z, 1.333_144_2e-1)
        .mul_add(z, -3.333_328_2e-1);
    let small = (p * z).mul_add(x, x);
    let big = 1.0 - 2.0 / (exp_f32(2.0 * ax) + 1.0);
    let big = f32::from_bits(big.to_bits() | (x.to_bits() & 0x8000_0000));
    if ax < 0.625 { small } else { big }
}

/// `logit(p) = ln p − ln(1 − p)`; NaN outside `[0, 1]`, ∓inf at 0 and 1.
/// `1 − p` is exact for `p ≥ ½` (Sterbenz), so the upper tail is accurate.
#[inline(always)]
pub fn logit_f32(p: f32) -> f32 {
    ln_f32(p) - ln_f32(1.0 - p)
}
