//! Exact tail metrics (quantile, value_at_risk, expected_shortfall) at any
//! sample count in bounded memory: the engine side of the two-pass radix
//! select of `whatif_stats::radix`.
//!
//! Pass 1 (the ordinary run) merges each block's sparse 65,536-bucket
//! histogram into a run-wide [`TailState`]. The histogram locates the
//! buckets holding the ranks the metric needs ([`TailPlan`]); pass 2 runs the
//! same blocks again — the counter-based RNG regenerates exactly the same
//! samples — with a [`ResolveReducer`] that counts every full key inside
//! those buckets, and the estimate is read off both. Memory is a few MiB per
//! tail metric and world, whatever the sample count; a sharded run does the
//! two passes as two phases (see `engine::shard`).

use super::RunError;
use super::executor::Executor;
use super::reduce::{Merged, MergedStat, SlotSpec, Slots};
use std::ops::Range;
use whatif_ir::exec::BlockReducer;
use whatif_ir::layout::BlockLayout;
use whatif_stats::radix::{self, Histogram, KeyCounts, TailPlan};
use whatif_stats::tail::{TailEstimate, TailSide};

/// A tail slot's run-wide state: the pass-1 histogram and, once pass 2 ran,
/// the key counts inside the planned buckets.
#[derive(Debug, Clone)]
pub struct TailState {
    pub q: f64,
    pub side: TailSide,
    pub hist: Histogram,
    pub resolved: Option<KeyCounts>,
}

impl TailState {
    /// An empty state for level q; `upper` selects the tail whose
    /// exceedances are counted (and which carries expected shortfall).
    pub fn new(q: f64, upper: bool) -> Self {
        TailState {
            q,
            side: if upper {
                TailSide::Upper
            } else {
                TailSide::Lower
            },
            hist: Histogram::new(),
            resolved: None,
        }
    }

    /// The buckets pass 2 must resolve (`None` for an empty histogram).
    pub fn plan(&self) -> Option<TailPlan> {
        TailPlan::new(&self.hist, self.q)
    }

    /// The exact estimate, once pass 2 has resolved the plan (`None` before,
    /// or when the passes disagree).
    pub fn estimate(&self) -> Option<TailEstimate> {
        radix::estimate(&self.hist, self.resolved.as_ref()?, self.side).ok()
    }
}

/// Whether the slots hold any tail metric (then a run needs pass 2).
pub fn has_tails(slots: &Slots) -> bool {
    slots
        .specs
        .iter()
        .any(|s| matches!(s, SlotSpec::Tail { .. }))
}

/// The plan of every tail slot of a merged pass 1, as `(slot, plan)`.
pub fn plans(merged: &Merged) -> Vec<(usize, TailPlan)> {
    merged
        .stats
        .iter()
        .enumerate()
        .filter_map(|(si, s)| match s {
            MergedStat::Tail(t) => t.plan().map(|p| (si, p)),
            _ => None,
        })
        .collect()
}

/// The pass-2 reducer: per planned slot, the keys of the block that fall in
/// the planned buckets, as sorted `(key, count)` runs.
#[derive(Debug)]
pub struct ResolveReducer<'a> {
    /// `(output column, plan)` per planned slot.
    pub targets: Vec<(usize, &'a TailPlan)>,
}

impl BlockReducer for ResolveReducer<'_> {
    type Partial = Vec<Vec<u32>>;
    type Output = Vec<Vec<(u32, u64)>>;

    fn begin(&self, _block: u64, _range: Range<u64>) -> Self::Partial {
        vec![vec![]; self.targets.len()]
    }

    fn feed(&self, p: &mut Self::Partial, _start: u64, cols: &[&[f32]]) {
        for (keys, (col, plan)) in p.iter_mut().zip(&self.targets) {
            keys.extend(
                cols[*col]
                    .iter()
                    .map(|&x| radix::key(x))
                    .filter(|&k| plan.wants(k)),
            );
        }
    }

    fn end(&self, p: Self::Partial) -> Self::Output {
        p.into_iter()
            .map(|mut keys| {
                keys.sort_unstable();
                let mut runs: Vec<(u32, u64)> = vec![];
                for k in keys {
                    match runs.last_mut() {
                        Some((lk, c)) if *lk == k => *c += 1,
                        _ => runs.push((k, 1)),
                    }
                }
                runs
            })
            .collect()
    }
}

/// The output column a tail slot reads.
fn tail_col(slots: &Slots, slot: usize) -> usize {
    match slots.specs[slot] {
        SlotSpec::Tail { col, .. } => col,
        _ => unreachable!("invariant: plans are made for tail slots"),
    }
}

/// Pass 2 over `blocks`: the key counts of every planned slot, in the order
/// of `plans`. `progress(block)` is called after each block, in order.
pub fn pass2(
    exec: &Executor,
    layout: BlockLayout,
    blocks: Range<u64>,
    slots: &Slots,
    plans: &[(usize, TailPlan)],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<KeyCounts>, RunError> {
    let reducer = ResolveReducer {
        targets: plans
            .iter()
            .map(|(s, p)| (tail_col(slots, *s), p))
            .collect(),
    };
    let mut counts: Vec<KeyCounts> = plans
        .iter()
        .map(|(_, p)| KeyCounts::new(p.clone()))
        .collect();
    exec.run(layout, blocks, &reducer, |r| {
        for (kc, runs) in counts.iter_mut().zip(&r.partial) {
            kc.merge_runs(runs);
        }
        progress(r.block);
    })?;
    Ok(counts)
}

/// Plan, run pass 2 over `blocks` and store the key counts in `merged`:
/// afterwards every tail slot can give its exact estimate.
pub fn resolve(
    exec: &Executor,
    layout: BlockLayout,
    blocks: Range<u64>,
    slots: &Slots,
    merged: &mut Merged,
    progress: &mut dyn FnMut(u64),
) -> Result<(), RunError> {
    let plans = plans(merged);
    if plans.is_empty() {
        return Ok(());
    }
    let counts = pass2(exec, layout, blocks, slots, &plans, progress)?;
    install(merged, &plans, counts);
    Ok(())
}

/// Store pass-2 counts (in the order of `plans`) into the merged slots.
pub fn install(merged: &mut Merged, plans: &[(usize, TailPlan)], counts: Vec<KeyCounts>) {
    for ((si, _), kc) in plans.iter().zip(counts) {
        if let MergedStat::Tail(t) = &mut merged.stats[*si] {
            t.resolved = Some(kc);
        }
    }
}
