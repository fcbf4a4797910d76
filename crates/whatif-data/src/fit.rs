//! Fitting `?params` from observed rows.
//!
//! Three estimators, chosen per node from the mechanism's shape:
//! - **least squares** for `mean + normal(mu, sd)` where `mean` and `mu`
//!   are linear in the node's parameters (checked numerically on the data:
//!   the mechanism is evaluated at the origin, at each unit vector and at
//!   two probe points, and must agree with the linear prediction). The
//!   sufficient statistics XᵀX and Xᵀy stream over the chunks; a second
//!   pass computes the residual sum of squares directly. A fitted `sd`
//!   (`normal(0, ?sigma)`) is estimated **unbiased**, σ̂² = RSS / (n − p),
//!   with standard error σ̂ / √(2(n − p)); the coefficients' standard errors
//!   are √diag(σ̂² (XᵀX)⁻¹).
//! - **logistic regression** by Newton–IRLS for
//!   `bernoulli(sigmoid(eta))` with `eta` linear in the parameters; one
//!   streaming pass per Newton step; standard errors from the inverse
//!   Fisher information at the optimum.
//! - **maximum likelihood** for the other differentiable shapes of
//!   [`crate::mle`] (`dist(args)` or `loc + dist(args)`, e.g.
//!   `?a * exp(?b * x) + normal(0, ?s)` or
//!   `bernoulli(1 - exp(-?lam * dose))`), by the [`MleSolver`] the caller
//!   passes in [`FitOptions::mle`] (burn's autodiff in `whatif-gpu`; this
//!   crate does not link burn). The first two are exact and faster, so they
//!   keep their shapes; a mechanism that looks linear but is not (found on
//!   the data) falls back to maximum likelihood.
//!
//! Without a solver, the maximum likelihood shapes are refused with a
//! diagnostic that names the node and says the build lacks burn; any shape
//! no estimator takes is refused with the reason.

use std::collections::BTreeMap;

use whatif_lang::{CausalModel, Dist, Expr, ExprKind, Func, NodeId};

use crate::eval::{Env, has_draw, params_of};
use crate::mle::{MleProblem, MleSolver, RowBatch, RowSource};
use crate::table::{Chunk, DEFAULT_CHUNK_ROWS, DataSource, require_observed};
use crate::{DataError, lock};

/// Which rows a fit uses, and the maximum likelihood solver if any.
#[derive(Default)]
pub struct FitOptions<'a> {
    pub chunk_rows: Option<usize>,
    /// Rows whose period this returns `false` for are skipped (holdout).
    pub use_period: Option<&'a dyn Fn(&str) -> bool>,
    /// The solver for shapes neither least squares nor IRLS takes
    /// ([`crate::mle`]); `None` refuses them.
    pub mle: Option<&'a dyn MleSolver>,
}

impl std::fmt::Debug for FitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitOptions")
            .field("chunk_rows", &self.chunk_rows)
            .field("use_period", &self.use_period.is_some())
            .field("mle", &self.mle.map(|m| m.name()))
            .finish()
    }
}

/// The result of a fit: what goes into the lock.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    pub rows: u64,
    pub nodes: Vec<lock::LockedNode>,
    pub params: Vec<lock::LockedParam>,
}

impl FitResult {
    /// Sets the fitted values into `model`'s params.
    pub fn apply(&self, model: &mut CausalModel) {
        for p in &self.params {
            if let Some(id) = model.param_id(&format!("?{}", p.name)) {
                model.params[id.index()].value = p.estimate;
            }
        }
    }
}

enum Sd {
    Known,
    Fitted(usize),
}

enum Form<'a> {
    /// y = Σ sign·term + noise; `terms` include the noise's `mu`.
    Linear {
        terms: Vec<(f64, &'a Expr)>,
        sd: Option<Sd>,
    },
    /// y ~ bernoulli(sigmoid(eta)).
    Logistic { eta: &'a Expr },
    /// Maximum likelihood by the caller's solver.
    Mle,
}

struct NodePlan<'a> {
    node: usize,
    form: Form<'a>,
    /// Fitted params in the mean (the regression coefficients).
    beta: Vec<usize>,
    /// The node as a maximum likelihood problem, or why it is not one:
    /// the fallback when the data show `Linear`/`Logistic` is not linear.
    mle: Result<MleProblem, String>,
}

use crate::mle::summands;

