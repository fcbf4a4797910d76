//! Runtime CPU-feature dispatch: release binaries stay portable (baseline
//! x86-64), and the chunk evaluator is compiled three times — AVX-512+FMA,
//! AVX2+FMA and baseline — with the best copy picked once at run time.
//!
//! All fused multiply-adds are written as `mul_add`, which has the same
//! (single-rounding) result with or without an FMA unit, so the copies agree
//! bit for bit; only their speed differs.

use crate::eval::{Scratch, eval_chunk_body};
use crate::plan::Plan;
use std::sync::OnceLock;

/// The instruction-set variants this build can dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Avx512Fma,
    Avx2Fma,
    Baseline,
}

impl Variant {
    /// The name recorded in the report manifest (`kernel`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Avx512Fma => "avx512-fma",
            Variant::Avx2Fma => "avx2-fma",
            Variant::Baseline => "baseline",
        }
    }
}

/// The variant this machine runs (detected once).
pub fn variant() -> Variant {
    static V: OnceLock<Variant> = OnceLock::new();
    *V.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Variant {
    if std::env::var_os("WHATIF_CPU_BASELINE").is_some() {
        return Variant::Baseline;
    }
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("fma")
    {
        Variant::Avx512Fma
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Variant::Avx2Fma
    } else {
        Variant::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Variant {
    Variant::Baseline
}

pub(crate) fn eval_chunk(plan: &Plan, scratch: &mut Scratch, start: u64, n: usize) {
    match variant() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` saw every feature these copies are compiled for.
        Variant::Avx512Fma => unsafe { eval_avx512(plan, scratch, start, n) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Variant::Avx2Fma => unsafe { eval_avx2(plan, scratch, start, n) },
        _ => eval_chunk_body(plan, scratch, start, n),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi2")]
fn eval_avx512(plan: &Plan, scratch: &mut Scratch, start: u64, n: usize) {
    eval_chunk_body(plan, scratch, start, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi2")]
fn eval_avx2(plan: &Plan, scratch: &mut Scratch, start: u64, n: usize) {
    eval_chunk_body(plan, scratch, start, n)
}
