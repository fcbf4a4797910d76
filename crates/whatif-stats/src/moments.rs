//! Count, mean, variance, min/max and third/fourth central moments of one
//! stream of `f32` samples, accumulated in `f64`, deterministic whatever the
//! chunking.
//!
//! # Determinism
//!
//! A [`Moments`] accumulator covers one reduction block. Samples are pushed
//! in sample order as slices tagged with the *global* index of their first
//! sample. Sample `i` goes to stripe `i mod STRIPES`; each stripe is a
//! sequential `f64` chain in sample order, and [`Moments::finish`] combines
//! the stripes in a fixed order. So pushing a block as `[a, b)` then `[b, c)`
//! gives exactly the same bits as pushing `[a, c)` at once: the chunk
//! boundaries never reach the arithmetic. The stripes also break the add
//! latency chain so the inner loop vectorises (f32→f64 conversion, adds,
//! compare-and-select for min/max; Rust never contracts into FMA, so the
//! scalar and vector paths give the same bits).
//!
//! Sums are taken around a shift, the block's first sample, so the power
//! sums of `x − shift` do not cancel catastrophically when the mean is large
//! relative to the spread.
//!
//! Block results ([`MomentsSummary`]) merge by Chan et al.'s / Pébay's
//! pairwise formulas, which are deterministic given the merge order (the
//! executor merges blocks sequentially in block order).
//!
//! Inputs must be finite: the executor detects and reports non-finite lanes
//! separately (as numeric faults); a NaN or ±∞ here poisons the sums.

use serde::{Deserialize, Serialize};

/// Number of interleaved partial sums (sample `i` → stripe `i mod STRIPES`).
/// Part of the bit-level definition of the result: changing it changes the
/// last bits of every mean and variance.
pub const STRIPES: usize = 16;

/// Streaming accumulator over one reduction block of `f32` samples.
///
/// Push slices in sample order with [`Moments::push`]; call
/// [`Moments::finish`] for the mergeable [`MomentsSummary`].
#[derive(Debug, Clone)]
pub struct Moments {
    /// Global index the next pushed slice must start at (`None` before the
    /// first non-empty push).
    next_idx: Option<u64>,
    count: u64,
    /// The block's first sample, subtracted from every sample before summing.
    shift: f64,
    s1: [f64; STRIPES],
    s2: [f64; STRIPES],
    s3: [f64; STRIPES],
    s4: [f64; STRIPES],
    min: [f64; STRIPES],
    max: [f64; STRIPES],
}

impl Default for Moments {
    fn default() -> Self {
        Self::new()
    }
}