fn cannot(model: &CausalModel, node: usize, reason: impl Into<String>) -> DataError {
    DataError::CannotFit {
        node: model.nodes[node].name.clone(),
        reason: reason.into(),
    }
}

const NEEDS_AUTODIFF: &str = "maximum likelihood for this mechanism needs burn's autodiff, \
     which this build does not include (build whatif with the `gpu` feature), or write it as \
     `linear + normal(0, ?sigma)` or `bernoulli(sigmoid(linear))`";

/// Why least squares and IRLS refuse a node (`why`), completed by what
/// maximum likelihood says about it.
fn refusal(
    model: &CausalModel,
    node: usize,
    why: &str,
    mle: &Result<MleProblem, String>,
    solver: bool,
) -> DataError {
    match mle {
        Ok(_) if !solver => cannot(model, node, format!("{why}; {NEEDS_AUTODIFF}")),
        Ok(_) => cannot(
            model,
            node,
            format!("{why}; invariant: maximum likelihood takes this shape"),
        ),
        Err(r) => cannot(
            model,
            node,
            format!("{why}, and maximum likelihood cannot take it either: {r}"),
        ),
    }
}

fn plan_node(
    model: &CausalModel,
    node: usize,
    solver: bool,
) -> Result<Option<NodePlan<'_>>, DataError> {
    let n = &model.nodes[node];
    let fitted: Vec<usize> = params_of(&n.expr)
        .into_iter()
        .filter(|&p| model.params[p].is_fitted())
        .collect();
    if fitted.is_empty() {
        return Ok(None);
    }
    if let Some(l) = n.parents.iter().find(|p| model.node(**p).latent) {
        return Err(cannot(
            model,
            node,
            format!(
                "its parent `{}` is latent; `?params` on a mechanism with latent parents cannot be fitted from the data",
                model.node(*l).name
            ),
        ));
    }
    if n.latent {
        return Err(cannot(model, node, "the node is latent (never observed)"));
    }
    let mle = MleProblem::from_node(model, node);
    // Least squares and IRLS refuse the shape: maximum likelihood or a
    // refusal with both reasons.
    let fallback = |why: &str, mle: Result<MleProblem, String>| match mle {
        Ok(_) if solver => Ok(Some(NodePlan {
            node,
            form: Form::Mle,
            beta: vec![],
            mle,
        })),
        _ => Err(refusal(model, node, why, &mle, solver)),
    };
    // Logistic: the whole mechanism is bernoulli(sigmoid(eta)).
    if let ExprKind::Draw {
        dist: Dist::Bernoulli,
        args,
        ..
    } = &n.expr.kind
    {
        if let ExprKind::Call {
            func: Func::Sigmoid,
            args: inner,
        } = &args[0].kind
            && !has_draw(&inner[0])
        {
            return Ok(Some(NodePlan {
                node,
                form: Form::Logistic { eta: &inner[0] },
                beta: fitted,
                mle,
            }));
        }
        return fallback(
            "a bernoulli mechanism is fitted by IRLS as `bernoulli(sigmoid(linear))`",
            mle,
        );
    }
    let mut parts = Vec::new();
    summands(&n.expr, 1.0, &mut parts);
    let mut terms = Vec::new();
    let mut sd = None;
    for (sign, e) in parts {
        if !has_draw(e) {
            terms.push((sign, e));
            continue;
        }
        match &e.kind {
            ExprKind::Draw {
                dist: Dist::Normal,
                args,
                ..
            } if sd.is_none() && !has_draw(&args[0]) && !has_draw(&args[1]) => {
                terms.push((sign, &args[0]));
                let sd_fitted: Vec<usize> = params_of(&args[1])
                    .into_iter()
                    .filter(|&p| model.params[p].is_fitted())
                    .collect();
                sd = Some(match (&args[1].kind, sd_fitted.as_slice()) {
                    (_, []) => Sd::Known,
                    (ExprKind::Param(p), [_]) => Sd::Fitted(p.index()),
                    _ => {
                        return fallback(
                            "least squares needs the noise sd to be a constant or a lone `?param`",
                            mle,
                        );
                    }
                });
            }
            _ => {
                return fallback(
                    "least squares needs the noise to be one additive `normal(...)` term",
                    mle,
                );
            }
        }
    }
    let mut beta: Vec<usize> = Vec::new();
    for (_, t) in &terms {
        beta.extend(
            params_of(t)
                .into_iter()
                .filter(|&p| model.params[p].is_fitted()),
        );
    }
    beta.sort_unstable();
    beta.dedup();
    if let Some(Sd::Fitted(p)) = &sd
        && beta.contains(p)
    {
        let why = format!(
            "`{}` appears in both the mean and the noise sd",
            model.params[*p].name
        );
        return fallback(&why, mle);
    }
    Ok(Some(NodePlan {
        node,
        form: Form::Linear { terms, sd },
        beta,
        mle,
    }))
}

