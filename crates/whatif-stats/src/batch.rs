//! Monte Carlo standard errors by batch means over the fixed reduction
//! blocks, and the delta method for smooth functions of several estimates.

/// Fewest blocks for which batch means are trusted; with fewer, callers fall
/// back to the delta method or a closed form.
pub const MIN_BATCH_BLOCKS: usize = 20;

/// Whether `n_blocks` blocks are enough for a batch-means standard error
/// (≥ [`MIN_BATCH_BLOCKS`]: with fewer, the sd of the block values is itself
/// too noisy).
pub fn enough_blocks(n_blocks: usize) -> bool {
    n_blocks >= MIN_BATCH_BLOCKS
}

/// A batch-means estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchMeans {
    /// Weighted mean of the per-block values, θ̄ = Σ wᵢθᵢ / W.
    pub estimate: f64,
    /// Its standard error (see [`batch_means`]).
    pub std_error: f64,
    /// Number of blocks.
    pub n_blocks: usize,
}

/// Batch-means estimate and standard error from per-block values θᵢ of a
/// metric and the block weights wᵢ (their sample counts).
///
/// Each block value is taken to have variance σ²/wᵢ (a block of w samples
/// behaves like a mean of w samples), so the estimate is the weighted mean
/// θ̄ = Σwᵢθᵢ / W (W = Σwᵢ), σ² is estimated by s² = Σwᵢ(θᵢ − θ̄)² / (k − 1)
/// over k blocks, and SE(θ̄) = √(s² / W). With equal weights this is exactly
/// the textbook sd(θᵢ)/√k; the weighting only matters for the short last
/// block, which it neither drops nor over-counts. Blocks are summed in the
/// given (block) order, so the result is deterministic.
///
/// Returns `None` for fewer than 2 blocks, mismatched lengths, or a
/// non-positive total weight. Check [`enough_blocks`] before trusting it.
pub fn batch_means(values: &[f64], weights: &[f64]) -> Option<BatchMeans> {
    let k = values.len();
    if k < 2 || weights.len() != k {
        return None;
    }
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || weights.iter().any(|&w| w < 0.0) {
        return None;
    }
    let mean = values.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>() / total;
    let ss: f64 = values
        .iter()
        .zip(weights)
        .map(|(v, w)| w * (v - mean) * (v - mean))
        .sum();
    let s2 = ss / (k as f64 - 1.0);
    Some(BatchMeans {
        estimate: mean,
        std_error: (s2 / total).sqrt(),
        n_blocks: k,
    })
}

/// Batch-means standard error alone (see [`batch_means`]).
pub fn batch_means_std_error(values: &[f64], weights: &[f64]) -> Option<f64> {
    batch_means(values, weights).map(|b| b.std_error)
}

/// Delta-method standard error of g(θ̂) given the gradient ∇g at θ̂ and the
/// covariance matrix Σ of θ̂ (row-major, k × k): √(∇gᵀ Σ ∇g).
///
/// # Panics
/// If `covariance.len() != gradient.len()²`.
pub fn delta_method_std_error(gradient: &[f64], covariance: &[f64]) -> f64 {
    let k = gradient.len();
    assert_eq!(covariance.len(), k * k, "covariance must be k × k");
    let mut v = 0.0;
    for i in 0..k {
        for j in 0..k {
            v += gradient[i] * covariance[i * k + j] * gradient[j];
        }
    }
    v.max(0.0).sqrt()
}

/// Central-difference gradient of f at x: ∂f/∂xᵢ ≈ (f(x + hᵢeᵢ) − f(x − hᵢeᵢ))
/// / 2hᵢ with hᵢ = ε^{1/3}·max(|xᵢ|, 1) (ε = f64 machine epsilon), the step
/// that balances truncation and rounding error (~1e-10 relative accuracy
/// for smooth f).
pub fn numerical_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut p = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = f64::EPSILON.cbrt() * x[i].abs().max(1.0);
            p[i] = x[i] + h;
            let up = f(&p);
            p[i] = x[i] - h;
            let down = f(&p);
            p[i] = x[i];
            // Divide by the step actually taken (x ± h rounds).
            (up - down) / ((x[i] + h) - (x[i] - h))
        })
        .collect()
}

/// Delta-method standard error of f(θ̂) with a numerical gradient: combines
/// [`numerical_gradient`] and [`delta_method_std_error`].
pub fn delta_method_std_error_numeric(
    f: impl Fn(&[f64]) -> f64,
    estimates: &[f64],
    covariance: &[f64],
) -> f64 {
    delta_method_std_error(&numerical_gradient(f, estimates), covariance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_textbook_batch_means() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = batch_means(&v, &[10.0; 5]).unwrap();
        assert_eq!(b.estimate, 3.0);
        // sd = √2.5, SE = √2.5 / √5.
        assert!((b.std_error - (2.5f64 / 5.0).sqrt()).abs() < 1e-15);
        assert!(batch_means(&[1.0], &[1.0]).is_none());
        assert!(batch_means(&v, &[1.0; 4]).is_none());
    }

    #[test]
    fn short_last_block_counts_by_weight() {
        // A short block with an outlying value moves the estimate less.
        let b = batch_means(&[1.0, 1.0, 1.0, 5.0], &[100.0, 100.0, 100.0, 1.0]).unwrap();
        assert!((b.estimate - 305.0 / 301.0).abs() < 1e-15);
        let b_full = batch_means(&[1.0, 1.0, 1.0, 5.0], &[100.0; 4]).unwrap();
        assert!(b.std_error < b_full.std_error);
    }

    #[test]
    fn enough_blocks_threshold() {
        assert!(!enough_blocks(19));
        assert!(enough_blocks(20));
    }

    #[test]
    fn delta_method_ratio() {
        // g(a, b) = a / b at (2, 4), independent with variances 0.01 and 0.04:
        // Var ≈ (1/b)² 0.01 + (a/b²)² 0.04.
        let cov = [0.01, 0.0, 0.0, 0.04];
        let want = ((0.25f64).powi(2) * 0.01 + (0.125f64).powi(2) * 0.04).sqrt();
        let exact = delta_method_std_error(&[0.25, -0.125], &cov);
        assert!((exact - want).abs() < 1e-15);
        let num = delta_method_std_error_numeric(|t| t[0] / t[1], &[2.0, 4.0], &cov);
        assert!((num - want).abs() < 1e-9 * want);
        let g = numerical_gradient(|t| t[0].exp() * t[1] * t[1], &[0.5, 3.0]);
        assert!((g[0] - 0.5f64.exp() * 9.0).abs() < 1e-8);
        assert!((g[1] - 0.5f64.exp() * 6.0).abs() < 1e-8);
    }
}
