//! From merged block statistics to the numbers of the report: metric
//! estimates with standard errors and intervals, paired effects between
//! worlds, checks and guardrails.
//!
//! Standard errors, by metric (see README "Statistics"):
//! - mean: sd/√n (closed form); prob: Wilson interval, √(p(1−p)/n);
//! - var, sd, corr: batch means over the reduction blocks when there are at
//!   least 20, else the delta method (fourth moment; Fisher for corr);
//! - quantile, value_at_risk: the order-statistic 95% interval, SE = its
//!   half-width / 1.96; expected_shortfall: sd((X − VaR)₊)/((1 − q)√n);
//! - effects: paired co-moments (mean, prob vs baseline), else batch means
//!   of per-block differences; with too few blocks, worlds are treated as
//!   independent (conservative);
//! - a check's left side: the delta method over the metrics it reads, with
//!   their covariance from batch means (diagonal with too few blocks).

use super::reduce::{Merged, MergedStat, Slots};
use whatif_lang::{BinOp, CausalModel, CheckExpr, CheckExprKind, Func, MetricKind};
use whatif_report::{CheckResult, Effect, GuardrailResult, MetricResult, WorldReport, num};
use whatif_stats::batch::{enough_blocks, numerical_gradient};
use whatif_stats::interval::{Z95, clopper_pearson_upper, wilson};
use whatif_stats::tail::MIN_EXCEEDANCES;

/// One metric in one world, before JSON.
#[derive(Debug, Clone)]
pub struct MetricValue {
    pub estimate: f64,
    pub std_error: f64,
    pub ci95: [f64; 2],
    pub n_exceedances: Option<u64>,
    pub method: &'static str,
}

/// Everything computed from a run's merged statistics.
#[derive(Debug)]
pub struct Summary {
    /// `values[world][metric]`
    pub values: Vec<Vec<MetricValue>>,
    pub worlds: Vec<WorldReport>,
    pub effects: Vec<Effect>,
    pub checks: Vec<CheckResult>,
    pub guardrails: Vec<GuardrailResult>,
    pub warnings: Vec<String>,
}

struct Ctx<'a> {
    model: &'a CausalModel,
    slots: &'a Slots,
    merged: &'a Merged,
    /// Program world index → model world id.
    world_ids: &'a [usize],
    weights: Vec<f64>,
    enough: bool,
}

