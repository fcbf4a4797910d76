//! Exact tail statistics — quantile / value at risk, expected shortfall, their
//! intervals and standard errors — from a stream, keeping only the order
//! statistics they need.
//!
//! # Definitions
//!
//! Let X₍₁₎ ≤ … ≤ X₍ₙ₎ be the n samples in ascending order (X a loss: large is
//! bad), q ∈ (0, 1) the confidence level, and `k = ⌈n·q⌉` clamped to [1, n],
//! where `n·q` is the f64 product (exactly what numpy computes).
//!
//! * `quantile(q) = value_at_risk(q) = X₍ₖ₎` — numpy's
//!   `quantile(x, q, method="inverted_cdf")`, the smallest x with
//!   F̂ₙ(x) ≥ q.
//! * `expected_shortfall(q)` — the Acerbi–Tasche (2002) tail mean: the average
//!   of the worst n(1 − q) outcomes, with the boundary order statistic
//!   weighted by the fraction of it that belongs to the tail:
//!
//!   ES = ( Σ_{i=k+1..n} X₍ᵢ₎ + (k − n·q)·X₍ₖ₎ ) / (n·(1 − q)).
//!
//!   The weights sum to (n − k) + (k − nq) = n(1 − q), so this is a proper
//!   average (the code divides by the f64 value n − n·q, which the weights
//!   sum to exactly). It stays correct with atoms: when 95% of losses are 0 and
//!   q = 0.9, VaR = 0 and the zeros that fall in the worst 10% enter with
//!   their true weight (a "mean of values above VaR" would ignore them and
//!   overstate ES). ES ≥ VaR always.
//! * `n_exceedances` — the number of samples strictly beyond VaR in the
//!   tail's direction: strictly above for an upper tail (q ≥ 0.5), strictly
//!   below for a lower tail (q < 0.5). A tail estimate resting on fewer than
//!   [`MIN_EXCEEDANCES`] of them is flagged (`few_exceedances`).
//! * `quantile_ci95` — the distribution-free order-statistic interval
//!   [X₍ₗ₎, X₍ᵤ₎] with l = ⌊nq − 1.96·√(nq(1 − q))⌋ and
//!   u = ⌈nq + 1.96·√(nq(1 − q))⌉ (normal approximation to the binomial
//!   count of samples below the true quantile, rounded outward), clamped to
//!   [1, n].
//! * `expected_shortfall_std_error` = sd((X − VaR)₊) / ((1 − q)·√n), the
//!   sd taken over all n samples (those at or below VaR contribute 0) with
//!   divisor n − 1.
//!
//! # Memory
//!
//! [`TailKeeper`] keeps, for q ≥ 0.5, the top `n − min(k, l) + 1` samples
//! (ranks l..n cover VaR, its interval, and everything ES sums), and for
//! q < 0.5 the bottom `max(k, u)` samples: about min(q, 1 − q)·n values plus
//! the interval's half-width 1.96·√(nq(1 − q)), i.e. 4 bytes × 0.01 × n for a
//! 99% VaR: 40 MB at n = 1e9 per world and metric, plus a transient buffer of
//! up to as much again while streaming. This is the limit: beyond that,
//! use the radix select of the sharded-runs issue. n must be known in advance
//! (the run's sample count). Inputs must be finite.
//!
//! The kept values are a deterministic *multiset* (the m largest or smallest
//! under `f32::total_cmp`, ties being identical bit patterns), whatever order
//! samples, chunks and blocks arrive in, and every statistic is computed from
//! them in sorted order: results are bit-identical across chunkings and merge
//! orders.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% normal interval, Φ⁻¹(0.975).
const Z95: f64 = 1.959_963_984_540_054;

/// Tail estimates resting on fewer exceedances than this are flagged.
pub const MIN_EXCEEDANCES: u64 = 100;

/// Which end of the distribution a [`TailKeeper`] retains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TailSide {
    /// The largest values (losses; q ≥ 0.5 by default).
    Upper,
    /// The smallest values (q < 0.5).
    Lower,
}

/// The ranks (1-based, ascending order) a tail metric at level q over n
/// samples needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailRanks {
    /// k = ⌈nq⌉ clamped to [1, n]: the rank of VaR / the quantile.
    pub quantile: u64,
    /// l = ⌊nq − 1.96√(nq(1−q))⌋ clamped to [1, n]: lower 95% interval rank.
    pub ci_lower: u64,
    /// u = ⌈nq + 1.96√(nq(1−q))⌉ clamped to [1, n]: upper 95% interval rank.
    pub ci_upper: u64,
}

