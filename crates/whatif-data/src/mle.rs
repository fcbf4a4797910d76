//! Maximum likelihood for the mechanisms least squares and IRLS cannot fit:
//! the problem, described without burn, and the trait a solver implements.
//!
//! This crate owns the shape of the problem (which node, which `?params`,
//! which distribution and argument expressions), the data (streamed in
//! batches, holdout periods skipped) and the lock output; a [`MleSolver`]
//! owns the optimisation. `whatif-gpu` implements one with burn's autodiff;
//! a build without it passes no solver and these shapes are refused.
//!
//! **Shapes** (a node with fitted params, no latent parents, one draw):
//! - *direct*: `dist(a1, a2, …)`, the arguments noise-free expressions of
//!   parents and params;
//! - *shifted*: `loc + dist(args)` (`loc` a sum of noise-free terms, in any
//!   order and with `-`): then `y − loc ~ dist(args)`.
//!
//! with `dist` one of `normal(mu, sd)`, `lognormal(mu, sigma)`,
//! `exponential(rate)`, `logistic(mu, s)`, `laplace(mu, b)`,
//! `bernoulli(p)`, `gamma(shape, scale)`, `beta(a, b)`, `student_t(df)`
//! (standard: a location is a shift, `?mu + student_t(?df)`). Refused,
//! with the reason: `uniform` (its support is its bounds: the likelihood
//! is not differentiable there, the maximum likelihood bounds are the
//! sample's min and max); a shifted `bernoulli` or `beta`; a shifted
//! `lognormal`/`exponential`/`gamma` whose `loc` has fitted params (the
//! support would move with them: the likelihood is not smooth); a `laplace` whose
//! location has fitted params (a median regression: the log-likelihood is
//! piecewise linear there, it has no Hessian to give standard errors); a
//! fitted param under a comparison, `not`, `and`/`or`, the condition of an
//! `if`, or `floor`/`ceil`/`round` (no gradient).
//!
//! **Lowering.** Every maximal sub-expression without fitted params is
//! either a constant (folded to [`MleExpr::Num`]) or a *column*
//! ([`MleExpr::Col`]) evaluated here, in f64, per row; the solver sees only
//! differentiable ops of columns, constants and fitted params. `clamp` is
//! `min(max(·))`, `logit(x)` is `log(x / (1 − x))`.
//!
//! **Objective.** The negative log-likelihood Σ −log f(yᵢ | θ) over the
//! rows used, with f the density (probability for bernoulli) of
//! [`MleProblem::neg_log_lik`], the f64 reference every solver is tested
//! against. Standard errors are √diag(H⁻¹), H its Hessian at the optimum
//! (observed information).

use whatif_lang::{BinOp, CausalModel, Dist, Expr, ExprKind, Func};
use whatif_stats::special::ln_gamma;

use crate::DataError;
use crate::eval::{Env, has_draw, nodes_of, params_of};

/// A distribution the MLE path can fit, with its argument conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MleDist {
    /// `normal(mu, sd)`
    Normal,
    /// `lognormal(mu, sigma)`: log of the value is normal(mu, sigma)
    LogNormal,
    /// `exponential(rate)`: mean 1 / rate
    Exponential,
    /// `laplace(mu, b)`: density exp(−|y − mu| / b) / 2b
    Laplace,
    /// `logistic(mu, s)`: density e^{−z} / (s (1 + e^{−z})²), z = (y − mu) / s
    Logistic,
    /// `bernoulli(p)`: the value is 0 or 1
    Bernoulli,
    /// `gamma(k, theta)`: shape k, scale theta, density
    /// y^{k−1} e^{−y/θ} / (Γ(k) θ^k) on y > 0
    Gamma,
    /// `beta(a, b)`: density y^{a−1} (1 − y)^{b−1} / B(a, b) on 0 < y < 1
    Beta,
    /// `student_t(df)`: standard (location 0, scale 1), density
    /// Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) (1 + t²/ν)^{−(ν+1)/2}
    StudentT,
}