/// Compute the summary. `world_ids[i]` is the model world of program world i.
pub fn summarise(
    model: &CausalModel,
    slots: &Slots,
    merged: &Merged,
    world_ids: &[usize],
) -> Summary {
    let ctx = Ctx {
        model,
        slots,
        merged,
        world_ids,
        weights: merged.block_sizes.iter().map(|&b| b as f64).collect(),
        enough: enough_blocks(merged.block_sizes.len()),
    };
    let mut warnings = vec![];
    let values: Vec<Vec<MetricValue>> = (0..world_ids.len())
        .map(|w| (0..model.metrics.len()).map(|m| ctx.metric(w, m)).collect())
        .collect();
    let mut worlds = vec![];
    for (w, vs) in values.iter().enumerate() {
        let name = model.worlds[world_ids[w]].name.clone();
        let mut metrics = vec![];
        for (m, v) in vs.iter().enumerate() {
            let metric = &model.metrics[m];
            if let Some(k) = v.n_exceedances
                && k < MIN_EXCEEDANCES
                && matches!(
                    metric.kind,
                    MetricKind::ExpectedShortfall(_)
                        | MetricKind::ValueAtRisk(_)
                        | MetricKind::Quantile(_)
                )
            {
                warnings.push(format!(
                    "metric `{}` in world `{}` rests on only {} exceedances (fewer than {}): increase samples",
                    metric.name, name, k, MIN_EXCEEDANCES
                ));
            }
            if !v.estimate.is_finite() {
                warnings.push(format!(
                    "metric `{}` in world `{}` is undefined (not finite): see numeric_faults, or its variable is constant in this world",
                    metric.name, name
                ));
            }
            metrics.push(MetricResult {
                name: metric.name.clone(),
                estimate: num(v.estimate),
                std_error: num(v.std_error),
                ci95: [num(v.ci95[0]), num(v.ci95[1])],
                n_exceedances: v.n_exceedances,
                se_method: v.method.to_string(),
            });
        }
        worlds.push(WorldReport { name, metrics });
    }

    // Effects: every world vs baseline, plus the pairs checks compare.
    let mut pairs: Vec<(usize, usize, usize)> = vec![];
    for w in 1..world_ids.len() {
        for m in 0..model.metrics.len() {
            pairs.push((w, 0, m));
        }
    }
    for c in &model.checks {
        collect_pairs(&c.expect, &mut |m, w, o| {
            if let (Some(w), Some(o)) = (ctx.prog_world(w), ctx.prog_world(o))
                && o != 0
                && w != o
                && !pairs.contains(&(w, o, m))
            {
                pairs.push((w, o, m));
            }
        });
    }
    let effects = pairs
        .iter()
        .map(|&(w, o, m)| ctx.effect(&values, w, o, m))
        .collect();

    let checks = model.checks.iter().map(|c| ctx.check(&values, c)).collect();

    let mut guardrails = vec![];
    for &(g, w, slot, evals) in &slots.guard_slots {
        let guard = &model.guardrails[g];
        let v = match &merged.stats[slot] {
            MergedStat::Guard(v) => *v,
            _ => unreachable!("invariant: guard slot holds a count"),
        };
        // Evaluations: samples × periods (× units for a unit-level node).
        let n = merged.n * evals;
        let upper = clopper_pearson_upper(v, n, 0.95);
        let passed = if guard.max_share == 0.0 {
            v == 0
        } else {
            upper <= guard.max_share
        };
        guardrails.push(GuardrailResult {
            node: model.node(guard.node).name.clone(),
            world: model.worlds[world_ids[w]].name.clone(),
            min: guard.min.and_then(num),
            max: guard.max.and_then(num),
            violations: v,
            share: num(v as f64 / n as f64),
            share_upper95: num(upper),
            max_share: guard.max_share,
            passed,
        });
    }
    Summary {
        values,
        worlds,
        effects,
        checks,
        guardrails,
        warnings,
    }
}

fn collect_pairs(e: &CheckExpr, f: &mut impl FnMut(usize, usize, usize)) {
    match &e.kind {
        CheckExprKind::Ratio {
            metric,
            world,
            other,
        } => f(metric.index(), world.index(), other.index()),
        CheckExprKind::Neg(a) | CheckExprKind::Not(a) => collect_pairs(a, f),
        CheckExprKind::Binary { lhs, rhs, .. } => {
            collect_pairs(lhs, f);
            collect_pairs(rhs, f);
        }
        CheckExprKind::Call { args, .. } => args.iter().for_each(|a| collect_pairs(a, f)),
        _ => {}
    }
}