impl TailRanks {
    /// Ranks for n ≥ 1 samples at level q ∈ (0, 1).
    ///
    /// # Panics
    /// If n = 0 or q is not in (0, 1).
    pub fn new(n: u64, q: f64) -> Self {
        assert!(n > 0, "tail statistics need n ≥ 1");
        assert!(
            q > 0.0 && q < 1.0,
            "tail level q must lie in (0, 1), got {q}"
        );
        let nf = n as f64;
        let nq = nf * q;
        let clamp = |r: f64| (r.max(1.0).min(nf)) as u64;
        let half = Z95 * (nq * (1.0 - q)).sqrt();
        Self {
            quantile: clamp(nq.ceil()),
            ci_lower: clamp((nq - half).floor()),
            ci_upper: clamp((nq + half).ceil()),
        }
    }
}

/// All tail statistics at one level q (see the module docs for definitions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailEstimate {
    /// Number of samples.
    pub n: u64,
    /// Confidence level.
    pub q: f64,
    /// Which tail the estimate rests on (Upper iff q ≥ 0.5 unless forced).
    pub side: TailSide,
    /// VaR = quantile = X₍⌈nq⌉₎.
    pub value_at_risk: f64,
    /// Order-statistic 95% interval [X₍ₗ₎, X₍ᵤ₎] for the quantile.
    pub quantile_ci95: [f64; 2],
    /// Samples strictly beyond VaR in the tail's direction.
    pub n_exceedances: u64,
    /// `n_exceedances < MIN_EXCEEDANCES`: the tail number is fragile.
    pub few_exceedances: bool,
    /// Acerbi–Tasche expected shortfall (upper tail only: `None` from a
    /// lower-tail keeper, which does not hold the values ES sums).
    pub expected_shortfall: Option<f64>,
    /// sd((X − VaR)₊) / ((1 − q)√n) (upper tail only).
    pub expected_shortfall_std_error: Option<f64>,
}

/// The default side for a level: upper for q ≥ 0.5.
fn auto_side(q: f64) -> TailSide {
    if q >= 0.5 {
        TailSide::Upper
    } else {
        TailSide::Lower
    }
}

/// Computes the estimate from the kept order statistics `kept` (ascending),
/// which are ranks `first_rank ..= first_rank + kept.len() − 1` of n.
fn estimate_from(kept: &[f64], first_rank: u64, n: u64, q: f64, side: TailSide) -> TailEstimate {
    let ranks = TailRanks::new(n, q);
    let at = |rank: u64| kept[(rank - first_rank) as usize];
    let var = at(ranks.quantile);
    let quantile_ci95 = [at(ranks.ci_lower), at(ranks.ci_upper)];
    let n_exceedances = match side {
        TailSide::Upper => kept.iter().filter(|&&x| x > var).count() as u64,
        TailSide::Lower => kept.iter().filter(|&&x| x < var).count() as u64,
    };
    let (es, es_se) = if side == TailSide::Upper && first_rank <= ranks.quantile {
        let nf = n as f64;
        // n − nq rather than n(1 − q): the weights (n − k) + (k − nq) then sum
        // to the denominator exactly, so ES of a constant is that constant.
        let tail_weight = nf - nf * q;
        let above = &kept[(ranks.quantile + 1 - first_rank) as usize..];
        // Ascending order: a fixed summation order, and small terms first.
        let sum_above: f64 = above.iter().sum();
        let frac = ranks.quantile as f64 - nf * q;
        let es = (sum_above + frac * var) / tail_weight;
        // sd of y = (X − VaR)₊ over all n samples, two-pass: the n − |above|
        // samples at or below VaR have y = 0.
        let mean_y = above.iter().map(|&x| x - var).sum::<f64>() / nf;
        let ss_above: f64 = above.iter().map(|&x| (x - var - mean_y).powi(2)).sum();
        let zeros = (n - above.len() as u64) as f64;
        let var_y = if n > 1 {
            (ss_above + zeros * mean_y * mean_y) / (nf - 1.0)
        } else {
            f64::NAN
        };
        let se = var_y.sqrt() / ((1.0 - q) * nf.sqrt());
        (Some(es), Some(se))
    } else {
        (None, None)
    };
    TailEstimate {
        n,
        q,
        side,
        value_at_risk: var,
        quantile_ci95,
        n_exceedances,
        few_exceedances: n_exceedances < MIN_EXCEEDANCES,
        expected_shortfall: es,
        expected_shortfall_std_error: es_se,
    }
}

