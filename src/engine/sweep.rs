//! Parameter sweeps and reverse stress search.
//!
//! A sweep evaluates the scenario at every point of a parameter grid
//! ([`run_sweep`]); a reverse stress search bisects one parameter for the
//! mildest shock at which a check fails ([`find_breaking`]). Both run the
//! ordinary engine ([`super::run`]) once per point on the model with the
//! point's parameter values ([`whatif_lang::sweep::with_params`]). The seed,
//! the sample count and every noise site stay the same, so all points share
//! common random numbers: sample `i` sees the same draws at every point, and
//! the difference between two points is a paired, unit-level contrast whose
//! Monte Carlo error is far below that of independent runs. Parameters stay
//! runtime slots of the compiled program (`Op::Param`, never folded), so a
//! grid point changes only their values. Because every point is a complete
//! run, each one is bit-identical to `whatif run` with the parameter edited
//! in the file, on any backend.

use std::collections::BTreeMap;

use super::{RunError, RunOptions, ScenarioInfo};
use whatif_lang::sweep::Sweep;
use whatif_lang::{BinOp, CausalModel, CheckExprKind, Diagnostic, ParamId};
use whatif_report::sweep::{
    BreakingCheck, BreakingEval, BreakingSearch, SWEEP_SCHEMA_VERSION, SweepCheckRow,
    SweepEffectRow, SweepMetricRow, SweepParam, SweepReport,
};
use whatif_report::{Report, num};

/// Most grid points one sweep may evaluate (all dimensions together).
pub const MAX_GRID_POINTS: u64 = 10_000;

/// Errors of a sweep or search that are the user's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Run(#[from] RunError),
    /// A grid point or searched value makes a constant distribution
    /// parameter invalid; the diagnostics point into the scenario.
    #[error("{context}: invalid parameter values")]
    InvalidPoint {
        context: String,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("the sweep grid has {points} points; at most {MAX_GRID_POINTS} are allowed")]
    GridTooLarge { points: u64 },
    #[error("`{0}` is swept twice")]
    DuplicateParam(String),
    #[error("{0}")]
    Search(String),
}

/// Every grid point's parameter values, row-major: the first sweep varies
/// slowest, the last fastest.
pub fn grid(sweeps: &[Sweep]) -> Vec<Vec<f64>> {
    let mut points: Vec<Vec<f64>> = vec![vec![]];
    for s in sweeps {
        let values = s.values();
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |&v| {
                    let mut q = p.clone();
                    q.push(v);
                    q
                })
            })
            .collect();
    }
    points
}

fn assignment(sweeps: &[Sweep], values: &[f64]) -> Vec<(ParamId, f64)> {
    sweeps
        .iter()
        .map(|s| s.param)
        .zip(values.iter().copied())
        .collect()
}

fn params_map(model: &CausalModel, sweeps: &[Sweep], values: &[f64]) -> BTreeMap<String, f64> {
    sweeps
        .iter()
        .zip(values)
        .map(|(s, &v)| (model.params[s.param.index()].name.clone(), v))
        .collect()
}

/// Validate the grid spanned by `sweeps` without running anything: no
/// parameter swept twice, at most [`MAX_GRID_POINTS`] points, and valid
/// distribution parameters at every point. Returns each point's model.
pub fn check_grid(model: &CausalModel, sweeps: &[Sweep]) -> Result<Vec<CausalModel>, SweepError> {
    for (i, s) in sweeps.iter().enumerate() {
        if sweeps[..i].iter().any(|t| t.param == s.param) {
            return Err(SweepError::DuplicateParam(
                model.params[s.param.index()].name.clone(),
            ));
        }
    }
    let n_points = sweeps
        .iter()
        .try_fold(1u64, |n, s| n.checked_mul(u64::from(s.points)))
        .unwrap_or(u64::MAX);
    if n_points > MAX_GRID_POINTS {
        return Err(SweepError::GridTooLarge { points: n_points });
    }
    // A bad point must not cost the runs before it, nor leave a partial
    // table.
    grid(sweeps)
        .iter()
        .map(|values| {
            whatif_lang::sweep::with_params(model, &assignment(sweeps, values)).map_err(|d| {
                SweepError::InvalidPoint {
                    context: format!("sweep point {}", describe(model, sweeps, values)),
                    diagnostics: d,
                }
            })
        })
        .collect()
}