impl Ctx<'_> {
    fn prog_world(&self, model_world: usize) -> Option<usize> {
        self.world_ids.iter().position(|&w| w == model_world)
    }

    /// Per-block series of metric m in program world w (batch means input).
    fn series(&self, w: usize, m: usize) -> Vec<f64> {
        let slot = self.slots.metric_slot[w][m];
        let bv = &self.merged.block_values[slot];
        match self.model.metrics[m].kind {
            MetricKind::Var => bv.iter().map(|v| v[1]).collect(),
            MetricKind::Sd => bv.iter().map(|v| v[1].sqrt()).collect(),
            _ => bv.iter().map(|v| v[0]).collect(),
        }
    }

    fn batch_se(&self, series: &[f64]) -> Option<f64> {
        if !self.enough {
            return None;
        }
        whatif_stats::batch::batch_means_std_error(series, &self.weights)
    }

    fn metric(&self, w: usize, m: usize) -> MetricValue {
        let slot = self.slots.metric_slot[w][m];
        let kind = self.model.metrics[m].kind;
        let closed = |estimate: f64, std_error: f64, method: &'static str| MetricValue {
            estimate,
            std_error,
            ci95: [estimate - Z95 * std_error, estimate + Z95 * std_error],
            n_exceedances: None,
            method,
        };
        match (&self.merged.stats[slot], kind) {
            (MergedStat::Moments(s), MetricKind::Mean) => {
                closed(s.mean(), s.mean_std_error(), "closed_form")
            }
            (MergedStat::Moments(s), MetricKind::Prob) => {
                let p = s.mean();
                let n = s.count();
                let k = (p * n as f64).round() as u64;
                let ci = wilson(k, n, Z95);
                MetricValue {
                    estimate: p,
                    std_error: (p * (1.0 - p) / n as f64).sqrt(),
                    ci95: ci,
                    n_exceedances: None,
                    method: "wilson",
                }
            }
            (MergedStat::Moments(s), MetricKind::Var) => match self.batch_se(&self.series(w, m)) {
                Some(se) => closed(s.variance(), se, "batch_means"),
                None => closed(s.variance(), s.variance_std_error(), "delta"),
            },
            (MergedStat::Moments(s), MetricKind::Sd) => match self.batch_se(&self.series(w, m)) {
                Some(se) => closed(s.std_dev(), se, "batch_means"),
                None => closed(s.std_dev(), s.std_dev_std_error(), "delta"),
            },
            (MergedStat::Co(c), MetricKind::Corr) => {
                let r = c.correlation();
                match self.batch_se(&self.series(w, m)) {
                    Some(se) => closed(r, se, "batch_means"),
                    None => closed(
                        r,
                        (1.0 - r * r) / ((c.count() as f64 - 3.0).max(1.0)).sqrt(),
                        "delta",
                    ),
                }
            }
            (MergedStat::Tail(k), MetricKind::Quantile(_) | MetricKind::ValueAtRisk(_)) => {
                match k.estimate() {
                    Some(e) => MetricValue {
                        estimate: e.value_at_risk,
                        std_error: (e.quantile_ci95[1] - e.quantile_ci95[0]) / (2.0 * Z95),
                        ci95: e.quantile_ci95,
                        n_exceedances: Some(e.n_exceedances),
                        method: "order_statistics",
                    },
                    None => closed(f64::NAN, f64::NAN, "order_statistics"),
                }
            }
            (MergedStat::Tail(k), MetricKind::ExpectedShortfall(_)) => match k.estimate() {
                Some(e) => {
                    let es = e.expected_shortfall.unwrap_or(f64::NAN);
                    let se = e.expected_shortfall_std_error.unwrap_or(f64::NAN);
                    MetricValue {
                        n_exceedances: Some(e.n_exceedances),
                        ..closed(es, se, "closed_form")
                    }
                }
                None => closed(f64::NAN, f64::NAN, "closed_form"),
            },
            _ => unreachable!("invariant: slot kinds follow metric kinds"),
        }
    }

    fn effect(&self, values: &[Vec<MetricValue>], w: usize, o: usize, m: usize) -> Effect {
        let name = |i: usize| self.model.worlds[self.world_ids[i]].name.clone();
        let (a, b) = (&values[w][m], &values[o][m]);
        let difference = a.estimate - b.estimate;
        let ratio = a.estimate / b.estimate;
        let (dse, rse) = if o == 0
            && let Some(slot) = self.slots.paired_slot[w][m]
            && let MergedStat::Co(c) = &self.merged.stats[slot]
        {
            (c.mean_difference_std_error(), c.mean_ratio_std_error())
        } else if self.enough {
            let (sa, sb) = (self.series(w, m), self.series(o, m));
            let cov = self.block_cov(&[sa, sb]);
            let dse = (cov[0] + cov[3] - 2.0 * cov[1]).max(0.0).sqrt();
            let g = [1.0 / b.estimate, -a.estimate / (b.estimate * b.estimate)];
            let rse = (g[0] * g[0] * cov[0] + 2.0 * g[0] * g[1] * cov[1] + g[1] * g[1] * cov[3])
                .max(0.0)
                .sqrt();
            (dse, rse)
        } else {
            let dse = (a.std_error.powi(2) + b.std_error.powi(2)).sqrt();
            let rse = ratio.abs()
                * ((a.std_error / a.estimate).powi(2) + (b.std_error / b.estimate).powi(2)).sqrt();
            (dse, rse)
        };
        Effect {
            world: name(w),
            vs: name(o),
            metric: self.model.metrics[m].name.clone(),
            difference: num(difference),
            difference_std_error: num(dse),
            ratio: num(ratio),
            ratio_std_error: num(rse),
        }
    }

    /// Covariance matrix (row-major k × k) of the estimates whose per-block
    /// series are given, by batch means (weighted by block size).
    fn block_cov(&self, series: &[Vec<f64>]) -> Vec<f64> {
        let k = series.len();
        let wsum: f64 = self.weights.iter().sum();
        let nb = self.weights.len() as f64;
        let means: Vec<f64> = series
            .iter()
            .map(|s| s.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f64>() / wsum)
            .collect();
        let mut cov = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                let s: f64 = (0..self.weights.len())
                    .map(|b| {
                        self.weights[b] * (series[i][b] - means[i]) * (series[j][b] - means[j])
                    })
                    .sum();
                cov[i * k + j] = s / (nb - 1.0) / wsum;
            }
        }
        cov
    }

    fn check(&self, values: &[Vec<MetricValue>], c: &whatif_lang::Check) -> CheckResult {
        // Leaves: (metric, program world) pairs the expression reads.
        let mut leaves: Vec<(usize, usize)> = vec![];
        leaves_of(&c.expect, &mut |m, w| {
            if let Some(w) = self.prog_world(w)
                && !leaves.contains(&(m, w))
            {
                leaves.push((m, w));
            }
        });
        let x: Vec<f64> = leaves.iter().map(|&(m, w)| values[w][m].estimate).collect();
        let eval = |e: &CheckExpr, x: &[f64]| self.eval(e, &leaves, x);
        let passed = eval(&c.expect, &x) != 0.0;
        let (lhs, rhs, lhs_se) = match &c.expect.kind {
            CheckExprKind::Binary {
                op: BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne,
                lhs,
                rhs,
            } => {
                let l = eval(lhs, &x);
                let r = eval(rhs, &x);
                let cov = if self.enough {
                    let series: Vec<Vec<f64>> =
                        leaves.iter().map(|&(m, w)| self.series(w, m)).collect();
                    self.block_cov(&series)
                } else {
                    let k = leaves.len();
                    let mut cov = vec![0.0; k * k];
                    for (i, &(m, w)) in leaves.iter().enumerate() {
                        cov[i * k + i] = values[w][m].std_error.powi(2);
                    }
                    cov
                };
                let grad = numerical_gradient(|p| eval(lhs, p), &x);
                let se = whatif_stats::batch::delta_method_std_error(&grad, &cov);
                (num(l), num(r), num(se))
            }
            _ => (None, None, None),
        };
        CheckResult {
            name: c.name.clone(),
            expect: c.expect_source.clone(),
            passed,
            lhs,
            rhs,
            lhs_std_error: lhs_se,
        }
    }

    fn eval(&self, e: &CheckExpr, leaves: &[(usize, usize)], x: &[f64]) -> f64 {
        let leaf = |m: usize, w: usize| -> f64 {
            match self.prog_world(w) {
                Some(w) => leaves
                    .iter()
                    .position(|&l| l == (m, w))
                    .map(|i| x[i])
                    .unwrap_or(f64::NAN),
                None => f64::NAN,
            }
        };
        match &e.kind {
            CheckExprKind::Num(v) => *v,
            CheckExprKind::Param(p) => self.model.params[p.index()].value,
            CheckExprKind::Metric { metric, world } => leaf(metric.index(), world.index()),
            CheckExprKind::Effect { metric, world } => {
                leaf(metric.index(), world.index()) - leaf(metric.index(), 0)
            }
            CheckExprKind::Ratio {
                metric,
                world,
                other,
            } => leaf(metric.index(), world.index()) / leaf(metric.index(), other.index()),
            CheckExprKind::Neg(a) => -self.eval(a, leaves, x),
            CheckExprKind::Not(a) => f64::from(self.eval(a, leaves, x) == 0.0),
            CheckExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.eval(lhs, leaves, x), self.eval(rhs, leaves, x));
                whatif_ir::BinaryOp::eval(binop(*op), a, b)
            }
            CheckExprKind::Call { func, args } => {
                let a: Vec<f64> = args.iter().map(|a| self.eval(a, leaves, x)).collect();
                call(*func, &a)
            }
        }
    }
}