impl MleDist {
    pub fn name(self) -> &'static str {
        match self {
            MleDist::Normal => "normal",
            MleDist::LogNormal => "lognormal",
            MleDist::Exponential => "exponential",
            MleDist::Laplace => "laplace",
            MleDist::Logistic => "logistic",
            MleDist::Bernoulli => "bernoulli",
            MleDist::Gamma => "gamma",
            MleDist::Beta => "beta",
            MleDist::StudentT => "student_t",
        }
    }

    /// Whether `y` (after the shift) is in the support.
    pub fn in_support(self, y: f64) -> bool {
        match self {
            MleDist::Normal | MleDist::Laplace | MleDist::Logistic | MleDist::StudentT => {
                y.is_finite()
            }
            MleDist::LogNormal | MleDist::Gamma => y > 0.0 && y.is_finite(),
            MleDist::Beta => y > 0.0 && y < 1.0,
            MleDist::Exponential => y >= 0.0 && y.is_finite(),
            MleDist::Bernoulli => y == 0.0 || y == 1.0,
        }
    }

    pub(crate) fn support_text(self) -> &'static str {
        match self {
            MleDist::Normal | MleDist::Laplace | MleDist::Logistic | MleDist::StudentT => {
                "a finite number"
            }
            MleDist::LogNormal | MleDist::Gamma => "positive",
            MleDist::Beta => "strictly between 0 and 1",
            MleDist::Exponential => "non-negative",
            MleDist::Bernoulli => "0 or 1",
        }
    }

    /// Per argument, starting values for a param that is that argument on
    /// its own (empty: [`MleProblem::starts`]' general rule), from the
    /// observed values' mean and sd when they are the draw's (`shifted`:
    /// they are not). Method of moments, each followed by a plain
    /// fallback: gamma k = mean² / var, θ = var / mean; beta
    /// a = mean · c, b = (1 − mean) · c with c = mean (1 − mean) / var − 1;
    /// a t's df at 5 and 20 (its moments need df > 4).
    pub fn moment_args(self, mean: f64, sd: f64, shifted: bool) -> Vec<Vec<f64>> {
        let var = sd * sd;
        match self {
            MleDist::Gamma if !shifted && mean > 0.0 && var > 0.0 => {
                vec![vec![mean * mean / var, 1.0], vec![var / mean, 1.0]]
            }
            MleDist::Gamma => vec![vec![1.0], vec![sd, 1.0]],
            MleDist::Beta if mean > 0.0 && mean < 1.0 && var > 0.0 && var < mean * (1.0 - mean) => {
                let c = mean * (1.0 - mean) / var - 1.0;
                vec![vec![mean * c, 1.0], vec![(1.0 - mean) * c, 1.0]]
            }
            MleDist::Beta => vec![vec![1.0], vec![1.0]],
            MleDist::StudentT => vec![vec![5.0, 20.0]],
            MleDist::Exponential | MleDist::Bernoulli => vec![vec![]],
            MleDist::Normal | MleDist::LogNormal | MleDist::Laplace | MleDist::Logistic => {
                vec![vec![], vec![]]
            }
        }
    }

    /// −log f(y | args), in f64: the reference objective for one row.
    /// +∞ where an argument is out of its domain (a solver rejects those
    /// steps) or `y` is outside the support.
    pub fn neg_log_density(self, y: f64, a: &[f64]) -> f64 {
        const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
        let bad = f64::INFINITY;
        let v = match self {
            MleDist::Normal => {
                if !positive(a[1]) {
                    return bad;
                }
                let z = (y - a[0]) / a[1];
                a[1].ln() + HALF_LN_2PI + 0.5 * z * z
            }
            MleDist::LogNormal => {
                if !positive(a[1]) || !positive(y) {
                    return bad;
                }
                let z = (y.ln() - a[0]) / a[1];
                y.ln() + a[1].ln() + HALF_LN_2PI + 0.5 * z * z
            }
            MleDist::Exponential => {
                if !positive(a[0]) || !(positive(y) || y == 0.0) {
                    return bad;
                }
                a[0] * y - a[0].ln()
            }
            MleDist::Laplace => {
                if !positive(a[1]) {
                    return bad;
                }
                (2.0 * a[1]).ln() + (y - a[0]).abs() / a[1]
            }
            MleDist::Logistic => {
                if !positive(a[1]) {
                    return bad;
                }
                let z = (y - a[0]) / a[1];
                // log(1 + e^{−z}) twice, written to stay finite for |z| large.
                a[1].ln() + z + 2.0 * softplus(-z)
            }
            MleDist::Bernoulli => {
                let p = a[0];
                if !(0.0..=1.0).contains(&p) {
                    return bad;
                }
                if y == 1.0 { -p.ln() } else { -(-p).ln_1p() }
            }
            MleDist::Gamma => {
                let (k, theta) = (a[0], a[1]);
                if !(positive(k) && positive(theta) && positive(y)) {
                    return bad;
                }
                ln_gamma(k) + k * theta.ln() - (k - 1.0) * y.ln() + y / theta
            }
            MleDist::Beta => {
                let (p, q) = (a[0], a[1]);
                if !(positive(p) && positive(q) && positive(y) && y < 1.0) {
                    return bad;
                }
                ln_gamma(p) + ln_gamma(q)
                    - ln_gamma(p + q)
                    - (p - 1.0) * y.ln()
                    - (q - 1.0) * (-y).ln_1p()
            }
            MleDist::StudentT => {
                let nu = a[0];
                if !positive(nu) {
                    return bad;
                }
                const HALF_LN_PI: f64 = 0.572_364_942_924_700_1;
                ln_gamma(0.5 * nu) - ln_gamma(0.5 * (nu + 1.0))
                    + 0.5 * nu.ln()
                    + HALF_LN_PI
                    + 0.5 * (nu + 1.0) * (y * y / nu).ln_1p()
            }
        };
        if v.is_nan() { bad } else { v }
    }
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// log(1 + eˣ) without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// A unary op of the lowered expression (all differentiable almost
/// everywhere in their argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MleUnary {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Sigmoid,
    Tanh,
}

/// A binary op of the lowered expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MleBinary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
}

/// An argument expression lowered for a solver: only fitted params,
/// columns computed per row by this crate, constants and differentiable
/// ops.
#[derive(Debug, Clone, PartialEq)]
pub enum MleExpr {
    Num(f64),
    /// Fitted param `k` ([`MleProblem::params`]`[k]`).
    Param(usize),
    /// Column `k` of each [`RowBatch`].
    Col(usize),
    Unary(MleUnary, Box<MleExpr>),
    Binary(MleBinary, Box<MleExpr>, Box<MleExpr>),
    /// `if(cond, then, otherwise)` with `cond` a column (non-zero is true):
    /// a condition never depends on fitted params.
    Select {
        cond: usize,
        then: Box<MleExpr>,
        otherwise: Box<MleExpr>,
    },
}

