//! Counterfactual backtests: abduction → action → prediction, per observed
//! row, streamed in chunks.
//!
//! For each row: recover each mechanism's noise from the observed values
//! ([`crate::abduct`]); then, for each of `draws` posterior draws (noise
//! that is only interval-identified is sampled from its truncated
//! distribution; sites the policy adds are drawn fresh), evaluate every
//! node under the policy world's mechanisms and params. Aggregates per
//! period and overall keep one running sum per draw, so the report gives
//! the posterior interval of each counterfactual mean (5%–95% over draws)
//! and, separately, the Monte Carlo standard error of its point estimate
//! (sd over draws / √draws). The scenario's `[metrics]` are computed the
//! same way: on the observed rows, and per draw over the counterfactual
//! rows, whose mean over draws is the point estimate. Tail metrics
//! (quantile, value at risk, expected shortfall) come from a mergeable
//! relative-accuracy sketch per draw ([`crate::sketch`]: within a relative
//! 1e-3 of the exact order statistic), `corr` from streaming co-moments.
//! Nothing grows with the number of rows except the capped sample kept for
//! the residual KS tests.
//!
//! Everything runs on the CPU in f64 (the reference evaluator in
//! [`crate::eval`]), whatever backend `run` would use.

use std::collections::BTreeMap;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};
use whatif_lang::{
    CausalModel, CheckExpr, CheckExprKind, Dist, ExprKind, Mechanism, MetricKind, NodeId, SiteId,
    WorldId,
};
use whatif_stats::CoMomentsSummary;
use whatif_stats::special::{ks_pvalue, ks_statistic, normal_ppf};

use crate::DataError;
use crate::abduct::{self, Plan, Recovered};
use crate::eval::{Env, binop, call, std_cdf, std_ppf, truncated};
use crate::history::{LagView, Lags};
use crate::replay::{ReferenceReplayer, ReplayLayout, Replayer, metric_arg_node};
use crate::sketch::QuantileSketch;
use crate::table::{Chunk, DEFAULT_CHUNK_ROWS, DataSource, require_observed};

/// The report's schema version (`whatif schema backtest`).
pub const SCHEMA_VERSION: u32 = 1;
/// Level of every interval in the report.
pub const INTERVAL_LEVEL: f64 = 0.90;
/// Rows kept per node for the residual KS tests.
pub const KS_MAX_ROWS: usize = 100_000;
/// A noise correlation is flagged when |r|·√n exceeds this (a two-sided
/// p ≈ 6e-5 under independence, so a clean model rarely trips it).
pub const CORR_FLAG_Z: f64 = 4.0;
/// A residual KS test is flagged below this p-value.
pub const KS_FLAG_P: f64 = 0.001;

/// The most posterior draws per row: the per-draw state (a running sum
/// per reported node and period, a sketch per tail metric) is kept for
/// every draw, and 10,000 draws already put the Monte Carlo error of an
/// interval's end far below its width.
pub const MAX_DRAWS: u32 = 10_000;

/// Lanes per replay batch by default: 2^18 lanes keep a batch's inputs
/// and outputs to tens of MiB and a GPU busy.
pub const DEFAULT_BATCH_LANES: usize = 1 << 18;

/// Separates the latent posterior draws from the other uniforms of a row.
const LATENT_SALT: u64 = 0x4c41_5445_4e54_0001;

/// What the caller decides.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The policy world (an intervention, stress or combination).
    pub policy: String,
    /// Posterior draws per row (used where noise is not point-identified).
    pub draws: u32,
    pub seed: u64,
    pub chunk_rows: usize,
    /// Lanes (rows × draws) handed to the replayer at once; bounds the
    /// batch's memory.
    pub batch_lanes: usize,
    /// Threads that abduct rows in parallel (0: one per core). Results do
    /// not depend on it.
    pub threads: usize,
}

impl Default for BacktestOptions {
    fn default() -> Self {
        BacktestOptions {
            policy: String::new(),
            draws: 200,
            seed: 0,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            batch_lanes: DEFAULT_BATCH_LANES,
            threads: 0,
        }
    }
}

/// Where the per-row counterfactuals go (`--rows-out`).
pub trait RowSink {
    /// Called once with the column names before any row.
    fn header(&mut self, columns: &[String]) -> Result<(), DataError>;
    /// One row: position in the file, unit, period, then the numbers.
    fn row(
        &mut self,
        position: u64,
        unit: &str,
        period: &str,
        values: &[f64],
    ) -> Result<(), DataError>;
    /// After the last row.
    fn finish(&mut self) -> Result<(), DataError>;
}

/// Reproducibility facts, filled by the caller (the root crate knows the
/// engine version, the clock and the hashes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestManifest {
    pub engine_version: String,
    pub scenario_name: String,
    pub scenario_sha256: String,
    pub data_path: String,
    pub data_sha256: String,
    pub fit_lock_sha256: Option<String>,
    pub rows: u64,
    pub seed: u64,
    pub draws: u32,
    /// Where the replay ran: `cpu-f64` (the reference evaluator), or the
    /// executor of `whatif run` with its kernel and device, e.g.
    /// `cpu (avx2-fma, <CPU model>)` or `wgpu (wgpu-fused, <adapter>)`.
    pub backend: String,
    pub start_time: String,
    pub wall_seconds: f64,
}

/// One node's observed vs counterfactual mean over a set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeComparison {
    pub node: String,
    pub observed: f64,
    pub counterfactual: f64,
    pub difference: f64,
    /// 90% posterior interval of the counterfactual mean (over draws).
    pub counterfactual_lo: f64,
    pub counterfactual_hi: f64,
    pub difference_lo: f64,
    pub difference_hi: f64,
    /// Monte Carlo standard error of `counterfactual` (sd over draws / √draws).
    pub mc_se: f64,
}

/// Results for one period (or overall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodResult {
    pub period: String,
    pub rows: u64,
    pub nodes: Vec<NodeComparison>,
}

/// How a node's noise was recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbductionInfo {
    pub node: String,
    /// `deterministic`, or the noise's distribution.
    pub noise: String,
    /// Rows where the noise was a point / an interval.
    pub point_rows: u64,
    pub interval_rows: u64,
}

/// A scenario metric on the observed rows and under the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricResult {
    pub name: String,
    pub observed: Option<f64>,
    pub counterfactual: Option<f64>,
    pub difference: Option<f64>,
    pub counterfactual_lo: Option<f64>,
    pub counterfactual_hi: Option<f64>,
    pub mc_se: Option<f64>,
    /// A remark on the values; every metric kind is computed, so this is
    /// null today (kept for schema compatibility).
    pub note: Option<String>,
}

/// A scenario check evaluated on backtest metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    pub name: String,
    pub expect: String,
    /// `pass`, `fail` or `skipped`.
    pub status: String,
    pub reason: Option<String>,
}

/// A guardrail evaluated on the per-row counterfactuals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailResult {
    pub node: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_share: f64,
    /// Share of (row, draw) pairs whose counterfactual breaks a bound.
    pub share: f64,
    pub passed: bool,
}

/// The abducted noise of one node against its declared distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualCheck {
    pub node: String,
    pub dist: String,
    pub n: u64,
    /// KS statistic of the probability integral transform against U(0, 1).
    pub ks_statistic: f64,
    pub ks_pvalue: f64,
    pub flagged: bool,
}

