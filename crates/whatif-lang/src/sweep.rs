//! Parameter sweeps: `[sweeps]` in a scenario and `--sweep param=lo:hi:points`
//! on the command line.
//!
//! A sweep varies one `[params]` value over an evenly spaced grid whose
//! `points` include both ends; several sweeps form a full grid. Only
//! parameters can be swept: an edit strength is swept by writing it as a
//! parameter (`credit_limit = "credit_limit * limit_mult"`). The engine
//! evaluates every grid point with the same seed and noise sites (common
//! random numbers), by running the model returned by [`with_params`].
//!
//! Everything that makes a grid point invalid is found here, before any
//! sample runs: unknown or fitted parameters, a parameter that fixes a metric
//! level at compile time, ranges with `lo >= hi`, fewer than two points, and
//! grid values that put a constant distribution parameter outside its domain
//! (`normal(0, sd)` with `sd` swept through 0).

use crate::ast::{self, ExprKind as A};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::expr::parse_expr;
use crate::model::{CausalModel, Expr, ExprKind, Metric, MetricKind, Param, ParamId, Span};
use crate::parse::SweepDecl;

/// Most grid points one sweep dimension may have.
pub const MAX_POINTS: u32 = 1000;

/// A validated sweep dimension: `points` evenly spaced values of `param` from
/// `lo` to `hi`, both included.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub param: ParamId,
    pub lo: f64,
    pub hi: f64,
    pub points: u32,
    /// Span of the `[sweeps]` entry; `None` for a sweep from the command line.
    pub span: Option<Span>,
}

impl Sweep {
    /// Grid value `i` (`0 <= i < points`). The last point is exactly `hi`,
    /// not `lo` plus a rounded step sum.
    pub fn value(&self, i: u32) -> f64 {
        if i + 1 >= self.points {
            self.hi
        } else {
            self.lo + (self.hi - self.lo) * f64::from(i) / f64::from(self.points - 1)
        }
    }

    /// Every grid value, in increasing order.
    pub fn values(&self) -> Vec<f64> {
        (0..self.points).map(|i| self.value(i)).collect()
    }
}

/// A `--sweep` argument as written: `param=lo:hi:points`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    pub name: String,
    pub lo: f64,
    pub hi: f64,
    pub points: i64,
}

fn number(what: &str, s: &str) -> Result<f64, String> {
    match s.trim().replace('_', "").parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{what} `{}` is not a finite number", s.trim())),
    }
}