impl MleExpr {
    /// Evaluates at row `i` of `batch` with fitted params `theta`, in f64.
    pub fn eval(&self, theta: &[f64], batch: &RowBatch, i: usize) -> f64 {
        match self {
            MleExpr::Num(v) => *v,
            MleExpr::Param(k) => theta[*k],
            MleExpr::Col(k) => batch.columns[*k][i],
            MleExpr::Unary(op, x) => {
                let x = x.eval(theta, batch, i);
                match op {
                    MleUnary::Neg => -x,
                    MleUnary::Exp => x.exp(),
                    MleUnary::Log => x.ln(),
                    MleUnary::Sqrt => x.sqrt(),
                    MleUnary::Abs => x.abs(),
                    MleUnary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    MleUnary::Tanh => x.tanh(),
                }
            }
            MleExpr::Binary(op, l, r) => {
                let (l, r) = (l.eval(theta, batch, i), r.eval(theta, batch, i));
                match op {
                    MleBinary::Add => l + r,
                    MleBinary::Sub => l - r,
                    MleBinary::Mul => l * r,
                    MleBinary::Div => l / r,
                    MleBinary::Pow => l.powf(r),
                    MleBinary::Min => crate::eval::call(Func::Min, &[l, r]),
                    MleBinary::Max => crate::eval::call(Func::Max, &[l, r]),
                }
            }
            MleExpr::Select {
                cond,
                then,
                otherwise,
            } => {
                if batch.columns[*cond][i] != 0.0 {
                    then.eval(theta, batch, i)
                } else {
                    otherwise.eval(theta, batch, i)
                }
            }
        }
    }

    /// Whether the expression reads a fitted param.
    pub fn reads_params(&self) -> bool {
        match self {
            MleExpr::Param(_) => true,
            MleExpr::Num(_) | MleExpr::Col(_) => false,
            MleExpr::Unary(_, x) => x.reads_params(),
            MleExpr::Binary(_, l, r) => l.reads_params() || r.reads_params(),
            MleExpr::Select {
                then, otherwise, ..
            } => then.reads_params() || otherwise.reads_params(),
        }
    }
}

/// Rows of one batch: the problem's columns and the observed node value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowBatch {
    /// `columns[k][i]`: column `k` ([`MleProblem::columns`]) at row `i`.
    pub columns: Vec<Vec<f64>>,
    /// The node's observed value per row.
    pub y: Vec<f64>,
}