/// The correlation of two nodes' abducted noises (normal scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseCorrelation {
    pub a: String,
    pub b: String,
    pub n: u64,
    pub r: f64,
    pub flagged: bool,
}

/// Diagnostics of the model itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseDiagnostics {
    pub residuals: Vec<ResidualCheck>,
    pub correlations: Vec<NoiseCorrelation>,
}

/// One calibration bin of a binary node's held-out predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationBin {
    pub lo: f64,
    pub hi: f64,
    pub n: u64,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Out-of-sample checks of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutNode {
    pub node: String,
    pub rows: u64,
    /// Mean of observed − predicted mean.
    pub mean_error: f64,
    /// Share of rows inside the 90% predictive interval (continuous nodes).
    pub coverage90: Option<f64>,
    /// Predicted probability vs observed rate (binary nodes).
    pub calibration: Option<Vec<CalibrationBin>>,
}

/// `--holdout`: fit on the other periods, predict the held-out ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutResult {
    pub periods: Vec<String>,
    pub fit_rows: u64,
    pub rows: u64,
    pub nodes: Vec<HoldoutNode>,
}

/// The backtest report (`--format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestReport {
    pub schema: u32,
    pub manifest: BacktestManifest,
    pub policy: String,
    pub interval_level: f64,
    /// Nodes the policy can change, in the policy world's order.
    pub nodes: Vec<String>,
    pub abduction: Vec<AbductionInfo>,
    /// Per period, sorted by period (numerically when every period is a
    /// number); empty without a period column.
    pub periods: Vec<PeriodResult>,
    pub overall: PeriodResult,
    pub metrics: Vec<MetricResult>,
    pub checks: Vec<CheckResult>,
    pub guardrails: Vec<GuardrailResult>,
    pub noise: NoiseDiagnostics,
    pub holdout: Option<HoldoutResult>,
    pub warnings: Vec<String>,
}

impl BacktestReport {
    /// Whether every evaluated check and guardrail passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != "fail") && self.guardrails.iter().all(|g| g.passed)
    }
}

