//! Abduction: the noise of each mechanism, recovered from one observed row.
//!
//! A mechanism with one noise draw is inverted along the path from its root
//! to the draw: every step must be monotone in the draw's branch with the
//! other operands noise-free (`+ − × ÷`, negation, `exp log sqrt sigmoid
//! logit tanh`, `max/min/clamp` against a noise-free bound, comparisons
//! against a noise-free value, `if` with a noise-free condition). The
//! observed value is pushed back through the path as an interval of draw
//! values: a point for an invertible path (additive or multiplicative
//! noise), a half-line where a `max`/`min` censors, `(k, ∞)` for a
//! comparison. Mapped to the draw's standard noise
//! ([`crate::eval::standardize`]), a point is the exact noise and an
//! interval is sampled from the noise distribution truncated to it;
//! `bernoulli(p)` observed 1 gives U ∈ [0, p], observed 0 gives U ∈ (p, 1].
//!
//! Latent nodes: a latent node that is linear-Gaussian in its one normal
//! draw, with observed parents only, is sampled from its exact Gaussian
//! posterior given its observed children, each of which must be linear in
//! it with additive normal noise (checked numerically per row); each
//! child's noise then follows from the latent draw
//! ([`condition_latents`]). Never from the prior, which would ignore what
//! the children say.
//!
//! Refused, naming the node: two or more draws in one mechanism (one value
//! cannot identify two noises), distributions without a one-noise transform
//! (gamma, beta, student_t), non-monotone steps, and latent structure that is
//! not linear-Gaussian (a non-normal latent, a latent with a latent parent,
//! a child with two latent parents or non-linear in its latent parent).

use whatif_lang::{BinOp, CausalModel, Dist, Expr, ExprKind, Func, SiteId};

use crate::DataError;
use crate::eval::{Env, call, draws, has_draw, standardize, supported};

/// How a node's noise is recovered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// No draw: the mechanism is a function of its parents.
    Deterministic,
    /// One draw at `site`.
    Noise { site: SiteId, dist: Dist },
    /// A latent node, linear-Gaussian in its one normal draw: sampled from
    /// its exact posterior given its observed children.
    Latent { site: SiteId },
    /// An observed child of the latent node `latent`, linear in it with
    /// additive normal noise: its noise follows from each latent draw.
    LatentChild { site: SiteId, latent: usize },
}

impl Plan {
    /// The noise site, if any, and its distribution.
    pub fn site(&self) -> Option<(SiteId, Dist)> {
        match *self {
            Plan::Deterministic => None,
            Plan::Noise { site, dist } => Some((site, dist)),
            Plan::Latent { site } | Plan::LatentChild { site, .. } => Some((site, Dist::Normal)),
        }
    }
}

/// The standard noise of one site for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recovered {
    /// Point-identified.
    Point(f64),
    /// Identified up to an interval `[lo, hi]` (in standard-noise units;
    /// infinite ends allowed): sampled from the truncated distribution.
    Interval(f64, f64),
}

fn refuse(model: &CausalModel, node: usize, reason: impl Into<String>) -> DataError {
    DataError::CannotAbduct {
        node: model.nodes[node].name.clone(),
        reason: reason.into(),
    }
}