fn plans(model: &CausalModel, solver: bool) -> Result<Vec<NodePlan<'_>>, DataError> {
    let mut out = Vec::new();
    let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
    for node in 0..model.nodes.len() {
        for p in params_of(&model.nodes[node].expr) {
            if !model.params[p].is_fitted() {
                continue;
            }
            if let Some(&other) = owner.get(&p) {
                return Err(cannot(
                    model,
                    node,
                    format!(
                        "`{}` is also used by node `{}`; a fitted parameter belongs to one mechanism",
                        model.params[p].name, model.nodes[other].name
                    ),
                ));
            }
            owner.insert(p, node);
        }
        if let Some(p) = plan_node(model, node, solver)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Refuses, without reading data, every mechanism that `fit` with these
/// options cannot estimate (the first one, naming the node).
pub fn check_fittable(model: &CausalModel, opts: &FitOptions<'_>) -> Result<(), DataError> {
    plans(model, opts.mle.is_some()).map(|_| ())
}

/// Row values of a chunk in node order (latent nodes NaN).
fn row_values(src: &DataSource, chunk: &Chunk, i: usize, out: &mut [f64]) {
    out.fill(f64::NAN);
    for (k, (node, _)) in src.nodes.iter().enumerate() {
        out[*node] = chunk.values[k][i];
    }
}

fn keep(opts: &FitOptions<'_>, chunk: &Chunk, i: usize) -> bool {
    match (opts.use_period, &chunk.period) {
        (Some(f), Some(p)) => f(&p[i]),
        _ => true,
    }
}

/// Evaluates the linear predictor's offset and design row at `vals`:
/// `f(θ) = o + x·θ` over the plan's coefficients.
struct Design<'a> {
    model: &'a CausalModel,
    params: Vec<f64>,
    beta: &'a [usize],
    /// The model's `lag(x, k)` reads; their values follow the nodes' in a
    /// streamed row ([`stream`]).
    reads: Vec<(NodeId, u32)>,
}

/// A lag reader over a streamed row: `vals[n_nodes + j]` holds the `j`-th
/// of `reads`, NaN-free unless the data is.
pub(crate) fn row_lag<'a>(
    model: &'a CausalModel,
    reads: &'a [(NodeId, u32)],
    vals: &'a [f64],
) -> impl Fn(NodeId, u32) -> Option<f64> + 'a {
    move |n, k| {
        reads
            .binary_search(&(n, k))
            .ok()
            .map(|j| vals[model.nodes.len() + j])
    }
}

impl Design<'_> {
    fn f(&mut self, expr_terms: &[(f64, &Expr)], vals: &[f64], theta: &[f64]) -> f64 {
        for (k, &p) in self.beta.iter().enumerate() {
            self.params[p] = theta[k];
        }
        let none = |_, _| None;
        let lag = row_lag(self.model, &self.reads, vals);
        let env = Env {
            model: self.model,
            params: &self.params,
            values: vals,
            noise: &none,
            lag: &lag,
        };
        expr_terms.iter().map(|(s, e)| s * env.eval(e)).sum()
    }

    /// (offset, design row).
    fn row(&mut self, terms: &[(f64, &Expr)], vals: &[f64]) -> (f64, Vec<f64>) {
        let p = self.beta.len();
        let zero = vec![0.0; p];
        let o = self.f(terms, vals, &zero);
        let mut x = vec![0.0; p];
        let mut e = zero.clone();
        for j in 0..p {
            e[j] = 1.0;
            x[j] = self.f(terms, vals, &e) - o;
            e[j] = 0.0;
        }
        (o, x)
    }

    /// Whether the terms are linear in θ at this row (two probe points).
    fn linear_at(&mut self, terms: &[(f64, &Expr)], vals: &[f64], o: f64, x: &[f64]) -> bool {
        let probes: [f64; 2] = [0.731, -1.618];
        probes.iter().all(|&c| {
            let theta: Vec<f64> = (0..x.len()).map(|j| c * (1.0 + j as f64 * 0.377)).collect();
            let want = o + x.iter().zip(&theta).map(|(a, b)| a * b).sum::<f64>();
            let got = self.f(terms, vals, &theta);
            (got - want).abs() <= 1e-8 * (1.0 + got.abs().max(want.abs()))
        })
    }
}

