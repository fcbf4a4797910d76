//! Distribution transforms: the contract every backend implements, and its
//! slow, obviously correct f64 reference.
//!
//! A noise site draws 32-bit words from the Philox streams of [`crate::rng`].
//! Write `w(s, i)` for the word of sample `i` in substream `s` of the site
//! (period and unit as given by the caller, 0 by default) and
//! `u(k) = (k + 1) · 2^-32 ∈ (0, 1]`. The transforms below are THE contract:
//! the CPU kernels (f32, polynomial `ln`/`exp`/`sin`/`cos`) and the GPU
//! kernels implement the same formulas on the same words, so backends differ
//! only by float rounding (and, for the discontinuous ones — bernoulli and
//! the accept/reject step of gamma — by a bounded share of flipped lanes).
//!
//! # Standard normal `z(s, i)` (Box–Muller, paired within a Philox block)
//!
//! Samples `(4q, 4q+1)` use the words `(w0, w1)` of block `q`, samples
//! `(4q+2, 4q+3)` use `(w2, w3)`:
//! `r = sqrt(−2 ln u(w_even))`, `θ = 2π · w_odd · 2^-32`; the even sample
//! gets `r cos θ`, the odd one `r sin θ`. All 32 bits feed the radius, so the
//! largest |z| is `sqrt(−2 ln 2^-32) = sqrt(64 ln 2) ≈ 6.660`.
//!
//! # Transforms (all read substream 0 unless stated)
//!
//! - `normal(mu, sd)`: `mu + sd · z(0, i)`.
//! - `lognormal(mu, sigma)`: `exp(mu + sigma · z(0, i))`.
//! - `uniform(a, b)`: `a + (b − a) · u(w)`.
//! - `bernoulli(p)`: `1` if `u(w) ≤ p`, else `0`. Equivalently, in integer
//!   space (how the f32 kernels and the GPU evaluate it, exactly):
//!   `1` if `p ≥ 1` or `w < trunc(p · 2^32)`, else `0` (`p · 2^32` is exact in
//!   f32 and f64; `trunc` saturates to `[0, 2^32 − 1]`). For the same `p` the
//!   two forms agree bit for bit; backends differ only where their `p`
//!   (evaluated in f32 vs f64) straddles a threshold.
//! - `exponential(rate)`: `−ln u(w) / rate`.
//! - `laplace(mu, b)`: `sign` = top bit of `w`, `m = w & 0x7fff_ffff`,
//!   `e = −ln((m + 1) · 2^-31)`; `mu + b·e` if the sign bit is 0, else
//!   `mu − b·e`.
//! - `logistic(mu, s)`: `mu + s · (ln((w + ½) 2^-32) − ln((!w + ½) 2^-32))`
//!   (the complement is taken in integer space so both tails keep 32 bits).
//! - `gamma(k, θ)`: Marsaglia–Tsang (2000) with a fixed maximum of
//!   [`GAMMA_ATTEMPTS`] = 8 attempts so it is deterministic and vectorisable.
//!   With substream base `B` (0 for `gamma` itself): `k' = k + 1` if `k < 1`
//!   (the boost) else `k`; `d = k' − 1/3`, `c = 1/sqrt(9d)`. Attempt `j`
//!   (`0..8`) uses `z_j = z(B + 1 + 2j, i)` and `v_j = u(w(B + 2 + 2j, i))`,
//!   `V_j = (1 + c z_j)^3`, and accepts if `z_j > −1/c` and
//!   `ln v_j < z_j²/2 + d − d V_j + d ln V_j`. The first accepted attempt
//!   gives `g = d V_j`. If none accepts (probability < 1e-10 per sample: the
//!   acceptance rate is ≥ 0.95 for every `k' ≥ 1`), the last attempt is used
//!   with `V` clamped to at least [`GAMMA_V_FLOOR`] (the smallest normal
//!   f32), so the result is positive and finite. Boosted: `g · u0^(1/k)`
//!   with `u0 = u(w(B, i))`, computed as `exp(ln(u0) / k)`. Result `g · θ`.
//!   Substreams used: `B ..= B + 16`.
//! - `student_t(df)`: `z(0, i) · sqrt(df / (2g))` with `g = gamma(df/2, 1)`
//!   at base `B = 1` (substreams 1..=17).
//! - `beta(a, b)`: `X / (X + Y)` with `X = gamma(a, 1)` at base 0 and
//!   `Y = gamma(b, 1)` at base 32 (substreams 0..=16 and 32..=48).
//!
//! # Invalid parameters
//!
//! [`params_valid`] states the domain of each distribution (every argument
//! finite, plus `sd > 0`, `a < b`, `0 ≤ p ≤ 1`, …). Outside it the draw is
//! NaN — in this reference and in every backend — and the executor reports
//! a numeric fault for the node instead of silently averaging it.

use crate::rng::{RngStream, uniform_f64};
pub use whatif_lang::Dist;

/// Fixed number of Marsaglia–Tsang attempts per gamma draw.
pub const GAMMA_ATTEMPTS: u32 = 8;
/// Floor for `V` when no gamma attempt accepts: the smallest normal f32
/// (`2^-126`), used by every backend so the fallback is identical.
pub const GAMMA_V_FLOOR: f64 = 1.175_494_350_822_287_5e-38;
/// Substream base of the second gamma (`Y`) inside `beta`.
pub const BETA_Y_BASE: u32 = 32;
/// Substream base of the gamma inside `student_t`.
pub const STUDENT_T_GAMMA_BASE: u32 = 1;

