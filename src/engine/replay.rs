//! A backtest's prediction step on the executor `whatif run` uses: the
//! replay layout of `whatif_data` lowered to a program whose lanes are
//! (row, posterior draw) pairs (`whatif_ir::lower::lower_replay`), run
//! batch by batch with the batch's inputs attached.

use super::executor::{Executor, ExecutorInfo};
use super::{Backend, RunError};
use whatif_data::DataError;
use whatif_data::replay::{ReplayLayout, Replayer};
use whatif_ir::exec::{CollectColumns, ExecOptions};
use whatif_ir::layout::BlockLayout;
use whatif_ir::lower::{ReplayColumns, lower_replay};
use whatif_ir::opt::PassOptions;
use whatif_ir::{LaneInputs, Program};
use whatif_lang::{CausalModel, WorldId};

/// Runs replay batches on a CPU or GPU executor, in f32 like `run`.
#[derive(Debug)]
pub struct BackendReplayer {
    program: Program,
    names: Vec<String>,
    backend: Backend,
    opts: ExecOptions,
    /// What ran the last batch (or, before any, what was asked for).
    info: Option<ExecutorInfo>,
}

impl BackendReplayer {
    /// Lower and optimise the replay of `policy`. Fails early when the
    /// backend cannot be opened (no GPU adapter for `--backend wgpu`).
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
        // Zero-lane columns until a batch brings its own: the passes
        // verify that every input read has a column.
        program.inputs = Some(LaneInputs {
            names: names.clone(),
            columns: vec![Vec::new(); names.len()],
        });
        let program = whatif_ir::opt::optimise(program, PassOptions::default());
        let mut r = BackendReplayer {
            program,
            names,
            backend,
            opts,
            info: None,
        };
        // One lane of zeros: opens the executor (and its device) now, so a
        // missing adapter is an error before any row is read.
        let probe = vec![vec![0.0]; r.names.len()];
        let exec = r.executor(1, &probe)?;
        r.info = Some(exec.info());
        Ok(r)
    }

    fn executor(&self, lanes: usize, inputs: &[Vec<f64>]) -> Result<Executor, RunError> {
        let mut p = self.program.clone();
        // Without columns (no noise, no lags: a deterministic replay) the
        // program reads no input and runs `lanes` lanes all the same.
        p.inputs = (!inputs.is_empty()).then(|| {
            debug_assert!(inputs.iter().all(|c| c.len() == lanes));
            LaneInputs {
                names: self.names.clone(),
                columns: inputs.to_vec(),
            }
        });
        let v = whatif_ir::verify::verify(p).map_err(|e| RunError::Gpu(e.to_string()))?;
        Executor::new(&v, self.backend, self.opts)
    }
}

impl Replayer for BackendReplayer {
    fn backend(&self) -> String {
        match &self.info {
            Some(i) => format!("{} ({}, {})", i.backend, i.kernel, i.device),
            None => "unknown".into(),
        }
    }

    fn replay(&mut self, lanes: usize, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, DataError> {
        let n_out = self.program.outputs.len();
        if lanes == 0 {
            return Ok(vec![Vec::new(); n_out]);
        }
        let exec = self
            .executor(lanes, inputs)
            .map_err(|e| DataError::Usage(format!("replay backend: {e}")))?;
        self.info = Some(exec.info());
        let layout = BlockLayout::for_samples(lanes as u64);
        let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(lanes); n_out];
        exec.run(layout, 0..layout.n_blocks(), &CollectColumns, |b| {
            for (o, c) in out.iter_mut().zip(b.partial) {
                o.extend(c.into_iter().map(f64::from));
            }
        })
        .map_err(|e| DataError::Usage(format!("replay backend: {e}")))?;
        Ok(out)
    }
}
