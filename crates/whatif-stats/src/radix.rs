//! Exact tail statistics at any n in bounded memory: a two-pass radix select
//! on the order-preserving bit pattern of f32 samples.
//!
//! Every f32 maps to a `u32` [`key`] whose unsigned order is
//! `f32::total_cmp` order. Pass 1 builds a [`Histogram`] of the top 16 bits
//! of the keys: 65,536 buckets, each with the count of its samples and the
//! exact integer sums Σℓ and Σℓ² of their low 16 bits ℓ. Inside one bucket
//! the sign and exponent are fixed, so a sample is exactly
//! `base + ℓ·ulp` (`base` and `ulp` depend on the bucket alone; see
//! [`bucket_base_ulp`]): the bucket's sum and sum of squares around any
//! point follow from (count, Σℓ, Σℓ²) without rounding in the integer part.
//! Integer sums are associative, so histograms merge in any order, across
//! blocks, threads and shards, to the same bits.
//!
//! From the pass-1 histogram, [`TailPlan::new`] finds the (at most three)
//! buckets holding the ranks a tail metric needs — k = ⌈nq⌉ and the
//! order-statistic interval ranks l and u of [`crate::tail::TailRanks`].
//! Pass 2 regenerates the same samples (the caller's job: a counter-based
//! RNG replays any block) and counts every full key inside those buckets
//! ([`KeyCounts`]). [`estimate`] then reads X₍ₗ₎, X₍ₖ₎, X₍ᵤ₎ off the key
//! counts and computes expected shortfall from the bucket sums above VaR —
//! the same definitions as [`crate::tail`] (VaR = X₍⌈nq⌉₎, Acerbi–Tasche ES,
//! exact with ties and atoms).
//!
//! [`crate::tail::TailKeeper`] computes expected shortfall and its standard
//! error through the same [`shortfall`] arithmetic over the same bucket sums,
//! so the in-memory and the radix answer agree bit for bit.
//!
//! Memory: a dense histogram is 65,536 × 40 bytes = 2.5 MiB per tail metric
//! and world, and pass 2 keeps at most 3 × 65,536 counts (1.5 MiB): bounded,
//! whatever n is.

use crate::CompensatedSum;
use crate::tail::{MIN_EXCEEDANCES, TailEstimate, TailRanks, TailSide};
use serde::{Deserialize, Serialize};

/// Buckets of the top 16 key bits.
pub const BUCKETS: usize = 1 << 16;

/// The order-preserving key of an f32: unsigned order of keys is
/// `f32::total_cmp` order (−NaN < −∞ < … < −0 < +0 < … < +∞ < +NaN).
#[inline]
pub fn key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 0 { b | 0x8000_0000 } else { !b }
}

/// The f32 whose [`key`] is `k` (the exact inverse).
#[inline]
pub fn from_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7FFF_FFFF } else { !k })
}

/// A bucket's smallest value and the step between consecutive keys in it:
/// every sample in bucket `b` with low key bits ℓ equals `base + ℓ·ulp`
/// exactly (in f64). Meaningless for the ±∞/NaN buckets.
pub fn bucket_base_ulp(bucket: u16) -> (f64, f64) {
    let k = u32::from(bucket) << 16;
    let base = f64::from(from_key(k));
    let ulp = f64::from(from_key(k + 1)) - base;
    (base, ulp)
}

/// Count and exact low-bit sums of the samples in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketStat {
    /// Samples in the bucket.
    pub count: u64,
    /// Σℓ over them (ℓ = low 16 key bits).
    pub sum_low: u128,
    /// Σℓ² over them.
    pub sum_low_sq: u128,
}

impl BucketStat {
    fn add_key(&mut self, k: u32, times: u64) {
        let l = u128::from(k & 0xFFFF);
        self.count += times;
        self.sum_low += l * u128::from(times);
        self.sum_low_sq += l * l * u128::from(times);
    }

    fn merge(&mut self, o: &BucketStat) {
        self.count += o.count;
        self.sum_low += o.sum_low;
        self.sum_low_sq += o.sum_low_sq;
    }
}

/// Counts of the two signed zeros (equal as numbers, distinct as keys): a
/// VaR of −0 must not count +0 samples as exceeding it.
fn zero_index(k: u32) -> Option<usize> {
    match k {
        0x7FFF_FFFF => Some(0), // −0
        0x8000_0000 => Some(1), // +0
        _ => None,
    }
}

