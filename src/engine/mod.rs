//! The engine facade: compile a model for a set of worlds, run it on a
//! backend block by block, merge the block statistics in block order, and
//! build the report.

pub mod executor;
pub mod pipeline;
pub mod reduce;
pub mod replay;
pub mod shard;
pub mod summary;
pub mod sweep;
pub mod tails;
pub mod target;

pub use executor::Executor;
use std::time::Instant;
use whatif_ir::opt::PassOptions;
use whatif_lang::{CausalModel, WorldId};
use whatif_report::Report;

/// Which executor runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A real (non-software) GPU when one is present, else the CPU.
    Auto,
    Cpu,
    /// The fused per-program GPU kernel (any wgpu adapter, lavapipe too).
    Wgpu,
    /// The burn tensor path on wgpu (for comparison and tests).
    WgpuTensor,
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
    /// The GPU backend failed (no adapter, kernel compile, device lost), or
    /// the binary was built without the `gpu` feature.
    #[error("GPU backend: {0}")]
    Gpu(String),
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
    let mut c = pipeline::Compiled::new(model, opts)?;
    let exec = c.executor(opts)?;
    if charts {
        c.slots.chart_limit = CHART_SAMPLES.min(model.n_samples);
    }
    let mut acc = pipeline::Accum::new(&c);
    let total = c.layout.n_blocks();
    // Tail metrics take a second pass over the same blocks (exact radix
    // select in bounded memory); progress counts both passes.
    let tails = c.has_tails();
    let steps = if tails { 2 * total } else { total };
    pipeline::pass1(&c, &exec, 0..total, &mut acc, &mut |b| {
        progress(b + 1, steps)
    })?;
    if tails {
        tails::resolve(
            &exec,
            c.layout,
            0..total,
            &c.slots,
            &mut acc.merged,
            &mut |b| progress(total + b + 1, steps),
        )?;
    }
    let report = pipeline::build_report(
        model,
        info,
        &c,
        &acc.merged,
        &acc.faults,
        pipeline::RunFacts {
            exec: exec.info(),
            samples: model.n_samples,
            start_time,
            wall_seconds: started.elapsed().as_secs_f64(),
            host: hostname(),
        },
    );
    let charts = chart_data(model, &c, acc.chart_cols, charts);
    Ok(RunOutput { report, charts })
}

/// The chart samples of a run (`keep`: whether they were collected).
pub(crate) fn chart_data(
    model: &CausalModel,
    c: &pipeline::Compiled,
    chart_cols: Vec<Vec<f32>>,
    keep: bool,
) -> whatif_report::charts::ChartData {
    let samples_used = if keep {
        chart_cols
            .first()
            .map_or(CHART_SAMPLES.min(model.n_samples), |v| v.len() as u64)
    } else {
        0
    };
    let mut chart_cols = chart_cols;
    let fan_samples = chart_cols.split_off(c.slots.chart_cols.len().min(chart_cols.len()));
    let fans = (keep && !c.slots.fan_cols.is_empty()).then(|| fan_charts(model, c, &fan_samples));
    let series = c
        .slots
        .chart_cols
        .iter()
        .zip(chart_cols)
        .map(
            |(&(w, m, _), values)| whatif_report::charts::MetricSamples {
                metric: model.metrics[m].name.clone(),
                world: c.program.worlds[w].clone(),
                values,
            },
        )
        .collect();
    whatif_report::charts::ChartData {
        samples_used,
        series,
        sweeps: None,
        backtest: None,
        fans,
    }
}

/// One fan chart per node a metric reads: per world, the median over the
/// kept samples at each period, with the 5% and 95% sample quantiles.
fn fan_charts(
    model: &CausalModel,
    c: &pipeline::Compiled,
    samples: &[Vec<f32>],
) -> Vec<whatif_report::charts::LineChartData> {
    use whatif_report::charts::{LineChartData, LineSeries};
    let mut nodes: Vec<u32> = c.slots.fan_cols.iter().map(|f| f.1).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let quantile = |sorted: &[f64], q: f64| -> Option<f64> {
        // Type 7 (linear interpolation between order statistics).
        let h = q * (sorted.len().checked_sub(1)? as f64);
        let (i, f) = (h.floor() as usize, h - h.floor());
        Some(sorted[i] + f * (sorted[(i + 1).min(sorted.len() - 1)] - sorted[i]))
    };
    nodes
        .into_iter()
        .map(|node| {
            let name = &model.nodes[node as usize].name;
            let series = (0..c.program.worlds.len())
                .map(|w| {
                    let mut s = LineSeries {
                        label: c.program.worlds[w].clone(),
                        world: Some(c.program.worlds[w].clone()),
                        ..LineSeries::default()
                    };
                    for t in 0..model.periods {
                        let col = c
                            .slots
                            .fan_cols
                            .iter()
                            .position(|f| f.0 == w && f.1 == node && f.2 == t);
                        let mut v: Vec<f64> = col
                            .and_then(|k| samples.get(k))
                            .map(|xs| {
                                xs.iter()
                                    .filter(|x| x.is_finite())
                                    .map(|&x| f64::from(x))
                                    .collect()
                            })
                            .unwrap_or_default();
                        v.sort_by(f64::total_cmp);
                        s.x.push(f64::from(t));
                        s.y.push(quantile(&v, 0.5));
                        s.band.push(
                            quantile(&v, 0.05)
                                .zip(quantile(&v, 0.95))
                                .map(|(a, b)| [a, b]),
                        );
                    }
                    s
                })
                .collect();
            LineChartData {
                title: format!("{name} per period"),
                x_label: "period".into(),
                y_label: name.clone(),
                x_labels: Some((0..model.periods).map(|t| t.to_string()).collect()),
                series,
            }
        })
        .collect()
}

pub(crate) fn cpu_name() -> String {
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

pub(crate) fn hostname() -> String {
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
