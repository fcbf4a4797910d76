//! The executor: blocks in parallel (rayon), chunks in sample order inside a
//! block, one tight loop per instruction over a chunk.
//!
//! Blocks run in waves of a few per thread; each wave's results are handed
//! to the caller in block order before the next wave starts, so partials can
//! be merged sequentially (bit-identical whatever the thread count) while
//! memory stays bounded by (wave × chunk registers), never by `n_samples`.

use crate::eval::{Scratch, eval_chunk};
use crate::plan::{Plan, Src};
use rayon::prelude::*;
use whatif_ir::VerifiedProgram;
use whatif_ir::exec::{BlockReducer, BlockResult, ExecOptions, FaultCount};
use whatif_ir::layout::BlockLayout;

/// Default lanes per chunk: 2,048 lanes × 4 B = 8 KiB per register, so a
/// typical plan's live registers stay in L1/L2.
pub const DEFAULT_CHUNK: usize = 2048;

/// A CPU executor for one program.
#[derive(Debug)]
pub struct CpuExecutor {
    plan: Plan,
    pool: rayon::ThreadPool,
    chunk: usize,
}

/// Errors the CPU backend can report.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {threads} worker threads: {source}")]
    Threads {
        threads: usize,
        source: rayon::ThreadPoolBuildError,
    },
    #[error("chunk size {0} must be a positive multiple of 64")]
    Chunk(usize),
    #[error("{0} worker threads is more than the limit of {MAX_THREADS}")]
    TooManyThreads(usize),
}

/// The most worker threads an executor starts: far above any core count
/// it would help, low enough that a typo (`--threads 100000`) is an error
/// rather than a machine spawning threads for minutes.
pub const MAX_THREADS: usize = 1024;

impl CpuExecutor {
    pub fn new(program: &VerifiedProgram, opts: ExecOptions) -> Result<Self, ExecError> {
        let chunk = if opts.chunk == 0 {
            DEFAULT_CHUNK
        } else {
            opts.chunk
        };
        if chunk % 64 != 0 {
            return Err(ExecError::Chunk(chunk));
        }
        if opts.threads > MAX_THREADS {
            return Err(ExecError::TooManyThreads(opts.threads));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|source| ExecError::Threads {
                threads: opts.threads,
                source,
            })?;
        Ok(CpuExecutor {
            plan: Plan::new(program),
            pool,
            chunk,
        })
    }

    /// Replace the lane inputs (`Program::inputs`) between runs: a
    /// backtest replays batch after batch on one executor and one thread
    /// pool. A run then covers at most `columns[0].len()` lanes.
    ///
    /// # Panics
    /// When the number of columns differs from the program's.
    pub fn set_inputs(&mut self, columns: &[Vec<f64>]) {
        assert_eq!(
            columns.len(),
            self.plan.inputs.len(),
            "lane input columns of another program"
        );
        for (dst, src) in self.plan.inputs.iter_mut().zip(columns) {
            dst.clear();
            dst.extend(src.iter().map(|&x| x as f32));
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Run blocks `blocks` of `layout`, calling `on_block` for each block's
    /// result in increasing block order.
    pub fn run<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        blocks: std::ops::Range<u64>,
        reducer: &R,
        mut on_block: impl FnMut(BlockResult<R::Output>),
    ) {
        let wave = (self.pool.current_num_threads() as u64 * 4).max(4);
        let mut b = blocks.start;
        while b < blocks.end {
            let end = (b + wave).min(blocks.end);
            let results: Vec<BlockResult<R::Output>> = self.pool.install(|| {
                (b..end)
                    .into_par_iter()
                    .map_init(
                        || Scratch::new(&self.plan, self.chunk),
                        |scratch, blk| self.run_block(layout, blk, reducer, scratch),
                    )
                    .collect()
            });
            for r in results {
                on_block(r);
            }
            b = end;
        }
    }

    fn run_block<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        block: u64,
        reducer: &R,
        scratch: &mut Scratch,
    ) -> BlockResult<R::Output> {
        let range = layout.block_range(block);
        let mut partial = reducer.begin(block, range.clone());
        let mut faults = vec![FaultCount::default(); self.plan.probes.len()];
        let mut start = range.start;
        while start < range.end {
            let n = ((range.end - start) as usize).min(self.chunk);
            eval_chunk(&self.plan, scratch, start, n);
            for (f, p) in faults.iter_mut().zip(&self.plan.probes) {
                f.merge(count_faults(scratch, *p, start, n));
            }
            let cols: Vec<&[f32]> = self
                .plan
                .outputs
                .iter()
                .map(|&r| &scratch.regs[r as usize][..n])
                .collect();
            reducer.feed(&mut partial, start, &cols);
            start += n as u64;
        }
        BlockResult {
            block,
            partial: reducer.end(partial),
            faults,
        }
    }
}

fn count_faults(scratch: &Scratch, p: Src, start: u64, n: usize) -> FaultCount {
    match p {
        // Probes are sample-level (verify), never covariates.
        Src::C(_) => FaultCount::default(),
        Src::S(x) => {
            if x.is_finite() {
                FaultCount::default()
            } else {
                FaultCount {
                    lanes: n as u64,
                    first_sample: start,
                }
            }
        }
        Src::R(r) => {
            let xs = &scratch.regs[r as usize][..n];
            // Branch-free count first: faults are rare, the scan is the cost.
            let bad = xs.iter().filter(|x| !x.is_finite()).count();
            if bad == 0 {
                return FaultCount::default();
            }
            let first = xs.iter().position(|x| !x.is_finite()).unwrap_or(0);
            FaultCount {
                lanes: bad as u64,
                first_sample: start + first as u64,
            }
        }
    }
}
