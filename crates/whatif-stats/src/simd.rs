//! Run-time detection of wide vector units for the accumulation loops
//! (detected once; `WHATIF_CPU_BASELINE=1` forces the portable copy).

#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
fn baseline_forced() -> bool {
    std::env::var_os("WHATIF_CPU_BASELINE").is_some()
}

/// AVX-512 F/DQ/VL present.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        !baseline_forced()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
    })
}

/// AVX2 present.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| !baseline_forced() && is_x86_feature_detected!("avx2"))
}