/// Plans abduction for every node, or refuses (naming the first node that
/// cannot be abducted and why).
pub fn plan(model: &CausalModel) -> Result<Vec<Plan>, DataError> {
    let mut out = Vec::new();
    let gaussian_only = "only linear-Gaussian latent nodes are conditioned exactly \
         (`f(observed parents) + normal(...)`, children `g(observed) + b * latent + normal(...)`); \
         drawing a latent node from its prior would ignore what its observed children say";
    for (i, n) in model.nodes.iter().enumerate() {
        let latent_parents: Vec<usize> = n
            .parents
            .iter()
            .map(|p| p.index())
            .filter(|&p| model.nodes[p].latent)
            .collect();
        let d = draws(&n.expr);
        if n.latent || !latent_parents.is_empty() {
            let site = match d.as_slice() {
                [(site, Dist::Normal)] => *site,
                _ => return Err(refuse(model, i, gaussian_only)),
            };
            if n.latent {
                if !latent_parents.is_empty() {
                    return Err(refuse(
                        model,
                        i,
                        format!("a latent node with a latent parent: {gaussian_only}"),
                    ));
                }
                out.push(Plan::Latent { site });
            } else {
                if latent_parents.len() > 1 {
                    return Err(refuse(
                        model,
                        i,
                        format!("it has two latent parents: {gaussian_only}"),
                    ));
                }
                out.push(Plan::LatentChild {
                    site,
                    latent: latent_parents[0],
                });
            }
            continue;
        }
        match d.as_slice() {
            [] => out.push(Plan::Deterministic),
            [(site, dist)] => {
                if !supported(*dist) {
                    return Err(refuse(
                        model,
                        i,
                        format!(
                            "`{}` noise has no one-noise inverse (supported: normal, lognormal, uniform, \
                             bernoulli, exponential, laplace, logistic)",
                            dist.name()
                        ),
                    ));
                }
                check_path(&n.expr).map_err(|r| refuse(model, i, r))?;
                out.push(Plan::Noise {
                    site: *site,
                    dist: *dist,
                });
            }
            many => {
                return Err(refuse(
                    model,
                    i,
                    format!(
                        "its mechanism draws {} noises; one observed value identifies at most one",
                        many.len()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Checks that the path from `e` to its draw is invertible (see module doc).
fn check_path(e: &Expr) -> Result<(), String> {
    let one = |c: &Expr, others: &[&Expr]| -> Result<(), String> {
        if others.iter().any(|o| has_draw(o)) {
            return Err("the noise reaches the value through two operands".into());
        }
        check_path(c)
    };
    match &e.kind {
        ExprKind::Draw { args, .. } => {
            if args.iter().any(has_draw) {
                Err("a draw inside another draw's arguments".into())
            } else {
                Ok(())
            }
        }
        ExprKind::Neg(x) => check_path(x),
        ExprKind::Binary { op, lhs, rhs } => {
            let (c, o) = if has_draw(lhs) {
                (lhs, rhs)
            } else {
                (rhs, lhs)
            };
            match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul => one(c, &[o]),
                BinOp::Div if has_draw(lhs) => one(c, &[o]),
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => one(c, &[o]),
                _ => Err(format!(
                    "`{}` is not monotone in the noise (or not invertible there)",
                    op.symbol()
                )),
            }
        }
        ExprKind::Call { func, args } => match func {
            Func::Exp | Func::Log | Func::Sqrt | Func::Sigmoid | Func::Logit | Func::Tanh => {
                check_path(&args[0])
            }
            Func::Max | Func::Min => {
                let (c, o) = if has_draw(&args[0]) {
                    (&args[0], &args[1])
                } else {
                    (&args[1], &args[0])
                };
                one(c, &[o])
            }
            Func::Clamp => one(&args[0], &[&args[1], &args[2]]),
            _ => Err(format!(
                "`{}` is not monotone and invertible in the noise",
                func.name()
            )),
        },
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            if has_draw(cond) {
                return Err("the noise decides an `if` condition".into());
            }
            if has_draw(then) {
                check_path(then)?;
            }
            if has_draw(otherwise) {
                check_path(otherwise)?;
            }
            Ok(())
        }
        ExprKind::Not(_) => Err("`not` of a noisy value is not invertible".into()),
        _ => Ok(()),
    }
}

/// Relative tolerance for "the observed value sits on a censoring bound".
const BOUND_TOL: f64 = 1e-9;

fn at(y: f64, k: f64) -> bool {
    (y - k).abs() <= BOUND_TOL * k.abs().max(1.0)
}

/// Recovers the standard noise of `expr` (a mechanism with exactly one
/// draw, checked by [`plan`]) for observed value `y`. `env` holds the row's
/// observed parents. `Err` says why the value is impossible.
pub fn recover(env: &Env<'_>, expr: &Expr, y: f64) -> Result<Recovered, String> {
    let (lo, hi, dist, args) = invert(env, expr, y, y)?;
    if dist == Dist::Bernoulli {
        let p = args[0];
        let has1 = lo <= 1.0 && 1.0 <= hi;
        let has0 = lo <= 0.0 && 0.0 <= hi;
        return match (has0, has1) {
            (true, true) => Ok(Recovered::Interval(0.0, 1.0)),
            (false, true) => Ok(Recovered::Interval(0.0, p)),
            (true, false) => Ok(Recovered::Interval(p, 1.0)),
            (false, false) => Err(format!(
                "a bernoulli draw is 0 or 1, but it would have to be in [{lo}, {hi}]"
            )),
        };
    }
    let bound = |v: f64, lower: bool| -> f64 {
        if v.is_infinite() {
            return v;
        }
        let s = standardize(dist, &args, v);
        if s.is_nan() {
            // Below the support (lognormal ≤ 0): the whole lower side.
            if lower { f64::NEG_INFINITY } else { f64::NAN }
        } else {
            s
        }
    };
    let (mut slo, mut shi) = (bound(lo, true), bound(hi, false));
    // Supports with ends: uniform's standard noise is in [0, 1],
    // exponential's in [0, ∞).
    match dist {
        Dist::Uniform => {
            slo = slo.max(0.0);
            shi = shi.min(1.0);
        }
        Dist::Exponential => slo = slo.max(0.0),
        _ => {}
    }
    if shi.is_nan() || slo.is_nan() || slo > shi {
        return Err(format!(
            "no `{}` noise can produce it (the draw would have to be in [{lo}, {hi}])",
            dist.name()
        ));
    }
    if lo == hi {
        Ok(Recovered::Point(slo))
    } else {
        Ok(Recovered::Interval(slo, shi))
    }
}

type Inverted = (f64, f64, Dist, Vec<f64>);

/// The interval of draw values that put `e` in `[lo, hi]`, with the draw's
/// distribution and evaluated arguments.
fn invert(env: &Env<'_>, e: &Expr, lo: f64, hi: f64) -> Result<Inverted, String> {
    let empty = || Err(format!("nothing in [{lo}, {hi}] is reachable"));
    match &e.kind {
        ExprKind::Draw { dist, args, .. } => {
            let a: Vec<f64> = args.iter().map(|x| env.eval(x)).collect();
            Ok((lo, hi, *dist, a))
        }
        ExprKind::Neg(x) => invert(env, x, -hi, -lo),
        ExprKind::Binary { op, lhs, rhs } => {
            let left = has_draw(lhs);
            let (c, o) = if left { (lhs, rhs) } else { (rhs, lhs) };
            let k = env.eval(o);
            match op {
                BinOp::Add => invert(env, c, lo - k, hi - k),
                BinOp::Sub if left => invert(env, c, lo + k, hi + k),
                BinOp::Sub => invert(env, c, k - hi, k - lo),
                BinOp::Mul | BinOp::Div => {
                    let (a, b) = if *op == BinOp::Mul {
                        (lo / k, hi / k)
                    } else {
                        (lo * k, hi * k)
                    };
                    if k == 0.0 || !k.is_finite() {
                        if *op == BinOp::Mul && lo <= 0.0 && 0.0 <= hi {
                            return invert(env, c, f64::NEG_INFINITY, f64::INFINITY);
                        }
                        return Err(format!("its noise is scaled by {k}"));
                    }
                    if k > 0.0 {
                        invert(env, c, a, b)
                    } else {
                        invert(env, c, b, a)
                    }
                }
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    // A boolean: 1 when the comparison holds.
                    let truth = if lo == hi && (lo == 0.0 || lo == 1.0) {
                        lo == 1.0
                    } else {
                        return Err("a comparison is 0 or 1".into());
                    };
                    // Normalise to `draw-side > k` (or `<`).
                    let greater = matches!(op, BinOp::Gt | BinOp::Ge) == left;
                    let (a, b) = if greater == truth {
                        (k, f64::INFINITY)
                    } else {
                        (f64::NEG_INFINITY, k)
                    };
                    invert(env, c, a, b)
                }
                _ => Err(format!("`{}` cannot be inverted", op.symbol())),
            }
        }
        ExprKind::Call { func, args } => {
            let x = &args[0];
            match func {
                Func::Exp => {
                    if hi <= 0.0 {
                        return empty();
                    }
                    let a = if lo <= 0.0 {
                        f64::NEG_INFINITY
                    } else {
                        lo.ln()
                    };
                    invert(env, x, a, hi.ln())
                }
                Func::Log => invert(env, x, lo.exp(), hi.exp()),
                Func::Sqrt => {
                    if hi < 0.0 {
                        return empty();
                    }
                    let a = if lo <= 0.0 {
                        f64::NEG_INFINITY
                    } else {
                        lo * lo
                    };
                    invert(env, x, a, hi * hi)
                }
                Func::Sigmoid | Func::Tanh => {
                    let (mn, mx) = if *func == Func::Sigmoid {
                        (0.0, 1.0)
                    } else {
                        (-1.0, 1.0)
                    };
                    if hi <= mn || lo >= mx {
                        return empty();
                    }
                    let inv = |v: f64| {
                        if *func == Func::Sigmoid {
                            call(Func::Logit, &[v])
                        } else {
                            v.atanh()
                        }
                    };
                    let a = if lo <= mn { f64::NEG_INFINITY } else { inv(lo) };
                    let b = if hi >= mx { f64::INFINITY } else { inv(hi) };
                    invert(env, x, a, b)
                }
                Func::Logit => invert(
                    env,
                    x,
                    call(Func::Sigmoid, &[lo]),
                    call(Func::Sigmoid, &[hi]),
                ),
                Func::Max | Func::Min | Func::Clamp => {
                    let (c, bounds): (&Expr, Vec<(bool, f64)>) = match func {
                        Func::Clamp => (
                            &args[0],
                            vec![(true, env.eval(&args[1])), (false, env.eval(&args[2]))],
                        ),
                        _ => {
                            let left = has_draw(&args[0]);
                            let (c, o) = if left {
                                (&args[0], &args[1])
                            } else {
                                (&args[1], &args[0])
                            };
                            (c, vec![(*func == Func::Max, env.eval(o))])
                        }
                    };
                    let (mut a, mut b) = (lo, hi);
                    // max(c, k) ∈ [a, b] ⇔ c ∈ [a, b] if a > k, c ≤ b if a ≤ k ≤ b.
                    for (is_max, k) in bounds {
                        if is_max {
                            if b < k && !at(b, k) {
                                return empty();
                            }
                            if a <= k || at(a, k) {
                                a = f64::NEG_INFINITY;
                            }
                        } else {
                            if a > k && !at(a, k) {
                                return empty();
                            }
                            if b >= k || at(b, k) {
                                b = f64::INFINITY;
                            }
                        }
                    }
                    invert(env, c, a, b)
                }
                _ => Err(format!("`{}` cannot be inverted", func.name())),
            }
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            let branch = if env.eval(cond) != 0.0 {
                then
            } else {
                otherwise
            };
            if has_draw(branch) {
                invert(env, branch, lo, hi)
            } else {
                // The noise does not reach this row's value: its posterior
                // is its prior. Find the draw in the other branch.
                let other = if env.eval(cond) != 0.0 {
                    otherwise
                } else {
                    then
                };
                invert(env, other, f64::NEG_INFINITY, f64::INFINITY)
            }
        }
        _ => Err("the value does not depend on the noise".into()),
    }
}

/// Relative tolerance of the per-row linearity checks of latent parts.
const LINEAR_TOL: f64 = 1e-9;

/// Standard noises of the latent nodes and of their children for each of
/// `draws` posterior draws of one row: the latent value is drawn from its
/// exact Gaussian posterior given the observed children (prior
/// `N(m, s²)`; child `c` observed as `y = α + β·L + γ·z`, so the posterior
/// precision is `1/s² + Σ β²/γ²` and its mean
/// `(m/s² + Σ β(y − α)/γ²) / precision`), then each child's noise is the
/// point `(y − α − β·L)/γ`. `α, β, γ` are read off the mechanisms by
/// evaluating them at two values of `L` and of the noise, and checked to
/// be linear on the row. `uniform(site, draw)` supplies the uniforms.
pub fn condition_latents(
    model: &CausalModel,
    plans: &[Plan],
    params: &[f64],
    obs: &[f64],
    draws: u32,
    uniform: &dyn Fn(SiteId, u32) -> f64,
    lag: &dyn Fn(whatif_lang::NodeId, u32) -> Option<f64>,
) -> Result<Vec<Vec<(SiteId, f64)>>, DataError> {
    let mut out: Vec<Vec<(SiteId, f64)>> = vec![Vec::new(); draws as usize];
    let mut vals = obs.to_vec();
    // Evaluates node n's mechanism with the latent at `l` and its noise at `z`.
    let mut mech = |n: usize, site: SiteId, lat: Option<usize>, l: f64, z: f64| -> f64 {
        if let Some(li) = lat {
            vals[li] = l;
        }
        let noise = |s: SiteId, _: Dist| (s == site).then_some(z);
        let v = Env {
            model,
            params,
            values: &vals,
            noise: &noise,
            lag,
        }
        .eval(&model.nodes[n].expr);
        if let Some(li) = lat {
            vals[li] = f64::NAN;
        }
        v
    };
    let close = |a: f64, b: f64| (a - b).abs() <= LINEAR_TOL * a.abs().max(b.abs()).max(1.0);
    for (li, plan) in plans.iter().enumerate() {
        let Plan::Latent { site: lsite } = *plan else {
            continue;
        };
        let m = mech(li, lsite, None, 0.0, 0.0);
        let s = mech(li, lsite, None, 0.0, 1.0) - m;
        if !(s.is_finite() && s != 0.0 && m.is_finite()) {
            return Err(refuse(
                model,
                li,
                "its prior is not a proper normal on this row",
            ));
        }
        let mut prec = 1.0 / (s * s);
        let mut num = m / (s * s);
        let mut kids = Vec::new();
        for (c, p) in plans.iter().enumerate() {
            let Plan::LatentChild { site, latent } = *p else {
                continue;
            };
            if latent != li {
                continue;
            }
            let a = mech(c, site, Some(li), 0.0, 0.0);
            let b = mech(c, site, Some(li), 1.0, 0.0) - a;
            let g = mech(c, site, Some(li), 0.0, 1.0) - a;
            let lin = close(mech(c, site, Some(li), 2.0, 0.0), a + 2.0 * b)
                && close(mech(c, site, Some(li), 1.0, 1.0), a + b + g);
            if !lin || !g.is_finite() || g == 0.0 {
                return Err(refuse(
                    model,
                    c,
                    format!(
                        "it is not linear-Gaussian in its latent parent `{}` on this row",
                        model.nodes[li].name
                    ),
                ));
            }
            let y = obs[c];
            prec += b * b / (g * g);
            num += b * (y - a) / (g * g);
            kids.push((site, y, a, b, g));
        }
        let mean = num / prec;
        let sd = prec.sqrt().recip();
        for (k, draw) in out.iter_mut().enumerate() {
            let u = uniform(lsite, k as u32);
            let l = mean + sd * whatif_stats::special::normal_ppf(u);
            draw.push((lsite, (l - m) / s));
            for &(site, y, a, b, g) in &kids {
                draw.push((site, (y - a - b * l) / g));
            }
        }
    }
    Ok(out)
}
