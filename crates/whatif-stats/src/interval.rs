//! Confidence intervals: normal intervals from a standard error, Wilson score
//! intervals and Clopper–Pearson bounds for proportions.

use crate::special::beta_i;
pub use crate::special::normal_ppf;

/// Φ⁻¹(0.975), the z of a two-sided 95% normal interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Normal 95% interval `[estimate − 1.96·se, estimate + 1.96·se]`
/// (z = Φ⁻¹(0.975) to full precision).
pub fn ci95(estimate: f64, std_error: f64) -> [f64; 2] {
    [estimate - Z95 * std_error, estimate + Z95 * std_error]
}

/// Wilson score interval for a binomial proportion with `successes` out of
/// `n` trials at normal quantile `z` (1.96 for 95%):
///
/// (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n), p̂ = successes/n,
///
/// clamped to [0, 1]. Unlike the Wald interval it is not degenerate at 0 or n
/// successes (0 of n gives [0, z²/(n + z²)]). Returns `[0, 1]` for n = 0.
///
/// # Panics
/// If `successes > n`.
pub fn wilson(successes: u64, n: u64, z: f64) -> [f64; 2] {
    assert!(successes <= n, "wilson: successes > n");
    if n == 0 {
        return [0.0, 1.0];
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = p + z2 / (2.0 * nf);
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    let lo = if successes == 0 {
        0.0
    } else {
        ((centre - half) / denom).max(0.0)
    };
    let hi = if successes == n {
        1.0
    } else {
        ((centre + half) / denom).min(1.0)
    };
    [lo, hi]
}

/// Solves `f(p) = target` for p ∈ [0, 1] by bisection, f increasing.
fn bisect_increasing(f: impl Fn(f64) -> f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    // 200 halvings reach the f64 resolution of [0, 1] near any point.
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// One-sided Clopper–Pearson upper confidence bound for a binomial proportion
/// after `k` events in `n` trials at confidence `conf` (e.g. 0.95): the p_u
/// with P(Bin(n, p_u) ≤ k) = 1 − conf, i.e. I_{p_u}(k + 1, n − k) = conf
/// (the `conf` quantile of Beta(k + 1, n − k)), found by bisection on
/// [`beta_i`]. Equals 1 − (1 − conf)^{1/n} at k = 0 and 1 at k = n;
/// 1 for n = 0.
///
/// # Panics
/// If `k > n` or `conf ∉ (0, 1)`.
pub fn clopper_pearson_upper(k: u64, n: u64, conf: f64) -> f64 {
    assert!(k <= n, "clopper_pearson_upper: k > n");
    assert!(conf > 0.0 && conf < 1.0, "confidence must lie in (0, 1)");
    if k == n {
        return 1.0;
    }
    if k == 0 {
        // Closed form, exact to rounding.
        return -((1.0 - conf).ln() / n as f64).exp_m1();
    }
    let (a, b) = ((k + 1) as f64, (n - k) as f64);
    bisect_increasing(|p| beta_i(a, b, p), conf)
}

/// One-sided Clopper–Pearson lower confidence bound: the p_l with
/// P(Bin(n, p_l) ≥ k) = 1 − conf, i.e. I_{p_l}(k, n − k + 1) = 1 − conf.
/// 0 at k = 0.
///
/// # Panics
/// If `k > n` or `conf ∉ (0, 1)`.
pub fn clopper_pearson_lower(k: u64, n: u64, conf: f64) -> f64 {
    assert!(k <= n, "clopper_pearson_lower: k > n");
    assert!(conf > 0.0 && conf < 1.0, "confidence must lie in (0, 1)");
    if k == 0 {
        return 0.0;
    }
    if k == n {
        return (conf.ln_1p_neg() / n as f64).exp();
    }
    let (a, b) = (k as f64, (n - k + 1) as f64);
    bisect_increasing(|p| beta_i(a, b, p), 1.0 - conf)
}

/// ln(1 − x) spelled so the intent reads at the call site.
trait Ln1pNeg {
    fn ln_1p_neg(self) -> f64;
}
impl Ln1pNeg for f64 {
    fn ln_1p_neg(self) -> f64 {
        (-self).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci95_is_symmetric() {
        let [lo, hi] = ci95(10.0, 1.0);
        assert!((hi - 10.0 - Z95).abs() < 1e-15 && (10.0 - lo - Z95).abs() < 1e-15);
        assert!((normal_ppf(0.975) - Z95).abs() < 1e-14);
    }

    #[test]
    fn wilson_zero_events_is_not_degenerate() {
        let [lo, hi] = wilson(0, 100, Z95);
        assert_eq!(lo, 0.0);
        let z2 = Z95 * Z95;
        assert!((hi - z2 / (100.0 + z2)).abs() < 1e-15);
        assert!(hi > 0.03);
        let [lo, hi] = wilson(100, 100, Z95);
        assert!(lo < 1.0 && hi == 1.0);
        // Wilson formula evaluated in Python with z = norm.ppf(0.975)
        let [lo, hi] = wilson(12, 50, Z95);
        assert!((lo - 0.142_973_913_969_917_32).abs() < 1e-12, "{lo}");
        assert!((hi - 0.374_126_837_579_429_27).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn clopper_pearson_known_values() {
        let u = clopper_pearson_upper(0, 100, 0.95);
        assert!((u - (1.0 - 0.05f64.powf(0.01))).abs() < 1e-15);
        assert!((u - 0.029_513_049_607_039_932).abs() < 1e-12);
        // scipy.stats.beta.ppf(0.95, k + 1, n − k)
        let u = clopper_pearson_upper(3, 100, 0.95);
        assert!((u - 0.075_710_793_749_830_04).abs() < 1e-12, "{u}");
        let u = clopper_pearson_upper(50, 1000, 0.95);
        assert!((u - 0.062_863_403_512_379_73).abs() < 1e-12, "{u}");
        assert_eq!(clopper_pearson_upper(7, 7, 0.95), 1.0);
        // scipy.stats.beta.ppf(0.05, k, n − k + 1)
        let l = clopper_pearson_lower(3, 100, 0.95);
        assert!((l - 0.008_225_829_107_652_688).abs() < 1e-12, "{l}");
        assert!((clopper_pearson_lower(10, 10, 0.95) - 0.05f64.powf(0.1)).abs() < 1e-15);
    }
}
