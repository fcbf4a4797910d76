//! The interface between backends and reductions.
//!
//! A backend evaluates a [`crate::VerifiedProgram`] block by block (see
//! [`crate::layout`]) and hands the output columns of each chunk, in sample
//! order, to a [`BlockReducer`]; it then returns each block's partial, in
//! block order, with the numeric faults it saw. Reductions therefore live
//! above the backends, and every backend produces the same partials.

use std::ops::Range;

/// Builds one partial per reduction block from output columns.
pub trait BlockReducer: Sync {
    /// The accumulators of a block while it streams in.
    type Partial;
    /// What a finished block hands to the sequential merge.
    type Output: Send;
    /// A fresh partial for block `block` covering `range`.
    fn begin(&self, block: u64, range: Range<u64>) -> Self::Partial;
    /// Feed the next chunk of the block: `cols[o][i]` is output `o` (in
    /// `Program::outputs` order) of sample `start + i`. Chunks of a block
    /// arrive in sample order and cover it exactly.
    fn feed(&self, partial: &mut Self::Partial, start: u64, cols: &[&[f32]]);
    /// Finish a block, on the worker thread that ran it.
    fn end(&self, partial: Self::Partial) -> Self::Output;

    /// The statistics this reducer accepts pre-reduced over groups of
    /// lanes ([`BlockReducer::feed_groups`]) instead of columns, or `None`
    /// when it needs the columns themselves (tails, chart samples). A
    /// backend that reduces on its device (the GPU: only group partials
    /// cross the bus) asks this once per run.
    fn group_stats(&self) -> Option<Vec<GroupStat>> {
        None
    }

    /// Feed a whole block reduced on the device: `values[g · S + s]` is
    /// statistic `s` (of the [`BlockReducer::group_stats`] list, `S` long)
    /// over group `g`; groups are consecutive, in sample order, and cover
    /// the block exactly. Called instead of [`BlockReducer::feed`], once.
    fn feed_groups(&self, partial: &mut Self::Partial, values: &[GroupValue]) {
        let _ = (partial, values);
        unreachable!("feed_groups called on a reducer whose group_stats is None")
    }
}

/// A statistic a backend may reduce itself, over groups of lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupStat {
    /// Count, mean, central moment sums of order 2–4, min and max of an
    /// output column.
    Moments { col: usize },
    /// Means, second central moments and co-moment of two output columns.
    Co { x: usize, y: usize },
    /// Lanes of a column outside `[lo, hi]`; NaN counts as outside.
    Outside { col: usize, lo: f32, hi: f32 },
}

/// One group's value of a [`GroupStat`]: `n` lanes and
/// `Moments`: `[mean, m2, m3, m4, min, max]`;
/// `Co`: `[mean_x, mean_y, m2_x, m2_y, c_xy, 0]`;
/// `Outside`: `[count, 0, 0, 0, 0, 0]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupValue {
    pub n: u64,
    pub v: [f64; 6],
}

/// Non-finite lanes seen for one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCount {
    pub lanes: u64,
    /// Smallest sample index with a non-finite value (when `lanes > 0`).
    pub first_sample: u64,
}

impl FaultCount {
    /// Merge a later block's count into this one.
    pub fn merge(&mut self, other: FaultCount) {
        if other.lanes > 0 {
            if self.lanes == 0 || other.first_sample < self.first_sample {
                self.first_sample = other.first_sample;
            }
            self.lanes += other.lanes;
        }
    }
}

/// Options every backend understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Lanes per chunk (a multiple of 64; 0: the backend's default).
    pub chunk: usize,
}

/// The per-block result of a backend: the reducer's partial and one fault
/// count per probe (in `Program::probes` order).
#[derive(Debug)]
pub struct BlockResult<P> {
    pub block: u64,
    pub partial: P,
    pub faults: Vec<FaultCount>,
}

/// Blocks `blocks` of the run and the callback that receives their results.
pub type Blocks = Range<u64>;

/// A reducer that keeps every output column of a block, in sample order:
/// how tests compare backends lane by lane (it holds the whole block, so
/// it is for test-sized runs, not for production reductions).
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectColumns;

impl BlockReducer for CollectColumns {
    type Partial = Vec<Vec<f32>>;
    type Output = Vec<Vec<f32>>;
    fn begin(&self, _block: u64, _range: Range<u64>) -> Self::Partial {
        vec![]
    }
    fn feed(&self, partial: &mut Self::Partial, _start: u64, cols: &[&[f32]]) {
        if partial.is_empty() {
            partial.resize(cols.len(), vec![]);
        }
        for (acc, c) in partial.iter_mut().zip(cols) {
            acc.extend_from_slice(c);
        }
    }
    fn end(&self, partial: Self::Partial) -> Self::Output {
        partial
    }
}
