//! A reference f64 evaluator of the validated model's expressions, with the
//! noise of every draw supplied by the caller as a *standard noise* value.
//!
//! Each supported distribution is written as a fixed transform of one
//! standard noise `s` (the same formulas as `whatif_ir::dist`):
//! normal `mu + sd·z`, lognormal `exp(mu + sigma·z)`, uniform `a + (b−a)·u`,
//! bernoulli `u ≤ p`, exponential `e / rate`, laplace `mu + b·l`, logistic
//! `mu + s·l`. Abduction recovers `s` per row and site; the counterfactual
//! world re-applies the transform with its own arguments, so an edit that
//! redraws a distribution keeps the unit's noise (common random numbers).
//! `lag(x, k)` reads the unit's earlier rows through [`Env::lag`]
//! ([`crate::history`]).

use whatif_lang::{BinOp, CausalModel, Dist, Expr, ExprKind, Func, NodeId, SiteId};

/// Whether the backtest can represent a distribution by one standard noise.
pub fn supported(dist: Dist) -> bool {
    matches!(
        dist,
        Dist::Normal
            | Dist::LogNormal
            | Dist::Uniform
            | Dist::Bernoulli
            | Dist::Exponential
            | Dist::Laplace
            | Dist::Logistic
    )
}

/// The value of `dist(args)` for standard noise `s`; NaN when the
/// arguments are outside the distribution's domain (as a draw is).
pub fn apply(dist: Dist, args: &[f64], s: f64) -> f64 {
    if !args_valid(dist, args) {
        return f64::NAN;
    }
    match dist {
        Dist::Normal | Dist::Laplace | Dist::Logistic => args[0] + args[1] * s,
        Dist::LogNormal => (args[0] + args[1] * s).exp(),
        Dist::Uniform => args[0] + (args[1] - args[0]) * s,
        Dist::Bernoulli => f64::from(s <= args[0]),
        Dist::Exponential => s / args[0],
        _ => f64::NAN,
    }
}

/// The domain of the supported distributions' arguments (the rule of
/// `whatif_ir::dist::params_valid`): every argument finite, and a
/// positive scale or rate, `a < b`, `0 ≤ p ≤ 1`.
fn args_valid(dist: Dist, a: &[f64]) -> bool {
    a.iter().all(|x| x.is_finite())
        && match dist {
            Dist::Normal | Dist::LogNormal | Dist::Laplace | Dist::Logistic => a[1] > 0.0,
            Dist::Uniform => a[0] < a[1],
            Dist::Bernoulli => (0.0..=1.0).contains(&a[0]),
            Dist::Exponential => a[0] > 0.0,
            _ => false,
        }
}

/// The standard noise that makes `dist(args)` equal `value` (continuous
/// distributions; increasing in `value`). NaN when no noise can.
pub fn standardize(dist: Dist, args: &[f64], value: f64) -> f64 {
    match dist {
        Dist::Normal | Dist::Laplace | Dist::Logistic => (value - args[0]) / args[1],
        Dist::LogNormal => {
            if value > 0.0 {
                (value.ln() - args[0]) / args[1]
            } else if value == 0.0 {
                f64::NEG_INFINITY
            } else {
                f64::NAN
            }
        }
        Dist::Uniform => (value - args[0]) / (args[1] - args[0]),
        Dist::Exponential => value * args[0],
        _ => f64::NAN,
    }
}

/// CDF of the standard noise of `dist`.
pub fn std_cdf(dist: Dist, s: f64) -> f64 {
    match dist {
        Dist::Normal | Dist::LogNormal => whatif_stats::special::normal_cdf(s),
        Dist::Laplace => {
            if s < 0.0 {
                0.5 * s.exp()
            } else {
                1.0 - 0.5 * (-s).exp()
            }
        }
        Dist::Logistic => 1.0 / (1.0 + (-s).exp()),
        Dist::Uniform | Dist::Bernoulli => s.clamp(0.0, 1.0),
        Dist::Exponential => {
            if s <= 0.0 {
                0.0
            } else {
                -(-s).exp_m1()
            }
        }
        _ => f64::NAN,
    }
}

/// Quantile of the standard noise of `dist` at `u` in (0, 1).
pub fn std_ppf(dist: Dist, u: f64) -> f64 {
    match dist {
        Dist::Normal | Dist::LogNormal => whatif_stats::special::normal_ppf(u),
        Dist::Laplace => {
            if u < 0.5 {
                (2.0 * u).ln()
            } else {
                -(2.0 * (1.0 - u)).ln()
            }
        }
        Dist::Logistic => (u / (1.0 - u)).ln(),
        Dist::Uniform | Dist::Bernoulli => u,
        Dist::Exponential => -(-u).ln_1p(),
        _ => f64::NAN,
    }
}

/// Draws one standard noise of `dist` restricted to `[lo, hi]` (bounds in
/// standard-noise units) from a uniform `u` in (0, 1), by inverting the CDF
/// between the bounds' probabilities.
pub fn truncated(dist: Dist, lo: f64, hi: f64, u: f64) -> f64 {
    let (a, b) = (std_cdf(dist, lo), std_cdf(dist, hi));
    let p = a + (b - a) * u;
    let s = std_ppf(dist, p.clamp(1e-300, 1.0 - 1e-16));
    // Rounding in the CDF of a far tail can push the draw past a bound.
    s.clamp(lo, hi)
}