/// Fits every node with `?params`.
pub fn fit(
    model: &CausalModel,
    src: &DataSource,
    opts: &FitOptions<'_>,
) -> Result<FitResult, DataError> {
    let plans = plans(model, opts.mle.is_some())?;
    if plans.is_empty() {
        return Err(DataError::Usage(
            "the scenario has no `?params` to fit".to_string(),
        ));
    }
    let mut res = FitResult {
        rows: 0,
        nodes: vec![],
        params: vec![],
    };
    for plan in &plans {
        let exact = match &plan.form {
            Form::Linear { terms, sd } => fit_linear(model, src, opts, plan, terms, sd.as_ref())?,
            Form::Logistic { eta } => fit_logistic(model, src, opts, plan, eta)?,
            Form::Mle => None,
        };
        let (rows, node, params) = match (exact, &plan.mle, opts.mle) {
            (Some(f), _, _) => f,
            (None, Ok(problem), Some(solver)) => {
                fit_mle(model, src, opts, plan.node, problem, solver)?
            }
            (None, mle, solver) => {
                return Err(refusal(
                    model,
                    plan.node,
                    &not_linear_reason(model, plan),
                    mle,
                    solver.is_some(),
                ));
            }
        };
        res.rows = res.rows.max(rows);
        res.nodes.push(node);
        res.params.extend(params);
    }
    // Lock order: the model's param order.
    res.params
        .sort_by_key(|p| model.param_id(&format!("?{}", p.name)));
    Ok(res)
}

type NodeFit = (u64, lock::LockedNode, Vec<lock::LockedParam>);

/// Streams the rows a fit uses: `f(values, y, file_position)`, where
/// `values` holds each node's observed value (index = node id) followed by
/// the row's `lag` reads (see [`row_lag`]): the unit's observed earlier
/// rows, or the node's `init` before its first row. Held-out rows are
/// skipped but still enter the history (they were observed).
fn stream(
    model: &CausalModel,
    src: &DataSource,
    opts: &FitOptions<'_>,
    node: usize,
    mut f: impl FnMut(&[f64], f64, u64) -> Result<(), DataError>,
) -> Result<u64, DataError> {
    let n_nodes = model.nodes.len();
    let reads = crate::history::lag_reads(model);
    let mut lags = crate::history::Lags::new(model, src, 1)?;
    let lagged: Vec<usize> = lags
        .as_ref()
        .map(|l| l.nodes().iter().map(|n| n.index()).collect())
        .unwrap_or_default();
    let params: Vec<f64> = model.params.iter().map(|p| p.value).collect();
    let mut vals = vec![f64::NAN; n_nodes + reads.len()];
    let mut used = 0u64;
    src.for_each_chunk(opts.chunk_rows.unwrap_or(DEFAULT_CHUNK_ROWS), |chunk| {
        require_observed(src, model, chunk)?;
        for i in 0..chunk.n_rows {
            row_values(src, chunk, i, &mut vals);
            let t = match lags.as_mut() {
                Some(l) => {
                    let at = l.row(chunk, i)?;
                    let none = |_, _| None;
                    for (j, &(n, k)) in reads.iter().enumerate() {
                        vals[n_nodes + j] = match at.view.get(n, k, 0).ok().flatten() {
                            Some(v) => v,
                            None => model.nodes[n.index()].init.as_ref().map_or(0.0, |e| {
                                Env {
                                    model,
                                    params: &params,
                                    values: &[],
                                    noise: &none,
                                    lag: &crate::eval::no_lag,
                                }
                                .eval(e)
                            }),
                        };
                    }
                    at.period
                }
                None => 0,
            };
            if keep(opts, chunk, i) {
                f(&vals, vals[node], chunk.positions[i])?;
                used += 1;
            }
            if let Some(l) = lags.as_mut() {
                l.record(chunk, i, t, |j, _| vals[lagged[j]]);
            }
        }
        Ok(())
    })?;
    Ok(used)
}

