//! A backtest's prediction step on the executor `whatif run` uses: the
//! replay layout of `whatif_data` lowered to a program whose lanes are
//! (row, posterior draw) pairs (`whatif_ir::lower::lower_replay`), run
//! batch by batch with the batch's inputs attached.

use super::executor::{Executor, ExecutorInfo};
use super::{Backend, RunError};
use std::ops::Range;
use whatif_data::DataError;
use whatif_data::replay::{ReplayLayout, Replayer, reset_outputs};
use whatif_ir::LaneInputs;
use whatif_ir::exec::{BlockReducer, ExecOptions};
use whatif_ir::layout::BlockLayout;
use whatif_ir::lower::{ReplayColumns, lower_replay};
use whatif_ir::opt::PassOptions;
use whatif_lang::{CausalModel, WorldId};

/// Runs replay batches on a CPU or GPU executor, in f32 like `run`. One
/// executor (one thread pool, one device and compiled kernel) serves every
/// batch; only the lane inputs change.
#[derive(Debug)]
pub struct BackendReplayer {
    exec: Executor,
    info: ExecutorInfo,
    n_outputs: usize,
}

impl BackendReplayer {
    /// Lower, optimise and verify the replay of `policy`, and build its
    /// executor. Fails early when the backend cannot be opened (no GPU
    /// adapter for `--backend wgpu`).
    pub fn new(
        model: &CausalModel,
        policy: WorldId,
        layout: &ReplayLayout,
        backend: Backend,
        opts: ExecOptions,
    ) -> Result<BackendReplayer, RunError> {
        let cols = ReplayColumns {
            observed: layout.observed.clone(),
            sites: layout.sites.iter().map(|(s, _)| *s).collect(),
            lags: layout.lags.clone(),
            period: layout.period,
        };
        let names = cols.names(model);
        let mut program = lower_replay(model, policy, &cols);
        // Zero-lane columns until a batch brings its own
        // (`Executor::set_inputs`).
        program.inputs = Some(LaneInputs {
            columns: vec![Vec::new(); names.len()],
            names,
        });
        let program = whatif_ir::opt::optimise(program, PassOptions::default());
        let n_outputs = program.outputs.len();
        let verified =
            whatif_ir::verify::verify(program).map_err(|e| RunError::Gpu(e.to_string()))?;
        let exec = Executor::new(&verified, backend, opts)?;
        Ok(BackendReplayer {
            info: exec.info(),
            exec,
            n_outputs,
        })
    }
}

impl Replayer for BackendReplayer {
    fn backend(&self) -> String {
        let i = &self.info;
        format!("{} ({}, {})", i.backend, i.kernel, i.device)
    }

    fn replay_into(
        &mut self,
        lanes: usize,
        inputs: &[Vec<f64>],
        out: &mut Vec<Vec<f64>>,
    ) -> Result<(), DataError> {
        reset_outputs(out, self.n_outputs);
        if lanes == 0 {
            return Ok(());
        }
        debug_assert!(inputs.iter().all(|c| c.len() == lanes));
        self.exec.set_inputs(inputs);
        let layout = BlockLayout::for_samples(lanes as u64);
        self.exec
            .run(layout, 0..layout.n_blocks(), &ToF64, |b| {
                for (o, c) in out.iter_mut().zip(&b.partial) {
                    o.extend_from_slice(c);
                }
            })
            .map_err(|e| DataError::Usage(format!("replay backend: {e}")))?;
        Ok(())
    }
}

/// Keeps a block's output columns, widened to f64 as they stream in.
struct ToF64;

impl BlockReducer for ToF64 {
    /// The block's length and its columns so far.
    type Partial = (usize, Vec<Vec<f64>>);
    type Output = Vec<Vec<f64>>;
    fn begin(&self, _block: u64, range: Range<u64>) -> Self::Partial {
        ((range.end - range.start) as usize, Vec::new())
    }
    fn feed(&self, partial: &mut Self::Partial, _start: u64, cols: &[&[f32]]) {
        let (len, acc) = partial;
        if acc.is_empty() {
            acc.resize_with(cols.len(), || Vec::with_capacity(*len));
        }
        for (a, c) in acc.iter_mut().zip(cols) {
            a.extend(c.iter().map(|&x| f64::from(x)));
        }
    }
    fn end(&self, partial: Self::Partial) -> Self::Output {
        partial.1
    }
}
