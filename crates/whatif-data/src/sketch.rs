//! A mergeable relative-accuracy quantile sketch (the DDSketch idea of
//! Masson, Rim and Lee, 2019) for the tail metrics of backtests: quantile /
//! value at risk and expected shortfall over any number of rows in bounded
//! memory.
//!
//! # Why a sketch
//!
//! `whatif run` computes tail metrics exactly from kept order statistics
//! ([`whatif_stats::tail`]) or a two-pass radix select
//! ([`whatif_stats::radix`]), both over f32 samples. A backtest needs the
//! metric once on the observed rows and once per posterior draw (200 by
//! default), each over every row of a file that never sits whole in memory:
//! keeping order statistics would grow with the rows, and a radix select per
//! draw needs 65,536-bucket histograms (2.5 MiB each) plus a second replay of
//! every row and draw. The per-draw spread of a tail metric is far larger
//! than the error bound below, so a sketch with a stated bound is the honest
//! trade.
//!
//! # Definitions and accuracy
//!
//! The estimates follow the definitions of [`whatif_stats::tail`] (the ones
//! `whatif run` uses): with n values, k = ⌈nq⌉ clamped to [1, n]
//! ([`whatif_stats::tail::TailRanks`]), quantile = value at risk = X₍ₖ₎ and
//! expected shortfall is the Acerbi–Tasche tail mean
//! (Σ_{i>k} X₍ᵢ₎ + (k − nq)·X₍ₖ₎) / (n − nq). The sketch keeps exact counts
//! per bin, so it always finds the bin holding rank k exactly; the only error
//! is that each value is replaced by its bin's representative.
//!
//! A value x ≠ 0 goes to bin i = ⌈log_γ |x|⌉ of its sign, with
//! γ = (1 + α)/(1 − α) and α = [`RELATIVE_ACCURACY`]; bin i covers
//! (γⁱ⁻¹, γⁱ] and is represented by 2γⁱ/(γ + 1), within a relative α of
//! every value in it. Zeros, ±∞ and NaN are counted exactly and separately.
//! Representatives are clamped to the exact [min, max] of the values seen,
//! which never increases an error (a constant column is reproduced exactly).
//! Hence:
//!
//! * quantile / VaR: |Q̂ − X₍ₖ₎| ≤ α·|X₍ₖ₎|;
//! * expected shortfall: |ÊS − ES| ≤ α · (Σ_{i>k} |X₍ᵢ₎| + (k − nq)·|X₍ₖ₎|) /
//!   (n − nq), i.e. α times the same tail mean taken of |X| (for a tail of
//!   one sign, a relative α of ES).
//!
//! These hold for every value with |x| ≥ max|x| · γ^(1 − [`MAX_BINS`]) (a
//! ratio of about 6e-15 at α = 1e-3) of its sign. Each sign keeps at most
//! [`MAX_BINS`] bins: values smaller in magnitude than that share the lowest
//! kept bin (DDSketch's "collapsing lowest" store), so their error is at most
//! that bin's upper edge in absolute terms — below 1e-14 of the largest
//! magnitude. Memory is therefore at most 2 × [`MAX_BINS`] × 8 bytes per
//! sketch whatever the number of values, and in practice the span of the
//! data in log space: about 1,150 bins per decade of magnitude per sign.
//!
//! A NaN anywhere makes every estimate NaN (as it makes a mean NaN).
//! Sketches merge exactly (counts add; the result does not depend on the
//! order values or sketches arrive in).

use whatif_stats::tail::TailRanks;

/// The relative accuracy α of every representative.
pub const RELATIVE_ACCURACY: f64 = 1e-3;
/// Bins kept per sign at most (about 14 decades of magnitude at α = 1e-3).
pub const MAX_BINS: usize = 16_384;
/// Bins added below the lowest one when a store grows downwards, so that a
/// slowly decreasing stream does not shift the bins at every value.
const GROW_SLACK: usize = 64;