impl RowBatch {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Where a solver reads the rows: every call streams all the rows the fit
/// uses, in batches (one pass of the data; memory bounded by a batch).
pub trait RowSource {
    fn for_each_batch(
        &mut self,
        f: &mut dyn FnMut(&RowBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError>;
}

/// Rows held in memory (tests, small data).
#[derive(Debug, Clone, Default)]
pub struct MemoryRows(pub Vec<RowBatch>);

impl RowSource for MemoryRows {
    fn for_each_batch(
        &mut self,
        f: &mut dyn FnMut(&RowBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        self.0.iter().try_for_each(f)
    }
}

/// The result of a solver.
#[derive(Debug, Clone, PartialEq)]
pub struct MleFit {
    /// One per [`MleProblem::params`].
    pub estimates: Vec<f64>,
    pub std_errors: Vec<f64>,
    /// Optimiser iterations (each one pass for the gradient and a few for
    /// the Hessian and the line search).
    pub iterations: u32,
    /// The negative log-likelihood at the estimates.
    pub neg_log_lik: f64,
    /// What goes into the lock's `method`, e.g. `mle_autodiff (wgpu)`.
    pub method: String,
}

/// An optimiser of an [`MleProblem`].
pub trait MleSolver {
    /// For messages: which solver and device.
    fn name(&self) -> String;
    /// Minimises the negative log-likelihood; errors are
    /// [`DataError::CannotFit`] naming `problem.node` (no finite starting
    /// point, no convergence, a singular Hessian) or the data's own.
    fn solve(&self, problem: &MleProblem, rows: &mut dyn RowSource) -> Result<MleFit, DataError>;
}

/// One node's maximum likelihood problem.
#[derive(Debug, Clone)]
pub struct MleProblem {
    /// The node's name.
    pub node: String,
    /// Fitted param names, `?` included; [`MleExpr::Param`] indexes this.
    pub params: Vec<String>,
    pub dist: MleDist,
    /// The distribution's arguments.
    pub args: Vec<MleExpr>,
    /// The shift of a shifted shape (`y − loc ~ dist(args)`).
    pub loc: Option<MleExpr>,
    /// Per column, what it is (for messages), e.g. `x` or `log(income)`.
    pub columns: Vec<String>,
    /// Per param, whether it is a scale-like argument on its own (a normal
    /// sd, an exponential rate, …): positive, started from the data's scale.
    pub scale_like: Vec<bool>,
    /// Per param, the distribution argument it is on its own, if any
    /// (`gamma(?k, exp(?b * x))`: `?k` is argument 0, `?b` none).
    pub lone_arg: Vec<Option<usize>>,
    /// Mean and standard deviation of the observed values (filled by the
    /// fit from the data, for starting values; 0 and 1 until then).
    pub y_mean: f64,
    pub y_sd: f64,
    /// The lowered columns (f64, evaluated here).
    pub(crate) column_exprs: Vec<Expr>,
    /// The model's `lag(x, k)` reads: a streamed row carries their values
    /// after the nodes' (see `fit::row_lag`).
    pub(crate) lag_reads: Vec<(whatif_lang::NodeId, u32)>,
    pub(crate) node_id: usize,
}

impl MleProblem {
    /// The shape of `node`'s mechanism, or why it is not one the MLE path
    /// takes (a lowercase reason for [`DataError::CannotFit`]).
    pub fn from_node(model: &CausalModel, node: usize) -> Result<MleProblem, String> {
        let n = &model.nodes[node];
        let fitted: Vec<usize> = params_of(&n.expr)
            .into_iter()
            .filter(|&p| model.params[p].is_fitted())
            .collect();
        let mut parts = Vec::new();
        summands(&n.expr, 1.0, &mut parts);
        let mut draw = None;
        let mut loc_terms = Vec::new();
        for (sign, e) in parts {
            if !has_draw(e) {
                loc_terms.push((sign, e));
            } else if draw.is_some() {
                return Err("its mechanism has more than one draw".into());
            } else {
                draw = Some((sign, e));
            }
        }
        let Some((sign, d)) = draw else {
            return Err("its mechanism has no draw (nothing to fit a likelihood to)".into());
        };
        let ExprKind::Draw { dist, args, .. } = &d.kind else {
            return Err(
                "its noise is not an additive `dist(...)` term (a draw inside a function or product)"
                    .into(),
            );
        };
        if sign < 0.0 {
            return Err("its draw is subtracted; write `loc + dist(...)`".into());
        }
        if args.iter().any(has_draw) {
            return Err("a distribution argument has a draw of its own".into());
        }
        let dist = match dist {
            Dist::Normal => MleDist::Normal,
            Dist::LogNormal => MleDist::LogNormal,
            Dist::Exponential => MleDist::Exponential,
            Dist::Laplace => MleDist::Laplace,
            Dist::Logistic => MleDist::Logistic,
            Dist::Bernoulli => MleDist::Bernoulli,
            Dist::Gamma => MleDist::Gamma,
            Dist::Beta => MleDist::Beta,
            Dist::StudentT => MleDist::StudentT,
            Dist::Uniform => {
                return Err("a `uniform` draw's likelihood is not differentiable in its bounds (they are its support: the maximum likelihood bounds are the sample's min and max, with no Hessian for standard errors); maximum likelihood fits normal, lognormal, exponential, laplace, logistic, bernoulli, gamma, beta and student_t".into());
            }
        };
        let mut l = Lowering {
            model,
            fitted: &fitted,
            columns: vec![],
            column_exprs: vec![],
        };
        let mut lowered = Vec::new();
        for a in args {
            lowered.push(l.lower(a)?);
        }
        let loc = if loc_terms.is_empty() {
            None
        } else {
            let mut acc: Option<MleExpr> = None;
            for (s, e) in &loc_terms {
                let x = l.lower(e)?;
                acc = Some(match (acc, *s > 0.0) {
                    (None, true) => x,
                    (None, false) => MleExpr::Unary(MleUnary::Neg, Box::new(x)),
                    (Some(a), true) => MleExpr::Binary(MleBinary::Add, Box::new(a), Box::new(x)),
                    (Some(a), false) => MleExpr::Binary(MleBinary::Sub, Box::new(a), Box::new(x)),
                });
            }
            acc
        };
        let loc_fitted = loc.as_ref().is_some_and(MleExpr::reads_params);
        match dist {
            MleDist::Bernoulli | MleDist::Beta if loc.is_some() => {
                return Err(format!(
                    "a {} draw is fitted on its own, not shifted",
                    dist.name()
                ));
            }
            MleDist::LogNormal | MleDist::Exponential | MleDist::Gamma if loc_fitted => {
                return Err(format!(
                    "the shift of a {} draw has fitted params: its support would move with them",
                    dist.name()
                ));
            }
            MleDist::Laplace if loc_fitted || lowered[0].reads_params() => {
                return Err("the location of a laplace draw has fitted params: its log-likelihood is piecewise linear there (a median regression), with no Hessian for standard errors".into());
            }
            _ => {}
        }
        let scale_arg = match dist {
            MleDist::Normal | MleDist::LogNormal | MleDist::Laplace | MleDist::Logistic => Some(1),
            MleDist::Exponential => Some(0),
            // A gamma's scale, a beta's and a t's args start from the
            // data's moments instead (`MleDist::moment_args`).
            MleDist::Bernoulli | MleDist::Gamma | MleDist::Beta | MleDist::StudentT => None,
        };
        let lone_arg: Vec<Option<usize>> = (0..fitted.len())
            .map(|k| lowered.iter().position(|a| *a == MleExpr::Param(k)))
            .collect();
        let scale_like = (0..fitted.len())
            .map(|k| scale_arg.is_some_and(|a| lowered[a] == MleExpr::Param(k)))
            .collect();
        Ok(MleProblem {
            node: n.name.clone(),
            params: fitted
                .iter()
                .map(|&p| model.params[p].name.clone())
                .collect(),
            dist,
            args: lowered,
            loc,
            columns: l.columns,
            scale_like,
            lone_arg,
            y_mean: 0.0,
            y_sd: 1.0,
            column_exprs: l.column_exprs,
            lag_reads: crate::history::lag_reads(model),
            node_id: node,
        })
    }

    /// Σ −log f(y | θ) over a batch, in f64 (the reference objective).
    pub fn neg_log_lik(&self, theta: &[f64], batch: &RowBatch) -> f64 {
        let mut a = vec![0.0; self.args.len()];
        (0..batch.len())
            .map(|i| {
                for (k, e) in self.args.iter().enumerate() {
                    a[k] = e.eval(theta, batch, i);
                }
                let shift = self.loc.as_ref().map_or(0.0, |l| l.eval(theta, batch, i));
                self.dist.neg_log_density(batch.y[i] - shift, &a)
            })
            .sum()
    }

    /// Starting points to try, in order (a solver takes the one with the
    /// lowest finite objective): a param that is on its own a gamma's,
    /// beta's or t's argument at its candidates of
    /// [`MleDist::moment_args`], every other scale-like param at the data's
    /// sd or 1, every other param at one of a few small values.
    pub fn starts(&self) -> Vec<Vec<f64>> {
        let y_sd = if self.y_sd.is_finite() && self.y_sd > 0.0 {
            self.y_sd
        } else {
            1.0
        };
        let rate = if self.dist == MleDist::Exponential && self.y_mean > 0.0 {
            1.0 / self.y_mean
        } else {
            1.0
        };
        let moments = self.dist.moment_args(self.y_mean, y_sd, self.loc.is_some());
        let mut out = Vec::new();
        for c in [0.1, 0.0, 1.0, 0.5, -0.1, -1.0] {
            for (j, s) in [y_sd, 1.0, rate].into_iter().enumerate() {
                let v: Vec<f64> = (0..self.params.len())
                    .map(|k| {
                        let m = self.lone_arg[k].map_or(&[][..], |a| &moments[a][..]);
                        if !m.is_empty() {
                            m[j % m.len()]
                        } else if self.scale_like[k] {
                            s
                        } else {
                            c
                        }
                    })
                    .collect();
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The batch of `vals` rows (node-order values per row): columns
    /// evaluated in f64 with the model's own (non-fitted) param values.
    pub(crate) fn push_row(
        &self,
        model: &CausalModel,
        params: &[f64],
        vals: &[f64],
        b: &mut RowBatch,
    ) {
        let none = |_, _| None;
        let lag = crate::fit::row_lag(model, &self.lag_reads, vals);
        let env = Env {
            model,
            params,
            values: vals,
            noise: &none,
            lag: &lag,
        };
        if b.columns.len() != self.column_exprs.len() {
            b.columns = vec![Vec::new(); self.column_exprs.len()];
        }
        for (k, e) in self.column_exprs.iter().enumerate() {
            b.columns[k].push(env.eval(e));
        }
        b.y.push(vals[self.node_id]);
    }
}

/// `e` as a signed sum of terms.
pub(crate) fn summands<'a>(e: &'a Expr, sign: f64, out: &mut Vec<(f64, &'a Expr)>) {
    match &e.kind {
        ExprKind::Binary {
            op: BinOp::Add,
            lhs,
            rhs,
        } => {
            summands(lhs, sign, out);
            summands(rhs, sign, out);
        }
        ExprKind::Binary {
            op: BinOp::Sub,
            lhs,
            rhs,
        } => {
            summands(lhs, sign, out);
            summands(rhs, -sign, out);
        }
        ExprKind::Neg(x) => summands(x, -sign, out),
        _ => out.push((sign, e)),
    }
}

struct Lowering<'m> {
    model: &'m CausalModel,
    /// The node's fitted params in model order: [`MleExpr::Param`] indexes it.
    fitted: &'m [usize],
    columns: Vec<String>,
    column_exprs: Vec<Expr>,
}

impl Lowering<'_> {
    fn fitted_in(&self, e: &Expr) -> bool {
        params_of(e)
            .into_iter()
            .any(|p| self.model.params[p].is_fitted())
    }

    fn column(&mut self, e: &Expr) -> usize {
        // The same node read twice is one column (spans differ).
        let same = |c: &Expr| match (&c.kind, &e.kind) {
            (ExprKind::Node(a), ExprKind::Node(b)) => a == b,
            _ => c == e,
        };
        if let Some(k) = self.column_exprs.iter().position(same) {
            return k;
        }
        let name = match &e.kind {
            ExprKind::Node(n) => self.model.node(*n).name.clone(),
            _ => format!("column {}", self.columns.len()),
        };
        self.columns.push(name);
        self.column_exprs.push(e.clone());
        self.columns.len() - 1
    }

    fn lower(&mut self, e: &Expr) -> Result<MleExpr, String> {
        if !self.fitted_in(e) {
            let mut reads_lag = false;
            e.walk(&mut |x| reads_lag |= matches!(x.kind, ExprKind::Lag { .. }));
            if nodes_of(e).is_empty() && !reads_lag {
                let params: Vec<f64> = self.model.params.iter().map(|p| p.value).collect();
                let none = |_, _| None;
                let env = Env {
                    model: self.model,
                    params: &params,
                    values: &[],
                    noise: &none,
                    lag: &crate::eval::no_lag,
                };
                return Ok(MleExpr::Num(env.eval(e)));
            }
            return Ok(MleExpr::Col(self.column(e)));
        }
        let b = |x: MleExpr| Box::new(x);
        let no_grad = |what: &str| {
            Err(format!(
                "a fitted param is under {what}, which has no gradient"
            ))
        };
        Ok(match &e.kind {
            ExprKind::Param(p) => MleExpr::Param(
                self.fitted
                    .iter()
                    .position(|&q| q == p.index())
                    .expect("invariant: a fitted param of the node is in its list"),
            ),
            ExprKind::Neg(x) => MleExpr::Unary(MleUnary::Neg, b(self.lower(x)?)),
            ExprKind::Binary { op, lhs, rhs } => {
                let op = match op {
                    BinOp::Add => MleBinary::Add,
                    BinOp::Sub => MleBinary::Sub,
                    BinOp::Mul => MleBinary::Mul,
                    BinOp::Div => MleBinary::Div,
                    BinOp::Pow => MleBinary::Pow,
                    other => return no_grad(&format!("`{}`", other.symbol())),
                };
                MleExpr::Binary(op, b(self.lower(lhs)?), b(self.lower(rhs)?))
            }
            ExprKind::Not(_) => return no_grad("`not`"),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                if self.fitted_in(cond) {
                    return no_grad("the condition of an `if`");
                }
                let cond = match self.lower(cond)? {
                    MleExpr::Col(k) => k,
                    // A constant condition: keep the branch it takes.
                    MleExpr::Num(c) => {
                        return self.lower(if c != 0.0 { then } else { otherwise });
                    }
                    _ => unreachable!("invariant: a param-free expression lowers to a column"),
                };
                MleExpr::Select {
                    cond,
                    then: b(self.lower(then)?),
                    otherwise: b(self.lower(otherwise)?),
                }
            }
            ExprKind::Call { func, args } => {
                let mut a = Vec::new();
                for x in args {
                    a.push(self.lower(x)?);
                }
                let un = |op, a: Vec<MleExpr>| {
                    MleExpr::Unary(op, Box::new(a.into_iter().next().expect("one arg")))
                };
                let mut it = a.into_iter();
                let mut next = || it.next().expect("invariant: call arity checked");
                match func {
                    Func::Exp => un(MleUnary::Exp, vec![next()]),
                    Func::Log => un(MleUnary::Log, vec![next()]),
                    Func::Sqrt => un(MleUnary::Sqrt, vec![next()]),
                    Func::Abs => un(MleUnary::Abs, vec![next()]),
                    Func::Sigmoid => un(MleUnary::Sigmoid, vec![next()]),
                    Func::Tanh => un(MleUnary::Tanh, vec![next()]),
                    Func::Min => MleExpr::Binary(MleBinary::Min, b(next()), b(next())),
                    Func::Max => MleExpr::Binary(MleBinary::Max, b(next()), b(next())),
                    Func::Pow => MleExpr::Binary(MleBinary::Pow, b(next()), b(next())),
                    Func::Clamp => {
                        let (x, lo, hi) = (next(), next(), next());
                        MleExpr::Binary(
                            MleBinary::Min,
                            b(MleExpr::Binary(MleBinary::Max, b(x), b(lo))),
                            b(hi),
                        )
                    }
                    Func::Logit => {
                        let x = next();
                        MleExpr::Unary(
                            MleUnary::Log,
                            b(MleExpr::Binary(
                                MleBinary::Div,
                                b(x.clone()),
                                b(MleExpr::Binary(MleBinary::Sub, b(MleExpr::Num(1.0)), b(x))),
                            )),
                        )
                    }
                    Func::Floor | Func::Ceil | Func::Round => {
                        return no_grad(&format!("`{}`", func.name()));
                    }
                }
            }
            ExprKind::Draw { .. } => return Err("a draw inside a distribution argument".into()),
            ExprKind::Num(_)
            | ExprKind::Node(_)
            | ExprKind::Natural(_)
            | ExprKind::Covariate(_)
            | ExprKind::Lag { .. }
            | ExprKind::UnitAgg { .. }
            | ExprKind::Path { .. } => {
                return Err(
                    "a fitted param inside an expression maximum likelihood cannot differentiate"
                        .into(),
                );
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(nodes: &str) -> CausalModel {
        let src = format!(
            "[scenario]\nname = \"t\"\nseed = 7\n\n[nodes]\n{nodes}\n\n[data]\npath = \"d.csv\"\n"
        );
        match whatif_lang::compile(&src) {
            Ok(m) => m,
            Err(d) => panic!("{}", whatif_lang::render_diagnostics(&d, "t.toml", &src)),
        }
    }

    fn problem(nodes: &str, node: &str) -> Result<MleProblem, String> {
        let m = model(nodes);
        let id = m.nodes.iter().position(|n| n.name == node).expect("node");
        MleProblem::from_node(&m, id)
    }

    fn col(k: usize) -> Box<MleExpr> {
        Box::new(MleExpr::Col(k))
    }

    fn par(k: usize) -> Box<MleExpr> {
        Box::new(MleExpr::Param(k))
    }

    #[test]
    fn shifted_normal_with_a_nonlinear_mean() {
        let p = problem(
            "x = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"",
            "y",
        )
        .expect("a shifted normal");
        assert_eq!(p.dist, MleDist::Normal);
        assert_eq!(p.params, ["?a", "?b", "?s"]);
        assert_eq!(p.scale_like, [false, false, true]);
        assert_eq!(p.columns, ["x"]);
        assert_eq!(p.args, [MleExpr::Num(0.0), MleExpr::Param(2)]);
        let want = MleExpr::Binary(
            MleBinary::Mul,
            par(0),
            Box::new(MleExpr::Unary(
                MleUnary::Exp,
                Box::new(MleExpr::Binary(MleBinary::Mul, par(1), col(0))),
            )),
        );
        assert_eq!(p.loc, Some(want));
    }

    #[test]
    fn direct_bernoulli_and_exponential() {
        let p = problem(
            "dose = \"uniform(0, 3)\"\ny = \"bernoulli(1 - exp(-?lam * dose))\"",
            "y",
        )
        .expect("a direct bernoulli");
        assert_eq!((p.dist, p.loc.is_none()), (MleDist::Bernoulli, true));
        assert_eq!((p.params.len(), p.columns.len()), (1, 1));
        assert_eq!(p.scale_like, [false]);
        let p = problem(
            "x = \"normal(0, 1)\"\ny = \"exponential(exp(?c0 + ?c1 * x))\"",
            "y",
        )
        .expect("a direct exponential");
        assert_eq!(p.dist, MleDist::Exponential);
        assert_eq!(p.params, ["?c0", "?c1"]);
        let p = problem("y = \"exponential(?rate)\"", "y").expect("a lone rate");
        assert_eq!(p.scale_like, [true]);
        assert!(p.columns.is_empty());
    }

    #[test]
    fn param_free_subexpressions_become_columns_or_constants() {
        // `log(x) * 2 + 1` has no fitted param: one column; `if` on data is
        // a select on a column; `x` read twice is one column.
        let p = problem(
            "x = \"lognormal(0, 1)\"\ny = \"?a * (log(x) * 2 + 1) + if(x > 1, ?b, ?b * x) + logistic(0, ?s * 2)\"",
            "y",
        )
        .expect("fits");
        assert_eq!(p.columns.len(), 3, "{:?}", p.columns);
        assert_eq!(p.columns[2], "x");
        assert_eq!(
            p.args[1],
            MleExpr::Binary(MleBinary::Mul, par(2), Box::new(MleExpr::Num(2.0)))
        );
        let loc = p.loc.expect("shifted");
        let MleExpr::Binary(MleBinary::Add, _, sel) = loc else {
            panic!("{loc:?}")
        };
        assert!(matches!(*sel, MleExpr::Select { cond: 1, .. }), "{sel:?}");
    }

    #[test]
    fn refusals_name_the_reason() {
        for (nodes, needle) in [
            ("y = \"uniform(?a, 2)\"", "not differentiable in its bounds"),
            (
                "x = \"uniform(0, 1)\"\ny = \"x + beta(?a, ?b)\"",
                "a beta draw is fitted on its own, not shifted",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?c + gamma(?k, ?t)\"",
                "shift of a gamma draw has fitted params",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a * x + bernoulli(0.5)\"",
                "not shifted",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a + ?b * x + laplace(0, ?s)\"",
                "median regression",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"laplace(?m, ?s)\"",
                "median regression",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a * x + exponential(?r)\"",
                "support would move",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"if(x > ?c, 1, 0) + normal(0, 1)\"",
                "condition of an `if`",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"floor(?a * x) + normal(0, 1)\"",
                "`floor`",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a * x + normal(0, 1) + normal(0, 1)\"",
                "more than one draw",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a * x * normal(1, 0.1)\"",
                "not an additive",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"?a * x - normal(0, 1)\"",
                "subtracted",
            ),
            (
                "x = \"normal(0, 1)\"\ny = \"normal(?a * x, exp(normal(0, 1)))\"",
                "draw of its own",
            ),
        ] {
            match problem(nodes, "y") {
                Err(r) => assert!(r.contains(needle), "{nodes}: {r}"),
                Ok(p) => panic!("{nodes}: accepted as {p:?}"),
            }
        }
        // A shift without fitted params is data: fine for an exponential.
        problem("x = \"uniform(0, 1)\"\ny = \"x + exponential(?r)\"", "y").expect("a fixed shift");
    }

    #[test]
    fn gamma_beta_and_student_t_shapes() {
        let p = problem(
            "x = \"normal(0, 1)\"\ny = \"gamma(?k, exp(?b0 + ?b1 * x))\"",
            "y",
        )
        .expect("a gamma with a log-linear scale");
        assert_eq!((p.dist, p.loc.is_none()), (MleDist::Gamma, true));
        assert_eq!(p.params, ["?k", "?b0", "?b1"]);
        assert_eq!(p.lone_arg, [Some(0), None, None]);
        assert_eq!(p.scale_like, [false, false, false]);
        // A shift without fitted params is data.
        let p = problem("x = \"uniform(0, 1)\"\ny = \"x + gamma(?k, ?t)\"", "y")
            .expect("a gamma with a fixed shift");
        assert_eq!(p.lone_arg, [Some(0), Some(1)]);
        let p = problem("y = \"beta(?a, ?b)\"", "y").expect("a beta");
        assert_eq!(
            (p.dist, p.lone_arg.as_slice()),
            (MleDist::Beta, &[Some(0), Some(1)][..])
        );
        let p = problem(
            "x = \"normal(0, 1)\"\ny = \"?mu + ?c * x + student_t(?df)\"",
            "y",
        )
        .expect("a shifted t");
        assert_eq!(p.dist, MleDist::StudentT);
        assert_eq!(p.params, ["?mu", "?c", "?df"]);
        assert_eq!(p.lone_arg, [None, None, Some(0)]);
        assert!(p.loc.as_ref().is_some_and(MleExpr::reads_params));
    }

    /// Method-of-moments starting points, and the fallbacks when the
    /// moments say nothing.
    #[test]
    fn moment_starts() {
        let mut p = problem("y = \"gamma(?k, ?t)\"", "y").expect("gamma");
        (p.y_mean, p.y_sd) = (6.0, 3.0);
        let s = p.starts();
        assert_eq!(s[0], [4.0, 1.5], "{s:?}");
        assert!(s.contains(&vec![1.0, 1.0]), "{s:?}");
        let mut p = problem("y = \"beta(?a, ?b)\"", "y").expect("beta");
        // beta(2, 6): mean 1/4, var 12 / (64 · 9).
        (p.y_mean, p.y_sd) = (0.25, (12.0f64 / 576.0).sqrt());
        let s = p.starts();
        assert!(
            (s[0][0] - 2.0).abs() < 1e-12 && (s[0][1] - 6.0).abs() < 1e-12,
            "{s:?}"
        );
        (p.y_mean, p.y_sd) = (0.5, 0.6);
        assert_eq!(p.starts(), [[1.0, 1.0]]);
        let p = problem("y = \"?mu + student_t(?df)\"", "y").expect("t");
        let s = p.starts();
        assert!(
            s.contains(&vec![0.1, 5.0]) && s.contains(&vec![0.1, 20.0]),
            "{s:?}"
        );
    }

    /// Each density integrates to 1 (a Riemann sum over a wide grid) and
    /// out-of-domain arguments give +∞.
    #[test]
    fn densities_integrate_to_one() {
        for (d, a) in [
            (MleDist::Normal, vec![0.3, 1.7]),
            (MleDist::LogNormal, vec![0.2, 0.5]),
            (MleDist::Exponential, vec![1.3]),
            (MleDist::Laplace, vec![-0.4, 0.8]),
            (MleDist::Logistic, vec![0.5, 0.6]),
            (MleDist::Gamma, vec![2.5, 1.3]),
            (MleDist::Gamma, vec![1.2, 2.0]),
            (MleDist::Beta, vec![2.5, 1.7]),
            (MleDist::Beta, vec![1.5, 4.0]),
            (MleDist::StudentT, vec![4.5]),
            (MleDist::StudentT, vec![30.0]),
        ] {
            let h = 1e-3;
            let total: f64 = (-40_000..40_000)
                .map(|i| (-d.neg_log_density(i as f64 * h + h / 2.0, &a)).exp() * h)
                .sum();
            assert!((total - 1.0).abs() < 1e-4, "{d:?}: {total}");
            let mut bad = a.clone();
            *bad.last_mut().expect("arg") = -1.0;
            assert_eq!(d.neg_log_density(0.5, &bad), f64::INFINITY, "{d:?}");
        }
        let b = MleDist::Bernoulli;
        assert!((b.neg_log_density(1.0, &[0.25]) - 4f64.ln()).abs() < 1e-15);
        assert!((b.neg_log_density(0.0, &[0.25]) - (4.0f64 / 3.0).ln()).abs() < 1e-15);
        assert_eq!(b.neg_log_density(1.0, &[1.5]), f64::INFINITY);
        // Known answers: gamma(1, θ) is exponential(1 / θ); beta(1, 1) is
        // uniform; student_t(1) is Cauchy, f(t) = 1 / (π (1 + t²)).
        let g = MleDist::Gamma.neg_log_density(0.7, &[1.0, 2.0]);
        let e = MleDist::Exponential.neg_log_density(0.7, &[0.5]);
        assert!((g - e).abs() < 1e-13, "{g} vs {e}");
        assert!(MleDist::Beta.neg_log_density(0.3, &[1.0, 1.0]).abs() < 1e-13);
        let c = MleDist::StudentT.neg_log_density(2.0, &[1.0]);
        assert!((c - (5.0 * std::f64::consts::PI).ln()).abs() < 1e-13, "{c}");
        // Outside the support, and the other argument out of its domain.
        assert_eq!(
            MleDist::Gamma.neg_log_density(0.0, &[2.0, 1.0]),
            f64::INFINITY
        );
        assert_eq!(
            MleDist::Gamma.neg_log_density(1.0, &[0.0, 1.0]),
            f64::INFINITY
        );
        assert_eq!(
            MleDist::Beta.neg_log_density(1.0, &[2.0, 2.0]),
            f64::INFINITY
        );
        assert_eq!(
            MleDist::Beta.neg_log_density(0.5, &[-2.0, 2.0]),
            f64::INFINITY
        );
        // Far tails stay finite.
        assert!(
            MleDist::Logistic
                .neg_log_density(1e4, &[0.0, 1.0])
                .is_finite()
        );
    }

    #[test]
    fn reference_objective_sums_rows() {
        let p = problem(
            "x = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"",
            "y",
        )
        .expect("fits");
        let b = RowBatch {
            columns: vec![vec![0.0, 1.0]],
            y: vec![2.5, 3.0],
        };
        let th = [2.0, 0.5, 0.5];
        let want: f64 = [(2.5, 2.0), (3.0, 2.0 * 0.5f64.exp())]
            .iter()
            .map(|(y, m)| MleDist::Normal.neg_log_density(y - m, &[0.0, 0.5]))
            .sum();
        assert!((p.neg_log_lik(&th, &b) - want).abs() < 1e-12);
        // Starting points: the scale-like param at the data's sd or 1.
        let mut p = p;
        p.y_sd = 3.0;
        let s = p.starts();
        assert!(s.iter().all(|v| v[2] == 3.0 || v[2] == 1.0), "{s:?}");
        assert!(s.iter().any(|v| v[0] == 0.1 && v[1] == 0.1));
    }
}