/// The pass-1 histogram of a set of samples, sparse: the non-empty buckets
/// in ascending order. What a block (or a shard) hands to the merge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SparseHistogram {
    /// `(bucket, stat)`, buckets strictly ascending.
    pub buckets: Vec<(u16, BucketStat)>,
    /// Samples equal to −0.0 and to +0.0.
    pub zeros: [u64; 2],
}

impl SparseHistogram {
    /// The histogram of keys sorted ascending (see [`sorted_keys`]).
    pub fn from_sorted_keys(keys: &[u32]) -> Self {
        debug_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "needs sorted keys");
        let mut out = SparseHistogram::default();
        for &k in keys {
            let b = (k >> 16) as u16;
            match out.buckets.last_mut() {
                Some((lb, s)) if *lb == b => s.add_key(k, 1),
                _ => {
                    let mut s = BucketStat::default();
                    s.add_key(k, 1);
                    out.buckets.push((b, s));
                }
            }
            if let Some(z) = zero_index(k) {
                out.zeros[z] += 1;
            }
        }
        out
    }

    /// The histogram of unsorted samples (in any order: the result is the
    /// same). Counts into a per-thread dense scratch histogram and emits the
    /// touched buckets in ascending order: linear in the samples, no sort
    /// of the samples themselves.
    pub fn from_values(xs: &[f32]) -> Self {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (dense, touched) = &mut *guard;
            if dense.is_empty() {
                dense.resize(BUCKETS, BucketStat::default());
            }
            let mut out = SparseHistogram::default();
            for &x in xs {
                let k = key(x);
                let b = (k >> 16) as usize;
                let s = &mut dense[b];
                if s.count == 0 {
                    touched.push(b as u16);
                }
                s.add_key(k, 1);
                if let Some(z) = zero_index(k) {
                    out.zeros[z] += 1;
                }
            }
            touched.sort_unstable();
            out.buckets = touched
                .drain(..)
                .map(|b| (b, std::mem::take(&mut dense[b as usize])))
                .collect();
            out
        })
    }

    /// Number of samples.
    pub fn n(&self) -> u64 {
        self.buckets.iter().map(|(_, s)| s.count).sum()
    }
}

thread_local! {
    /// A dense histogram (all zero between uses) and the buckets touched.
    static SCRATCH: std::cell::RefCell<(Vec<BucketStat>, Vec<u16>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The keys of `xs`, sorted ascending.
pub fn sorted_keys(xs: &[f32]) -> Vec<u32> {
    let mut keys: Vec<u32> = xs.iter().map(|&x| key(x)).collect();
    keys.sort_unstable();
    keys
}

/// The dense pass-1 histogram of a whole run (or shard): mergeable in any
/// order with bit-identical results.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    stats: Vec<BucketStat>,
    zeros: [u64; 2],
    n: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("n", &self.n)
            .field(
                "non_empty",
                &self.stats.iter().filter(|s| s.count > 0).count(),
            )
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            stats: vec![BucketStat::default(); BUCKETS],
            zeros: [0; 2],
            n: 0,
        }
    }

    /// Adds samples.
    pub fn push(&mut self, xs: &[f32]) {
        for &x in xs {
            let k = key(x);
            self.stats[(k >> 16) as usize].add_key(k, 1);
            if let Some(z) = zero_index(k) {
                self.zeros[z] += 1;
            }
        }
        self.n += xs.len() as u64;
    }

    /// Merges a sparse histogram (a block's or a shard's).
    pub fn merge_sparse(&mut self, s: &SparseHistogram) {
        for (b, st) in &s.buckets {
            self.stats[*b as usize].merge(st);
            self.n += st.count;
        }
        self.zeros[0] += s.zeros[0];
        self.zeros[1] += s.zeros[1];
    }

    /// Merges another dense histogram.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.stats.iter_mut().zip(&o.stats) {
            a.merge(b);
        }
        self.zeros[0] += o.zeros[0];
        self.zeros[1] += o.zeros[1];
        self.n += o.n;
    }

    /// The sparse form (non-empty buckets, ascending).
    pub fn to_sparse(&self) -> SparseHistogram {
        SparseHistogram {
            buckets: self
                .stats
                .iter()
                .enumerate()
                .filter(|(_, s)| s.count > 0)
                .map(|(b, s)| (b as u16, *s))
                .collect(),
            zeros: self.zeros,
        }
    }

    /// Samples seen.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// One bucket's statistics.
    pub fn bucket(&self, b: u16) -> &BucketStat {
        &self.stats[b as usize]
    }

    /// The bucket holding 1-based rank `r` and the number of samples in
    /// lower buckets.
    fn locate(&self, r: u64) -> (u16, u64) {
        let mut below = 0;
        for (b, s) in self.stats.iter().enumerate() {
            if below + s.count >= r {
                return (b as u16, below);
            }
            below += s.count;
        }
        panic!("invariant: rank {r} ≤ n = {}", self.n)
    }
}

