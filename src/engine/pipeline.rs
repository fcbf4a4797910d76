//! The stages of a run as reusable pieces: compile ([`Compiled`]), pass 1
//! over any block range ([`pass1`]), the tail-resolving pass 2
//! (`engine::tails`), and the report from merged statistics
//! ([`build_report`]). A single run chains them over all blocks; a shard runs
//! a slice and writes a part (`engine::shard`); target-precision runs extend
//! pass 1 block by block (`engine::target`). All of them merge in block
//! order, so they give the same bits.

use super::executor::{Executor, ExecutorInfo};
use super::reduce::{CausalModelKinds, Merged, Reducer, Slots};
use super::{RunError, RunOptions, ScenarioInfo, select_worlds, summary};
use std::ops::Range;
use whatif_ir::VerifiedProgram;
use whatif_ir::exec::{ExecOptions, FaultCount};
use whatif_ir::layout::BlockLayout;
use whatif_lang::{CausalModel, WorldId};
use whatif_report::{Manifest, NumericFault, Report, RunInfo, SCHEMA_VERSION, StructureInfo};

/// A model compiled for a run: worlds, program, block layout and the
/// reduction slots.
#[derive(Debug)]
pub struct Compiled {
    pub worlds: Vec<WorldId>,
    pub program: VerifiedProgram,
    pub layout: BlockLayout,
    pub slots: Slots,
    pub kinds: CausalModelKinds,
}

impl Compiled {
    /// Select worlds and compile `model` (its `n_samples` fixes the layout).
    pub fn new(model: &CausalModel, opts: &RunOptions) -> Result<Compiled, RunError> {
        let worlds = select_worlds(model, &opts.worlds)?;
        let program = whatif_ir::compile(model, &worlds, opts.passes);
        let layout = BlockLayout::for_samples(model.n_samples);
        let slots = Slots::new(model, &program);
        let kinds = CausalModelKinds::new(model, &slots);
        Ok(Compiled {
            worlds,
            program,
            layout,
            slots,
            kinds,
        })
    }

    /// The executor `opts` asks for.
    pub fn executor(&self, opts: &RunOptions) -> Result<Executor, RunError> {
        Executor::new(
            &self.program,
            opts.backend,
            ExecOptions {
                threads: opts.threads,
                chunk: opts.chunk,
            },
        )
    }

    /// Whether the run has tail metrics (and so needs pass 2).
    pub fn has_tails(&self) -> bool {
        super::tails::has_tails(&self.slots)
    }

    /// Program world index → model world index.
    pub fn world_ids(&self) -> Vec<usize> {
        self.worlds.iter().map(|w| w.index()).collect()
    }
}

/// What pass 1 accumulates: merged block statistics, fault counts per
/// probe, and chart samples.
#[derive(Debug)]
pub struct Accum {
    pub merged: Merged,
    pub faults: Vec<FaultCount>,
    pub chart_cols: Vec<Vec<f32>>,
}

impl Accum {
    /// Empty accumulators for `c`.
    pub fn new(c: &Compiled) -> Accum {
        Accum {
            merged: Merged::new(&c.slots, c.layout.n_samples),
            faults: vec![FaultCount::default(); c.program.probes.len()],
            chart_cols: vec![vec![]; c.slots.n_chart_columns()],
        }
    }
}

/// Pass 1 over `blocks` (in block order), merging into `acc`;
/// `progress(block)` after each block.
pub fn pass1(
    c: &Compiled,
    exec: &Executor,
    blocks: Range<u64>,
    acc: &mut Accum,
    progress: &mut dyn FnMut(u64),
) -> Result<(), RunError> {
    let reducer = Reducer {
        slots: &c.slots,
        kinds: &c.kinds,
    };
    exec.run(c.layout, blocks, &reducer, |r| {
        let (n, fins, chart) = r.partial;
        acc.merged.push(n, fins);
        if let Some(chart) = chart {
            for (dst, col) in acc.chart_cols.iter_mut().zip(chart) {
                dst.extend(col);
            }
        }
        for (f, b) in acc.faults.iter_mut().zip(r.faults) {
            f.merge(b);
        }
        progress(r.block);
    })
}

/// Manifest facts that do not come from the model.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub exec: ExecutorInfo,
    /// Samples the report rests on (the model's, or fewer when a target
    /// precision was reached early).
    pub samples: u64,
    pub start_time: String,
    pub wall_seconds: f64,
    pub host: String,
}

/// The report from merged statistics (tails resolved).
pub fn build_report(
    model: &CausalModel,
    info: &ScenarioInfo,
    c: &Compiled,
    merged: &Merged,
    faults: &[FaultCount],
    facts: RunFacts,
) -> Report {
    let program = &c.program;
    let s = summary::summarise(model, &c.slots, merged, &c.world_ids());
    let numeric_faults = program
        .probes
        .iter()
        .zip(faults)
        .filter(|(_, f)| f.lanes > 0)
        .map(|(p, f)| NumericFault {
            node: p.node.clone(),
            worlds: p
                .worlds
                .iter()
                .map(|&w| program.worlds[w as usize].clone())
                .collect(),
            lanes: f.lanes,
            first_sample: f.first_sample,
        })
        .collect();
    let structure = model.is_structured().then(|| StructureInfo {
        units: u64::from(model.unit_count()),
        periods: u64::from(model.periods),
        unit_evaluations_per_world: facts.samples
            * u64::from(model.unit_count())
            * u64::from(model.periods),
        units_sha256: model.units.as_ref().map(super::shard::units_sha256),
    });
    let manifest = Manifest {
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: option_env!("WHATIF_GIT_COMMIT")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        scenario_name: model.name.clone(),
        scenario_sha256: info.sha256.clone(),
        fit_lock_sha256: None,
        data_sha256: None,
        seed: model.seed,
        samples: facts.samples,
        backend: facts.exec.backend,
        device: facts.exec.device,
        kernel: facts.exec.kernel,
        block_size: c.layout.block_size,
        target_se: None,
        structure: structure.clone(),
        run: RunInfo {
            threads: facts.exec.threads,
            start_time: facts.start_time,
            wall_seconds: facts.wall_seconds,
            host: facts.host,
            unit_evaluations_per_second: structure
                .as_ref()
                .filter(|_| facts.wall_seconds > 0.0)
                .map(|s| s.unit_evaluations_per_world as f64 / facts.wall_seconds),
        },
    };
    Report {
        schema: SCHEMA_VERSION,
        manifest,
        worlds: s.worlds,
        effects: s.effects,
        checks: s.checks,
        guardrails: s.guardrails,
        numeric_faults,
        warnings: s.warnings,
    }
}