/// Evaluates `f` on scalars with the IR's f64 semantics.
pub fn call(func: Func, a: &[f64]) -> f64 {
    let nan_aware = |x: f64, y: f64, f: fn(f64, f64) -> f64| {
        if x.is_nan() || y.is_nan() {
            f64::NAN
        } else {
            f(x, y)
        }
    };
    let x = a[0];
    match func {
        Func::Exp => x.exp(),
        Func::Log => x.ln(),
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Min => nan_aware(x, a[1], f64::min),
        Func::Max => nan_aware(x, a[1], f64::max),
        Func::Clamp => nan_aware(nan_aware(x, a[1], f64::max), a[2], f64::min),
        Func::Pow => x.powf(a[1]),
        Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Func::Logit => (x / (1.0 - x)).ln(),
        Func::Tanh => x.tanh(),
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
        Func::Round => x.round(),
    }
}

/// A binary operator on scalars (booleans are 0/1).
pub fn binop(op: BinOp, l: f64, r: f64) -> f64 {
    op.apply(l, r)
}

/// What an expression reads while it is evaluated.
#[allow(missing_debug_implementations)] // holds a closure
pub struct Env<'a> {
    pub model: &'a CausalModel,
    /// Param values (index = `ParamId`), the world's overrides applied.
    pub params: &'a [f64],
    /// Node values (index = `NodeId`) known so far in this world.
    pub values: &'a [f64],
    /// Standard noise of a site (its distribution given for sites that are
    /// drawn fresh), or `None` when there is none (then the evaluation
    /// yields NaN: callers supply every site they evaluate).
    pub noise: &'a dyn Fn(SiteId, Dist) -> Option<f64>,
    /// `lag(x, k)` on this row: the unit's value `k` periods earlier, or
    /// `None` before the unit's first row (then `x`'s `init` applies).
    pub lag: &'a dyn Fn(NodeId, u32) -> Option<f64>,
}

/// The lag reader of a model without periods (and of rows with no
/// history): every `lag` reads its node's `init`.
pub fn no_lag(_: NodeId, _: u32) -> Option<f64> {
    None
}

impl Env<'_> {
    /// Evaluates `e`. `Natural(n)` evaluates `n`'s baseline mechanism in the
    /// same environment (this world's parents, the unit's noise).
    pub fn eval(&self, e: &Expr) -> f64 {
        match &e.kind {
            ExprKind::Num(v) => *v,
            ExprKind::Param(p) => self.params[p.index()],
            ExprKind::Node(n) => self.values[n.index()],
            ExprKind::Natural(n) => self.eval(&self.model.nodes[n.index()].expr),
            ExprKind::Lag { node, k } => match (self.lag)(*node, *k) {
                Some(v) => v,
                // `init` reads params only once the backtest has refused
                // draws in it (and `[data]` is refused with `[units]`).
                None => self.model.nodes[node.index()]
                    .init
                    .as_ref()
                    .map_or(0.0, |e| self.eval(e)),
            },
            // The resolver refuses `[data]` with `[units]`; path functions
            // are metric-only and backtests evaluate metrics per row.
            ExprKind::Covariate(_) | ExprKind::UnitAgg { .. } | ExprKind::Path { .. } => f64::NAN,
            ExprKind::Neg(x) => -self.eval(x),
            ExprKind::Not(x) => f64::from(self.eval(x) == 0.0),
            ExprKind::Binary { op, lhs, rhs } => binop(*op, self.eval(lhs), self.eval(rhs)),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                if self.eval(cond) != 0.0 {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            ExprKind::Call { func, args } => {
                let a: Vec<f64> = args.iter().map(|x| self.eval(x)).collect();
                call(*func, &a)
            }
            ExprKind::Draw { dist, args, site } => {
                let a: Vec<f64> = args.iter().map(|x| self.eval(x)).collect();
                match (self.noise)(*site, *dist) {
                    Some(s) if supported(*dist) => apply(*dist, &a, s),
                    _ => f64::NAN,
                }
            }
        }
    }
}

/// The draws of an expression, depth first in source order.
pub fn draws(e: &Expr) -> Vec<(SiteId, Dist)> {
    let mut out = Vec::new();
    walk(e, &mut |x| {
        if let ExprKind::Draw { dist, site, .. } = &x.kind {
            out.push((*site, *dist));
        }
    });
    out
}

/// Calls `f` on every sub-expression of `e` (pre-order).
pub fn walk(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    e.walk(f);
}

/// Whether `e` contains a draw.
pub fn has_draw(e: &Expr) -> bool {
    !draws(e).is_empty()
}

/// Param ids read by `e`, sorted and unique.
pub fn params_of(e: &Expr) -> Vec<usize> {
    let mut out = Vec::new();
    walk(e, &mut |x| {
        if let ExprKind::Param(p) = &x.kind {
            out.push(p.index());
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// Node ids read by `e` (including `Natural`), sorted and unique.
pub fn nodes_of(e: &Expr) -> Vec<NodeId> {
    let mut out = Vec::new();
    walk(e, &mut |x| {
        if let ExprKind::Node(n) | ExprKind::Natural(n) = &x.kind {
            out.push(*n);
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}