/// A uniform in (0, 1) from (seed, site, row, draw): splitmix64 over the
/// combined key. Stable across chunk sizes (it depends on the row's index).
pub fn uniform(seed: u64, site: u32, row: u64, draw: u32) -> f64 {
    let mut z = seed ^ 0x9e37_79b9_7f4a_7c15;
    for w in [u64::from(site), row, u64::from(draw)] {
        z = mix(z ^ mix(w.wrapping_add(0x632b_e59b_d9b4_e019)));
    }
    ((z >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Nodes whose value can differ from the observed one in `world`: edited
/// nodes, nodes reading an overridden param, and their descendants, in
/// the same period or later ones through `lag` (in the world's order).
pub fn changed_nodes(model: &CausalModel, world: WorldId) -> Vec<NodeId> {
    let w = &model.worlds[world.index()];
    let mut changed = vec![false; model.nodes.len()];
    let overridden: Vec<usize> = w
        .edits
        .iter()
        .flat_map(|e| {
            model.edits[e.index()]
                .params
                .iter()
                .map(|o| o.param.index())
        })
        .collect();
    // Lags can point forward in the order (a node reading its own or a
    // later node's past), so sweep until nothing changes.
    loop {
        let mut grew = false;
        for &n in &w.topo_order {
            if changed[n.index()] {
                continue;
            }
            let now = match model.mechanism(world, n) {
                Mechanism::Edited { .. } => true,
                Mechanism::Natural(expr) => {
                    let mut reads_changed = crate::eval::nodes_of(expr)
                        .iter()
                        .any(|p| changed[p.index()]);
                    expr.walk(&mut |x| {
                        if let ExprKind::Lag { node, .. } = &x.kind {
                            reads_changed |= changed[node.index()];
                        }
                    });
                    reads_changed
                        || crate::eval::params_of(expr)
                            .iter()
                            .any(|p| overridden.contains(p))
                }
            };
            if now {
                changed[n.index()] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    w.topo_order
        .iter()
        .copied()
        .filter(|n| changed[n.index()])
        .collect()
}

/// The mean of draws; exactly the common value when all draws agree (a
/// point-identified row), so deterministic counterfactuals print exactly.
fn mean_of(v: &[f64]) -> f64 {
    if v.iter().all(|x| *x == v[0]) {
        return v[0];
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    whatif_stats::tail::quantile(sorted, q)
}

/// Per-draw running sums for one set of rows.
#[derive(Debug, Clone)]
struct Acc {
    rows: u64,
    obs: Vec<f64>,
    /// `cf[node][draw]`
    cf: Vec<Vec<f64>>,
}

impl Acc {
    fn new(n_nodes: usize, k: usize) -> Acc {
        Acc {
            rows: 0,
            obs: vec![0.0; n_nodes],
            cf: vec![vec![0.0; k]; n_nodes],
        }
    }

    fn result(&self, period: &str, names: &[String]) -> PeriodResult {
        let n = self.rows.max(1) as f64;
        let lo_q = (1.0 - INTERVAL_LEVEL) / 2.0;
        let nodes = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let observed = self.obs[j] / n;
                let mut means: Vec<f64> = self.cf[j].iter().map(|s| s / n).collect();
                let k = means.len() as f64;
                let cf = mean_of(&means);
                let var = if means.len() > 1 {
                    means.iter().map(|m| (m - cf) * (m - cf)).sum::<f64>() / (k - 1.0)
                } else {
                    0.0
                };
                means.sort_by(f64::total_cmp);
                let (lo, hi) = (quantile(&means, lo_q), quantile(&means, 1.0 - lo_q));
                NodeComparison {
                    node: name.clone(),
                    observed,
                    counterfactual: cf,
                    difference: cf - observed,
                    counterfactual_lo: lo,
                    counterfactual_hi: hi,
                    difference_lo: lo - observed,
                    difference_hi: hi - observed,
                    mc_se: (var / k).sqrt(),
                }
            })
            .collect();
        PeriodResult {
            period: period.to_string(),
            rows: self.rows,
            nodes,
        }
    }
}

/// Streaming state of one metric: observed once, counterfactual per draw.
///
/// Rows whose counterfactual is the same in every draw (point-identified,
/// no fresh noise) go to `shared` once instead of into each draw's state;
/// draw d's metric is then computed over `shared` merged with `cf[d]`.
/// Memory is per draw, never per row: two running sums, a co-moment summary
/// or a [`QuantileSketch`] (tail metrics; accuracy in [`crate::sketch`]).
#[derive(Debug, Clone)]
enum MetricAcc {
    /// mean, prob, var, sd: Σx and Σx².
    Sums { obs: [f64; 2], cf: Vec<[f64; 2]> },
    /// quantile, value_at_risk, expected_shortfall.
    Tail {
        obs: QuantileSketch,
        shared: QuantileSketch,
        cf: Vec<QuantileSketch>,
    },
    /// corr: co-moments of the two expressions.
    Co {
        obs: CoMomentsSummary,
        shared: CoMomentsSummary,
        cf: Vec<CoMomentsSummary>,
    },
}

/// Adds the pair (x, y) to a co-moment summary (a merge with one pair:
/// Welford's update).
fn push_pair(c: &mut CoMomentsSummary, x: f64, y: f64) {
    c.merge(&CoMomentsSummary {
        n: 1,
        mean_x: x,
        mean_y: y,
        ..CoMomentsSummary::default()
    });
}

impl MetricAcc {
    fn new(kind: MetricKind, k: usize) -> MetricAcc {
        match kind {
            MetricKind::Mean | MetricKind::Prob | MetricKind::Var | MetricKind::Sd => {
                MetricAcc::Sums {
                    obs: [0.0; 2],
                    cf: vec![[0.0; 2]; k],
                }
            }
            MetricKind::Quantile(_)
            | MetricKind::ValueAtRisk(_)
            | MetricKind::ExpectedShortfall(_) => MetricAcc::Tail {
                obs: QuantileSketch::new(),
                shared: QuantileSketch::new(),
                cf: vec![QuantileSketch::new(); k],
            },
            MetricKind::Corr => MetricAcc::Co {
                obs: CoMomentsSummary::default(),
                shared: CoMomentsSummary::default(),
                cf: vec![CoMomentsSummary::default(); k],
            },
        }
    }

    /// One observed row's metric arguments (`y` is read by `corr` only).
    fn push_obs(&mut self, x: f64, y: f64) {
        match self {
            MetricAcc::Sums { obs, .. } => {
                obs[0] += x;
                obs[1] += x * x;
            }
            MetricAcc::Tail { obs, .. } => obs.add(x),
            MetricAcc::Co { obs, .. } => push_pair(obs, x, y),
        }
    }

    /// One row's counterfactual arguments in draw `draw`, or in every draw
    /// when `draw` is `None`.
    fn push_cf(&mut self, draw: Option<usize>, x: f64, y: f64) {
        match (self, draw) {
            (MetricAcc::Sums { cf, .. }, Some(d)) => {
                cf[d][0] += x;
                cf[d][1] += x * x;
            }
            (MetricAcc::Sums { cf, .. }, None) => {
                for s in cf {
                    s[0] += x;
                    s[1] += x * x;
                }
            }
            (MetricAcc::Tail { cf, .. }, Some(d)) => cf[d].add(x),
            (MetricAcc::Tail { shared, .. }, None) => shared.add(x),
            (MetricAcc::Co { cf, .. }, Some(d)) => push_pair(&mut cf[d], x, y),
            (MetricAcc::Co { shared, .. }, None) => push_pair(shared, x, y),
        }
    }

    /// The observed value and the value in each draw, over `n` rows.
    fn values(&self, kind: MetricKind, n: f64) -> (f64, Vec<f64>) {
        match self {
            MetricAcc::Sums { obs, cf } => (
                metric_value(kind, *obs, n),
                cf.iter().map(|s| metric_value(kind, *s, n)).collect(),
            ),
            MetricAcc::Tail { obs, shared, cf } => {
                let tail = |s: &QuantileSketch| match kind {
                    MetricKind::Quantile(q) | MetricKind::ValueAtRisk(q) => s.quantile(q),
                    MetricKind::ExpectedShortfall(q) => s.expected_shortfall(q),
                    _ => unreachable!("invariant: tail state for a tail metric"),
                };
                let per = cf
                    .iter()
                    .map(|d| {
                        let mut all = shared.clone();
                        all.merge(d);
                        tail(&all)
                    })
                    .collect();
                (tail(obs), per)
            }
            MetricAcc::Co { obs, shared, cf } => {
                let per = cf
                    .iter()
                    .map(|d| {
                        let mut all = *shared;
                        all.merge(d);
                        all.correlation()
                    })
                    .collect();
                (obs.correlation(), per)
            }
        }
    }
}

fn metric_value(kind: MetricKind, s: [f64; 2], n: f64) -> f64 {
    let mean = s[0] / n;
    let var = (s[1] / n - mean * mean).max(0.0) * n / (n - 1.0).max(1.0);
    match kind {
        MetricKind::Var => var,
        MetricKind::Sd => var.sqrt(),
        _ => mean,
    }
}

/// Pairwise co-moment sums of normal scores.
#[derive(Debug, Clone, Default)]
struct Pair {
    n: u64,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

/// Runs the backtest with the f64 reference replay
/// ([`ReferenceReplayer`]). `manifest` is copied into the report with
/// `rows` set.
pub fn backtest(
    model: &CausalModel,
    src: &DataSource,
    opts: &BacktestOptions,
    manifest: BacktestManifest,
    sink: Option<&mut dyn RowSink>,
) -> Result<BacktestReport, DataError> {
    let policy = policy_world(model, &opts.policy)?;
    let mut r = ReferenceReplayer::new(model, policy, replay_layout(model, policy));
    backtest_on(model, src, opts, manifest, sink, &mut r)
}

/// The replay layout of `policy` ([`ReplayLayout::new`] over
/// [`changed_nodes`]): what a [`Replayer`] for [`backtest_on`] is built
/// from.
pub fn replay_layout(model: &CausalModel, policy: WorldId) -> ReplayLayout {
    ReplayLayout::new(model, policy, &changed_nodes(model, policy))
}

/// Runs the backtest, the prediction step on `replayer` (built from
/// [`replay_layout`] of the same model and policy). Abduction,
/// aggregation and every statistic stay in f64 here; the manifest's
/// `backend` is the replayer's.
pub fn backtest_on(
    model: &CausalModel,
    src: &DataSource,
    opts: &BacktestOptions,
    manifest: BacktestManifest,
    mut sink: Option<&mut dyn RowSink>,
    replayer: &mut dyn Replayer,
) -> Result<BacktestReport, DataError> {
    let policy = policy_world(model, &opts.policy)?;
    if opts.draws == 0 || opts.draws > MAX_DRAWS {
        return Err(DataError::Usage(format!(
            "--draws must be between 1 and {MAX_DRAWS} (got {})",
            opts.draws
        )));
    }
    let plans = abduct::plan(model)?;
    let k = opts.draws.max(1) as usize;
    // Latent nodes have no observed value to compare with.
    let reported: Vec<NodeId> = changed_nodes(model, policy)
        .into_iter()
        .filter(|n| !model.node(*n).latent)
        .collect();
    let names: Vec<String> = reported
        .iter()
        .map(|n| model.node(*n).name.clone())
        .collect();
    let base_params: Vec<f64> = (0..model.params.len())
        .map(|p| model.param_value(WorldId(0), whatif_lang::ParamId(p as u32)))
        .collect();
    let policy_params: Vec<f64> = (0..model.params.len())
        .map(|p| model.param_value(policy, whatif_lang::ParamId(p as u32)))
        .collect();
    if let Some(p) = model.params.iter().find(|p| p.value.is_nan()) {
        return Err(DataError::Usage(format!(
            "param `{}` has no value (fit it first)",
            p.name
        )));
    }
    // Site → (node, dist) for the recovered noises.
    let mut site_node: BTreeMap<SiteId, (usize, Dist)> = BTreeMap::new();
    for (i, p) in plans.iter().enumerate() {
        if let Some((site, dist)) = p.site() {
            site_node.insert(site, (i, dist));
        }
    }
    let has_latents = plans.iter().any(|p| matches!(p, Plan::Latent { .. }));
    let noise_nodes: Vec<usize> = site_node.values().map(|(n, _)| *n).collect();

    let mut overall = Acc::new(names.len(), k);
    let mut periods: BTreeMap<String, Acc> = BTreeMap::new();
    let mut metrics: Vec<MetricAcc> = model
        .metrics
        .iter()
        .map(|m| MetricAcc::new(m.kind, k))
        .collect();
    let guards: Vec<usize> = (0..model.guardrails.len())
        .filter(|&g| model.guardrails[g].worlds.contains(&policy))
        .collect();
    let mut guard_viol = vec![0u64; guards.len()];
    let abd: Vec<(u64, u64)> = vec![(0, 0); model.nodes.len()];
    let pits: Vec<Vec<f64>> = vec![Vec::new(); model.nodes.len()];
    let pairs: Vec<Pair> = vec![Pair::default(); noise_nodes.len() * noise_nodes.len()];
    let det_mismatch: Vec<(u64, f64)> = vec![(0, 0.0); model.nodes.len()];

    if let Some(s) = sink.as_deref_mut() {
        let mut cols = vec!["row".to_string(), "unit".into(), "period".into()];
        for n in &names {
            cols.push(format!("{n}_observed"));
            cols.push(format!("{n}_counterfactual"));
            cols.push(format!("{n}_lo"));
            cols.push(format!("{n}_hi"));
        }
        s.header(&cols)?;
    }

    // Slot 0: observed values; slot 1 + d: draw d's counterfactual.
    let mut lags = Lags::new(model, src, 1 + k)?;
    let lagged: Vec<usize> = lags
        .as_ref()
        .map(|l| l.nodes().iter().map(|n| n.index()).collect())
        .unwrap_or_default();
    let layout = replay_layout(model, policy);
    // Per replayed site: its hash (the key of its fresh uniforms), and the
    // distribution its recovered interval is in (the abducted node's).
    let site_hash: Vec<u32> = layout
        .sites
        .iter()
        .map(|(s, _)| model.sites[s.index()].hash)
        .collect();
    let site_dist: Vec<Dist> = layout
        .sites
        .iter()
        .map(|(s, d)| site_node.get(s).map_or(*d, |x| x.1))
        .collect();
    let lo_q = (1.0 - INTERVAL_LEVEL) / 2.0;
    let ctx = Ctx {
        model,
        k,
        reported: &reported,
        lagged: &lagged,
        guards: &guards,
        layout: &layout,
        lo_q,
        names: &names,
    };
    let mut st = Post {
        overall: &mut overall,
        periods: &mut periods,
        metrics: &mut metrics,
        guard_viol: &mut guard_viol,
        sink: sink.as_deref_mut(),
        replayer,
        batch: Batch {
            cols: vec![Vec::new(); layout.columns()],
            rows: Vec::new(),
            lanes: 0,
            out: Vec::new(),
            units: std::collections::HashSet::new(),
        },
    };
    let batch_lanes = opts.batch_lanes.max(1);

    let prep = Prep {
        model,
        src,
        plans: &plans,
        base_params: &base_params,
        policy_params: &policy_params,
        site_node: &site_node,
        has_latents,
        layout: &layout,
        site_hash: &site_hash,
        site_dist: &site_dist,
        seed: opts.seed,
        k,
        policy,
    };
    let mut diag = Diag {
        abd,
        det_mismatch,
        pits,
        pairs,
        site_n: noise_nodes.clone(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| DataError::Usage(format!("cannot start {} threads: {e}", opts.threads)))?;

    let rows = src.for_each_chunk(opts.chunk_rows, |chunk: &Chunk| {
        require_observed(src, model, chunk)?;
        match lags.as_mut() {
            None => {
                // Rows are independent: abduct a group of them in
                // parallel, then take them in file order (so every sum
                // adds in the same order whatever the thread count).
                let group = (batch_lanes / k).clamp(1, 4096);
                let mut i0 = 0;
                while i0 < chunk.n_rows {
                    let i1 = (i0 + group).min(chunk.n_rows);
                    let prepared: Vec<Result<Prepared, DataError>> = pool.install(|| {
                        (i0..i1)
                            .into_par_iter()
                            .map(|i| prepare_row(&prep, chunk, i, LagView::NONE, 0))
                            .collect()
                    });
                    for r in prepared {
                        if st.take_row(&mut diag, r?) >= batch_lanes {
                            st.flush(&ctx, chunk, None)?;
                        }
                    }
                    i0 = i1;
                }
            }
            Some(l) => {
                for i in 0..chunk.n_rows {
                    // A row's lags read its unit's earlier
                    // counterfactuals, so a unit appears at most once
                    // per batch.
                    let unit = chunk.unit.as_ref().map_or("", |u| u[i].as_str());
                    if st.batch.units.contains(unit) {
                        st.flush(&ctx, chunk, Some(&mut *l))?;
                    }
                    let at = l.row(chunk, i)?;
                    let r = prepare_row(&prep, chunk, i, at.view, at.period)?;
                    st.batch.units.insert(unit.to_string());
                    if st.take_row(&mut diag, r) >= batch_lanes {
                        st.flush(&ctx, chunk, Some(&mut *l))?;
                    }
                }
            }
        }
        // Rows of a chunk are finished before the next chunk is read.
        st.flush(&ctx, chunk, lags.as_mut())
    })?;
    let backend = st.replayer.backend();
    drop(st);
    let Diag {
        abd,
        det_mismatch,
        mut pits,
        pairs,
        ..
    } = diag;
    if let Some(s) = sink {
        s.finish()?;
    }

    // Metrics, checks, guardrails.
    let n = rows as f64;
    let metric_results: Vec<MetricResult> = model
        .metrics
        .iter()
        .zip(&metrics)
        .map(|(met, acc)| {
            let mut on_paths = false;
            for a in &met.args {
                a.walk(&mut |x| on_paths |= matches!(x.kind, ExprKind::Path { .. }));
            }
            if on_paths {
                // A row is one unit in one period, not a simulated path.
                return MetricResult {
                    name: met.name.clone(),
                    observed: None,
                    counterfactual: None,
                    difference: None,
                    counterfactual_lo: None,
                    counterfactual_hi: None,
                    mc_se: None,
                    note: Some(
                        "`at`, `final`, `path_max` and `path_sum` summarise simulated paths; a backtest's rows are units in periods (see the per-period table)".into(),
                    ),
                };
            }
            let (o, mut per) = acc.values(met.kind, n);
            let kk = per.len() as f64;
            let c = mean_of(&per);
            let var = if per.len() > 1 {
                per.iter().map(|m| (m - c) * (m - c)).sum::<f64>() / (kk - 1.0)
            } else {
                0.0
            };
            per.sort_by(f64::total_cmp);
            MetricResult {
                name: met.name.clone(),
                observed: Some(o),
                counterfactual: Some(c),
                difference: Some(c - o),
                counterfactual_lo: Some(quantile(&per, lo_q)),
                counterfactual_hi: Some(quantile(&per, 1.0 - lo_q)),
                mc_se: Some((var / kk).sqrt()),
                note: None,
            }
        })
        .collect();
    let checks = model
        .checks
        .iter()
        .map(|c| {
            let v = eval_check(&c.expect, model, policy, &metric_results);
            let (status, reason) = match v {
                Ok(x) if x != 0.0 => ("pass", None),
                Ok(_) => ("fail", None),
                Err(why) => ("skipped", Some(why)),
            };
            CheckResult {
                name: c.name.clone(),
                expect: c.expect_source.clone(),
                status: status.into(),
                reason,
            }
        })
        .collect();
    let total = (rows as f64) * k as f64;
    let guardrails = guards
        .iter()
        .zip(&guard_viol)
        .map(|(&g, &v)| {
            let gr = &model.guardrails[g];
            let share = v as f64 / total;
            GuardrailResult {
                node: model.node(gr.node).name.clone(),
                min: gr.min,
                max: gr.max,
                max_share: gr.max_share,
                share,
                passed: share <= gr.max_share,
            }
        })
        .collect();

    // Model diagnostics.
    let mut residuals = Vec::new();
    for &(nid, dist) in site_node.values() {
        let mut v = std::mem::take(&mut pits[nid]);
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        let d = ks_statistic(&v, |x| x.clamp(0.0, 1.0));
        let p = ks_pvalue(d, v.len());
        residuals.push(ResidualCheck {
            node: model.nodes[nid].name.clone(),
            dist: dist.name().into(),
            n: v.len() as u64,
            ks_statistic: d,
            ks_pvalue: p,
            flagged: p < KS_FLAG_P,
        });
    }
    let nn: Vec<usize> = site_node.values().map(|x| x.0).collect();
    let m = nn.len();
    let mut correlations = Vec::new();
    for a in 0..m {
        for b in a + 1..m {
            let p = &pairs[a * m + b];
            let c = p.n as f64;
            let cov = p.sxy / c - (p.sx / c) * (p.sy / c);
            let va = p.sxx / c - (p.sx / c).powi(2);
            let vb = p.syy / c - (p.sy / c).powi(2);
            let r = if va > 0.0 && vb > 0.0 {
                cov / (va * vb).sqrt()
            } else {
                0.0
            };
            correlations.push(NoiseCorrelation {
                a: model.nodes[nn[a]].name.clone(),
                b: model.nodes[nn[b]].name.clone(),
                n: p.n,
                r,
                flagged: r.abs() * c.sqrt() > CORR_FLAG_Z,
            });
        }
    }
    let mut warnings = Vec::new();
    for (nid, (count, maxd)) in det_mismatch.iter().enumerate() {
        if *count > 0 {
            warnings.push(format!(
                "node `{}`: {count} rows differ from its deterministic mechanism (largest difference {maxd:.3e})",
                model.nodes[nid].name
            ));
        }
    }
    for c in &correlations {
        if c.flagged {
            warnings.push(format!(
                "the abducted noises of `{}` and `{}` correlate (r = {:.3}, n = {}): a sign of confounding the DAG leaves out",
                c.a, c.b, c.r, c.n
            ));
        }
    }
    for r in &residuals {
        if r.flagged {
            warnings.push(format!(
                "the abducted noise of `{}` does not look {} (KS p = {:.2e})",
                r.node, r.dist, r.ks_pvalue
            ));
        }
    }
    let abduction = plans
        .iter()
        .enumerate()
        .map(|(i, p)| AbductionInfo {
            node: model.nodes[i].name.clone(),
            noise: match p {
                Plan::Deterministic => "deterministic".into(),
                Plan::Noise { dist, .. } => dist.name().into(),
                Plan::Latent { .. } => "normal (latent: exact gaussian posterior)".into(),
                Plan::LatentChild { .. } => "normal (given the latent draw)".into(),
            },
            point_rows: abd[i].0,
            interval_rows: abd[i].1,
        })
        .collect();
    let mut manifest = manifest;
    manifest.rows = rows;
    manifest.backend = backend;
    manifest.draws = k as u32;
    manifest.seed = opts.seed;
    Ok(BacktestReport {
        schema: SCHEMA_VERSION,
        manifest,
        policy: model.worlds[policy.index()].name.clone(),
        interval_level: INTERVAL_LEVEL,
        periods: {
            // Period numbers sort as numbers (2 before 10); labels as text.
            let mut keys: Vec<&String> = periods.keys().collect();
            if keys.iter().all(|k| k.parse::<f64>().is_ok()) {
                keys.sort_by(|a, b| {
                    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
                    num(a).total_cmp(&num(b))
                });
            }
            keys.into_iter()
                .map(|p| periods[p].result(p, &names))
                .collect()
        },
        overall: overall.result("overall", &names),
        nodes: names,
        abduction,
        metrics: metric_results,
        checks,
        guardrails,
        noise: NoiseDiagnostics {
            residuals,
            correlations,
        },
        holdout: None,
        warnings,
    })
}

/// The policy world named `name`; baseline is refused (it changes nothing).
fn policy_world(model: &CausalModel, name: &str) -> Result<WorldId, DataError> {
    let policy = model.world_id(name).ok_or_else(|| {
        let names: Vec<&str> = model
            .worlds
            .iter()
            .skip(1)
            .map(|w| w.name.as_str())
            .collect();
        DataError::Usage(format!(
            "unknown policy `{}`; the scenario's worlds are: {}",
            name,
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    if policy.index() == 0 {
        return Err(DataError::Usage(
            "the policy must change something: `baseline` replays the data as observed".into(),
        ));
    }
    Ok(policy)
}

/// What preparing a row reads; shared by the worker threads.
struct Prep<'a> {
    model: &'a CausalModel,
    src: &'a DataSource,
    plans: &'a [Plan],
    base_params: &'a [f64],
    policy_params: &'a [f64],
    /// Site → (abducted node, its distribution).
    site_node: &'a BTreeMap<SiteId, (usize, Dist)>,
    has_latents: bool,
    layout: &'a ReplayLayout,
    /// Per replayed site: its hash (the key of its fresh uniforms).
    site_hash: &'a [u32],
    /// Per replayed site: the distribution of its recovered interval.
    site_dist: &'a [Dist],
    seed: u64,
    k: usize,
    policy: WorldId,
}

/// One row after abduction: its diagnostics and its lanes' inputs.
struct Prepared {
    i: usize,
    pos: u64,
    t: u32,
    obs: Vec<f64>,
    /// Per node: 0 nothing abducted, 1 a point, 2 an interval (or a
    /// latent posterior).
    abd: Vec<u8>,
    /// Deterministic nodes that differ from their mechanism, with the
    /// difference (∞ for NaN).
    det: Vec<(usize, f64)>,
    /// Draw 0's PIT of each recovered site (in `site_node` order) and its
    /// normal score.
    pits: Vec<f64>,
    scores: Vec<f64>,
    /// Observed metric arguments, per metric.
    obs_metrics: Vec<(f64, f64)>,
    /// Lanes: one per draw, or one for all when every draw gives the same
    /// counterfactual.
    draws: usize,
    /// `lanes[d · columns + c]`: column `c` of lane `d`.
    lanes: Vec<f64>,
}

/// The model diagnostics accumulated over rows.
struct Diag {
    abd: Vec<(u64, u64)>,
    det_mismatch: Vec<(u64, f64)>,
    pits: Vec<Vec<f64>>,
    pairs: Vec<Pair>,
    /// The node of each recovered site, in `site_node` order.
    site_n: Vec<usize>,
}

/// Abduction of row `i` of `chunk` and its lanes' replay inputs: the part
/// of a row that reads no other row (its lags come through `view`), so
/// rows of a model without lags are prepared in parallel.
fn prepare_row(
    p: &Prep<'_>,
    chunk: &Chunk,
    i: usize,
    view: LagView<'_>,
    t: u32,
) -> Result<Prepared, DataError> {
    let (model, layout, k) = (p.model, p.layout, p.k);
    let row_idx = chunk.first_row + i as u64;
    let pos = chunk.positions[i];
    let mut obs = vec![f64::NAN; model.nodes.len()];
    for (c, (node, _)) in p.src.nodes.iter().enumerate() {
        obs[*node] = chunk.values[c][i];
    }
    let lag_obs = |n, k| view.get(n, k, 0).ok().flatten();
    let mut abd = vec![0u8; model.nodes.len()];
    let mut det = Vec::new();
    let mut rec: BTreeMap<SiteId, Recovered> = BTreeMap::new();
    {
        let none = |_, _| None;
        let env = Env {
            model,
            params: p.base_params,
            values: &obs,
            noise: &none,
            lag: &lag_obs,
        };
        for (n, plan) in p.plans.iter().enumerate() {
            match plan {
                Plan::Deterministic => {
                    let v = env.eval(&model.nodes[n].expr);
                    let d = (v - obs[n]).abs();
                    if d.is_nan() || d > 1e-6 * obs[n].abs().max(1.0) {
                        det.push((n, if d.is_nan() { f64::INFINITY } else { d }));
                    }
                }
                Plan::Noise { site, .. } => {
                    let r =
                        abduct::recover(&env, &model.nodes[n].expr, obs[n]).map_err(|reason| {
                            DataError::Impossible {
                                path: p.src.display.clone(),
                                row: pos,
                                node: model.nodes[n].name.clone(),
                                value: obs[n],
                                reason,
                            }
                        })?;
                    abd[n] = match r {
                        Recovered::Point(_) => 1,
                        Recovered::Interval(..) => 2,
                    };
                    rec.insert(*site, r);
                }
                Plan::Latent { .. } | Plan::LatentChild { .. } => abd[n] = 2,
            }
        }
    }
    let lat = if p.has_latents {
        let u = |site: SiteId, d: u32| {
            uniform(
                p.seed ^ LATENT_SALT,
                model.sites[site.index()].hash,
                row_idx,
                d,
            )
        };
        abduct::condition_latents(model, p.plans, p.base_params, &obs, k as u32, &u, &lag_obs)?
    } else {
        Vec::new()
    };
    let stochastic = p.has_latents || rec.values().any(|r| matches!(r, Recovered::Interval(..)));
    // Site `site`'s standard noise in draw `draw`: the latent posterior's,
    // the recovered point, a draw from the recovered interval, or fresh.
    let noise = |site: SiteId, hash: u32, dist: Dist, interval: Dist, draw: usize| -> f64 {
        if let Some((_, z)) = lat
            .get(draw)
            .and_then(|v| v.iter().find(|(s, _)| *s == site))
        {
            return *z;
        }
        let u = || uniform(p.seed, hash, row_idx, draw as u32);
        match rec.get(&site) {
            Some(Recovered::Point(s)) => *s,
            Some(Recovered::Interval(lo, hi)) => truncated(interval, *lo, *hi, u()),
            None => std_ppf(dist, u()),
        }
    };
    // Residual diagnostics from draw 0.
    let mut pits = Vec::with_capacity(p.site_node.len());
    let mut scores = Vec::with_capacity(p.site_node.len());
    for (&site, &(_, dist)) in p.site_node {
        let s = noise(site, model.sites[site.index()].hash, dist, dist, 0);
        let pit = match dist {
            Dist::Uniform | Dist::Bernoulli => s,
            _ => std_cdf(dist, s),
        };
        pits.push(pit);
        scores.push(normal_ppf(pit.clamp(1e-12, 1.0 - 1e-12)));
    }
    let obs_metrics = {
        let none = |_, _| None;
        let env_obs = Env {
            model,
            params: p.base_params,
            values: &obs,
            noise: &none,
            lag: &lag_obs,
        };
        model
            .metrics
            .iter()
            .map(|met| {
                let x = env_obs.eval(&met.args[0]);
                let y = met.args.get(1).map_or(f64::NAN, |e| env_obs.eval(e));
                (x, y)
            })
            .collect()
    };
    // Through lags, earlier rows' draws can differ even when this row's
    // noise is a point.
    let draws = if stochastic || has_fresh(model, p.policy, &rec) || view.draws_differ() {
        k
    } else {
        1
    };
    let mut lanes = Vec::with_capacity(draws * layout.columns());
    for kd in 0..draws {
        for n in &layout.observed {
            lanes.push(obs[n.index()]);
        }
        for (j, &(site, dist)) in layout.sites.iter().enumerate() {
            lanes.push(noise(site, p.site_hash[j], dist, p.site_dist[j], kd));
        }
        for &(n, lk) in &layout.lags {
            lanes.push(match view.get(n, lk, 1 + kd).ok().flatten() {
                Some(v) => v,
                // Before the unit's first row: `init` (constant or params
                // only; `Lags::new` refuses draws).
                None => model.nodes[n.index()].init.as_ref().map_or(0.0, |e| {
                    let none = |_, _| None;
                    Env {
                        model,
                        params: p.policy_params,
                        values: &obs,
                        noise: &none,
                        lag: &crate::eval::no_lag,
                    }
                    .eval(e)
                }),
            });
        }
        if layout.period {
            lanes.push(f64::from(t));
        }
    }
    Ok(Prepared {
        i,
        pos,
        t,
        obs,
        abd,
        det,
        pits,
        scores,
        obs_metrics,
        draws,
        lanes,
    })
}

/// What finishing a row reads but never changes.
struct Ctx<'a> {
    model: &'a CausalModel,
    k: usize,
    reported: &'a [NodeId],
    lagged: &'a [usize],
    guards: &'a [usize],
    layout: &'a ReplayLayout,
    lo_q: f64,
    names: &'a [String],
}

/// A row waiting for its lanes' replay.
struct Pending {
    /// Row index within its chunk.
    i: usize,
    pos: u64,
    t: u32,
    obs: Vec<f64>,
    /// First lane and number of lanes (1, or one per draw).
    lane0: usize,
    draws: usize,
}

/// The lanes of the rows waiting for a replay.
struct Batch {
    /// `cols[c][lane]` in the layout's column order.
    cols: Vec<Vec<f64>>,
    rows: Vec<Pending>,
    /// Lanes so far (the columns' length, also without columns).
    lanes: usize,
    /// The replay's outputs, reused batch after batch.
    out: Vec<Vec<f64>>,
    /// Units with a row in the batch (kept only for models with lags).
    units: std::collections::HashSet<String>,
}

/// What finishing rows writes to.
struct Post<'a, 'b> {
    overall: &'a mut Acc,
    periods: &'a mut BTreeMap<String, Acc>,
    metrics: &'a mut [MetricAcc],
    guard_viol: &'a mut [u64],
    sink: Option<&'a mut (dyn RowSink + 'b)>,
    replayer: &'a mut dyn Replayer,
    batch: Batch,
}

impl Post<'_, '_> {
    /// Adds a prepared row: its diagnostics and observed metrics, and its
    /// lanes to the batch. Returns the batch's lanes.
    fn take_row(&mut self, diag: &mut Diag, r: Prepared) -> usize {
        for (n, kind) in r.abd.iter().enumerate() {
            match kind {
                1 => diag.abd[n].0 += 1,
                2 => diag.abd[n].1 += 1,
                _ => {}
            }
        }
        for &(n, d) in &r.det {
            diag.det_mismatch[n].0 += 1;
            diag.det_mismatch[n].1 = diag.det_mismatch[n].1.max(d);
        }
        for (j, &pit) in r.pits.iter().enumerate() {
            let n = diag.site_n[j];
            if diag.pits[n].len() < KS_MAX_ROWS {
                diag.pits[n].push(pit);
            }
        }
        let m = r.scores.len();
        for a in 0..m {
            for b in a + 1..m {
                let p = &mut diag.pairs[a * m + b];
                let (x, y) = (r.scores[a], r.scores[b]);
                p.n += 1;
                p.sx += x;
                p.sy += y;
                p.sxx += x * x;
                p.syy += y * y;
                p.sxy += x * y;
            }
        }
        for (acc, &(x, y)) in self.metrics.iter_mut().zip(&r.obs_metrics) {
            acc.push_obs(x, y);
        }
        let lane0 = self.batch.lanes;
        let n_cols = self.batch.cols.len();
        for lane in r.lanes.chunks_exact(n_cols.max(1)).take(r.draws) {
            for (c, &v) in self.batch.cols.iter_mut().zip(lane) {
                c.push(v);
            }
        }
        self.batch.lanes += r.draws;
        self.batch.rows.push(Pending {
            i: r.i,
            pos: r.pos,
            t: r.t,
            obs: r.obs,
            lane0,
            draws: r.draws,
        });
        self.batch.lanes
    }

    /// Replay the batch's lanes, then finish its rows in order: per-draw
    /// counterfactuals, metrics, guardrails, aggregates, `--rows-out`, and
    /// the lag history.
    fn flush(
        &mut self,
        cx: &Ctx<'_>,
        chunk: &Chunk,
        mut lags: Option<&mut Lags>,
    ) -> Result<(), DataError> {
        if self.batch.rows.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.batch.out);
        self.replayer
            .replay_into(self.batch.lanes, &self.batch.cols, &mut out)?;
        let (model, k) = (cx.model, cx.k);
        let mut cf = vec![f64::NAN; model.nodes.len()];
        let mut row_cf: Vec<Vec<f64>> = vec![vec![0.0; k]; cx.reported.len()];
        let mut lag_cf = vec![f64::NAN; cx.lagged.len() * k];
        for p in std::mem::take(&mut self.batch.rows) {
            let reps = if p.draws == 1 { k } else { 1 };
            for kd in 0..p.draws {
                let lane = p.lane0 + kd;
                cf.copy_from_slice(&p.obs);
                for (j, n) in cx.layout.recomputed.iter().enumerate() {
                    cf[n.index()] = out[j][lane];
                }
                for (j, n) in cx.reported.iter().enumerate() {
                    for r in 0..reps {
                        row_cf[j][kd + r] = cf[n.index()];
                    }
                }
                for (j, &n) in cx.lagged.iter().enumerate() {
                    for r in 0..reps {
                        lag_cf[j * k + kd + r] = cf[n];
                    }
                }
                // Metric arguments: a bare node's value, or the replay's
                // next output after the nodes.
                let mut at = cx.layout.recomputed.len();
                let mut arg = |e: &whatif_lang::Expr| match metric_arg_node(e) {
                    Some(n) => cf[n.index()],
                    None => {
                        at += 1;
                        out[at - 1][lane]
                    }
                };
                for (mi, met) in model.metrics.iter().enumerate() {
                    let x = arg(&met.args[0]);
                    let y = met.args.get(1).map_or(f64::NAN, &mut arg);
                    let draw = (reps == 1).then_some(kd);
                    self.metrics[mi].push_cf(draw, x, y);
                }
                for (gi, &g) in cx.guards.iter().enumerate() {
                    let gr = &model.guardrails[g];
                    let v = cf[gr.node.index()];
                    let bad = gr.min.is_some_and(|lo| v < lo)
                        || gr.max.is_some_and(|hi| v > hi)
                        || v.is_nan();
                    if bad {
                        self.guard_viol[gi] += reps as u64;
                    }
                }
            }
            let i = p.i;
            let period = chunk.period.as_ref().map(|x| x[i].as_str()).unwrap_or("");
            let add = |acc: &mut Acc| {
                acc.rows += 1;
                for (j, n) in cx.reported.iter().enumerate() {
                    acc.obs[j] += p.obs[n.index()];
                    for (s, v) in acc.cf[j].iter_mut().zip(&row_cf[j]) {
                        *s += v;
                    }
                }
            };
            add(self.overall);
            if chunk.period.is_some() {
                add(self
                    .periods
                    .entry(period.to_string())
                    .or_insert_with(|| Acc::new(cx.names.len(), k)));
            }
            if let Some(s) = self.sink.as_deref_mut() {
                let mut vals = Vec::with_capacity(cx.reported.len() * 4);
                for (j, n) in cx.reported.iter().enumerate() {
                    let mut d = row_cf[j].clone();
                    let mean = mean_of(&d);
                    d.sort_by(f64::total_cmp);
                    vals.extend([
                        p.obs[n.index()],
                        mean,
                        quantile(&d, cx.lo_q),
                        quantile(&d, 1.0 - cx.lo_q),
                    ]);
                }
                let unit = chunk.unit.as_ref().map(|u| u[i].as_str()).unwrap_or("");
                s.row(p.pos, unit, period, &vals)?;
            }
            if let Some(l) = lags.as_deref_mut() {
                l.record(chunk, i, p.t, |j, slot| match slot {
                    0 => p.obs[cx.lagged[j]],
                    d => lag_cf[j * k + d - 1],
                });
            }
        }
        for c in &mut self.batch.cols {
            c.clear();
        }
        self.batch.units.clear();
        self.batch.lanes = 0;
        self.batch.out = out;
        Ok(())
    }
}

/// Whether the policy world draws from a site with no recovered noise
/// (fresh randomness, e.g. `x + normal(0, 1)` in an edit).
fn has_fresh(model: &CausalModel, policy: WorldId, rec: &BTreeMap<SiteId, Recovered>) -> bool {
    model.worlds[policy.index()].edits.iter().any(|e| {
        model.edits[e.index()].nodes.iter().any(|ne| {
            crate::eval::draws(&ne.expr)
                .iter()
                .any(|(s, _)| !rec.contains_key(s))
        })
    })
}

/// Evaluates a check on backtest metrics: `metric[baseline]` is the
/// observed value, `metric[policy]` the counterfactual; any other world is
/// not computed (`Err` says so and the check is skipped).
fn eval_check(
    e: &CheckExpr,
    model: &CausalModel,
    policy: WorldId,
    metrics: &[MetricResult],
) -> Result<f64, String> {
    let metric = |m: whatif_lang::MetricId, w: WorldId| -> Result<f64, String> {
        let r = &metrics[m.index()];
        let v = if w.index() == 0 {
            r.observed
        } else if w == policy {
            r.counterfactual
        } else {
            return Err(format!(
                "reads world `{}`, which a backtest of `{}` does not compute",
                model.worlds[w.index()].name,
                model.worlds[policy.index()].name
            ));
        };
        v.ok_or_else(|| format!("metric `{}` has no value in this backtest", r.name))
    };
    let ev = |x: &CheckExpr| eval_check(x, model, policy, metrics);
    Ok(match &e.kind {
        CheckExprKind::Num(v) => *v,
        CheckExprKind::Param(p) => model.param_value(policy, *p),
        CheckExprKind::Metric { metric: m, world } => metric(*m, *world)?,
        CheckExprKind::Effect { metric: m, world } => metric(*m, *world)? - metric(*m, WorldId(0))?,
        CheckExprKind::Ratio {
            metric: m,
            world,
            other,
        } => metric(*m, *world)? / metric(*m, *other)?,
        CheckExprKind::Neg(x) => -ev(x)?,
        CheckExprKind::Not(x) => f64::from(ev(x)? == 0.0),
        CheckExprKind::Binary { op, lhs, rhs } => {
            let (l, r) = (ev(lhs)?, ev(rhs)?);
            binop(*op, l, r)
        }
        CheckExprKind::Call { func, args } => {
            let a: Vec<f64> = args.iter().map(ev).collect::<Result<_, _>>()?;
            call(*func, &a)
        }
    })
}

/// Holdout scores of one node.
struct NodeAcc {
    rows: u64,
    err: f64,
    covered: u64,
    binary: bool,
    bins: Vec<(u64, f64, f64)>,
}

/// Out-of-sample validation: with `model` fitted on the other periods,
/// predicts each observed noisy node of the rows whose period is in
/// `periods`, from its observed parents and `draws` prior noise draws.
pub fn holdout(
    model: &CausalModel,
    src: &DataSource,
    periods: &[String],
    draws: u32,
    seed: u64,
    fit_rows: u64,
    chunk_rows: usize,
) -> Result<HoldoutResult, DataError> {
    if src.period.is_none() {
        return Err(DataError::Usage(
            "--holdout needs a period column (`[data] period`)".into(),
        ));
    }
    let plans = abduct::plan(model)?;
    let k = draws.max(2);
    let params: Vec<f64> = model.params.iter().map(|p| p.value).collect();
    let mut accs: Vec<Option<NodeAcc>> = plans
        .iter()
        .map(|p| {
            matches!(p, Plan::Noise { .. } | Plan::LatentChild { .. }).then(|| NodeAcc {
                rows: 0,
                err: 0.0,
                covered: 0,
                binary: true,
                bins: vec![(0, 0.0, 0.0); 10],
            })
        })
        .collect();
    let mut obs = vec![f64::NAN; model.nodes.len()];
    let mut seen = 0u64;
    let latents: Vec<usize> = model
        .topo_order
        .iter()
        .map(|n| n.index())
        .filter(|&n| model.nodes[n].latent)
        .collect();
    let lo_q = (1.0 - INTERVAL_LEVEL) / 2.0;
    // Lags read the observed earlier rows: one-step-ahead predictions.
    let mut lags = Lags::new(model, src, 1)?;
    let lagged: Vec<usize> = lags
        .as_ref()
        .map(|l| l.nodes().iter().map(|n| n.index()).collect())
        .unwrap_or_default();
    src.for_each_chunk(chunk_rows, |chunk| {
        require_observed(src, model, chunk)?;
        let per = chunk
            .period
            .as_ref()
            .expect("invariant: period column present");
        for (i, period) in per.iter().enumerate() {
            obs.fill(f64::NAN);
            for (c, (node, _)) in src.nodes.iter().enumerate() {
                obs[*node] = chunk.values[c][i];
            }
            let at = match lags.as_mut() {
                Some(l) => Some(l.row(chunk, i)?),
                None => None,
            };
            let t = at.map_or(0, |a| a.period);
            if periods.contains(period) {
                let view = at.map_or(LagView::NONE, |a| a.view);
                let lag = |n, k| view.get(n, k, 0).ok().flatten();
                holdout_row(
                    model,
                    &params,
                    &obs,
                    &latents,
                    &mut accs,
                    k,
                    seed,
                    chunk.first_row + i as u64,
                    lo_q,
                    &lag,
                );
                seen += 1;
            }
            if let Some(l) = lags.as_mut() {
                l.record(chunk, i, t, |j, _| obs[lagged[j]]);
            }
        }
        Ok(())
    })?;
    if seen == 0 {
        return Err(DataError::Usage(format!(
            "no rows in the held-out period(s) {}",
            periods.join(", ")
        )));
    }
    let nodes = accs
        .iter()
        .enumerate()
        .filter_map(|(n, a)| a.as_ref().map(|a| (n, a)))
        .map(|(n, a)| {
            let r = a.rows as f64;
            HoldoutNode {
                node: model.nodes[n].name.clone(),
                rows: a.rows,
                mean_error: a.err / r,
                coverage90: (!a.binary).then(|| a.covered as f64 / r),
                calibration: a.binary.then(|| {
                    a.bins
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.0 > 0)
                        .map(|(i, b)| CalibrationBin {
                            lo: i as f64 / 10.0,
                            hi: (i + 1) as f64 / 10.0,
                            n: b.0,
                            mean_predicted: b.1 / b.0 as f64,
                            observed_rate: b.2 / b.0 as f64,
                        })
                        .collect()
                }),
            }
        })
        .collect();
    Ok(HoldoutResult {
        periods: periods.to_vec(),
        fit_rows,
        rows: seen,
        nodes,
    })
}

/// Predicts each noisy node of one held-out row from its observed parents
/// (and lags) over `k` prior noise draws, and scores the prediction.
#[allow(clippy::too_many_arguments)]
fn holdout_row(
    model: &CausalModel,
    params: &[f64],
    obs: &[f64],
    latents: &[usize],
    accs: &mut [Option<NodeAcc>],
    k: u32,
    seed: u64,
    row_idx: u64,
    lo_q: f64,
    lag: &dyn Fn(NodeId, u32) -> Option<f64>,
) {
    for (n, acc) in accs.iter_mut().enumerate() {
        let Some(acc) = acc else { continue };
        let mut pred: Vec<f64> = (0..k)
            .map(|d| {
                let noise = |site: SiteId, dist: Dist| {
                    Some(std_ppf(
                        dist,
                        uniform(seed, model.sites[site.index()].hash, row_idx, d),
                    ))
                };
                // Latent parents are unobserved: predict over their prior.
                let mut vals = obs.to_vec();
                for &l in latents {
                    let env = Env {
                        model,
                        params,
                        values: &vals,
                        noise: &noise,
                        lag,
                    };
                    vals[l] = env.eval(&model.nodes[l].expr);
                }
                Env {
                    model,
                    params,
                    values: &vals,
                    noise: &noise,
                    lag,
                }
                .eval(&model.nodes[n].expr)
            })
            .collect();
        let y = obs[n];
        let mean = pred.iter().sum::<f64>() / k as f64;
        pred.sort_by(f64::total_cmp);
        acc.rows += 1;
        acc.err += y - mean;
        if quantile(&pred, lo_q) <= y && y <= quantile(&pred, 1.0 - lo_q) {
            acc.covered += 1;
        }
        acc.binary &= pred.iter().all(|v| *v == 0.0 || *v == 1.0);
        let b = ((mean * 10.0) as usize).min(9);
        acc.bins[b].0 += 1;
        acc.bins[b].1 += mean;
        acc.bins[b].2 += y;
    }
}