fn not_linear_reason(model: &CausalModel, plan: &NodePlan<'_>) -> String {
    let names: Vec<&str> = plan
        .beta
        .iter()
        .map(|&p| model.params[p].name.as_str())
        .collect();
    format!("it is not linear in its parameters ({})", names.join(", "))
}

fn fit_linear(
    model: &CausalModel,
    src: &DataSource,
    opts: &FitOptions<'_>,
    plan: &NodePlan<'_>,
    terms: &[(f64, &Expr)],
    sd: Option<&Sd>,
) -> Result<Option<NodeFit>, DataError> {
    let p = plan.beta.len();
    let mut d = Design {
        model,
        params: model.params.iter().map(|p| p.value).collect(),
        beta: &plan.beta,
        reads: crate::history::lag_reads(model),
    };
    let mut xtx = vec![0.0; p * p];
    let mut xty = vec![0.0; p];
    let mut checked = 0;
    let mut linear = true;
    let n = stream(model, src, opts, plan.node, |vals, y, _| {
        let (o, x) = d.row(terms, vals);
        if checked < 64 {
            checked += 1;
            linear &= d.linear_at(terms, vals, o, &x);
        }
        let r = y - o;
        for a in 0..p {
            xty[a] += x[a] * r;
            for b in 0..p {
                xtx[a * p + b] += x[a] * x[b];
            }
        }
        Ok(())
    })?;
    if !linear {
        return Ok(None);
    }
    if n as usize <= p {
        return Err(cannot(
            model,
            plan.node,
            format!("{n} rows cannot determine {p} parameters"),
        ));
    }
    let inv = invert_spd(&xtx, p).ok_or_else(|| {
        cannot(
            model,
            plan.node,
            "the design is singular (a parameter multiplies a constant-zero or collinear term)",
        )
    })?;
    let beta: Vec<f64> = (0..p)
        .map(|a| (0..p).map(|b| inv[a * p + b] * xty[b]).sum())
        .collect();
    // Second pass: the residual sum of squares, computed directly.
    let mut rss = 0.0;
    stream(model, src, opts, plan.node, |vals, y, _| {
        let fit = d.f(terms, vals, &beta);
        rss += (y - fit) * (y - fit);
        Ok(())
    })?;
    let dof = (n as usize - p) as f64;
    let sigma_hat = (rss / dof).sqrt();
    let mut out = Vec::new();
    let mut sigma_estimator = None;
    let var_scale = match sd {
        Some(Sd::Fitted(sp)) => {
            out.push(locked(
                model,
                *sp,
                plan.node,
                sigma_hat,
                sigma_hat / (2.0 * dof).sqrt(),
            ));
            sigma_estimator = Some("unbiased: sqrt(RSS / (n - p))".to_string());
            sigma_hat * sigma_hat
        }
        // A known sd: the coefficients' variance uses it. Its value is the
        // sd argument at the first row (a constant sd is the common case).
        Some(Sd::Known) => known_sd(model, plan.node).map_or(sigma_hat * sigma_hat, |s| s * s),
        None => sigma_hat * sigma_hat,
    };
    for (k, &pid) in plan.beta.iter().enumerate() {
        let se = (var_scale * inv[k * p + k]).sqrt();
        out.push(locked(model, pid, plan.node, beta[k], se));
    }
    Ok(Some((
        n,
        lock::LockedNode {
            node: model.nodes[plan.node].name.clone(),
            method: "least_squares".into(),
            rows: n,
            iterations: 1,
            sigma_estimator,
        },
        out,
    )))
}

/// The constant sd of a node's normal noise, if it is one.
fn known_sd(model: &CausalModel, node: usize) -> Option<f64> {
    let mut sd = None;
    crate::eval::walk(&model.nodes[node].expr, &mut |e| {
        if let ExprKind::Draw {
            dist: Dist::Normal,
            args,
            ..
        } = &e.kind
        {
            let none = |_, _| None;
            let params: Vec<f64> = model.params.iter().map(|p| p.value).collect();
            let env = Env {
                model,
                params: &params,
                values: &[],
                noise: &none,
                lag: &crate::eval::no_lag,
            };
            if crate::eval::nodes_of(&args[1]).is_empty() {
                sd = Some(env.eval(&args[1]));
            }
        }
    });
    sd.filter(|s| s.is_finite() && *s > 0.0)
}