/// The buckets pass 2 must resolve for a tail metric at level q.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailPlan {
    /// Level q.
    pub q: f64,
    /// Distinct buckets holding ranks l, k and u, ascending (1 to 3).
    pub buckets: Vec<u16>,
}

impl TailPlan {
    /// The plan for level q over the samples of `hist` (`None` when empty).
    pub fn new(hist: &Histogram, q: f64) -> Option<TailPlan> {
        if hist.n() == 0 {
            return None;
        }
        let r = TailRanks::new(hist.n(), q);
        let mut buckets: Vec<u16> = [r.ci_lower, r.quantile, r.ci_upper]
            .iter()
            .map(|&rank| hist.locate(rank).0)
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        Some(TailPlan { q, buckets })
    }

    /// Whether key `k` lies in a planned bucket.
    #[inline]
    pub fn wants(&self, k: u32) -> bool {
        let b = (k >> 16) as u16;
        self.buckets.contains(&b)
    }

    /// The sorted planned keys of a set of samples, as `(key, count)` runs:
    /// a block's pass-2 partial.
    pub fn block_counts(&self, xs: &[f32]) -> Vec<(u32, u64)> {
        let mut keys: Vec<u32> = xs
            .iter()
            .map(|&x| key(x))
            .filter(|&k| self.wants(k))
            .collect();
        keys.sort_unstable();
        let mut out: Vec<(u32, u64)> = vec![];
        for k in keys {
            match out.last_mut() {
                Some((lk, c)) if *lk == k => *c += 1,
                _ => out.push((k, 1)),
            }
        }
        out
    }
}

/// Pass-2 counts of every full key inside the planned buckets.
#[derive(Clone, PartialEq)]
pub struct KeyCounts {
    plan: TailPlan,
    /// `counts[i][ℓ]`: samples with key `plan.buckets[i] << 16 | ℓ`.
    counts: Vec<Vec<u64>>,
}

impl std::fmt::Debug for KeyCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCounts")
            .field("plan", &self.plan)
            .finish()
    }
}

impl KeyCounts {
    /// Empty counts for a plan.
    pub fn new(plan: TailPlan) -> Self {
        let counts = vec![vec![0; BUCKETS]; plan.buckets.len()];
        KeyCounts { plan, counts }
    }

    /// The plan these counts resolve.
    pub fn plan(&self) -> &TailPlan {
        &self.plan
    }

    /// Adds samples (those outside the planned buckets are ignored).
    pub fn push(&mut self, xs: &[f32]) {
        for &x in xs {
            self.add(key(x), 1);
        }
    }

    fn add(&mut self, k: u32, c: u64) {
        let b = (k >> 16) as u16;
        if let Some(i) = self.plan.buckets.iter().position(|&p| p == b) {
            self.counts[i][(k & 0xFFFF) as usize] += c;
        }
    }

    /// Merges sorted `(key, count)` runs (a block's or a shard's).
    pub fn merge_runs(&mut self, runs: &[(u32, u64)]) {
        for &(k, c) in runs {
            self.add(k, c);
        }
    }

    /// The non-zero counts as sorted `(key, count)` runs.
    pub fn to_runs(&self) -> Vec<(u32, u64)> {
        let mut out = vec![];
        for (i, &b) in self.plan.buckets.iter().enumerate() {
            for (l, &c) in self.counts[i].iter().enumerate() {
                if c > 0 {
                    out.push(((u32::from(b) << 16) | l as u32, c));
                }
            }
        }
        out
    }

    fn bucket_counts(&self, b: u16) -> &[u64] {
        let i = self
            .plan
            .buckets
            .iter()
            .position(|&p| p == b)
            .expect("invariant: resolved ranks lie in planned buckets");
        &self.counts[i]
    }
}