impl Moments {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self {
            next_idx: None,
            count: 0,
            shift: 0.0,
            s1: [0.0; STRIPES],
            s2: [0.0; STRIPES],
            s3: [0.0; STRIPES],
            s4: [0.0; STRIPES],
            min: [f64::INFINITY; STRIPES],
            max: [f64::NEG_INFINITY; STRIPES],
        }
    }

    /// Number of samples pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds the samples `xs`, whose first element has global sample index
    /// `start_idx`. Slices must be pushed in sample order and be contiguous
    /// (each starts where the previous ended).
    ///
    /// # Panics
    /// If `start_idx` does not continue the previous push.
    // Indexing by stripe lane keeps the body a fixed-width loop over all
    // arrays at once, which is what vectorises.
    #[allow(clippy::needless_range_loop)]
    pub fn push(&mut self, start_idx: u64, xs: &[f32]) {
        // The same body compiled for wider vector units, picked at run time:
        // only adds, multiplies and converts, so every copy gives the same
        // bits (no FMA contraction in Rust), only faster.
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::has_avx512() {
                // SAFETY: the CPU supports the features this copy is built for.
                return unsafe { self.push_avx512(start_idx, xs) };
            }
            if crate::simd::has_avx2() {
                // SAFETY: as above.
                return unsafe { self.push_avx2(start_idx, xs) };
            }
        }
        self.push_body(start_idx, xs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
    fn push_avx512(&mut self, start_idx: u64, xs: &[f32]) {
        self.push_body(start_idx, xs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn push_avx2(&mut self, start_idx: u64, xs: &[f32]) {
        self.push_body(start_idx, xs)
    }

    #[inline(always)]
    fn push_body(&mut self, start_idx: u64, xs: &[f32]) {
        if xs.is_empty() {
            return;
        }
        match self.next_idx {
            None => self.shift = f64::from(xs[0]),
            Some(next) => assert_eq!(
                next, start_idx,
                "Moments::push: slices must be contiguous and in sample order"
            ),
        }
        self.next_idx = Some(start_idx + xs.len() as u64);
        self.count += xs.len() as u64;

        let shift = self.shift;
        // Scalar prefix up to the next index that is a multiple of STRIPES.
        let lane0 = (start_idx % STRIPES as u64) as usize;
        let head = ((STRIPES - lane0) % STRIPES).min(xs.len());
        for (j, &x) in xs[..head].iter().enumerate() {
            self.add_one(lane0 + j, f64::from(x) - shift);
        }
        let rest = &xs[head..];
        let mut chunks = rest.chunks_exact(STRIPES);
        // Work on local copies so the stripes live in registers for the whole
        // loop (no store/reload through `self` each iteration).
        let (mut s1, mut s2, mut s3, mut s4) = (self.s1, self.s2, self.s3, self.s4);
        let (mut mn, mut mx) = (self.min, self.max);
        for chunk in &mut chunks {
            // Fixed-width body: LLVM turns this into vector converts, adds and
            // selects over the STRIPES lanes.
            for j in 0..STRIPES {
                let d = f64::from(chunk[j]) - shift;
                let d2 = d * d;
                s1[j] += d;
                s2[j] += d2;
                s3[j] += d2 * d;
                s4[j] += d2 * d2;
                mn[j] = if d < mn[j] { d } else { mn[j] };
                mx[j] = if d > mx[j] { d } else { mx[j] };
            }
        }
        (self.s1, self.s2, self.s3, self.s4) = (s1, s2, s3, s4);
        (self.min, self.max) = (mn, mx);
        for (j, &x) in chunks.remainder().iter().enumerate() {
            self.add_one(j, f64::from(x) - shift);
        }
    }

    /// Adds one shifted value to a stripe: the exact same operations as the
    /// vector body, so every sample is accumulated identically.
    #[inline(always)]
    fn add_one(&mut self, j: usize, d: f64) {
        let d2 = d * d;
        self.s1[j] += d;
        self.s2[j] += d2;
        self.s3[j] += d2 * d;
        self.s4[j] += d2 * d2;
        if d < self.min[j] {
            self.min[j] = d;
        }
        if d > self.max[j] {
            self.max[j] = d;
        }
    }

    /// Combines the stripes (in stripe order 0, 1, …) into a mergeable
    /// summary of everything pushed.
    pub fn finish(&self) -> MomentsSummary {
        if self.count == 0 {
            return MomentsSummary::default();
        }
        let mut s1 = 0.0;
        let mut s2 = 0.0;
        let mut s3 = 0.0;
        let mut s4 = 0.0;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for j in 0..STRIPES {
            s1 += self.s1[j];
            s2 += self.s2[j];
            s3 += self.s3[j];
            s4 += self.s4[j];
            if self.min[j] < min {
                min = self.min[j];
            }
            if self.max[j] > max {
                max = self.max[j];
            }
        }
        let n = self.count as f64;
        // Central moments from power sums about the shift: with a = mean − shift,
        // M2 = S2 − n a², M3 = S3 − 3a S2 + 2n a³, M4 = S4 − 4a S3 + 6a² S2 − 3n a⁴.
        let a = s1 / n;
        let m2 = (s2 - a * s1).max(0.0);
        let m3 = s3 - 3.0 * a * s2 + 2.0 * n * a * a * a;
        let m4 = (s4 - 4.0 * a * s3 + 6.0 * a * a * s2 - 3.0 * n * a * a * a * a).max(0.0);
        MomentsSummary {
            n: self.count,
            mean: self.shift + a,
            m2,
            m3,
            m4,
            min: self.shift + min,
            max: self.shift + max,
        }
    }
}

/// Mergeable summary of a set of samples: count, mean, central moment sums
/// and extremes.
///
/// `m2 = Σ (xᵢ − mean)²`, `m3 = Σ (xᵢ − mean)³`, `m4 = Σ (xᵢ − mean)⁴`.
/// The empty summary has `n = 0`, zero sums, `min = +∞`, `max = −∞`
/// (serialised as-is by serde; callers that write JSON map them to null).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MomentsSummary {
    /// Number of samples.
    pub n: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Sum of cubed deviations from the mean.
    pub m3: f64,
    /// Sum of fourth powers of deviations from the mean.
    pub m4: f64,
    /// Smallest sample (+∞ when empty).
    pub min: f64,
    /// Largest sample (−∞ when empty).
    pub max: f64,
}

impl Default for MomentsSummary {
    fn default() -> Self {
        Self {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            m3: 0.0,
            m4: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl MomentsSummary {
    /// Summary of a slice, as one block starting at sample index 0.
    pub fn from_slice(xs: &[f32]) -> Self {
        let mut m = Moments::new();
        m.push(0, xs);
        m.finish()
    }

    /// Merges `other` (samples that come *after* `self` in merge order) into
    /// `self`, by the pairwise update of Chan, Golub & LeVeque (mean, M2) and
    /// Pébay (2008) (M3, M4). Deterministic given the merge order; merging an
    /// empty summary is the identity.
    pub fn merge(&mut self, other: &MomentsSummary) {
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
        let delta = other.mean - self.mean;
        let delta_n = delta / n;
        let delta_n2 = delta_n * delta_n;
        let term1 = delta * delta_n * na * nb;
        let mean = self.mean + delta_n * nb;
        let m2 = self.m2 + other.m2 + term1;
        let m3 = self.m3
            + other.m3
            + term1 * delta_n * (na - nb)
            + 3.0 * delta_n * (na * other.m2 - nb * self.m2);
        let m4 = self.m4
            + other.m4
            + term1 * delta_n2 * (na * na - na * nb + nb * nb)
            + 6.0 * delta_n2 * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * delta_n * (na * other.m3 - nb * self.m3);
        self.n += other.n;
        self.mean = mean;
        self.m2 = m2;
        self.m3 = m3;
        self.m4 = m4;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Arithmetic mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean }
    }

    /// Unbiased sample variance `m2 / (n − 1)` (NaN for n < 2).
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.m2 / (self.n as f64 - 1.0)
        }
    }

    /// Sample standard deviation `√variance`.
    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Monte Carlo standard error of the mean, `√(variance / n)`.
    pub fn mean_std_error(&self) -> f64 {
        (self.variance() / self.n as f64).sqrt()
    }

    /// Smallest sample (NaN when empty).
    pub fn min(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.min }
    }

    /// Largest sample (NaN when empty).
    pub fn max(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.max }
    }

    /// Population (biased) central moment μ_k = m_k / n for k = 2, 3, 4.
    fn central(&self, k: u32) -> f64 {
        let n = self.n as f64;
        match k {
            2 => self.m2 / n,
            3 => self.m3 / n,
            4 => self.m4 / n,
            _ => unreachable!(),
        }
    }

    /// Sample skewness g₁ = μ₃ / μ₂^{3/2} (population moments; NaN when
    /// undefined).
    pub fn skewness(&self) -> f64 {
        if self.n < 2 || self.m2 == 0.0 {
            return f64::NAN;
        }
        self.central(3) / self.central(2).powf(1.5)
    }

    /// Sample excess kurtosis g₂ = μ₄ / μ₂² − 3 (population moments).
    pub fn excess_kurtosis(&self) -> f64 {
        if self.n < 2 || self.m2 == 0.0 {
            return f64::NAN;
        }
        self.central(4) / (self.central(2) * self.central(2)) - 3.0
    }

    /// Standard error of the sample variance by the delta method:
    /// Var(s²) ≈ (μ₄ − μ₂² (n − 3)/(n − 1)) / n, with population moments μ_k.
    pub fn variance_std_error(&self) -> f64 {
        if self.n < 4 {
            return f64::NAN;
        }
        let n = self.n as f64;
        let mu2 = self.central(2);
        let v = (self.central(4) - mu2 * mu2 * (n - 3.0) / (n - 1.0)) / n;
        v.max(0.0).sqrt()
    }

    /// Standard error of the sample standard deviation by the delta method:
    /// SE(s) ≈ SE(s²) / (2 s).
    pub fn std_dev_std_error(&self) -> f64 {
        self.variance_std_error() / (2.0 * self.std_dev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(xs: &[f32]) -> (f64, f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let dev = |k: i32| {
            xs.iter()
                .map(|&x| (f64::from(x) - mean).powi(k))
                .sum::<f64>()
        };
        (mean, dev(2), dev(3), dev(4))
    }

    fn data(n: usize, seed: u64, offset: f32) -> Vec<f32> {
        // Small LCG: deterministic, no extra dev-dependency.
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                offset + (u - 0.5) * 3.0 + u * u * u * 5.0
            })
            .collect()
    }

    #[test]
    fn matches_naive_two_pass() {
        for &(n, off) in &[
            (1usize, 0.0f32),
            (2, 1.0),
            (17, -3.0),
            (1000, 0.0),
            (4099, 1e4),
        ] {
            let xs = data(n, n as u64, off);
            let s = MomentsSummary::from_slice(&xs);
            let (mean, m2, m3, m4) = naive(&xs);
            assert_eq!(s.n, n as u64);
            let scale = m2 / n as f64;
            assert!((s.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0), "{n}");
            assert!(
                (s.m2 - m2).abs() <= 1e-9 * m2.max(1e-300),
                "{n}: {} vs {m2}",
                s.m2
            );
            assert!(
                (s.m3 - m3).abs() <= 1e-8 * n as f64 * scale.powf(1.5) + 1e-300,
                "{n}"
            );
            assert!((s.m4 - m4).abs() <= 1e-8 * m4.max(1e-300), "{n}");
            let min = xs.iter().copied().fold(f32::INFINITY, f32::min);
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(s.min, f64::from(min));
            assert_eq!(s.max, f64::from(max));
        }
    }

    #[test]
    fn variance_and_standard_errors() {
        let xs = [1.0f32, 2.0, 3.0, 4.0];
        let s = MomentsSummary::from_slice(&xs);
        assert_eq!(s.mean(), 2.5);
        assert!((s.variance() - 5.0 / 3.0).abs() < 1e-15);
        assert!((s.mean_std_error() - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        // Normal-like data: SE(s²) ≈ σ²√(2/(n−1)).
        let big = data(100_000, 7, 0.0);
        let s = MomentsSummary::from_slice(&big);
        assert!(s.variance_std_error() > 0.0 && s.std_dev_std_error() > 0.0);
        let empty = MomentsSummary::default();
        assert!(empty.mean().is_nan() && empty.variance().is_nan());
    }

    #[test]
    fn chan_merge_matches_one_pass() {
        let xs = data(10_000, 3, 100.0);
        let whole = MomentsSummary::from_slice(&xs);
        for &cut in &[1usize, 16, 333, 5000, 9999] {
            let mut a = Moments::new();
            a.push(0, &xs[..cut]);
            let mut b = Moments::new();
            b.push(cut as u64, &xs[cut..]);
            let mut m = a.finish();
            m.merge(&b.finish());
            assert_eq!(m.n, whole.n);
            assert!((m.mean - whole.mean).abs() < 1e-12 * whole.mean.abs());
            assert!((m.m2 - whole.m2).abs() < 1e-9 * whole.m2);
            assert!((m.m3 - whole.m3).abs() < 1e-7 * whole.m2.powf(1.5) / 100.0);
            assert!((m.m4 - whole.m4).abs() < 1e-9 * whole.m4);
            assert_eq!(m.min, whole.min);
            assert_eq!(m.max, whole.max);
        }
        let mut e = MomentsSummary::default();
        e.merge(&whole);
        assert_eq!(e, whole);
        let mut w = whole;
        w.merge(&MomentsSummary::default());
        assert_eq!(w, whole);
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn rejects_gaps() {
        let mut m = Moments::new();
        m.push(0, &[1.0, 2.0]);
        m.push(3, &[1.0]);
    }

    /// Throughput smoke check (run with `--ignored --nocapture`): prints
    /// ns per sample so a loss of vectorisation shows.
    #[test]
    #[ignore]
    fn throughput() {
        let xs = data(1 << 16, 1, 0.0);
        let t = std::time::Instant::now();
        let mut acc = 0.0;
        for r in 0..200u64 {
            let mut m = Moments::new();
            for c in xs.chunks(4096) {
                m.push(
                    r * (1 << 16) + (c.as_ptr() as usize - xs.as_ptr() as usize) as u64 / 4,
                    c,
                );
            }
            acc += m.finish().m2;
        }
        let ns = t.elapsed().as_nanos() as f64 / (200.0 * 65536.0);
        println!("Moments::push: {ns:.3} ns/sample ({acc})");
    }

    proptest! {
        #[test]
        fn bit_identical_across_slicings(
            n in 0usize..600,
            start in 0u64..100,
            cuts in proptest::collection::vec(0usize..600, 0..8),
            seed in 0u64..1000,
        ) {
            let xs = data(n, seed, 10.0);
            let mut whole = Moments::new();
            whole.push(start, &xs);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(n)).collect();
            cuts.push(0);
            cuts.push(n);
            cuts.sort_unstable();
            let mut parts = Moments::new();
            for w in cuts.windows(2) {
                parts.push(start + w[0] as u64, &xs[w[0]..w[1]]);
            }
            let a = whole.finish();
            let b = parts.finish();
            prop_assert_eq!(a.n, b.n);
            prop_assert_eq!(a.mean.to_bits(), b.mean.to_bits());
            prop_assert_eq!(a.m2.to_bits(), b.m2.to_bits());
            prop_assert_eq!(a.m3.to_bits(), b.m3.to_bits());
            prop_assert_eq!(a.m4.to_bits(), b.m4.to_bits());
            prop_assert_eq!(a.min.to_bits(), b.min.to_bits());
            prop_assert_eq!(a.max.to_bits(), b.max.to_bits());
        }
    }
}