/// Reference: quantile X₍⌈nq⌉₎ of a full ascending-sorted sample (numpy
/// `inverted_cdf`). Panics on an empty slice or q ∉ (0, 1).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let k = TailRanks::new(sorted.len() as u64, q).quantile;
    sorted[(k - 1) as usize]
}

/// Reference: value at risk at level q, identical to [`quantile`].
pub fn value_at_risk(sorted: &[f64], q: f64) -> f64 {
    quantile(sorted, q)
}

/// Reference: Acerbi–Tasche expected shortfall of a full ascending-sorted
/// sample, ( Σ_{i=k+1..n} X₍ᵢ₎ + (k − nq)·X₍ₖ₎ ) / (n(1 − q)), k = ⌈nq⌉.
pub fn expected_shortfall(sorted: &[f64], q: f64) -> f64 {
    tail_estimate(sorted, q, TailSide::Upper)
        .expected_shortfall
        .expect("upper tail has ES")
}

/// Reference: every tail statistic of a full ascending-sorted sample, as the
/// [`TailKeeper`] with the given side would report it (the expected shortfall
/// fields only for `TailSide::Upper`). Holds all n values: for tests and small
/// data.
pub fn tail_estimate(sorted: &[f64], q: f64, side: TailSide) -> TailEstimate {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "needs sorted data");
    estimate_from(sorted, 1, sorted.len() as u64, q, side)
}

/// Streaming keeper of the order statistics a tail metric at level q over a
/// run of exactly n samples needs (see the module docs for what it keeps and
/// the memory it takes).
///
/// Push samples in any order and any chunking with [`TailKeeper::push`];
/// merge block keepers with [`TailKeeper::merge`] (union, then truncation:
/// the result does not depend on merge order); once all n samples are in,
/// [`TailKeeper::estimate`] gives the exact statistics. Call
/// [`TailKeeper::compact`] before serialising so equal keepers serialise to
/// equal bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailKeeper {
    n: u64,
    q: f64,
    side: TailSide,
    capacity: usize,
    seen: u64,
    values: Vec<f32>,
}

impl TailKeeper {
    /// A keeper for level q over a run of n samples, keeping the upper tail
    /// for q ≥ 0.5 and the lower tail otherwise.
    ///
    /// # Panics
    /// If n = 0 or q ∉ (0, 1).
    pub fn new(n: u64, q: f64) -> Self {
        Self::with_side(n, q, auto_side(q))
    }

    /// A keeper that holds the upper tail whatever q is, so that expected
    /// shortfall is available also for q < 0.5 (at a memory cost of about
    /// (1 − q)·n values).
    pub fn new_upper(n: u64, q: f64) -> Self {
        Self::with_side(n, q, TailSide::Upper)
    }

    fn with_side(n: u64, q: f64, side: TailSide) -> Self {
        let r = TailRanks::new(n, q);
        let capacity = match side {
            TailSide::Upper => n - r.quantile.min(r.ci_lower) + 1,
            TailSide::Lower => r.quantile.max(r.ci_upper),
        };
        let capacity = usize::try_from(capacity).expect("tail keeper larger than memory");
        Self {
            n,
            q,
            side,
            capacity,
            seen: 0,
            values: Vec::new(),
        }
    }

    /// How many values the keeper retains once compacted.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples seen so far (pushed here or merged in).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The run's sample count n this keeper was sized for.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The level q.
    pub fn q(&self) -> f64 {
        self.q
    }

    /// The retained side.
    pub fn side(&self) -> TailSide {
        self.side
    }

    /// Adds samples (any order; inputs must be finite).
    pub fn push(&mut self, xs: &[f32]) {
        self.seen += xs.len() as u64;
        self.values.extend_from_slice(xs);
        // Truncate only when the buffer is well over capacity, so the select
        // cost is amortised O(1) per sample.
        if self.values.len() >= 2 * self.capacity + 4096 {
            self.truncate();
        }
    }