/// Errors of [`estimate`]: the pass-2 counts do not belong to the histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The plan was made for another level or another histogram.
    PlanMismatch,
    /// Pass 2 counted a different number of samples in a planned bucket
    /// than pass 1 (the passes did not see the same samples).
    CountMismatch { bucket: u16, pass1: u64, pass2: u64 },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::PlanMismatch => {
                write!(f, "the resolve plan does not match the pass-1 histogram")
            }
            ResolveError::CountMismatch {
                bucket,
                pass1,
                pass2,
            } => write!(
                f,
                "bucket {bucket:#06x}: pass 1 counted {pass1} samples, pass 2 counted {pass2}"
            ),
        }
    }
}

impl std::error::Error for ResolveError {}

/// The exact tail statistics at level q (the plan's) from the pass-1
/// histogram and the pass-2 key counts. `side` chooses the direction of
/// `n_exceedances`; expected shortfall is given for [`TailSide::Upper`].
pub fn estimate(
    hist: &Histogram,
    res: &KeyCounts,
    side: TailSide,
) -> Result<TailEstimate, ResolveError> {
    let q = res.plan.q;
    let n = hist.n();
    if TailPlan::new(hist, q).as_ref() != Some(&res.plan) {
        return Err(ResolveError::PlanMismatch);
    }
    for &b in &res.plan.buckets {
        let pass2: u64 = res.bucket_counts(b).iter().sum();
        let pass1 = hist.bucket(b).count;
        if pass1 != pass2 {
            return Err(ResolveError::CountMismatch {
                bucket: b,
                pass1,
                pass2,
            });
        }
    }
    let ranks = TailRanks::new(n, q);
    // Key of rank r, and the number of samples with a smaller key.
    let at = |r: u64| -> (u32, u64) {
        let (b, mut below) = hist.locate(r);
        for (l, &c) in res.bucket_counts(b).iter().enumerate() {
            if below + c >= r {
                return ((u32::from(b) << 16) | l as u32, below);
            }
            below += c;
        }
        unreachable!("invariant: pass-2 counts sum to the bucket's count")
    };
    let (kv, below_v) = at(ranks.quantile);
    let var = from_key(kv);
    let value = |r: u64| f64::from(from_key(at(r).0));
    let bv = (kv >> 16) as u16;
    let in_bv = res.bucket_counts(bv);
    let count_v = in_bv[(kv & 0xFFFF) as usize];
    let above_key: u64 = in_bv[(kv & 0xFFFF) as usize + 1..].iter().sum::<u64>()
        + hist.stats[bv as usize + 1..]
            .iter()
            .map(|s| s.count)
            .sum::<u64>();
    // Samples strictly beyond VaR as numbers: ±0 compare equal.
    let n_exceedances = match side {
        TailSide::Upper => above_key - if kv == 0x7FFF_FFFF { hist.zeros[1] } else { 0 },
        TailSide::Lower => below_v - if kv == 0x8000_0000 { hist.zeros[0] } else { 0 },
    };
    let (es, es_se) = if side == TailSide::Upper {
        // Ranks k+1..n by bucket: the ties of VaR beyond rank k, the keys
        // above VaR in its bucket, then every higher bucket.
        let mut first = BucketStat::default();
        first.add_key(kv, below_v + count_v - ranks.quantile);
        for (l, &c) in in_bv.iter().enumerate().skip((kv & 0xFFFF) as usize + 1) {
            if c > 0 {
                first.add_key((u32::from(bv) << 16) | l as u32, c);
            }
        }
        let rest = hist.stats[bv as usize + 1..]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.count > 0)
            .map(|(i, s)| ((bv as usize + 1 + i) as u16, *s));
        let above: Vec<(u16, BucketStat)> = std::iter::once((bv, first))
            .filter(|(_, s)| s.count > 0)
            .chain(rest)
            .collect();
        let (es, se) = shortfall(n, q, ranks.quantile, f64::from(var), &above);
        (Some(es), Some(se))
    } else {
        (None, None)
    };
    Ok(TailEstimate {
        n,
        q,
        side,
        value_at_risk: f64::from(var),
        quantile_ci95: [value(ranks.ci_lower), value(ranks.ci_upper)],
        n_exceedances,
        few_exceedances: n_exceedances < MIN_EXCEEDANCES,
        expected_shortfall: es,
        expected_shortfall_std_error: es_se,
    })
}

