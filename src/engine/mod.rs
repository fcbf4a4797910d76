//! The engine facade: compile a model for a set of worlds, run it on a
//! backend block by block, merge the block statistics in block order, and
//! build the report.

pub mod reduce;
pub mod summary;

use reduce::{CausalModelKinds, Merged, Reducer, Slots};
use std::time::Instant;
use whatif_ir::exec::{ExecOptions, FaultCount};
use whatif_ir::layout::BlockLayout;
use whatif_ir::opt::PassOptions;
use whatif_lang::{CausalModel, WorldId};
use whatif_report::{Manifest, NumericFault, Report, RunInfo, SCHEMA_VERSION};

/// Which executor runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A real GPU when present, else the CPU (only the CPU exists so far).
    Auto,
    Cpu,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// World names to evaluate (baseline is always added); empty: the model's.
    pub worlds: Vec<String>,
    pub threads: usize,
    pub chunk: usize,
    pub backend: Backend,
    pub passes: PassOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            worlds: vec![],
            threads: 0,
            chunk: 0,
            backend: Backend::Auto,
            passes: PassOptions::ALL,
        }
    }
}

/// Errors of a run that are the user's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown world `{name}`; the scenario evaluates: {available}")]
    UnknownWorld { name: String, available: String },
    #[error(transparent)]
    Exec(#[from] whatif_cpu::ExecError),
}

/// Identity of the scenario for the manifest.
#[derive(Debug, Clone)]
pub struct ScenarioInfo {
    pub sha256: String,
}

/// Resolve world names to model worlds (baseline first).
pub fn select_worlds(model: &CausalModel, names: &[String]) -> Result<Vec<WorldId>, RunError> {
    if names.is_empty() {
        return Ok((0..model.worlds.len() as u32).map(WorldId).collect());
    }
    let mut ids = vec![WorldId(0)];
    for n in names {
        let id = canonical_world(model, n).ok_or_else(|| RunError::UnknownWorld {
            name: n.clone(),
            available: model
                .worlds
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    // Worlds that checks compare are evaluated too, or the checks could not
    // be decided.
    for c in &model.checks {
        summary::check_worlds(&c.expect, &mut |w| {
            let id = WorldId(w as u32);
            if !ids.contains(&id) {
                ids.push(id);
            }
        });
    }
    Ok(ids)
}

/// Find a world by name, accepting its edits in any order (`a+b` = `b+a`).
fn canonical_world(model: &CausalModel, name: &str) -> Option<WorldId> {
    let mut want: Vec<&str> = name.split('+').map(str::trim).collect();
    want.sort_unstable();
    model
        .worlds
        .iter()
        .position(|w| {
            let mut have: Vec<&str> = w.name.split('+').collect();
            have.sort_unstable();
            have == want
        })
        .map(|i| WorldId(i as u32))
}

/// Samples per world and metric kept for the charts of HTML/Markdown reports.
pub const CHART_SAMPLES: u64 = 100_000;

/// A run's results: the report and the samples its charts draw.
#[derive(Debug)]
pub struct RunOutput {
    pub report: Report,
    pub charts: whatif_report::charts::ChartData,
}

/// Run `model` and build its report. `progress(done, total)` is called
/// after each block, in block order.
pub fn run(
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, RunError> {
    run_with_charts(model, info, opts, false, progress).map(|o| o.report)
}

/// [`run`], also keeping the first [`CHART_SAMPLES`] samples of every
/// metric's variable in every world when `charts` is set.
pub fn run_with_charts(
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    charts: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    let start_time = now_rfc3339();
    let worlds = select_worlds(model, &opts.worlds)?;
    let program = whatif_ir::compile(model, &worlds, opts.passes);
    let exec = whatif_cpu::CpuExecutor::new(
        &program,
        ExecOptions {
            threads: opts.threads,
            chunk: opts.chunk,
        },
    )?;
    let layout = BlockLayout::for_samples(model.n_samples);
    let mut slots = Slots::new(model, &program);
    if charts {
        slots.chart_limit = CHART_SAMPLES.min(model.n_samples);
    }
    let mut chart_cols: Vec<Vec<f32>> = vec![vec![]; slots.chart_cols.len()];
    let kinds = CausalModelKinds::new(model, &slots);
    let reducer = Reducer {
        slots: &slots,
        kinds: &kinds,
    };
    let mut merged = Merged::new(&slots, model.n_samples);
    let mut faults = vec![FaultCount::default(); program.probes.len()];
    let total = layout.n_blocks();
    exec.run(layout, 0..total, &reducer, |r| {
        let (n, fins, chart) = r.partial;
        merged.push(n, fins);
        if let Some(chart) = chart {
            for (dst, c) in chart_cols.iter_mut().zip(chart) {
                dst.extend(c);
            }
        }
        for (f, b) in faults.iter_mut().zip(r.faults) {
            f.merge(b);
        }
        progress(r.block + 1, total);
    });
    let world_ids: Vec<usize> = worlds.iter().map(|w| w.index()).collect();
    let s = summary::summarise(model, &slots, &merged, &world_ids);
    let numeric_faults = program
        .probes
        .iter()
        .zip(&faults)
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
        samples: model.n_samples,
        backend: "cpu".to_string(),
        device: cpu_name(),
        kernel: whatif_cpu::variant().name().to_string(),
        block_size: layout.block_size,
        run: RunInfo {
            threads: exec.threads() as u64,
            start_time,
            wall_seconds: started.elapsed().as_secs_f64(),
            host: hostname(),
        },
    };
    let report = Report {
        schema: SCHEMA_VERSION,
        manifest,
        worlds: s.worlds,
        effects: s.effects,
        checks: s.checks,
        guardrails: s.guardrails,
        numeric_faults,
        warnings: s.warnings,
    };
    let series = slots
        .chart_cols
        .iter()
        .zip(chart_cols)
        .map(
            |(&(w, m, _), values)| whatif_report::charts::MetricSamples {
                metric: model.metrics[m].name.clone(),
                world: program.worlds[w].clone(),
                values,
            },
        )
        .collect();
    let charts = whatif_report::charts::ChartData {
        samples_used: if charts {
            CHART_SAMPLES.min(model.n_samples)
        } else {
            0
        },
        series,
        sweeps: None,
        backtest: None,
    };
    Ok(RunOutput { report, charts })
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The current UTC time as RFC 3339 (seconds precision).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