fn split_assignment<'a>(text: &'a str, form: &str) -> Result<(&'a str, &'a str), String> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not of the form `{form}`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{text}` names no parameter; write `{form}`"));
    }
    Ok((name, rest))
}

/// Parses `param=lo:hi:points` (the form of `--sweep`).
pub fn parse_spec(text: &str) -> Result<SweepSpec, String> {
    const FORM: &str = "param=lo:hi:points";
    let (name, rest) = split_assignment(text, FORM)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [lo, hi, points] = parts.as_slice() else {
        return Err(format!(
            "`{text}` is not of the form `{FORM}` (found {} `:`-separated value{})",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        ));
    };
    let points = points
        .trim()
        .replace('_', "")
        .parse::<i64>()
        .map_err(|_| format!("points `{}` is not an integer", points.trim()))?;
    Ok(SweepSpec {
        name: name.to_string(),
        lo: number("lo", lo)?,
        hi: number("hi", hi)?,
        points,
    })
}

/// Parses `param=from:to` (the form of `--find-breaking`): the search runs
/// from the mild end `from` toward the severe end `to`, which may be smaller.
pub fn parse_range(text: &str) -> Result<(String, f64, f64), String> {
    const FORM: &str = "param=from:to";
    let (name, rest) = split_assignment(text, FORM)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [from, to] = parts.as_slice() else {
        return Err(format!("`{text}` is not of the form `{FORM}`"));
    };
    let (from, to) = (number("from", from)?, number("to", to)?);
    if from == to {
        return Err(format!(
            "`{text}`: from and to are equal, there is nothing to search"
        ));
    }
    Ok((name.to_string(), from, to))
}

/// Why a range cannot be swept: (message, label).
fn range_problem(name: &str, lo: f64, hi: f64, points: i64) -> Option<(String, &'static str)> {
    if points < 2 {
        return Some((
            format!(
                "sweep of `{name}` has {points} point(s), but needs at least 2 (both ends count)"
            ),
            "fewer than 2 points",
        ));
    }
    if points > i64::from(MAX_POINTS) {
        return Some((
            format!("sweep of `{name}` has {points} points, but at most {MAX_POINTS} are allowed"),
            "too many points",
        ));
    }
    if lo >= hi {
        return Some((
            format!("sweep of `{name}` runs from {lo} to {hi}, but lo must be less than hi"),
            "empty range",
        ));
    }
    None
}

/// Why `name` cannot be swept: (code, message, help).
fn unsweepable(
    name: &str,
    params: &[Param],
    metrics: &[Metric],
) -> Result<ParamId, (Code, String, Option<String>)> {
    let Some(i) = params.iter().position(|p| p.name == name) else {
        let help = did_you_mean(name, params.iter().map(|p| p.name.as_str())).or_else(|| {
            Some(if params.is_empty() {
                "the scenario has no `[params]`; to sweep an edit strength, write it as a param (`credit_limit = \"credit_limit * limit_mult\"`)".to_string()
            } else {
                format!(
                    "sweepable params: {}",
                    params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        });
        return Err((
            Code::UnknownName,
            format!("cannot sweep `{name}`: there is no param of that name"),
            help,
        ));
    };
    if params[i].is_fitted() {
        return Err((
            Code::InvalidSweep,
            format!("cannot sweep `{name}`: its value comes from `whatif fit`"),
            None,
        ));
    }
    if let Some(m) = metrics.iter().find(|m| level_reads(m, name)) {
        return Err((
            Code::InvalidSweep,
            format!(
                "cannot sweep `{name}`: it sets the level of metric `{}`, which is fixed when the scenario compiles",
                m.name
            ),
            Some(
                "sweep a param of the metric's variable instead, or write one metric per level"
                    .into(),
            ),
        ));
    }
    Ok(ParamId(i as u32))
}

/// Whether the (compile-time constant) level of a tail metric reads `param`.
fn level_reads(m: &Metric, param: &str) -> bool {
    if !matches!(
        m.kind,
        MetricKind::Quantile(_) | MetricKind::ValueAtRisk(_) | MetricKind::ExpectedShortfall(_)
    ) {
        return false;
    }
    match parse_expr(&m.source) {
        Ok(ast::Expr {
            kind: A::Call { args, .. },
            ..
        }) => args.get(1).is_some_and(|q| names(q, param)),
        _ => false,
    }
}

fn names(e: &ast::Expr, param: &str) -> bool {
    match &e.kind {
        A::Name(n) => n == param,
        A::Num(_) | A::Index { .. } => false,
        A::Neg(x) | A::Not(x) => names(x, param),
        A::Binary { lhs, rhs, .. } => names(lhs, param) || names(rhs, param),
        A::Call { args, .. } => args.iter().any(|a| names(a, param)),
    }
}