fn locked(model: &CausalModel, p: usize, node: usize, est: f64, se: f64) -> lock::LockedParam {
    lock::LockedParam {
        name: model.params[p].name[1..].to_string(),
        node: model.nodes[node].name.clone(),
        estimate: est,
        std_error: se,
    }
}

/// Newton–IRLS iterations before giving up.
const MAX_NEWTON: u32 = 100;

fn fit_logistic(
    model: &CausalModel,
    src: &DataSource,
    opts: &FitOptions<'_>,
    plan: &NodePlan<'_>,
    eta: &Expr,
) -> Result<Option<NodeFit>, DataError> {
    let p = plan.beta.len();
    let terms = [(1.0, eta)];
    let mut d = Design {
        model,
        params: model.params.iter().map(|p| p.value).collect(),
        beta: &plan.beta,
        reads: crate::history::lag_reads(model),
    };
    let mut beta = vec![0.0; p];
    let mut n = 0;
    for iter in 1..=MAX_NEWTON {
        let mut grad = vec![0.0; p];
        let mut info = vec![0.0; p * p];
        let mut checked = 0;
        let mut linear = true;
        n = stream(model, src, opts, plan.node, |vals, y, pos| {
            if y != 0.0 && y != 1.0 {
                return Err(DataError::Impossible {
                    path: src.display.clone(),
                    row: pos,
                    node: model.nodes[plan.node].name.clone(),
                    value: y,
                    reason: "a bernoulli node is 0 or 1".into(),
                });
            }
            let (o, x) = d.row(&terms, vals);
            if iter == 1 && checked < 64 {
                checked += 1;
                linear &= d.linear_at(&terms, vals, o, &x);
            }
            let eta = o + x.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>();
            let pr = 1.0 / (1.0 + (-eta).exp());
            let w = pr * (1.0 - pr);
            for a in 0..p {
                grad[a] += x[a] * (y - pr);
                for b in 0..p {
                    info[a * p + b] += w * x[a] * x[b];
                }
            }
            Ok(())
        })?;
        if !linear {
            return Ok(None);
        }
        let inv = invert_spd(&info, p).ok_or_else(|| {
            cannot(
                model,
                plan.node,
                "the information matrix is singular (perfect separation or a collinear term)",
            )
        })?;
        let step: Vec<f64> = (0..p)
            .map(|a| (0..p).map(|b| inv[a * p + b] * grad[b]).sum())
            .collect();
        let mut done = true;
        for a in 0..p {
            beta[a] += step[a];
            done &= step[a].abs() <= 1e-10 * (1.0 + beta[a].abs());
        }
        if beta.iter().any(|b| !b.is_finite() || b.abs() > 1e8) {
            return Err(cannot(
                model,
                plan.node,
                "the logistic fit diverges (perfect separation: some parameter goes to infinity)",
            ));
        }
        if done {
            // Standard errors at the optimum: the step was negligible, so
            // the information of this pass is the one at β̂.
            let out = plan
                .beta
                .iter()
                .enumerate()
                .map(|(k, &pid)| locked(model, pid, plan.node, beta[k], inv[k * p + k].sqrt()))
                .collect();
            return Ok(Some((
                n,
                lock::LockedNode {
                    node: model.nodes[plan.node].name.clone(),
                    method: "logistic_irls".into(),
                    rows: n,
                    iterations: iter,
                    sigma_estimator: None,
                },
                out,
            )));
        }
    }
    let _ = n;
    Err(cannot(
        model,
        plan.node,
        format!("the logistic fit did not converge in {MAX_NEWTON} Newton steps"),
    ))
}

/// The rows of a maximum likelihood fit, streamed from the data source
/// one chunk per batch (holdout periods skipped; values outside the
/// distribution's support refused with their file position).
struct DataRows<'a> {
    model: &'a CausalModel,
    src: &'a DataSource,
    opts: &'a FitOptions<'a>,
    problem: &'a MleProblem,
    params: Vec<f64>,
}

