//! Streaming, mergeable Monte Carlo statistics over plain slices.
//!
//! A leaf crate: it knows no engine types, only `f32` sample slices indexed by
//! a global sample index, and `f64` numbers.
//!
//! * [`moments`] / [`comoments`]: count, mean, variance, min/max, higher
//!   moments, covariance and correlation, striped by global sample index so
//!   a block's result is bit-identical whatever its chunking; summaries merge
//!   deterministically in block order.
//! * [`tail`]: exact quantile / value at risk and expected shortfall from the
//!   kept order statistics, with intervals and standard errors.
//! * [`radix`]: the same tail statistics at any n in bounded memory, by a
//!   two-pass radix select over mergeable 65,536-bucket histograms.
//! * [`interval`]: normal, Wilson and Clopper–Pearson intervals.
//! * [`batch`]: batch-means and delta-method standard errors.
//! * [`special`]: special functions and exact CDFs (also for KS tests).
//!
//! Inputs are assumed finite: the executor reports non-finite lanes
//! separately as numeric faults.

pub mod batch;
pub mod comoments;
pub mod interval;
pub mod moments;
pub mod radix;
mod simd;
pub mod special;
pub mod tail;

pub use batch::{BatchMeans, batch_means, batch_means_std_error, enough_blocks};
pub use comoments::{CoMoments, CoMomentsSummary};
pub use interval::{ci95, clopper_pearson_lower, clopper_pearson_upper, wilson};
pub use moments::{Moments, MomentsSummary};
pub use tail::{TailEstimate, TailKeeper, TailSide};

/// A Neumaier-compensated sum, added to in a fixed order (so it is
/// deterministic): accurate when terms of both signs and very different
/// magnitudes meet, as bucket sums of a tail do.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompensatedSum {
    s: f64,
    c: f64,
}

impl CompensatedSum {
    /// Adds `x`.
    pub fn add(&mut self, x: f64) {
        let t = self.s + x;
        self.c += if self.s.abs() >= x.abs() {
            (self.s - t) + x
        } else {
            (x - t) + self.s
        };
        self.s = t;
    }

    /// The sum so far.
    pub fn total(&self) -> f64 {
        self.s + self.c
    }
}