/// ln γ, γ = (1 + α)/(1 − α).
fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// Counts of one sign's bins `lo .. lo + counts.len()`, collapsing the
/// lowest bins into one when the span would exceed [`MAX_BINS`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    lo: i32,
    counts: Vec<u64>,
}

impl Store {
    fn hi(&self) -> i32 {
        self.lo + self.counts.len() as i32 - 1
    }

    fn add(&mut self, idx: i32, c: u64) {
        if self.counts.is_empty() {
            self.lo = idx;
            self.counts.push(c);
            return;
        }
        let hi = self.hi();
        if idx > hi {
            let span = (i64::from(idx) - i64::from(self.lo) + 1) as usize;
            if span > MAX_BINS {
                // Collapse every bin below the new floor into the floor.
                let floor = idx - MAX_BINS as i32 + 1;
                let drop =
                    ((i64::from(floor) - i64::from(self.lo)) as usize).min(self.counts.len());
                let folded: u64 = self.counts.drain(..drop).sum();
                self.lo = floor;
                self.counts.resize(MAX_BINS, 0);
                self.counts[0] += folded;
            } else {
                self.counts.resize(span, 0);
            }
        } else if idx < self.lo {
            let floor = hi - MAX_BINS as i32 + 1;
            if idx.max(floor) < self.lo {
                let slack = (self.counts.len() / 2).max(GROW_SLACK) as i32;
                let new_lo = idx.saturating_sub(slack).max(floor);
                let grow = (self.lo - new_lo) as usize;
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.lo = new_lo;
            }
        }
        let j = (idx.max(self.lo) - self.lo) as usize;
        self.counts[j] += c;
    }

    /// Non-empty bins, ascending index.
    fn bins(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(j, c)| (self.lo + j as i32, *c))
    }
}