/// Acerbi–Tasche expected shortfall and its standard error (see
/// [`crate::tail`] for the definitions) from VaR = X₍ₖ₎ and the bucket
/// statistics of ranks k+1..n (`above`, buckets ascending):
///
/// ES = (Σ_{i>k} X₍ᵢ₎ + (k − nq)·VaR) / (n − nq),
/// SE = sd((X − VaR)₊) / ((1 − q)√n), the sd over all n samples.
///
/// Each bucket contributes exact integer sums, rescaled once; buckets are
/// combined in ascending order with compensation. This is the one place
/// both the in-memory keeper and the radix select compute these numbers, so
/// they agree bit for bit.
pub fn shortfall(n: u64, q: f64, k: u64, var: f64, above: &[(u16, BucketStat)]) -> (f64, f64) {
    let nf = n as f64;
    // For bucket b, d = base − VaR, and X − VaR = d + ℓ·ulp.
    let parts: Vec<(f64, f64, &BucketStat)> = above
        .iter()
        .map(|(b, s)| {
            let (base, ulp) = bucket_base_ulp(*b);
            (base - var, ulp, s)
        })
        .collect();
    // Σ (X − VaR) over ranks above k.
    let mut sum_y = CompensatedSum::default();
    for &(d, ulp, s) in &parts {
        sum_y.add(s.count as f64 * d + ulp * s.sum_low as f64);
    }
    let sum_y = sum_y.total();
    let m: u64 = above.iter().map(|(_, s)| s.count).sum();
    let tail_weight = nf - nf * q;
    let frac = k as f64 - nf * q;
    // Σ X = Σ (X − VaR) + m·VaR; with VaR added once in the numerator.
    let es = (sum_y + (m as f64 + frac) * var) / tail_weight;
    // Centred second moment of y = (X − VaR)₊ over all n samples: each
    // bucket's Σ (d + ℓu − ȳ)² = c(d − ȳ)² + 2(d − ȳ)u·Σℓ + u²·Σℓ², and the
    // n − m samples at or below VaR contribute (0 − ȳ)² each.
    let mean_y = sum_y / nf;
    let mut ss = CompensatedSum::default();
    for &(d, ulp, s) in &parts {
        let e = d - mean_y;
        ss.add(
            s.count as f64 * e * e
                + 2.0 * e * ulp * s.sum_low as f64
                + ulp * ulp * s.sum_low_sq as f64,
        );
    }
    ss.add((n - m) as f64 * mean_y * mean_y);
    let var_y = if n > 1 {
        ss.total().max(0.0) / (nf - 1.0)
    } else {
        f64::NAN
    };
    let se = var_y.sqrt() / ((1.0 - q) * nf.sqrt());
    (es, se)
}