    /// Keeps only the `capacity` most extreme values (unordered).
    fn truncate(&mut self) {
        let len = self.values.len();
        if len <= self.capacity {
            return;
        }
        match self.side {
            TailSide::Upper => {
                let cut = len - self.capacity;
                self.values.select_nth_unstable_by(cut, f32::total_cmp);
                self.values.drain(..cut);
            }
            TailSide::Lower => {
                self.values
                    .select_nth_unstable_by(self.capacity, f32::total_cmp);
                self.values.truncate(self.capacity);
            }
        }
    }

    /// Truncates to capacity and sorts ascending: the canonical form (equal
    /// multisets give equal keepers, byte for byte).
    pub fn compact(&mut self) {
        self.truncate();
        self.values.sort_unstable_by(f32::total_cmp);
        self.values.shrink_to_fit();
    }

    /// Merges another keeper's samples into this one (union, then truncate).
    ///
    /// # Panics
    /// If the keepers were built for different n, q or side.
    pub fn merge(&mut self, other: &TailKeeper) {
        assert!(
            self.n == other.n && self.q.to_bits() == other.q.to_bits() && self.side == other.side,
            "TailKeeper::merge: keepers for different (n, q, side)"
        );
        self.seen += other.seen;
        self.values.extend_from_slice(&other.values);
        self.compact();
    }

    /// The kept values in ascending order (compacting first).
    pub fn kept_sorted(&mut self) -> &[f32] {
        self.compact();
        &self.values
    }

    /// The exact tail statistics, once all n samples have been seen (`None`
    /// before that, or if more than n were pushed).
    pub fn estimate(&self) -> Option<TailEstimate> {
        if self.seen != self.n {
            return None;
        }
        let mut kept = self.values.clone();
        kept.sort_unstable_by(f32::total_cmp);
        let kept: Vec<f64> = match self.side {
            TailSide::Upper => &kept[kept.len() - self.capacity..],
            TailSide::Lower => &kept[..self.capacity],
        }
        .iter()
        .map(|&x| f64::from(x))
        .collect();
        let first_rank = match self.side {
            TailSide::Upper => self.n - self.capacity as u64 + 1,
            TailSide::Lower => 1,
        };
        let mut e = estimate_from(&kept, first_rank, self.n, self.q, self.side);
        // Expected shortfall from exact per-bucket sums, the arithmetic the
        // radix select uses too (`crate::radix::shortfall`): the in-memory
        // and the bounded-memory answer agree bit for bit.
        if e.expected_shortfall.is_some() {
            let k = TailRanks::new(self.n, self.q).quantile;
            let above: Vec<f32> = kept[(k + 1 - first_rank) as usize..]
                .iter()
                .map(|&x| x as f32)
                .collect();
            let (es, se) =
                crate::radix::shortfall_sorted(self.n, self.q, k, e.value_at_risk, &above);
            e.expected_shortfall = Some(es);
            e.expected_shortfall_std_error = Some(se);
        }
        Some(e)
    }

    /// Value at risk X₍⌈nq⌉₎ (`None` until all n samples are in).
    pub fn value_at_risk(&self) -> Option<f64> {
        self.estimate().map(|e| e.value_at_risk)
    }

    /// Quantile X₍⌈nq⌉₎, the same number as [`TailKeeper::value_at_risk`].
    pub fn quantile(&self) -> Option<f64> {
        self.value_at_risk()
    }

