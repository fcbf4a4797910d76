//! Fast f32 batch kernels: Philox4x32-10 over chunks of lanes, the
//! distribution transforms of [`whatif_ir::dist`], and polynomial
//! `ln`/`exp`/`sin`/`cos`/`sigmoid`/`tanh`/`logit`.
//!
//! These implement the RNG and distribution contract of [`whatif_ir::rng`]
//! and [`whatif_ir::dist`] in f32 with vectorisable code: Philox runs one
//! SIMD lane per block (structure of arrays, `u64` products for the
//! 32×32→64 multiplies), the transforms use the branch-free polynomials of
//! [`math`], and nothing calls libm. Accuracy against the f64 reference on
//! the same words is tested in `tests/kernels.rs` (normals: |Δ| ≤ 1e-6 ·
//! (1 + |z|), see the report there).
//!
//! Everything hot is `#[inline(always)]` and carries no target features of
//! its own: the executor compiles [`fill`] inside its AVX-512 / AVX2 /
//! baseline copies ([`crate::dispatch`]). [`fill_dispatched`] does the same
//! dispatch for callers outside the executor (tests, timings). Every fused
//! multiply-add is `f32::mul_add`, so all copies give bit-identical results.

pub mod dists;
pub mod math;
pub mod philox;

pub use dists::Arg;
pub use philox::{GROUP, normal_group, philox_group, words_group};

use crate::dispatch::Variant;
use whatif_ir::Dist;
use whatif_ir::rng::RngStream;

/// Fill `out` with draws of `dist(args)` for the samples `start ..
/// start + out.len()` of `site` (unit and period 0). `start` must be a
/// multiple of 4; `out.len()` may be anything. Per-lane `args` must have at
/// least `out.len()` lanes. Invalid parameters give NaN lanes.
#[inline(always)]
pub fn fill(dist: Dist, args: &[Arg<'_>], seed: u64, site: u32, start: u64, out: &mut [f32]) {
    dists::fill_inline(dist, args, &RngStream::new(seed, site), start, out);
}

/// [`fill`] on an explicit stream (any unit and period).
#[inline(always)]
pub fn fill_stream(dist: Dist, args: &[Arg<'_>], stream: &RngStream, start: u64, out: &mut [f32]) {
    dists::fill_inline(dist, args, stream, start, out);
}

/// `normal(mu, sd)` over a chunk: see [`fill`].
#[inline(always)]
pub fn fill_normal(seed: u64, site: u32, start: u64, mu: Arg<'_>, sd: Arg<'_>, out: &mut [f32]) {
    dists::normal(&RngStream::new(seed, site), start, mu, sd, out);
}

/// The kernel variant this machine runs: `"avx512-fma"`, `"avx2-fma"` or
/// `"baseline"` (SSE2 on x86-64), as recorded in the report manifest.
pub fn kernel_variant() -> &'static str {
    crate::dispatch::variant().name()
}

/// [`fill_stream`] compiled for `variant` (falls back to the baseline copy
/// when this CPU lacks the variant's features). For callers outside the
/// executor's own dispatched loop, and for tests that compare copies.
pub fn fill_dispatched(
    variant: Variant,
    dist: Dist,
    args: &[Arg<'_>],
    stream: &RngStream,
    start: u64,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let has = |f: &[&str]| {
            f.iter().all(|f| match *f {
                "avx512" => {
                    is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512dq")
                        && is_x86_feature_detected!("avx512bw")
                }
                "avx2" => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("bmi2"),
                _ => is_x86_feature_detected!("fma"),
            })
        };
        match variant {
            // SAFETY: the features this copy is compiled for were detected.
            Variant::Avx512Fma if has(&["avx512", "avx2", "fma"]) => unsafe {
                fill_avx512(dist, args, stream, start, out)
            },
            // SAFETY: as above.
            Variant::Avx2Fma if has(&["avx2", "fma"]) => unsafe {
                fill_avx2(dist, args, stream, start, out)
            },
            _ => dists::fill_inline(dist, args, stream, start, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = variant;
        dists::fill_inline(dist, args, stream, start, out)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi2")]
fn fill_avx512(dist: Dist, args: &[Arg<'_>], stream: &RngStream, start: u64, out: &mut [f32]) {
    dists::fill_inline(dist, args, stream, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi2")]
fn fill_avx2(dist: Dist, args: &[Arg<'_>], stream: &RngStream, start: u64, out: &mut [f32]) {
    dists::fill_inline(dist, args, stream, start, out)
}

/// Elementwise functions the executor applies to lanes, with the same
/// polynomials as the transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    /// `e^x`
    Exp,
    /// `ln x`
    Ln,
    /// `1 / (1 + e^−x)`
    Sigmoid,
    /// `tanh x`
    Tanh,
    /// `ln(p / (1 − p))`
    Logit,
}

/// `dst[i] = op(src[i])` for `i < dst.len()` (`src` at least as long).
#[inline(always)]
pub fn map_math(op: MathOp, src: &[f32], dst: &mut [f32]) {
    let src = &src[..dst.len()];
    // Plain loops (no closures), so the body is inlined into whatever
    // target-feature copy calls this.
    match op {
        MathOp::Exp => {
            for i in 0..dst.len() {
                dst[i] = math::exp_f32(src[i]);
            }
        }
        MathOp::Ln => {
            for i in 0..dst.len() {
                dst[i] = math::ln_f32(src[i]);
            }
        }
        MathOp::Sigmoid => {
            for i in 0..dst.len() {
                dst[i] = math::sigmoid_f32(src[i]);
            }
        }
        MathOp::Tanh => {
            for i in 0..dst.len() {
                dst[i] = math::tanh_f32(src[i]);
            }
        }
        MathOp::Logit => {
            for i in 0..dst.len() {
                dst[i] = math::logit_f32(src[i]);
            }
        }
    }
}