/// [`shortfall`] over sorted f32 values (ascending): the bucket statistics
/// of `sorted[k..]` (ranks k+1..n when `sorted` holds ranks 1..).
pub(crate) fn shortfall_sorted(n: u64, q: f64, k: u64, var: f64, above: &[f32]) -> (f64, f64) {
    let keys: Vec<u32> = above.iter().map(|&x| key(x)).collect();
    let h = SparseHistogram::from_sorted_keys(&keys);
    shortfall(n, q, k, var, &h.buckets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::{TailKeeper, tail_estimate};
    use proptest::prelude::*;

    #[test]
    fn key_preserves_total_order_and_inverts() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            1.5,
            3e38,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} < {}", w[0], w[1]);
        }
        for &x in &xs {
            assert_eq!(from_key(key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn bucket_decomposition_is_exact() {
        for &x in &[
            1.0f32, -1.0, 123.456, -7.25e-3, 1e-40, -1e-40, 0.0, -0.0, 6.5e37,
        ] {
            let k = key(x);
            let (base, ulp) = bucket_base_ulp((k >> 16) as u16);
            assert_eq!(base + f64::from(k & 0xFFFF) * ulp, f64::from(x), "x = {x}");
        }
    }

    /// Pass 1 over blocks, plan, pass 2 over blocks (another chunking),
    /// estimate.
    fn radix(xs: &[f32], q: f64, side: TailSide, blocks: usize) -> TailEstimate {
        let mut h = Histogram::new();
        for b in xs.chunks(blocks.max(1)) {
            h.merge_sparse(&SparseHistogram::from_values(b));
        }
        let plan = TailPlan::new(&h, q).expect("non-empty");
        let mut kc = KeyCounts::new(plan.clone());
        for b in xs.chunks((blocks / 3).max(1)) {
            kc.merge_runs(&plan.block_counts(b));
        }
        estimate(&h, &kc, side).expect("consistent passes")
    }

    fn keeper(xs: &[f32], q: f64, side: TailSide) -> TailEstimate {
        let n = xs.len() as u64;
        let mut k = match side {
            TailSide::Upper => TailKeeper::new_upper(n, q),
            TailSide::Lower => TailKeeper::new(n, q),
        };
        k.push(xs);
        k.estimate().expect("all in")
    }

    #[test]
    fn atoms_and_ties_match_keeper_bit_for_bit() {
        // 95% zeros, the rest continuous: VaR at q = 0.9 is the atom.
        let xs: Vec<f32> = (0..20_000u32)
            .map(|i| {
                let h = i.wrapping_mul(2_654_435_761) >> 8;
                if h % 20 != 0 {
                    0.0
                } else {
                    (h % 9973) as f32 / 97.0
                }
            })
            .collect();
        for &q in &[0.5, 0.9, 0.95, 0.951, 0.975, 0.99, 0.999] {
            let r = radix(&xs, q, TailSide::Upper, 4096);
            assert_eq!(r, keeper(&xs, q, TailSide::Upper), "q = {q}");
            // And the f64 reference up to the rounding of the sum.
            let mut s: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
            s.sort_by(f64::total_cmp);
            let want = tail_estimate(&s, q, TailSide::Upper);
            assert_eq!(r.value_at_risk, want.value_at_risk);
            assert_eq!(r.quantile_ci95, want.quantile_ci95);
            assert_eq!(r.n_exceedances, want.n_exceedances);
            let (a, b) = (
                r.expected_shortfall.unwrap(),
                want.expected_shortfall.unwrap(),
            );
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "ES {a} vs {b}");
        }
        let r = radix(&xs, 0.9, TailSide::Upper, 1000);
        assert_eq!(r.value_at_risk, 0.0);
    }

    #[test]
    fn signed_zeros_are_equal_numbers() {
        let mut xs = vec![-0.0f32; 50];
        xs.extend(vec![0.0f32; 50]);
        xs.push(1.0);
        // The keeper holds the lower tail only below q = 0.5.
        for (side, q) in [
            (TailSide::Upper, 0.3),
            (TailSide::Upper, 0.49),
            (TailSide::Upper, 0.6),
            (TailSide::Lower, 0.3),
            (TailSide::Lower, 0.49),
        ] {
            assert_eq!(radix(&xs, q, side, 7), keeper(&xs, q, side), "{side:?} {q}");
        }
    }

    #[test]
    fn mismatched_passes_are_refused() {
        let xs: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut h = Histogram::new();
        h.push(&xs);
        let plan = TailPlan::new(&h, 0.99).unwrap();
        let mut kc = KeyCounts::new(plan.clone());
        kc.push(&xs[..999]);
        assert!(matches!(
            estimate(&h, &kc, TailSide::Upper),
            Err(ResolveError::CountMismatch { .. })
        ));
        let other = KeyCounts::new(TailPlan {
            q: 0.99,
            buckets: vec![0],
        });
        assert_eq!(
            estimate(&h, &other, TailSide::Upper),
            Err(ResolveError::PlanMismatch)
        );
    }

    proptest! {
        #[test]
        fn radix_equals_keeper_bit_for_bit(
            xs in proptest::collection::vec(
                prop_oneof![Just(0.0f32), Just(-0.0f32), Just(1.0f32), Just(2.5f32),
                            -5.0f32..5.0, -1e30f32..1e30], 1..3000),
            q in 0.001f64..0.999,
            blocks in 1usize..1500,
            upper in any::<bool>(),
        ) {
            // The keeper holds the lower tail only below q = 0.5.
            let side = if upper || q >= 0.5 { TailSide::Upper } else { TailSide::Lower };
            prop_assert_eq!(radix(&xs, q, side, blocks), keeper(&xs, q, side));
        }

        #[test]
        fn histogram_merge_is_order_free(
            xs in proptest::collection::vec(-100.0f32..100.0, 1..2000),
            cut in 0usize..2000,
        ) {
            let cut = cut.min(xs.len());
            let (a, b) = xs.split_at(cut);
            let mut h1 = Histogram::new();
            h1.merge_sparse(&SparseHistogram::from_values(a));
            h1.merge_sparse(&SparseHistogram::from_values(b));
            let mut h2 = Histogram::new();
            h2.push(b);
            h2.push(a);
            prop_assert!(h1 == h2);
            prop_assert_eq!(h1.to_sparse(), SparseHistogram::from_values(&xs));
            prop_assert_eq!(
                SparseHistogram::from_values(&xs),
                SparseHistogram::from_sorted_keys(&sorted_keys(&xs))
            );
        }
    }
}