/// Whether `args` lie in the domain of `dist` (all finite, plus the
/// distribution's own constraint). Outside it, draws are NaN.
pub fn params_valid(dist: Dist, args: &[f64]) -> bool {
    if args.len() != dist.arity() || !args.iter().all(|a| a.is_finite()) {
        return false;
    }
    match dist {
        Dist::Normal | Dist::LogNormal | Dist::Laplace | Dist::Logistic => args[1] > 0.0,
        Dist::Uniform => args[0] < args[1],
        Dist::Bernoulli => (0.0..=1.0).contains(&args[0]),
        Dist::Exponential | Dist::StudentT => args[0] > 0.0,
        Dist::Gamma | Dist::Beta => args[0] > 0.0 && args[1] > 0.0,
    }
}

/// Standard normal of sample `i` from `substream` (Box–Muller paired within
/// the Philox block; see the module docs).
pub fn std_normal_f64(stream: &RngStream, substream: u32, i: u64) -> f64 {
    let w = stream.block(substream, i / 4);
    let pair = ((i % 4) / 2) as usize;
    let (even, odd) = box_muller_f64(w[2 * pair], w[2 * pair + 1]);
    if i.is_multiple_of(2) { even } else { odd }
}

/// Box–Muller on one word pair: `(r cos θ, r sin θ)` with
/// `r = sqrt(−2 ln u(w_even))`, `θ = 2π · w_odd · 2^-32`. At `w_even = 0`
/// (`u = 2^-32`) the radius is its maximum, `sqrt(64 ln 2) ≈ 6.6604`.
pub fn box_muller_f64(w_even: u32, w_odd: u32) -> (f64, f64) {
    let r = (-2.0 * uniform_f64(w_even).ln()).sqrt();
    let theta = std::f64::consts::TAU * f64::from(w_odd) * (1.0 / 4_294_967_296.0);
    (r * theta.cos(), r * theta.sin())
}

/// The Marsaglia–Tsang core for shape `k` (scale 1) at substream base `base`.
pub fn std_gamma_f64(stream: &RngStream, k: f64, base: u32, i: u64) -> f64 {
    let boost = k < 1.0;
    let kp = if boost { k + 1.0 } else { k };
    let d = kp - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    let mut g = None;
    let mut last_v = 0.0;
    for j in 0..GAMMA_ATTEMPTS {
        let z = std_normal_f64(stream, base + 1 + 2 * j, i);
        let v = uniform_f64(stream.word(base + 2 + 2 * j, i));
        let t = 1.0 + c * z;
        let vv = t * t * t;
        if z > -1.0 / c && v.ln() < 0.5 * z * z + d - d * vv + d * vv.ln() {
            g = Some(d * vv);
            break;
        }
        last_v = vv;
    }
    let g = g.unwrap_or(d * last_v.max(GAMMA_V_FLOOR));
    if boost {
        let u0 = uniform_f64(stream.word(base, i));
        g * (u0.ln() / k).exp()
    } else {
        g
    }
}

/// One draw of `dist(args)` for sample `sample_idx` of `site` (unit and
/// period 0). `args` are the already-evaluated parameter values of this
/// sample. NaN when `!params_valid(dist, args)`.
pub fn sample_f64(dist: Dist, args: &[f64], seed: u64, site: u32, sample_idx: u64) -> f64 {
    sample_f64_stream(dist, args, &RngStream::new(seed, site), sample_idx)
}

/// [`sample_f64`] on an explicit stream (any unit and period).
pub fn sample_f64_stream(dist: Dist, args: &[f64], stream: &RngStream, i: u64) -> f64 {
    if !params_valid(dist, args) {
        return f64::NAN;
    }
    let w = || stream.word(0, i);
    match dist {
        Dist::Normal => args[0] + args[1] * std_normal_f64(stream, 0, i),
        Dist::LogNormal => (args[0] + args[1] * std_normal_f64(stream, 0, i)).exp(),
        Dist::Uniform => args[0] + (args[1] - args[0]) * uniform_f64(w()),
        Dist::Bernoulli => {
            if uniform_f64(w()) <= args[0] {
                1.0
            } else {
                0.0
            }
        }
        Dist::Exponential => -uniform_f64(w()).ln() / args[0],
        Dist::Laplace => {
            let k = w();
            let m = k & 0x7fff_ffff;
            let e = -((f64::from(m) + 1.0) * (1.0 / 2_147_483_648.0)).ln();
            if k >> 31 == 0 {
                args[0] + args[1] * e
            } else {
                args[0] - args[1] * e
            }
        }
        Dist::Logistic => {
            let k = w();
            let lo = ((f64::from(k) + 0.5) * (1.0 / 4_294_967_296.0)).ln();
            let hi = ((f64::from(!k) + 0.5) * (1.0 / 4_294_967_296.0)).ln();
            args[0] + args[1] * (lo - hi)
        }
        Dist::Gamma => std_gamma_f64(stream, args[0], 0, i) * args[1],
        Dist::StudentT => {
            let df = args[0];
            let z = std_normal_f64(stream, 0, i);
            let g = std_gamma_f64(stream, 0.5 * df, STUDENT_T_GAMMA_BASE, i);
            z * (df / (2.0 * g)).sqrt()
        }
        Dist::Beta => {
            let x = std_gamma_f64(stream, args[0], 0, i);
            let y = std_gamma_f64(stream, args[1], BETA_Y_BASE, i);
            x / (x + y)
        }
    }
}