impl RowSource for DataRows<'_> {
    fn for_each_batch(
        &mut self,
        f: &mut dyn FnMut(&RowBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let (model, src, problem) = (self.model, self.src, self.problem);
        let mut vals = vec![f64::NAN; model.nodes.len()];
        // A shift without fitted params is data: check `y − loc` too.
        let fixed_shift = problem.loc.as_ref().filter(|l| !reads_params(l));
        let mut batch = RowBatch::default();
        src.for_each_chunk(
            self.opts.chunk_rows.unwrap_or(DEFAULT_CHUNK_ROWS),
            |chunk| {
                require_observed(src, model, chunk)?;
                batch.columns.iter_mut().for_each(Vec::clear);
                batch.y.clear();
                for i in 0..chunk.n_rows {
                    if !keep(self.opts, chunk, i) {
                        continue;
                    }
                    row_values(src, chunk, i, &mut vals);
                    problem.push_row(model, &self.params, &vals, &mut batch);
                    let k = batch.len() - 1;
                    let y = match (problem.loc.is_some(), fixed_shift) {
                        (false, _) => batch.y[k],
                        (true, Some(l)) => batch.y[k] - l.eval(&[], &batch, k),
                        // A fitted shift: any finite value can be reached.
                        (true, None) => 0.0,
                    };
                    if !problem.dist.in_support(y) {
                        return Err(DataError::Impossible {
                            path: src.display.clone(),
                            row: chunk.positions[i],
                            node: problem.node.clone(),
                            value: batch.y[k],
                            reason: format!(
                                "a {} value{} is {}",
                                problem.dist.name(),
                                if problem.loc.is_some() {
                                    " minus its shift"
                                } else {
                                    ""
                                },
                                problem.dist.support_text()
                            ),
                        });
                    }
                }
                if batch.is_empty() {
                    return Ok(());
                }
                f(&batch)
            },
        )?;
        Ok(())
    }
}

fn reads_params(e: &crate::mle::MleExpr) -> bool {
    e.reads_params()
}

fn fit_mle(
    model: &CausalModel,
    src: &DataSource,
    opts: &FitOptions<'_>,
    node: usize,
    problem: &MleProblem,
    solver: &dyn MleSolver,
) -> Result<NodeFit, DataError> {
    let mut rows = DataRows {
        model,
        src,
        opts,
        problem,
        params: model.params.iter().map(|p| p.value).collect(),
    };
    // One pass for the row count and the observed values' scale (starting
    // values), which also checks every value before the solver runs.
    let (mut n, mut sum, mut sum2) = (0u64, 0.0, 0.0);
    rows.for_each_batch(&mut |b| {
        n += b.len() as u64;
        sum += b.y.iter().sum::<f64>();
        sum2 += b.y.iter().map(|y| y * y).sum::<f64>();
        Ok(())
    })?;
    let p = problem.params.len();
    if n as usize <= p {
        return Err(cannot(
            model,
            node,
            format!("{n} rows cannot determine {p} parameters"),
        ));
    }
    let mut problem = problem.clone();
    problem.y_mean = sum / n as f64;
    problem.y_sd = ((sum2 / n as f64 - problem.y_mean * problem.y_mean).max(0.0)).sqrt();
    rows.problem = &problem;
    let fit = solver.solve(&problem, &mut rows)?;
    let out = problem
        .params
        .iter()
        .enumerate()
        .map(|(k, name)| lock::LockedParam {
            name: name[1..].to_string(),
            node: problem.node.clone(),
            estimate: fit.estimates[k],
            std_error: fit.std_errors[k],
        })
        .collect();
    let sigma_estimator = (problem.dist == crate::mle::MleDist::Normal
        && reads_params(&problem.args[1]))
    .then(|| "maximum likelihood (divides by n)".to_string());
    Ok((
        n,
        lock::LockedNode {
            node: problem.node.clone(),
            method: fit.method,
            rows: n,
            iterations: fit.iterations,
            sigma_estimator,
        },
        out,
    ))
}

/// Inverse of a symmetric positive definite `p × p` matrix by Cholesky;
/// `None` when it is not (numerically) positive definite.
pub fn invert_spd(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    let scale = (0..p).map(|i| a[i * p + i].abs()).fold(0.0, f64::max);
    for i in 0..p {
        for j in 0..=i {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            if i == j {
                if s <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    // inv = L⁻ᵀ L⁻¹, column by column.
    let mut inv = vec![0.0; p * p];
    for c in 0..p {
        let mut y = vec![0.0; p];
        for i in 0..p {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * p + k] * y[k];
            }
            y[i] = s / l[i * p + i];
        }
        for i in (0..p).rev() {
            let mut s = y[i];
            for k in i + 1..p {
                s -= l[k * p + i] * inv[k * p + c];
            }
            inv[i * p + c] = s / l[i * p + i];
        }
    }
    Some(inv)
}