/// Run the scenario at every point of the grid spanned by `sweeps` and
/// collect the tidy table. Every point is validated before any sample runs.
/// `progress(done, total)` counts blocks over the whole grid.
pub fn run_sweep(
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    sweeps: &[Sweep],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SweepReport, SweepError> {
    let models = check_grid(model, sweeps)?;
    let n_points = models.len() as u64;
    let points = grid(sweeps);
    let mut out: Option<SweepReport> = None;
    let mut wall = 0.0;
    for (i, (values, m)) in points.iter().zip(&models).enumerate() {
        let done = i as u64;
        let r = super::run(m, info, opts, &mut |d, t| {
            progress(done * t + d, n_points * t)
        })?;
        wall += r.manifest.run.wall_seconds;
        // The first point's manifest stands for all: seed, samples,
        // backend and scenario are the same at every point.
        let doc = out.get_or_insert_with(|| {
            let mut doc = empty_report(r.manifest.clone());
            doc.params = sweeps
                .iter()
                .map(|s| SweepParam {
                    name: model.params[s.param.index()].name.clone(),
                    lo: s.lo,
                    hi: s.hi,
                    points: s.points,
                    nominal: model.params[s.param.index()].value,
                })
                .collect();
            doc
        });
        push_rows(doc, &r, i as u32, &params_map(model, sweeps, values));
    }
    let mut out = out.expect("a grid has at least one point");
    out.manifest.run.wall_seconds = wall;
    Ok(out)
}

fn describe(model: &CausalModel, sweeps: &[Sweep], values: &[f64]) -> String {
    sweeps
        .iter()
        .zip(values)
        .map(|(s, v)| format!("{} = {v}", model.params[s.param.index()].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sweep document without grid rows (for a search run without a grid),
/// carrying `manifest`.
pub fn empty_report(manifest: whatif_report::Manifest) -> SweepReport {
    SweepReport {
        schema: SWEEP_SCHEMA_VERSION,
        manifest,
        params: vec![],
        metrics: vec![],
        effects: vec![],
        checks: vec![],
        breaking: None,
    }
}

fn push_rows(out: &mut SweepReport, r: &Report, point: u32, params: &BTreeMap<String, f64>) {
    for w in &r.worlds {
        for m in &w.metrics {
            out.metrics.push(SweepMetricRow {
                point,
                params: params.clone(),
                world: w.name.clone(),
                metric: m.name.clone(),
                estimate: m.estimate,
                std_error: m.std_error,
            });
        }
    }
    for e in &r.effects {
        out.effects.push(SweepEffectRow {
            point,
            params: params.clone(),
            world: e.world.clone(),
            vs: e.vs.clone(),
            metric: e.metric.clone(),
            difference: e.difference,
            difference_std_error: e.difference_std_error,
        });
    }
    for c in &r.checks {
        out.checks.push(SweepCheckRow {
            point,
            params: params.clone(),
            name: c.name.clone(),
            passed: c.passed,
            lhs: c.lhs,
            rhs: c.rhs,
            lhs_std_error: c.lhs_std_error,
        });
    }
}

/// What a reverse stress search looks for.
#[derive(Debug, Clone)]
pub struct BreakingOptions {
    pub param: ParamId,
    /// The mild end of the search, where the checks should pass.
    pub from: f64,
    /// The severe end, where a check should fail (may be below `from`).
    pub to: f64,
    /// Names of the checks to search (empty: every check of the scenario).
    pub checks: Vec<String>,
    /// Decision margin in standard errors.
    pub k: f64,
    /// Stop when the bracket is this narrow; `None`: |to − from| / 200.
    pub tolerance: Option<f64>,
    /// Most runs the search may make (ends included).
    pub max_evaluations: u32,
}

/// Default decision margin of [`find_breaking`], in standard errors.
pub const DEFAULT_K: f64 = 2.0;
/// Default cap on the runs of [`find_breaking`].
pub const DEFAULT_MAX_EVALUATIONS: u32 = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Undecided,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Undecided => "undecided",
        }
    }
}

/// A searched check: its index and whether `lhs > rhs` means failing.
struct Searched {
    index: usize,
    /// `true` for `<`/`<=` (fails when lhs exceeds rhs).
    upper: bool,
}

/// Which checks a search can decide: a top-level `<`, `<=`, `>` or `>=`
/// whose right side reads no metric (its standard error is then the left
/// side's, which the report carries).
fn searched_checks(model: &CausalModel, names: &[String]) -> Result<Vec<Searched>, SweepError> {
    let mut idx: Vec<usize> = vec![];
    if names.is_empty() {
        idx.extend(0..model.checks.len());
    } else {
        for n in names {
            match model.checks.iter().position(|c| &c.name == n) {
                Some(i) if !idx.contains(&i) => idx.push(i),
                Some(_) => {}
                None => {
                    return Err(SweepError::Search(format!(
                        "unknown check `{n}`; the scenario has: {}",
                        model
                            .checks
                            .iter()
                            .map(|c| format!("`{}`", c.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    }
    if idx.is_empty() {
        return Err(SweepError::Search(
            "the scenario has no checks to search; add a `[[checks]]` entry".into(),
        ));
    }
    idx.into_iter()
        .map(|i| {
            let c = &model.checks[i];
            let CheckExprKind::Binary { op, lhs, rhs } = &c.expect.kind else {
                return Err(unsearchable(&c.name, "is not a comparison"));
            };
            let upper = match op {
                BinOp::Lt | BinOp::Le => true,
                BinOp::Gt | BinOp::Ge => false,
                _ => return Err(unsearchable(&c.name, "is not a `<`, `<=`, `>` or `>=` comparison")),
            };
            let reads = |e: &whatif_lang::CheckExpr| {
                let mut any = false;
                super::summary::check_worlds(e, &mut |_| any = true);
                any
            };
            if !reads(lhs) {
                return Err(unsearchable(&c.name, "reads no metric on its left side"));
            }
            if reads(rhs) {
                return Err(unsearchable(
                    &c.name,
                    "reads metrics on both sides; move them to the left (`a - b < 0`) so one standard error covers the comparison",
                ));
            }
            Ok(Searched { index: i, upper })
        })
        .collect()
}

fn unsearchable(name: &str, why: &str) -> SweepError {
    SweepError::Search(format!("check `{name}` cannot be searched: it {why}"))
}

struct Evaluated {
    t: f64,
    /// Largest signed margin over the checks (positive: failing by the
    /// point estimate); units differ between checks but the sign does not.
    margin: f64,
    eval: BreakingEval,
}

/// Find the mildest shock of `b.param` between `b.from` and `b.to` at which
/// a check fails, by bisection that respects Monte Carlo error: a point
/// fails when some searched check is beyond its threshold by at least `k`
/// standard errors, passes when every check is within its threshold by at
/// least `k` standard errors, and is undecided otherwise. Undecided points
/// are never treated as passing or failing; the search narrows the gaps on
/// both sides of them instead. Assumes that failure is monotone in the
/// shock. Every point uses the same seed and sites (common random numbers).
pub fn find_breaking(
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    b: &BreakingOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BreakingSearch, SweepError> {
    let searched = searched_checks(model, &b.checks)?;
    if !(b.from.is_finite() && b.to.is_finite()) || b.from == b.to {
        return Err(SweepError::Search(format!(
            "search range {}..{} is empty or not finite",
            b.from, b.to
        )));
    }
    if !(b.k.is_finite() && b.k >= 0.0) {
        return Err(SweepError::Search(format!(
            "the decision margin k = {} must be a finite number >= 0",
            b.k
        )));
    }
    let span = (b.to - b.from).abs();
    let tolerance = b.tolerance.unwrap_or(span / 200.0);
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(SweepError::Search(format!(
            "the tolerance {tolerance} must be a positive number"
        )));
    }
    let max_evals = b.max_evaluations.max(2);
    let name = model.params[b.param.index()].name.clone();
    let at = |t: f64| {
        if t >= 1.0 {
            b.to
        } else {
            b.from + (b.to - b.from) * t
        }
    };
    let mut evals: Vec<Evaluated> = vec![];
    let mut evaluate = |t: f64, evals: &mut Vec<Evaluated>| -> Result<Verdict, SweepError> {
        let x = at(t);
        let m = whatif_lang::sweep::with_params(model, &[(b.param, x)]).map_err(|d| {
            SweepError::InvalidPoint {
                context: format!("search point {name} = {x}"),
                diagnostics: d,
            }
        })?;
        let k = evals.len() as u64;
        let r = super::run(&m, info, opts, &mut |d, total| {
            progress(k * total + d, u64::from(max_evals) * total)
        })?;
        let mut checks = vec![];
        let mut any_fail = false;
        let mut all_pass = true;
        let mut margin = f64::NEG_INFINITY;
        for s in &searched {
            let c = &r.checks[s.index];
            let (lhs, rhs) = (c.lhs.unwrap_or(f64::NAN), c.rhs.unwrap_or(f64::NAN));
            let d = if s.upper { lhs - rhs } else { rhs - lhs };
            let se = c.lhs_std_error.unwrap_or(f64::NAN);
            let z = if se > 0.0 {
                d / se
            } else if d == 0.0 || d.is_nan() {
                f64::NAN
            } else {
                // No Monte Carlo error: the sign alone decides.
                d.signum() * f64::INFINITY
            };
            // A NaN margin (non-finite metric) can never be decided.
            any_fail |= z >= b.k;
            all_pass &= z <= -b.k;
            margin = margin.max(if d.is_nan() { f64::INFINITY } else { d });
            checks.push(BreakingCheck {
                name: c.name.clone(),
                lhs: c.lhs,
                rhs: c.rhs,
                lhs_std_error: c.lhs_std_error,
                z: num(z),
            });
        }
        let verdict = if any_fail {
            Verdict::Fail
        } else if all_pass {
            Verdict::Pass
        } else {
            Verdict::Undecided
        };
        evals.push(Evaluated {
            t,
            margin,
            eval: BreakingEval {
                value: x,
                verdict: verdict.name().into(),
                checks,
            },
        });
        Ok(verdict)
    };

    let start = evaluate(0.0, &mut evals)?;
    let end = if start == Verdict::Pass {
        Some(evaluate(1.0, &mut evals)?)
    } else {
        None
    };
    let outcome = match (start, end) {
        (Verdict::Fail, _) => "fails_at_start",
        (Verdict::Undecided, _) | (_, Some(Verdict::Undecided)) => "undecided_at_end",
        (_, Some(Verdict::Pass)) => "passes_throughout",
        _ => "bracketed",
    };
    // Bracket in t: `a` passes clearly, `b` fails clearly; `undecided`
    // holds the undecided points strictly between them.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut undecided: Vec<f64> = vec![];
    if outcome == "bracketed" {
        while evals.len() < max_evals as usize {
            let gaps: Vec<(f64, f64)> = if undecided.is_empty() {
                vec![(lo, hi)]
            } else {
                let umin = undecided.iter().copied().fold(f64::INFINITY, f64::min);
                let umax = undecided.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                vec![(lo, umin), (umax, hi)]
            };
            let Some(&(g0, g1)) = gaps
                .iter()
                .max_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)))
            else {
                break;
            };
            if (g1 - g0) * span <= tolerance {
                break;
            }
            let mid = 0.5 * (g0 + g1);
            match evaluate(mid, &mut evals)? {
                Verdict::Pass => {
                    lo = mid;
                    undecided.retain(|&u| u > lo);
                }
                Verdict::Fail => {
                    hi = mid;
                    undecided.retain(|&u| u < hi);
                }
                Verdict::Undecided => undecided.push(mid),
            }
        }
    }
    let bracketed = outcome == "bracketed";
    let (last_pass, first_fail) = if bracketed {
        (Some(at(lo)), Some(at(hi)))
    } else {
        (None, None)
    };
    let undecided_range = (!undecided.is_empty()).then(|| {
        let mut xs: Vec<f64> = undecided.iter().map(|&t| at(t)).collect();
        xs.sort_by(f64::total_cmp);
        [xs[0], xs[xs.len() - 1]]
    });
    // Zero crossing of the largest margin, interpolated between adjacent
    // evaluated points inside the bracket.
    let estimate = bracketed
        .then(|| {
            let mut inside: Vec<&Evaluated> = evals
                .iter()
                .filter(|e| e.t >= lo && e.t <= hi && e.margin.is_finite())
                .collect();
            inside.sort_by(|x, y| x.t.total_cmp(&y.t));
            inside.windows(2).find_map(|w| {
                let (p, q) = (w[0], w[1]);
                (p.margin <= 0.0 && q.margin > 0.0).then(|| {
                    let f = -p.margin / (q.margin - p.margin);
                    at(p.t + f * (q.t - p.t))
                })
            })
        })
        .flatten();
    Ok(BreakingSearch {
        param: name,
        from: b.from,
        to: b.to,
        checks: searched
            .iter()
            .map(|s| model.checks[s.index].name.clone())
            .collect(),
        k: b.k,
        tolerance,
        samples: model.n_samples,
        outcome: outcome.into(),
        last_pass,
        first_fail,
        undecided: undecided_range,
        estimate,
        evaluations: evals.into_iter().map(|e| e.eval).collect(),
    })
}
