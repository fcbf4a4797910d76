//! Joint moments of paired samples (x, y): means, variances, covariance and
//! correlation, plus the paired-difference and ratio standard errors used for
//! effects between worlds under common random numbers.
//!
//! Same determinism scheme as [`crate::moments`]: sample `i` goes to stripe
//! `i mod STRIPES` by its global index, each stripe is a sequential `f64`
//! chain around a shift (the block's first pair), stripes are combined in a
//! fixed order, and block summaries merge pairwise (Chan et al.) in block
//! order. Inputs must be finite.

use crate::moments::STRIPES;
use serde::{Deserialize, Serialize};

/// Streaming accumulator over one reduction block of paired `f32` samples.
#[derive(Debug, Clone)]
pub struct CoMoments {
    next_idx: Option<u64>,
    count: u64,
    shift_x: f64,
    shift_y: f64,
    sx: [f64; STRIPES],
    sy: [f64; STRIPES],
    sxx: [f64; STRIPES],
    syy: [f64; STRIPES],
    sxy: [f64; STRIPES],
}

impl Default for CoMoments {
    fn default() -> Self {
        Self::new()
    }
}

impl CoMoments {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self {
            next_idx: None,
            count: 0,
            shift_x: 0.0,
            shift_y: 0.0,
            sx: [0.0; STRIPES],
            sy: [0.0; STRIPES],
            sxx: [0.0; STRIPES],
            syy: [0.0; STRIPES],
            sxy: [0.0; STRIPES],
        }
    }

    /// Number of pairs pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds the pairs `(xs[j], ys[j])`, the first of which has global sample
    /// index `start_idx`. Slices must be pushed contiguously in sample order.
    ///
    /// # Panics
    /// If `xs` and `ys` differ in length, or `start_idx` does not continue the
    /// previous push.
    // Indexing by stripe lane keeps the body a fixed-width loop over all
    // arrays at once, which is what vectorises.
    #[allow(clippy::needless_range_loop)]
    pub fn push(&mut self, start_idx: u64, xs: &[f32], ys: &[f32]) {
        // The same body compiled for wider vector units, picked at run time:
        // only adds, multiplies and converts, so every copy gives the same
        // bits (no FMA contraction in Rust), only faster.
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::has_avx512() {
                // SAFETY: the CPU supports the features this copy is built for.
                return unsafe { self.push_avx512(start_idx, xs, ys) };
            }
            if crate::simd::has_avx2() {
                // SAFETY: as above.
                return unsafe { self.push_avx2(start_idx, xs, ys) };
            }
        }
        self.push_body(start_idx, xs, ys)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
    fn push_avx512(&mut self, start_idx: u64, xs: &[f32], ys: &[f32]) {
        self.push_body(start_idx, xs, ys)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn push_avx2(&mut self, start_idx: u64, xs: &[f32], ys: &[f32]) {
        self.push_body(start_idx, xs, ys)
    }

    #[inline(always)]
    fn push_body(&mut self, start_idx: u64, xs: &[f32], ys: &[f32]) {
        assert_eq!(xs.len(), ys.len(), "CoMoments::push: unequal lengths");
        if xs.is_empty() {
            return;
        }
        match self.next_idx {
            None => {
                self.shift_x = f64::from(xs[0]);
                self.shift_y = f64::from(ys[0]);
            }
            Some(next) => assert_eq!(
                next, start_idx,
                "CoMoments::push: slices must be contiguous and in sample order"
            ),
        }
        self.next_idx = Some(start_idx + xs.len() as u64);
        self.count += xs.len() as u64;

        let lane0 = (start_idx % STRIPES as u64) as usize;
        let head = ((STRIPES - lane0) % STRIPES).min(xs.len());
        for j in 0..head {
            self.add_one(lane0 + j, xs[j], ys[j]);
        }
        let (xr, yr) = (&xs[head..], &ys[head..]);
        let mut xc = xr.chunks_exact(STRIPES);
        let mut yc = yr.chunks_exact(STRIPES);
        let (sx0, sy0) = (self.shift_x, self.shift_y);
        for (cx, cy) in (&mut xc).zip(&mut yc) {
            // Fixed-width body over the stripes: vectorises.
            for j in 0..STRIPES {
                let dx = f64::from(cx[j]) - sx0;
                let dy = f64::from(cy[j]) - sy0;
                self.sx[j] += dx;
                self.sy[j] += dy;
                self.sxx[j] += dx * dx;
                self.syy[j] += dy * dy;
                self.sxy[j] += dx * dy;
            }
        }
        for (j, (&x, &y)) in xc.remainder().iter().zip(yc.remainder()).enumerate() {
            self.add_one(j, x, y);
        }
    }

    /// Same operations as the vector body, for the ragged ends.
    #[inline(always)]
    fn add_one(&mut self, j: usize, x: f32, y: f32) {
        let dx = f64::from(x) - self.shift_x;
        let dy = f64::from(y) - self.shift_y;
        self.sx[j] += dx;
        self.sy[j] += dy;
        self.sxx[j] += dx * dx;
        self.syy[j] += dy * dy;
        self.sxy[j] += dx * dy;
    }

    /// Combines the stripes in fixed order into a mergeable summary.
    pub fn finish(&self) -> CoMomentsSummary {
        if self.count == 0 {
            return CoMomentsSummary::default();
        }
        let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for j in 0..STRIPES {
            sx += self.sx[j];
            sy += self.sy[j];
            sxx += self.sxx[j];
            syy += self.syy[j];
            sxy += self.sxy[j];
        }
        let n = self.count as f64;
        let ax = sx / n;
        let ay = sy / n;
        CoMomentsSummary {
            n: self.count,
            mean_x: self.shift_x + ax,
            mean_y: self.shift_y + ay,
            m2_x: (sxx - ax * sx).max(0.0),
            m2_y: (syy - ay * sy).max(0.0),
            c_xy: sxy - ax * sy,
        }
    }
}