/// Resolves `[sweeps]`: names, ranges and point counts. Grid values are
/// checked later, on the whole model ([`check_grids`]).
pub(crate) fn resolve_sweeps(
    decls: &[SweepDecl],
    params: &[Param],
    metrics: &[Metric],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Sweep> {
    let mut out = vec![];
    for d in decls {
        let (Some(lo), Some(hi), Some((points, points_span))) = (d.lo, d.hi, d.points) else {
            continue;
        };
        let param = match unsweepable(&d.param.name, params, metrics) {
            Ok(p) => p,
            Err((code, msg, help)) => {
                diags.push(
                    Diagnostic::new(code, d.param.span, msg, "not a sweepable param")
                        .with_opt_help(help),
                );
                continue;
            }
        };
        if let Some((msg, label)) = range_problem(&d.param.name, lo.value, hi.value, points) {
            let span = if points < 2 || points > i64::from(MAX_POINTS) {
                points_span
            } else {
                lo.span.to(hi.span)
            };
            diags.push(Diagnostic::new(Code::InvalidSweep, span, msg, label));
            continue;
        }
        out.push(Sweep {
            param,
            lo: lo.value,
            hi: hi.value,
            points: points as u32,
            span: Some(d.span),
        });
    }
    out
}

/// Validates a `--sweep` against a model. Errors are one line each (the
/// command line has no span to point at).
pub fn sweep_from_spec(model: &CausalModel, spec: &SweepSpec) -> Result<Sweep, String> {
    let param = unsweepable(&spec.name, &model.params, &model.metrics).map_err(
        |(_, msg, help)| match help {
            Some(h) => format!("{msg}; {h}"),
            None => msg,
        },
    )?;
    if let Some((msg, _)) = range_problem(&spec.name, spec.lo, spec.hi, spec.points) {
        return Err(msg);
    }
    Ok(Sweep {
        param,
        lo: spec.lo,
        hi: spec.hi,
        points: spec.points as u32,
        span: None,
    })
}

/// Rejects a model whose sweeps reach an invalid constant distribution
/// parameter at some grid point (each dimension is checked along its own
/// axis, the others at their scenario values).
pub(crate) fn check_grids(model: CausalModel) -> Result<CausalModel, Vec<Diagnostic>> {
    let mut diags = vec![];
    for s in &model.sweeps {
        diags.extend(check_values(&model, s.param, &s.values(), s.span));
    }
    if diags.is_empty() {
        Ok(model)
    } else {
        Err(diags)
    }
}

/// Diagnostics for every value of `param` in `values` at which a constant
/// distribution parameter leaves its domain: at most one per distribution
/// argument (the first offending value). `origin` is the sweep's span, if
/// it has one, labelled as a secondary span.
pub fn check_values(
    model: &CausalModel,
    param: ParamId,
    values: &[f64],
    origin: Option<Span>,
) -> Vec<Diagnostic> {
    let name = &model.params[param.index()].name;
    let mut out: Vec<Diagnostic> = vec![];
    let mut params = model.params.clone();
    for &v in values {
        params[param.index()].value = v;
        let mut found = vec![];
        for_each_draw(model, &mut |dist, args| {
            crate::resolve::check_dist_args(dist, args, &params, &mut found)
        });
        for d in found {
            if out.iter().any(|o| o.span == d.span) {
                continue;
            }
            let mut d = d.with_help(format!(
                "every grid point must keep the distribution valid: narrow the sweep of `{name}`"
            ));
            d.message = format!("at `{name} = {v}`: {}", d.message);
            if let Some(o) = origin {
                d = d.with_secondary(o, "swept here");
            }
            out.push(d);
        }
    }
    out
}

fn for_each_draw(model: &CausalModel, f: &mut impl FnMut(crate::model::Dist, &[Expr])) {
    fn walk(e: &Expr, f: &mut impl FnMut(crate::model::Dist, &[Expr])) {
        e.walk(&mut |x| {
            if let ExprKind::Draw { dist, args, .. } = &x.kind {
                f(*dist, args);
            }
        });
    }
    for n in &model.nodes {
        walk(&n.expr, f);
    }
    for e in &model.edits {
        for ne in &e.nodes {
            walk(&ne.expr, f);
        }
    }
}

/// The model with `values` assigned to their parameters, every constant
/// distribution parameter re-checked. Worlds whose edits override one of the
/// parameters keep their override. Noise sites, seed and samples are
/// untouched, so runs of the returned models share common random numbers.
pub fn with_params(
    model: &CausalModel,
    values: &[(ParamId, f64)],
) -> Result<CausalModel, Vec<Diagnostic>> {
    let mut m = model.clone();
    for &(p, v) in values {
        m.params[p.index()].value = v;
    }
    let mut diags = vec![];
    for_each_draw(&m, &mut |dist, args| {
        crate::resolve::check_dist_args(dist, args, &m.params, &mut diags)
    });
    if diags.is_empty() { Ok(m) } else { Err(diags) }
}
