//! A backtest's prediction step on the executor `whatif run` uses: the
//! replay layout of `whatif_data` lowered to a program whose lanes are
//! (row, posterior draw) pairs (`whatif_ir::lower::lower_replay`), run
//! batch by batch with the batch's inputs attached.

use super::executor::{Executor, ExecutorInfo};
use super::{Backend, RunError};
use whatif_data::DataError;
use whatif_data::replay::{ReplayLayout, Replayer};
use whatif_ir::LaneInputs;
use whatif_ir::exec::{CollectColumns, ExecOptions};
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

    fn replay(&mut self, lanes: usize, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, DataError> {
        let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(lanes); self.n_outputs];
        if lanes == 0 {
            return Ok(out);
        }
        debug_assert!(inputs.iter().all(|c| c.len() == lanes));
        self.exec.set_inputs(inputs);
        let layout = BlockLayout::for_samples(lanes as u64);
        self.exec
            .run(layout, 0..layout.n_blocks(), &CollectColumns, |b| {
                for (o, c) in out.iter_mut().zip(b.partial) {
                    o.extend(c.into_iter().map(f64::from));
                }
            })
            .map_err(|e| DataError::Usage(format!("replay backend: {e}")))?;
        Ok(out)
    }
}