/// Every model world a check expression reads (baseline included for
/// `effect`).
pub fn check_worlds(e: &CheckExpr, f: &mut impl FnMut(usize)) {
    leaves_of(e, &mut |_, w| f(w));
}

fn leaves_of(e: &CheckExpr, f: &mut impl FnMut(usize, usize)) {
    match &e.kind {
        CheckExprKind::Metric { metric, world } => f(metric.index(), world.index()),
        CheckExprKind::Effect { metric, world } => {
            f(metric.index(), world.index());
            f(metric.index(), 0);
        }
        CheckExprKind::Ratio {
            metric,
            world,
            other,
        } => {
            f(metric.index(), world.index());
            f(metric.index(), other.index());
        }
        CheckExprKind::Neg(a) | CheckExprKind::Not(a) => leaves_of(a, f),
        CheckExprKind::Binary { lhs, rhs, .. } => {
            leaves_of(lhs, f);
            leaves_of(rhs, f);
        }
        CheckExprKind::Call { args, .. } => args.iter().for_each(|a| leaves_of(a, f)),
        CheckExprKind::Num(_) | CheckExprKind::Param(_) => {}
    }
}

/// The IR op with the same f64 semantics as a source operator.
pub fn binop(op: BinOp) -> whatif_ir::BinaryOp {
    use whatif_ir::BinaryOp as B;
    match op {
        BinOp::Add => B::Add,
        BinOp::Sub => B::Sub,
        BinOp::Mul => B::Mul,
        BinOp::Div => B::Div,
        BinOp::Pow => B::Pow,
        BinOp::Lt => B::Lt,
        BinOp::Le => B::Le,
        BinOp::Gt => B::Gt,
        BinOp::Ge => B::Ge,
        BinOp::Eq => B::Eq,
        BinOp::Ne => B::Ne,
        BinOp::And => B::And,
        BinOp::Or => B::Or,
    }
}

fn call(f: Func, a: &[f64]) -> f64 {
    use whatif_ir::{BinaryOp as B, UnaryOp as U};
    match f {
        Func::Exp => U::Exp.eval(a[0]),
        Func::Log => U::Log.eval(a[0]),
        Func::Sqrt => U::Sqrt.eval(a[0]),
        Func::Abs => U::Abs.eval(a[0]),
        Func::Sigmoid => U::Sigmoid.eval(a[0]),
        Func::Logit => U::Logit.eval(a[0]),
        Func::Tanh => U::Tanh.eval(a[0]),
        Func::Floor => U::Floor.eval(a[0]),
        Func::Ceil => U::Ceil.eval(a[0]),
        Func::Round => U::Round.eval(a[0]),
        Func::Min => B::Min.eval(a[0], a[1]),
        Func::Max => B::Max.eval(a[0], a[1]),
        Func::Pow => B::Pow.eval(a[0], a[1]),
        Func::Clamp => B::Min.eval(B::Max.eval(a[0], a[1]), a[2]),
    }
}