/// A mergeable quantile sketch of f64 values with relative accuracy
/// [`RELATIVE_ACCURACY`] (see the module docs for the bound).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileSketch {
    neg: Store,
    pos: Store,
    zero: u64,
    neg_inf: u64,
    pos_inf: u64,
    nan: u64,
    min: f64,
    max: f64,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        QuantileSketch {
            neg: Store::default(),
            pos: Store::default(),
            zero: 0,
            neg_inf: 0,
            pos_inf: 0,
            nan: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// The bin of a finite |x| > 0.
    fn index(abs: f64) -> i32 {
        (abs.ln() / ln_gamma()).ceil() as i32
    }

    /// The representative 2γⁱ/(γ + 1) of bin i.
    fn representative(idx: i32) -> f64 {
        let g = ln_gamma();
        (f64::from(idx) * g).exp() * 2.0 / (g.exp() + 1.0)
    }

    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
            return;
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if x == 0.0 {
            self.zero += 1;
        } else if x == f64::INFINITY {
            self.pos_inf += 1;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf += 1;
        } else if x > 0.0 {
            self.pos.add(Self::index(x), 1);
        } else {
            self.neg.add(Self::index(-x), 1);
        }
    }

    /// Adds every value of `other` (exact: counts add).
    pub fn merge(&mut self, other: &QuantileSketch) {
        for (i, c) in other.pos.bins() {
            self.pos.add(i, c);
        }
        for (i, c) in other.neg.bins() {
            self.neg.add(i, c);
        }
        self.zero += other.zero;
        self.neg_inf += other.neg_inf;
        self.pos_inf += other.pos_inf;
        self.nan += other.nan;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of values added, NaN included.
    pub fn count(&self) -> u64 {
        self.ordered_count() + self.nan
    }

    /// Values that have an order (all but NaN).
    fn ordered_count(&self) -> u64 {
        let s = |st: &Store| st.counts.iter().sum::<u64>();
        s(&self.neg) + s(&self.pos) + self.zero + self.neg_inf + self.pos_inf
    }

    /// Bins in ascending order of value: (representative, count).
    fn ascending(&self) -> Vec<(f64, u64)> {
        let clamp = |v: f64| v.clamp(self.min, self.max);
        let mut out = Vec::with_capacity(self.neg.counts.len() + self.pos.counts.len() + 3);
        if self.neg_inf > 0 {
            out.push((f64::NEG_INFINITY, self.neg_inf));
        }
        out.extend(
            self.neg
                .bins()
                .rev()
                .map(|(i, c)| (clamp(-Self::representative(i)), c)),
        );
        if self.zero > 0 {
            out.push((0.0, self.zero));
        }
        out.extend(
            self.pos
                .bins()
                .map(|(i, c)| (clamp(Self::representative(i)), c)),
        );
        if self.pos_inf > 0 {
            out.push((f64::INFINITY, self.pos_inf));
        }
        out
    }

    /// The bins and the position of the one holding rank k = ⌈nq⌉, with the
    /// count of values below it; `None` when empty, NaN-tainted or q ∉ (0, 1).
    fn locate(&self, q: f64) -> Option<Located> {
        let n = self.ordered_count();
        if n == 0 || self.nan > 0 || !(q > 0.0 && q < 1.0) {
            return None;
        }
        let k = TailRanks::new(n, q).quantile;
        let bins = self.ascending();
        let mut below = 0u64;
        for (j, &(_, c)) in bins.iter().enumerate() {
            if below + c >= k {
                return Some(Located {
                    bins,
                    j,
                    below,
                    k,
                    n,
                });
            }
            below += c;
        }
        unreachable!("invariant: bin counts sum to the sketch's count")
    }

    /// Quantile X₍⌈nq⌉₎ (= value at risk at level q), within a relative
    /// [`RELATIVE_ACCURACY`]; NaN when empty or when a NaN was added.
    pub fn quantile(&self, q: f64) -> f64 {
        match self.locate(q) {
            Some(l) => l.bins[l.j].0,
            None => f64::NAN,
        }
    }

    /// Acerbi–Tasche expected shortfall at level q (see the module docs for
    /// the definition and the bound); NaN when empty or NaN-tainted.
    pub fn expected_shortfall(&self, q: f64) -> f64 {
        let Some(Located {
            bins,
            j,
            below,
            k,
            n,
        }) = self.locate(q)
        else {
            return f64::NAN;
        };
        let nf = n as f64;
        let var = bins[j].0;
        // Ranks k+1..n: the rest of VaR's bin, then every bin above, plus the
        // boundary weight (k − nq) on VaR; ascending, with compensation.
        let mut sum = whatif_stats::CompensatedSum::default();
        let tied = (below + bins[j].1 - k) as f64 + (k as f64 - nf * q);
        if tied > 0.0 {
            sum.add(tied * var);
        }
        for &(v, c) in &bins[j + 1..] {
            sum.add(c as f64 * v);
        }
        sum.total() / (nf - nf * q)
    }
}

/// Where rank k = ⌈nq⌉ lies: `bins` ascending (representative, count),
/// `bins[j]` holds rank k, `below` values lie in the bins before it, n
/// values in all.
struct Located {
    bins: Vec<(f64, u64)>,
    j: usize,
    below: u64,
    k: u64,
    n: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_are_within_alpha_of_their_bin() {
        for x in [1e-300, 1e-9, 0.5, 1.0, 1.0000001, 3.7, 1e6, 1e300] {
            let r = QuantileSketch::representative(QuantileSketch::index(x));
            assert!(
                (r - x).abs() <= RELATIVE_ACCURACY * x * (1.0 + 1e-9),
                "{x} → {r}"
            );
        }
    }

    #[test]
    fn the_store_collapses_its_lowest_bins_and_keeps_counts() {
        let mut s = Store::default();
        s.add(0, 1);
        s.add(-5, 2);
        s.add(MAX_BINS as i32 + 10, 3);
        assert_eq!(s.counts.len(), MAX_BINS);
        assert_eq!(s.counts.iter().sum::<u64>(), 6);
        assert_eq!(s.counts[0], 3, "the two low bins fold into the floor");
        s.add(-1_000_000, 1);
        assert_eq!((s.counts.len(), s.counts[0]), (MAX_BINS, 4));
    }
}