    /// Acerbi–Tasche expected shortfall (`None` until all n samples are in,
    /// or for a lower-tail keeper).
    pub fn expected_shortfall(&self) -> Option<f64> {
        self.estimate().and_then(|e| e.expected_shortfall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted64(xs: &[f32]) -> Vec<f64> {
        let mut v: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn definitions_on_small_data() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        // k = ⌈10·0.75⌉ = 8.
        assert_eq!(quantile(&xs, 0.75), 8.0);
        // ES = (9 + 10 + (8 − 7.5)·8) / 2.5 = 23 / 2.5.
        assert!((expected_shortfall(&xs, 0.75) - 9.2).abs() < 1e-12);
        // nq integral: k = 9, no fractional part: ES = 10.
        assert_eq!(expected_shortfall(&xs, 0.9), 10.0);
        assert_eq!(quantile(&xs, 0.05), 1.0);
    }

    #[test]
    fn atoms_enter_expected_shortfall_with_their_weight() {
        // 95 zeros, then 1..=5.
        let mut xs = vec![0.0; 95];
        xs.extend((1..=5).map(f64::from));
        assert_eq!(value_at_risk(&xs, 0.9), 0.0);
        // Worst 10%: 1+2+3+4+5 plus five zeros → 15/10.
        assert!((expected_shortfall(&xs, 0.9) - 1.5).abs() < 1e-12);
        let e = tail_estimate(&xs, 0.9, TailSide::Upper);
        assert_eq!(e.n_exceedances, 5);
        assert!(e.few_exceedances);
        assert!(e.expected_shortfall.unwrap() >= e.value_at_risk);
    }

    #[test]
    fn ranks_are_clamped() {
        let r = TailRanks::new(10, 0.999);
        assert_eq!((r.quantile, r.ci_upper), (10, 10));
        let r = TailRanks::new(10, 0.001);
        assert_eq!((r.quantile, r.ci_lower), (1, 1));
        let r = TailRanks::new(1, 0.5);
        assert_eq!((r.quantile, r.ci_lower, r.ci_upper), (1, 1, 1));
    }

    #[test]
    fn estimate_waits_for_all_samples() {
        let mut k = TailKeeper::new(10, 0.9);
        k.push(&[1.0; 9]);
        assert!(k.estimate().is_none());
        k.push(&[2.0]);
        assert_eq!(k.value_at_risk(), Some(1.0));
        assert!(TailKeeper::new(10, 0.1).expected_shortfall().is_none());
    }

    fn check_keeper(xs: &[f32], q: f64, blocks: &[usize], chunk: usize, upper: bool) {
        let n = xs.len() as u64;
        let mk = || {
            if upper {
                TailKeeper::new_upper(n, q)
            } else {
                TailKeeper::new(n, q)
            }
        };
        let mut merged = mk();
        let mut start = 0;
        for &end in blocks.iter().chain(std::iter::once(&xs.len())) {
            let end = end.clamp(start, xs.len());
            let mut b = mk();
            for c in xs[start..end].chunks(chunk.max(1)) {
                b.push(c);
            }
            merged.merge(&b);
            start = end;
        }
        let got = merged.estimate().expect("all samples seen");
        let want = tail_estimate(&sorted64(xs), q, merged.side());
        // Order statistics exactly; ES and its SE up to the rounding of
        // the keeper's per-bucket sums (`radix::shortfall`) vs the
        // reference's ascending sum.
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            (a, b) => a == b,
        };
        assert!(
            close(got.expected_shortfall, want.expected_shortfall)
                && close(
                    got.expected_shortfall_std_error,
                    want.expected_shortfall_std_error
                ),
            "q = {q}: {got:?} vs {want:?}"
        );
        let strip = |e: TailEstimate| TailEstimate {
            expected_shortfall: None,
            expected_shortfall_std_error: None,
            ..e
        };
        assert_eq!(strip(got), strip(want), "q = {q}");
        assert!(merged.kept_sorted().len() <= merged.capacity());
    }

    #[test]
    fn keeper_equals_reference_with_atoms() {
        let mut xs: Vec<f32> = Vec::new();
        for i in 0..20_000u32 {
            let h = i.wrapping_mul(2_654_435_761) >> 8;
            // 60% zeros, ties at a few levels, a continuous part.
            let v = match h % 10 {
                0..=5 => 0.0,
                6 => 1.0,
                7 => 2.5,
                _ => (h % 100_003) as f32 / 1000.0,
            };
            xs.push(v);
        }
        for &q in &[
            0.01, 0.1, 0.3, 0.5, 0.55, 0.6, 0.9, 0.95, 0.99, 0.999, 0.99999,
        ] {
            check_keeper(&xs, q, &[5000, 5001, 13_000], 777, false);
            check_keeper(&xs, q, &[65], 4096, true);
        }
    }

    proptest! {
        #[test]
        fn keeper_equals_reference_random(
            xs in proptest::collection::vec(
                prop_oneof![Just(0.0f32), Just(1.0f32), -5.0f32..5.0], 1..3000),
            q in 0.001f64..0.999,
            blocks in proptest::collection::vec(0usize..3000, 0..5),
            chunk in 1usize..700,
            upper in any::<bool>(),
        ) {
            let mut blocks = blocks;
            blocks.sort_unstable();
            check_keeper(&xs, q, &blocks, chunk, upper);
        }
    }
}