/// Mergeable summary of paired samples.
///
/// `m2_x = Σ (xᵢ − x̄)²`, `m2_y = Σ (yᵢ − ȳ)²`, `c_xy = Σ (xᵢ − x̄)(yᵢ − ȳ)`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CoMomentsSummary {
    /// Number of pairs.
    pub n: u64,
    /// Mean of x.
    pub mean_x: f64,
    /// Mean of y.
    pub mean_y: f64,
    /// Sum of squared deviations of x.
    pub m2_x: f64,
    /// Sum of squared deviations of y.
    pub m2_y: f64,
    /// Sum of cross products of deviations.
    pub c_xy: f64,
}

impl CoMomentsSummary {
    /// Summary of two equal-length slices as one block starting at index 0.
    pub fn from_slices(xs: &[f32], ys: &[f32]) -> Self {
        let mut c = CoMoments::new();
        c.push(0, xs, ys);
        c.finish()
    }

    /// Merges `other` (later in merge order) into `self` by the pairwise
    /// co-moment update C = C_a + C_b + δx δy n_a n_b / n. Deterministic given
    /// the merge order.
    pub fn merge(&mut self, other: &CoMomentsSummary) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let na = self.n as f64;
        let nb = other.n as f64;
        let n = na + nb;
        let dx = other.mean_x - self.mean_x;
        let dy = other.mean_y - self.mean_y;
        let w = na * nb / n;
        self.mean_x += dx * nb / n;
        self.mean_y += dy * nb / n;
        self.m2_x += other.m2_x + dx * dx * w;
        self.m2_y += other.m2_y + dy * dy * w;
        self.c_xy += other.c_xy + dx * dy * w;
        self.n += other.n;
    }

    /// Number of pairs.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean of x (NaN when empty).
    pub fn mean_x(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean_x }
    }

    /// Mean of y (NaN when empty).
    pub fn mean_y(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean_y }
    }

    fn dof(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.n as f64 - 1.0
        }
    }

    /// Unbiased variance of x, `m2_x / (n − 1)`.
    pub fn variance_x(&self) -> f64 {
        self.m2_x / self.dof()
    }

    /// Unbiased variance of y, `m2_y / (n − 1)`.
    pub fn variance_y(&self) -> f64 {
        self.m2_y / self.dof()
    }

    /// Unbiased covariance, `c_xy / (n − 1)`.
    pub fn covariance(&self) -> f64 {
        self.c_xy / self.dof()
    }

    /// Pearson correlation `c_xy / √(m2_x m2_y)`, clamped to [−1, 1]; NaN when
    /// either variable is constant.
    pub fn correlation(&self) -> f64 {
        let d = (self.m2_x * self.m2_y).sqrt();
        if self.n < 2 || d == 0.0 {
            return f64::NAN;
        }
        (self.c_xy / d).clamp(-1.0, 1.0)
    }

    /// Paired difference of means, mean(x) − mean(y).
    pub fn mean_difference(&self) -> f64 {
        self.mean_x() - self.mean_y()
    }

    /// Standard error of the paired difference of means,
    /// √((var_x + var_y − 2 cov) / n). Under common random numbers the
    /// covariance is large and positive, which is what makes this small.
    pub fn mean_difference_std_error(&self) -> f64 {
        let v = self.variance_x() + self.variance_y() - 2.0 * self.covariance();
        (v.max(0.0) / self.n as f64).sqrt()
    }

    /// Ratio of means, mean(x) / mean(y).
    pub fn mean_ratio(&self) -> f64 {
        self.mean_x() / self.mean_y()
    }

    /// Delta-method standard error of the ratio of means r = x̄ / ȳ:
    /// Var(r) ≈ (var_x − 2 r cov + r² var_y) / (n ȳ²).
    pub fn mean_ratio_std_error(&self) -> f64 {
        let r = self.mean_ratio();
        let my = self.mean_y();
        let v = self.variance_x() - 2.0 * r * self.covariance() + r * r * self.variance_y();
        (v.max(0.0) / (self.n as f64 * my * my)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut s = seed.wrapping_add(12345);
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut xs = Vec::with_capacity(n);
        let mut ys = Vec::with_capacity(n);
        for _ in 0..n {
            let a = next();
            let b = next();
            xs.push(50.0 + a);
            ys.push(48.0 + 2.0 * a + 0.3 * b);
        }
        (xs, ys)
    }

    #[test]
    fn matches_naive_two_pass() {
        let (xs, ys) = pairs(5003, 1);
        let s = CoMomentsSummary::from_slices(&xs, &ys);
        let n = xs.len() as f64;
        let mx = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let my = ys.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let mut c = 0.0;
        let mut vx = 0.0;
        let mut vy = 0.0;
        let mut vd = 0.0;
        let md = mx - my;
        for (&x, &y) in xs.iter().zip(&ys) {
            let (dx, dy) = (f64::from(x) - mx, f64::from(y) - my);
            c += dx * dy;
            vx += dx * dx;
            vy += dy * dy;
            vd += (f64::from(x) - f64::from(y) - md).powi(2);
        }
        assert!((s.mean_x - mx).abs() < 1e-12 * mx);
        assert!((s.mean_y - my).abs() < 1e-12 * my);
        assert!((s.c_xy - c).abs() < 1e-9 * c.abs());
        assert!((s.m2_x - vx).abs() < 1e-9 * vx);
        assert!((s.m2_y - vy).abs() < 1e-9 * vy);
        let corr = c / (vx * vy).sqrt();
        assert!((s.correlation() - corr).abs() < 1e-12);
        // Paired SE equals the SE of the per-sample differences.
        let se = (vd / (n - 1.0) / n).sqrt();
        assert!((s.mean_difference_std_error() - se).abs() < 1e-9 * se);
    }

    #[test]
    fn merge_matches_one_pass() {
        let (xs, ys) = pairs(3000, 9);
        let whole = CoMomentsSummary::from_slices(&xs, &ys);
        let mut a = CoMoments::new();
        a.push(0, &xs[..1234], &ys[..1234]);
        let mut b = CoMoments::new();
        b.push(1234, &xs[1234..], &ys[1234..]);
        let mut m = a.finish();
        m.merge(&b.finish());
        assert_eq!(m.n, whole.n);
        assert!((m.c_xy - whole.c_xy).abs() < 1e-9 * whole.c_xy.abs());
        assert!((m.mean_y - whole.mean_y).abs() < 1e-12 * whole.mean_y);
        assert!(m.mean_ratio_std_error() > 0.0);
    }

    proptest! {
        #[test]
        fn bit_identical_across_slicings(
            n in 0usize..400,
            start in 0u64..50,
            cuts in proptest::collection::vec(0usize..400, 0..6),
            seed in 0u64..1000,
        ) {
            let (xs, ys) = pairs(n, seed);
            let mut whole = CoMoments::new();
            whole.push(start, &xs, &ys);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
            cuts.push(0);
            cuts.push(n);
            cuts.sort_unstable();
            let mut parts = CoMoments::new();
            for w in cuts.windows(2) {
                parts.push(start + w[0] as u64, &xs[w[0]..w[1]], &ys[w[0]..w[1]]);
            }
            let (a, b) = (whole.finish(), parts.finish());
            prop_assert_eq!(a.n, b.n);
            for (u, v) in [(a.mean_x, b.mean_x), (a.mean_y, b.mean_y), (a.m2_x, b.m2_x),
                           (a.m2_y, b.m2_y), (a.c_xy, b.c_xy)] {
                prop_assert_eq!(u.to_bits(), v.to_bits());
            }
        }
    }
}
