//! Name resolution and validation: a [`Scenario`] in, a [`CausalModel`] or
//! every error out.
//!
//! Invariants established here (and relied on downstream):
//! - every name resolves; nodes and params share one namespace that no
//!   function, distribution or keyword shadows;
//! - the baseline graph and the graph of every evaluated world are acyclic,
//!   and each world has a topological order (ties by file order);
//! - expressions are typed: `and`/`or`/`not`/`if` conditions and `prob` get
//!   booleans, a number never becomes a boolean;
//! - constant distribution parameters are in their domain;
//! - noise sites follow the site rule (see [`SiteTable`]) and their 32-bit
//!   hashes do not collide.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use crate::ast::{self, ExprKind as A};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::expr::parse_expr;
use crate::model::*;
use crate::parse::{EditValue, Scenario, Src};

/// Names no node, param or metric may take.
pub const KEYWORDS: &[&str] = &["and", "or", "not", "if", "baseline"];
/// Aggregates allowed at the top of a metric.
pub const AGGREGATES: &[&str] = &[
    "mean",
    "var",
    "sd",
    "quantile",
    "value_at_risk",
    "expected_shortfall",
    "prob",
    "corr",
];

const DEFAULT_SAMPLES: u64 = 100_000;
const MAX_SAMPLES: i64 = 1 << 53;
/// Placeholder until [`SiteTable`] assigns real ids.
const NO_SITE: SiteId = SiteId(u32::MAX);

/// Noise sites, deduplicated by key, in creation order.
///
/// The site rule: a distribution call in a node's mechanism is
/// `(node, None, ordinal)`; in an edit that does not read the node's own
/// value it is the same key (so the edit reuses the baseline's draw and the
/// worlds stay coupled); in an edit that reads the node's own value it is
/// `(node, Some(edit), ordinal)`: fresh randomness, not a copy of the
/// baseline's. Ordinals count calls in source order, pre-order (a call
/// before its arguments).
#[derive(Default)]
struct SiteTable {
    sites: Vec<NoiseSite>,
    by_key: HashMap<SiteKey, SiteId>,
    by_hash: HashMap<u32, SiteId>,
}

impl SiteTable {
    fn get(&mut self, key: SiteKey, span: Span, diags: &mut Vec<Diagnostic>) -> SiteId {
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let hash = site_hash(&key);
        let id = SiteId(self.sites.len() as u32);
        if let Some(&other) = self.by_hash.get(&hash) {
            let o = &self.sites[other.index()];
            diags.push(
                Diagnostic::new(
                    Code::SiteCollision,
                    span,
                    format!(
                        "noise sites `{key}` and `{}` share the hash {hash:#010x}",
                        o.key
                    ),
                    "this draw's site collides",
                )
                .with_secondary(o.span, format!("site `{}`", o.key))
                .with_help("rename the node or edit to get a different site id"),
            );
        } else {
            self.by_hash.insert(hash, id);
        }
        self.by_key.insert(key.clone(), id);
        self.sites.push(NoiseSite { key, hash, span });
        id
    }

    fn assign(
        &mut self,
        e: &mut Expr,
        node: &str,
        edit: Option<&str>,
        ord: &mut u32,
        diags: &mut Vec<Diagnostic>,
    ) {
        match &mut e.kind {
            ExprKind::Num(_)
            | ExprKind::Param(_)
            | ExprKind::Node(_)
            | ExprKind::Natural(_)
            | ExprKind::Covariate(_)
            | ExprKind::Lag { .. } => {}
            ExprKind::Neg(x) | ExprKind::Not(x) => self.assign(x, node, edit, ord, diags),
            ExprKind::UnitAgg { arg, .. } | ExprKind::Path { arg, .. } => {
                self.assign(arg, node, edit, ord, diags)
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.assign(lhs, node, edit, ord, diags);
                self.assign(rhs, node, edit, ord, diags);
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.assign(cond, node, edit, ord, diags);
                self.assign(then, node, edit, ord, diags);
                self.assign(otherwise, node, edit, ord, diags);
            }
            ExprKind::Call { args, .. } => {
                for a in args {
                    self.assign(a, node, edit, ord, diags);
                }
            }
            ExprKind::Draw { args, site, .. } => {
                let key = SiteKey {
                    node: node.to_string(),
                    edit: edit.map(str::to_string),
                    ordinal: *ord,
                };
                *ord += 1;
                *site = self.get(key, e.span, diags);
                for a in args {
                    self.assign(a, node, edit, ord, diags);
                }
            }
        }
    }
}

/// Where an expression lives, which decides what names mean.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// The baseline mechanism of a node: its own name is an error.
    Node(NodeId),
    /// An edit of a node: its own name is its natural value.
    Edit(NodeId),
    /// A metric argument: no draws.
    Metric,
    /// A node's `init` (its value before period 0): params, covariates and
    /// draws only.
    Init(NodeId),
}

/// A resolved expression with the node references it makes.
struct Resolved {
    expr: Expr,
    /// (parent, span of the reference), in source order.
    refs: Vec<(NodeId, Span)>,
    /// `lag(..)` references (not edges of the same-period graph).
    lag_refs: Vec<(NodeId, Span)>,
    reads_self: bool,
    /// Inside a unit aggregate / a path function (neither nests).
    in_agg: bool,
    in_path: bool,
}

struct Resolver<'a> {
    sc: &'a Scenario,
    diags: Vec<Diagnostic>,
    params: Vec<Param>,
    param_ids: HashMap<String, ParamId>,
    node_ids: HashMap<String, NodeId>,
    /// Type of each node's mechanism (a comparison makes a boolean node).
    node_types: Vec<Type>,
    /// Unit covariates (`[units] path` columns) by name.
    covariate_ids: HashMap<String, u32>,
    has_units: bool,
    /// `[periods] count`, when declared.
    periods: Option<u32>,
}

fn reserved(name: &str) -> Option<&'static str> {
    if KEYWORDS.contains(&name) {
        Some("a keyword")
    } else if Func::from_name(name).is_some() {
        Some("a function")
    } else if Dist::from_name(name).is_some() {
        Some("a distribution")
    } else if name == "lag" || UnitAgg::from_name(name).is_some() || PathFn::NAMES.contains(&name) {
        Some("a function")
    } else {
        None
    }
}

fn dist_params(d: Dist) -> &'static str {
    match d {
        Dist::Normal => "mu, sd",
        Dist::LogNormal => "mu, sigma",
        Dist::Uniform => "a, b",
        Dist::Bernoulli => "p",
        Dist::Exponential => "rate",
        Dist::Laplace => "mu, b",
        Dist::Logistic => "mu, s",
        Dist::StudentT => "df",
        Dist::Gamma => "shape, scale",
        Dist::Beta => "a, b",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Value of an expression that reads no node and no draw (params at their
/// baseline value); `None` when it is not constant.
fn const_eval(e: &Expr, params: &[Param]) -> Option<f64> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    Some(match &e.kind {
        ExprKind::Num(v) => *v,
        // A fitted `?param` has no value before `whatif fit`.
        ExprKind::Param(p) => params.get(p.index()).filter(|p| !p.is_fitted())?.value,
        ExprKind::Neg(x) => -const_eval(x, params)?,
        ExprKind::Not(x) => b(const_eval(x, params)? == 0.0),
        ExprKind::Binary { op, lhs, rhs } => {
            op.apply(const_eval(lhs, params)?, const_eval(rhs, params)?)
        }
        ExprKind::Call { func, args } => {
            let a: Vec<f64> = args
                .iter()
                .map(|x| const_eval(x, params))
                .collect::<Option<_>>()?;
            let x = *a.first()?;
            match func {
                Func::Exp => x.exp(),
                Func::Log => x.ln(),
                Func::Sqrt => x.sqrt(),
                Func::Abs => x.abs(),
                Func::Min => x.min(*a.get(1)?),
                Func::Max => x.max(*a.get(1)?),
                Func::Clamp => x.max(*a.get(1)?).min(*a.get(2)?),
                Func::Pow => x.powf(*a.get(1)?),
                Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                Func::Logit => (x / (1.0 - x)).ln(),
                Func::Tanh => x.tanh(),
                Func::Floor => x.floor(),
                Func::Ceil => x.ceil(),
                Func::Round => x.round(),
            }
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            if const_eval(cond, params)? != 0.0 {
                const_eval(then, params)?
            } else {
                const_eval(otherwise, params)?
            }
        }
        ExprKind::Node(_)
        | ExprKind::Natural(_)
        | ExprKind::Draw { .. }
        | ExprKind::Covariate(_)
        | ExprKind::Lag { .. }
        | ExprKind::UnitAgg { .. }
        | ExprKind::Path { .. } => return None,
    })
}

fn fmt_num(v: f64) -> String {
    format!("{v}")
}

impl<'a> Resolver<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Parses an expression string, reporting a syntax error with its span
    /// mapped into the file.
    fn parse(&mut self, src: &Src) -> Option<ast::Expr> {
        match parse_expr(&src.text) {
            Ok(e) => Some(e),
            Err(pe) => {
                let mut d =
                    Diagnostic::new(Code::ExprSyntax, src.span_of(pe.span), pe.message, pe.label)
                        .with_opt_help(pe.help);
                for (s, l) in pe.secondary {
                    d = d.with_secondary(src.span_of(s), l);
                }
                self.err(d);
                None
            }
        }
    }

    fn node_type(&self, n: NodeId) -> Type {
        self.node_types.get(n.index()).copied().unwrap_or(Type::Num)
    }

    fn node_names(&self) -> Vec<&'a str> {
        self.sc.nodes.iter().map(|n| n.name.name.as_str()).collect()
    }

    fn value_names(&self) -> Vec<&'a str> {
        let mut v = self.node_names();
        v.extend(self.sc.params.iter().map(|(p, _)| p.name.as_str()));
        v
    }

    fn resolve_expr(&mut self, src: &Src, e: &ast::Expr, scope: Scope) -> Option<Resolved> {
        let mut r = Resolved {
            expr: Expr {
                kind: ExprKind::Num(0.0),
                span: Span::default(),
                ty: Type::Num,
            },
            refs: vec![],
            lag_refs: vec![],
            reads_self: false,
            in_agg: false,
            in_path: false,
        };
        let expr = self.expr(src, e, scope, &mut r)?;
        r.expr = expr;
        Some(r)
    }

    fn need_bool(&mut self, what: &str, e: &Expr) -> bool {
        if e.ty == Type::Bool {
            return true;
        }
        self.err(
            Diagnostic::new(
                Code::TypeMismatch,
                e.span,
                format!("{what} must be a boolean, found a number"),
                "a number",
            )
            .with_help("compare it to get a boolean, e.g. `x > 0`"),
        );
        false
    }

    fn expr(&mut self, src: &Src, e: &ast::Expr, scope: Scope, r: &mut Resolved) -> Option<Expr> {
        let span = src.span_of(e.span);
        let mk = |kind: ExprKind, ty: Type| Some(Expr { kind, span, ty });
        match &e.kind {
            A::Num(v) => mk(ExprKind::Num(*v), Type::Num),
            A::Name(name) if name.starts_with('?') => self.fitted_param(name, span, scope),
            A::Name(name) => {
                if let Some(&p) = self.param_ids.get(name) {
                    return mk(ExprKind::Param(p), Type::Num);
                }
                if let Some(&c) = self.covariate_ids.get(name) {
                    return mk(ExprKind::Covariate(c), Type::Num);
                }
                if let Some(&n) = self.node_ids.get(name) {
                    match scope {
                        Scope::Init(_) => {
                            self.err(
                                Diagnostic::new(
                                    Code::Structure,
                                    span,
                                    format!("`init` reads node `{name}`"),
                                    "a node",
                                )
                                .with_help("`init` is the value before period 0: it may read params, unit covariates and draws, not nodes"),
                            );
                            return None;
                        }
                        Scope::Node(me) if me == n => {
                            self.err(
                                Diagnostic::new(
                                    Code::SelfReference,
                                    span,
                                    format!("node `{name}` reads its own value"),
                                    "self-reference",
                                )
                                .with_help(if self.periods.is_some() {
                                    "a mechanism cannot read its own node in the same period; read the previous period with `lag(x)`"
                                } else {
                                    "a mechanism cannot read its own node; only an edit may (its natural value)"
                                }),
                            );
                            return None;
                        }
                        Scope::Edit(me) if me == n => {
                            r.reads_self = true;
                            return mk(ExprKind::Natural(n), self.node_type(n));
                        }
                        _ => {
                            r.refs.push((n, span));
                            return mk(ExprKind::Node(n), self.node_type(n));
                        }
                    }
                }
                let (msg, help) = if let Some(kind) = reserved(name) {
                    (
                        format!("`{name}` is {kind}, not a value"),
                        Some(format!("call it: `{name}(...)`")),
                    )
                } else {
                    (
                        format!("unknown name `{name}`"),
                        did_you_mean(name, self.value_names()),
                    )
                };
                self.err(
                    Diagnostic::new(Code::UnknownName, span, msg, "not a node or param")
                        .with_opt_help(help),
                );
                None
            }
            A::Neg(x) => {
                let x = self.expr(src, x, scope, r)?;
                mk(ExprKind::Neg(Box::new(x)), Type::Num)
            }
            A::Not(x) => {
                let x = self.expr(src, x, scope, r)?;
                if !self.need_bool("the operand of `not`", &x) {
                    return None;
                }
                mk(ExprKind::Not(Box::new(x)), Type::Bool)
            }
            A::Binary { op, lhs, rhs } => {
                let l = self.expr(src, lhs, scope, r);
                let rr = self.expr(src, rhs, scope, r);
                let (l, rr) = (l?, rr?);
                let ty = match op {
                    BinOp::And | BinOp::Or => {
                        let ok_l =
                            self.need_bool(&format!("the left operand of `{}`", op.symbol()), &l);
                        let ok_r =
                            self.need_bool(&format!("the right operand of `{}`", op.symbol()), &rr);
                        if !(ok_l && ok_r) {
                            return None;
                        }
                        Type::Bool
                    }
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => {
                        Type::Bool
                    }
                    _ => Type::Num,
                };
                mk(
                    ExprKind::Binary {
                        op: *op,
                        lhs: Box::new(l),
                        rhs: Box::new(rr),
                    },
                    ty,
                )
            }
            A::Index { name, .. } => {
                self.err(Diagnostic::new(
                    Code::NotAllowed,
                    span,
                    format!("`{name}[...]` indexes a metric by world, which only checks may do"),
                    "not allowed here",
                ));
                None
            }
            A::Call {
                name,
                name_span,
                args,
            } => self.call(src, span, src.span_of(*name_span), name, args, scope, r),
        }
    }

    /// `?name` in a node's mechanism: a parameter `whatif fit` estimates. It
    /// becomes an ordinary param named `?name` (first use declares it, so
    /// the id order is source order) whose value is NaN until a fit lock
    /// supplies it; `const_eval` treats it as unknown. Anywhere else (edits,
    /// metrics) it would have no data to be fitted on, so it is refused.
    fn fitted_param(&mut self, name: &str, span: Span, scope: Scope) -> Option<Expr> {
        if !matches!(scope, Scope::Node(_)) {
            self.err(
                Diagnostic::new(
                    Code::NotAllowed,
                    span,
                    format!("fitted parameter `{name}` may only appear in a node's mechanism"),
                    "not allowed here",
                )
                .with_help("declare the value in `[params]`, or fit it in a mechanism and refer to the node"),
            );
            return None;
        }
        let id = match self.param_ids.get(name) {
            Some(&p) => p,
            None => {
                let p = ParamId(self.params.len() as u32);
                self.param_ids.insert(name.to_string(), p);
                self.params.push(Param {
                    name: name.to_string(),
                    value: f64::NAN,
                    span,
                });
                p
            }
        };
        Some(Expr {
            kind: ExprKind::Param(id),
            span,
            ty: Type::Num,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        src: &Src,
        span: Span,
        name_span: Span,
        name: &str,
        args: &[ast::Expr],
        scope: Scope,
        r: &mut Resolved,
    ) -> Option<Expr> {
        let arity = |this: &mut Self, want: usize, sig: &str| {
            if args.len() == want {
                return true;
            }
            this.err(Diagnostic::new(
                Code::Arity,
                span,
                format!(
                    "`{name}` takes {want} argument{} ({sig}), found {}",
                    plural(want),
                    args.len()
                ),
                format!("{} argument{}", args.len(), plural(args.len())),
            ));
            false
        };
        if name == "if" {
            if !arity(self, 3, "condition, then, else") {
                return None;
            }
            let c = self.expr(src, &args[0], scope, r);
            let t = self.expr(src, &args[1], scope, r);
            let o = self.expr(src, &args[2], scope, r);
            let (c, t, o) = (c?, t?, o?);
            if !self.need_bool("the condition of `if`", &c) {
                return None;
            }
            let ty = if t.ty == Type::Bool && o.ty == Type::Bool {
                Type::Bool
            } else {
                Type::Num
            };
            return Some(Expr {
                kind: ExprKind::If {
                    cond: Box::new(c),
                    then: Box::new(t),
                    otherwise: Box::new(o),
                },
                span,
                ty,
            });
        }
        if name == "lag" || UnitAgg::from_name(name).is_some() || PathFn::NAMES.contains(&name) {
            return self.structured_call(src, span, name, args, scope, r);
        }
        if let Some(func) = Func::from_name(name) {
            let sig = match func.arity() {
                1 => "x",
                2 if func == Func::Pow => "x, y",
                2 => "x, y",
                _ => "x, lo, hi",
            };
            if !arity(self, func.arity(), sig) {
                return None;
            }
            let args: Vec<Option<Expr>> =
                args.iter().map(|a| self.expr(src, a, scope, r)).collect();
            let args: Vec<Expr> = args.into_iter().collect::<Option<_>>()?;
            return Some(Expr {
                kind: ExprKind::Call { func, args },
                span,
                ty: Type::Num,
            });
        }
        if let Some(dist) = Dist::from_name(name) {
            if scope == Scope::Metric {
                self.err(
                    Diagnostic::new(
                        Code::NotAllowed,
                        span,
                        format!("distribution `{name}` cannot be drawn inside a metric"),
                        "a draw",
                    )
                    .with_help("draw it in a node and aggregate the node"),
                );
                return None;
            }
            if !arity(self, dist.arity(), dist_params(dist)) {
                return None;
            }
            let args: Vec<Option<Expr>> =
                args.iter().map(|a| self.expr(src, a, scope, r)).collect();
            let args: Vec<Expr> = args.into_iter().collect::<Option<_>>()?;
            self.check_dist(dist, &args);
            return Some(Expr {
                kind: ExprKind::Draw {
                    dist,
                    args,
                    site: NO_SITE,
                },
                span,
                ty: Type::Num,
            });
        }
        let (msg, help) = if AGGREGATES.contains(&name) || name == "effect" || name == "ratio" {
            (
                format!("`{name}` is only allowed at the top of a metric or in a check"),
                None,
            )
        } else {
            let cands = Func::ALL
                .iter()
                .map(|f| f.name())
                .chain(Dist::ALL.iter().map(|d| d.name()))
                .chain(["if"]);
            (
                format!("unknown function `{name}`"),
                did_you_mean(name, cands),
            )
        };
        self.err(
            Diagnostic::new(Code::UnknownFunction, name_span, msg, "unknown function")
                .with_opt_help(help),
        );
        None
    }

    /// `lag`, the unit aggregates and the path functions.
    fn structured_call(
        &mut self,
        src: &Src,
        span: Span,
        name: &str,
        args: &[ast::Expr],
        scope: Scope,
        r: &mut Resolved,
    ) -> Option<Expr> {
        let arity_err = |this: &mut Self, sig: &str| {
            this.err(Diagnostic::new(
                Code::Arity,
                span,
                format!("`{name}` takes {sig}, found {}", args.len()),
                format!("{} argument{}", args.len(), plural(args.len())),
            ));
        };
        let no = |this: &mut Self, msg: String, help: &str| {
            this.err(
                Diagnostic::new(Code::Structure, span, msg, "not allowed here")
                    .with_help(help.to_string()),
            );
            None
        };
        // An integer literal argument (a lag depth or a period).
        let int_arg = |this: &mut Self, a: &ast::Expr, what: &str, lo: i64, hi: i64| {
            let at = src.span_of(a.span);
            match &a.kind {
                A::Num(v) if v.fract() == 0.0 && *v >= lo as f64 && *v <= hi as f64 => {
                    Some(*v as u32)
                }
                _ => {
                    this.err(Diagnostic::new(
                        Code::Structure,
                        at,
                        format!("{what} must be an integer from {lo} to {hi}"),
                        "not an integer in range",
                    ));
                    None
                }
            }
        };
        if name == "lag" {
            if !matches!(scope, Scope::Node(_) | Scope::Edit(_)) {
                return no(
                    self,
                    "`lag` may only appear in a node's mechanism or an edit".into(),
                    "metrics read paths with at(x, t), final(x), path_max(x), path_sum(x)",
                );
            }
            let Some(periods) = self.periods else {
                return no(
                    self,
                    "`lag` needs periods".into(),
                    "declare them: `[periods] count = 12`",
                );
            };
            if args.is_empty() || args.len() > 2 {
                arity_err(self, "1 or 2 arguments (node, k)");
                return None;
            }
            let target = match &args[0].kind {
                A::Name(n) => self.node_ids.get(n).copied(),
                _ => None,
            };
            let Some(node) = target else {
                self.err(Diagnostic::new(
                    Code::Structure,
                    src.span_of(args[0].span),
                    "the first argument of `lag` must be a node name",
                    "not a node",
                ));
                return None;
            };
            let k = match args.get(1) {
                Some(a) => int_arg(
                    self,
                    a,
                    "the order k of `lag(x, k)`",
                    1,
                    i64::from(periods.max(1)),
                )?,
                None => 1,
            };
            r.lag_refs.push((node, src.span_of(args[0].span)));
            return Some(Expr {
                kind: ExprKind::Lag { node, k },
                span,
                ty: self.node_type(node),
            });
        }
        if let Some(agg) = UnitAgg::from_name(name) {
            if !self.has_units {
                return no(
                    self,
                    format!("`{name}` needs units"),
                    "declare them: `[units] count = 1000` or `[units] path = \"units.csv\"`",
                );
            }
            if matches!(scope, Scope::Init(_)) || r.in_agg {
                return no(
                    self,
                    format!("`{name}` cannot appear inside another unit aggregate or an `init`"),
                    "aggregate once, in a sample-level node",
                );
            }
            if args.len() != 1 {
                arity_err(self, "1 argument");
                return None;
            }
            r.in_agg = true;
            let arg = self.expr(src, &args[0], scope, r);
            r.in_agg = false;
            let arg = arg?;
            if agg == UnitAgg::Count && !self.need_bool("the argument of `count_units`", &arg) {
                return None;
            }
            return Some(Expr {
                kind: ExprKind::UnitAgg {
                    agg,
                    arg: Box::new(arg),
                },
                span,
                ty: Type::Num,
            });
        }
        // Path functions.
        if scope != Scope::Metric || r.in_path {
            return no(
                self,
                format!("`{name}` may only appear in a metric's argument, once"),
                "nodes read earlier periods with lag(x)",
            );
        }
        let Some(periods) = self.periods else {
            return no(
                self,
                format!("`{name}` needs periods"),
                "declare them: `[periods] count = 12`",
            );
        };
        let (want, sig) = if name == "at" {
            (2, "2 arguments (x, t)")
        } else {
            (1, "1 argument")
        };
        if args.len() != want {
            arity_err(self, sig);
            return None;
        }
        let path = match name {
            "at" => PathFn::At(int_arg(
                self,
                &args[1],
                "the period",
                0,
                i64::from(periods) - 1,
            )?),
            "final" => PathFn::Final,
            "path_max" => PathFn::Max,
            _ => PathFn::Sum,
        };
        r.in_path = true;
        let arg = self.expr(src, &args[0], scope, r);
        r.in_path = false;
        let arg = arg?;
        let ty = match path {
            PathFn::At(_) | PathFn::Final => arg.ty,
            _ => Type::Num,
        };
        Some(Expr {
            kind: ExprKind::Path {
                path,
                arg: Box::new(arg),
            },
            span,
            ty,
        })
    }

    /// Checks constant distribution parameters against their domains.
    fn check_dist(&mut self, dist: Dist, args: &[Expr]) {
        check_dist_args(dist, args, &self.params, &mut self.diags);
    }
}

/// Checks the constant arguments of one distribution call against their
/// domains, with `params` at the given values. Also used by sweeps, which
/// re-check every grid point (`crate::sweep`).
pub(crate) fn check_dist_args(
    dist: Dist,
    args: &[Expr],
    params: &[Param],
    diags: &mut Vec<Diagnostic>,
) {
    let c: Vec<Option<f64>> = args.iter().map(|a| const_eval(a, params)).collect();
    let bad = |this: &mut Vec<Diagnostic>, i: usize, what: &str, rule: &str| {
        if let (Some(a), Some(Some(v))) = (args.get(i), c.get(i)) {
            this.push(Diagnostic::new(
                Code::InvalidDistParam,
                a.span,
                format!(
                    "{what} of `{}` is {}, but must be {rule}",
                    dist.name(),
                    fmt_num(*v)
                ),
                format!("must be {rule}"),
            ));
        }
    };
    // Not strictly positive, NaN included.
    let pos = |i: usize| {
        c.get(i)
            .copied()
            .flatten()
            .is_some_and(|v| v.partial_cmp(&0.0) != Some(Ordering::Greater))
    };
    match dist {
        Dist::Normal if pos(1) => bad(diags, 1, "sd", "> 0"),
        Dist::LogNormal if pos(1) => bad(diags, 1, "sigma", "> 0"),
        Dist::Laplace if pos(1) => bad(diags, 1, "scale b", "> 0"),
        Dist::Logistic if pos(1) => bad(diags, 1, "scale s", "> 0"),
        Dist::Exponential if pos(0) => bad(diags, 0, "rate", "> 0"),
        Dist::StudentT if pos(0) => bad(diags, 0, "df", "> 0"),
        Dist::Bernoulli
            if c.first()
                .copied()
                .flatten()
                .is_some_and(|p| !(0.0..=1.0).contains(&p)) =>
        {
            bad(diags, 0, "p", "in [0, 1]");
        }
        Dist::Gamma | Dist::Beta => {
            let names = if dist == Dist::Gamma {
                ["shape", "scale"]
            } else {
                ["a", "b"]
            };
            for (i, n) in names.iter().enumerate() {
                if pos(i) {
                    bad(diags, i, n, "> 0");
                }
            }
        }
        Dist::Uniform => {
            if let (Some(a), Some(b)) = (c[0], c[1])
                && a.partial_cmp(&b) != Some(Ordering::Less)
            {
                diags.push(Diagnostic::new(
                    Code::InvalidDistParam,
                    args[0].span.to(args[1].span),
                    format!(
                        "bounds of `uniform` are [{}, {}], but a must be < b",
                        fmt_num(a),
                        fmt_num(b)
                    ),
                    "empty interval",
                ));
            }
        }
        _ => {}
    }
}

/// A parsed world reference: the edits, sorted and unique.
type WorldKey = BTreeSet<EditId>;

struct Worlds {
    list: Vec<World>,
    keys: Vec<WorldKey>,
}

impl Worlds {
    fn find(&self, key: &WorldKey) -> Option<WorldId> {
        self.keys
            .iter()
            .position(|k| k == key)
            .map(|i| WorldId(i as u32))
    }
}

/// Resolves a parsed scenario. Errors are returned unsorted.
pub fn resolve(sc: &Scenario) -> Result<CausalModel, Vec<Diagnostic>> {
    let mut rv = Resolver {
        sc,
        diags: Vec::new(),
        params: vec![],
        param_ids: HashMap::new(),
        node_ids: HashMap::new(),
        node_types: vec![],
        covariate_ids: HashMap::new(),
        has_units: sc.units.is_some(),
        periods: None,
    };

    // [scenario]
    let n_samples = match sc.header.samples {
        None => DEFAULT_SAMPLES,
        Some((n, span)) => {
            if n <= 0 || n > MAX_SAMPLES {
                rv.err(
                    Diagnostic::new(
                        Code::InvalidRunSize,
                        span,
                        format!("`samples` is {n}, but must be between 1 and 2^53"),
                        "out of range",
                    )
                    .with_help("counts above 2^53 are not exact in f64 statistics"),
                );
            }
            n.max(0) as u64
        }
    };
    let seed = match sc.header.seed {
        None => 0,
        Some((n, span)) => {
            if n < 0 {
                rv.err(Diagnostic::new(
                    Code::InvalidRunSize,
                    span,
                    format!("`seed` is {n}, but must be >= 0"),
                    "negative",
                ));
            }
            n.max(0) as u64
        }
    };

    // Structure: units and periods.
    let units = match (&sc.units, &sc.units_override) {
        (Some(_), Some(u)) => Some(u.clone()),
        (Some(u), None) => crate::structure::load_units(u, sc.base_dir.as_deref(), &mut rv.diags),
        (None, _) => None,
    };
    if let Some(span) = sc.periods_span {
        let from_data = match (sc.periods, sc.periods_override) {
            (None, Some(n)) => Some((n as i64, span)),
            _ => None,
        };
        match sc.periods.or(from_data) {
            Some((n, _)) if (1..=crate::structure::MAX_PERIODS).contains(&n) => {
                rv.periods = Some(n as u32)
            }
            Some((n, vspan)) => {
                rv.err(Diagnostic::new(
                    Code::Structure,
                    vspan,
                    format!(
                        "`[periods] count` is {n}, but must be between 1 and {}",
                        crate::structure::MAX_PERIODS
                    ),
                    "out of range",
                ));
                // Periods are declared: keep resolving `lag` and friends
                // without a second, misleading "needs periods" error.
                rv.periods = Some(n.clamp(1, crate::structure::MAX_PERIODS) as u32);
            }
            None => {
                // Periods are declared: no cascade of "needs periods" or
                // "beyond the count" errors.
                rv.periods = Some(crate::structure::MAX_PERIODS as u32);
                rv.err(
                Diagnostic::new(
                    Code::MissingKey,
                    span,
                    "[periods] has no `count`",
                    "missing `count`",
                )
                .with_help(
                    if sc.data.as_ref().is_some_and(|d| d.period.is_some()) {
                        "write `count = 12`; without it the count comes from the data's `period` column, which only `whatif` commands that read the data file can supply"
                    } else {
                        "write `count = 12`, or name a `[data] period` column to take the count from the data"
                    },
                ),
            )
            }
        }
    }

    // Names: params, nodes and unit covariates share one namespace.
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut declare = |rv: &mut Resolver<'_>, kind: &str, name: &str, span: Span| -> bool {
        if let Some(what) = reserved(name) {
            rv.err(
                Diagnostic::new(
                    Code::ReservedName,
                    span,
                    format!("{kind} name `{name}` is {what}"),
                    "reserved name",
                )
                .with_help(format!("rename it, e.g. `{name}_`")),
            );
            return false;
        }
        if let Some(&first) = seen.get(name) {
            rv.err(
                Diagnostic::new(
                    Code::DuplicateName,
                    span,
                    format!("name `{name}` is declared twice"),
                    "declared again",
                )
                .with_secondary(first, "first declared here")
                .with_help("nodes and params share one namespace"),
            );
            return false;
        }
        seen.insert(name.to_string(), span);
        true
    };
    for (id, num) in &sc.params {
        if declare(&mut rv, "param", &id.name, id.span) {
            let pid = ParamId(rv.params.len() as u32);
            rv.param_ids.insert(id.name.clone(), pid);
            rv.params.push(Param {
                name: id.name.clone(),
                value: num.value,
                span: id.span,
            });
        }
    }
    let mut node_decls = Vec::new();
    for nd in &sc.nodes {
        if declare(&mut rv, "node", &nd.name.name, nd.name.span) {
            rv.node_ids
                .insert(nd.name.name.clone(), NodeId(node_decls.len() as u32));
            node_decls.push(nd);
        }
    }
    if let (Some(u), Some(decl)) = (&units, &sc.units) {
        let at = decl.path.as_ref().map_or(decl.span, |p| p.1);
        for (c, name) in u.covariates.iter().enumerate() {
            if declare(&mut rv, "unit covariate", name, at) {
                rv.covariate_ids.insert(name.clone(), c as u32);
            }
        }
    }

    // Mechanisms. A node's type is its mechanism's type, which can depend
    // on the types of the nodes it reads (`if(c, a, b)` of two booleans), so
    // resolve to a fixed point; only the last pass keeps its diagnostics.
    rv.node_types = vec![Type::Num; node_decls.len()];
    let mut nodes: Vec<Node> = Vec::new();
    let mut node_refs: Vec<Vec<(NodeId, Span)>> = Vec::new();
    let mut ok = true;
    let n_before = rv.diags.len();
    for pass in 0..8 {
        rv.diags.truncate(n_before);
        nodes.clear();
        node_refs.clear();
        let mut lag_sets: Vec<BTreeSet<NodeId>> = Vec::new();
        for (i, nd) in node_decls.iter().enumerate() {
            let id = NodeId(i as u32);
            let res = rv
                .parse(&nd.expr)
                .and_then(|e| rv.resolve_expr(&nd.expr, &e, Scope::Node(id)));
            let (expr, refs, lags) = match res {
                Some(r) => (r.expr, r.refs, r.lag_refs),
                None => {
                    ok = false;
                    (
                        Expr {
                            kind: ExprKind::Num(0.0),
                            span: nd.expr.span,
                            ty: Type::Num,
                        },
                        vec![],
                        vec![],
                    )
                }
            };
            let parents: BTreeSet<NodeId> = refs.iter().map(|(n, _)| *n).collect();
            lag_sets.push(lags.iter().map(|(n, _)| *n).collect());
            nodes.push(Node {
                name: nd.name.name.clone(),
                span: nd.name.span,
                expr,
                latent: nd.latent,
                doc: nd.doc.clone(),
                parents: parents.into_iter().collect(),
                lag_parents: lag_sets[i].iter().copied().collect(),
                level: Level::Sample,
                init: None,
            });
            node_refs.push(refs);
        }
        let types: Vec<Type> = nodes.iter().map(|n| n.expr.ty).collect();
        if types == rv.node_types || pass == 7 {
            break;
        }
        rv.node_types = types;
    }

    // Levels and `init`s.
    let mut declared_unit = vec![false; nodes.len()];
    let mut declared_sample = vec![None; nodes.len()];
    for (i, nd) in node_decls.iter().enumerate() {
        if let Some((lv, span)) = &nd.level {
            match lv.as_str() {
                "unit" if !rv.has_units => rv.err(
                    Diagnostic::new(
                        Code::Structure,
                        *span,
                        format!(
                            "node `{}` is unit-level, but there are no units",
                            nd.name.name
                        ),
                        "no `[units]`",
                    )
                    .with_help("declare them: `[units] count = 1000`"),
                ),
                "unit" => declared_unit[i] = true,
                "sample" => declared_sample[i] = Some(*span),
                other => rv.err(
                    Diagnostic::new(
                        Code::WrongType,
                        *span,
                        format!("`level` of node `{}` is `{other}`", nd.name.name),
                        "unknown level",
                    )
                    .with_help("write `level = \"unit\"` or `level = \"sample\"`"),
                ),
            }
        }
    }
    let levels = crate::structure::infer_levels(&nodes, &declared_unit);
    for (i, n) in nodes.iter_mut().enumerate() {
        n.level = levels[i];
        if let (Some(span), Level::Unit) = (declared_sample[i], levels[i]) {
            let at = crate::structure::unit_read(&n.expr, &levels).unwrap_or(span);
            rv.err(
                Diagnostic::new(
                    Code::Structure,
                    at,
                    format!(
                        "node `{}` is declared sample-level but reads a unit-level value",
                        n.name
                    ),
                    "unit-level",
                )
                .with_secondary(span, "declared here")
                .with_help(
                    "aggregate it: sum_units(..), mean_units(..), count_units(..) or max_units(..)",
                ),
            );
        }
    }
    for (i, nd) in node_decls.iter().enumerate() {
        let Some(src) = &nd.init else { continue };
        if rv.periods.is_none() {
            rv.err(
                Diagnostic::new(
                    Code::Structure,
                    src.span,
                    format!(
                        "node `{}` has an `init`, but there are no periods",
                        nd.name.name
                    ),
                    "no `[periods]`",
                )
                .with_help("declare them: `[periods] count = 12`"),
            );
            continue;
        }
        let id = NodeId(i as u32);
        if let Some(r) = rv
            .parse(src)
            .and_then(|e| rv.resolve_expr(src, &e, Scope::Init(id)))
        {
            if levels[i] == Level::Sample
                && let Some(at) = crate::structure::unit_read(&r.expr, &levels)
            {
                rv.err(Diagnostic::new(
                    Code::Structure,
                    at,
                    format!(
                        "`init` of sample-level node `{}` reads a unit covariate",
                        nd.name.name
                    ),
                    "unit-level",
                ));
            }
            nodes[i].init = Some(r.expr);
        }
    }

    // Edits.
    let mut edits: Vec<Edit> = Vec::new();
    let mut edit_refs: Vec<Vec<Vec<(NodeId, Span)>>> = Vec::new();
    let mut edit_ids: HashMap<String, EditId> = HashMap::new();
    let mut edit_order: Vec<_> = sc.edits.iter().collect();
    edit_order.sort_by_key(|e| e.name.span.start);
    for ed in edit_order {
        let name = &ed.name.name;
        if name == "baseline" {
            rv.err(
                Diagnostic::new(
                    Code::ReservedName,
                    ed.name.span,
                    "edit name `baseline` is reserved",
                    "reserved name",
                )
                .with_help("`baseline` is the world without edits"),
            );
            continue;
        }
        if let Some(&first) = edit_ids.get(name) {
            let first_span = edits[first.index()].span;
            rv.err(
                Diagnostic::new(
                    Code::DuplicateName,
                    ed.name.span,
                    format!("edit `{name}` is declared twice"),
                    "declared again",
                )
                .with_secondary(first_span, "first declared here")
                .with_help("interventions and stresses share one namespace"),
            );
            continue;
        }
        let mut edit = Edit {
            name: name.clone(),
            kind: ed.kind,
            span: ed.name.span,
            nodes: vec![],
            params: vec![],
        };
        let mut refs_per = Vec::new();
        for entry in &ed.entries {
            let t = &entry.target;
            match (
                &entry.value,
                rv.node_ids.get(&t.name).copied(),
                rv.param_ids.get(&t.name).copied(),
            ) {
                (EditValue::Expr(src), Some(node), _) => {
                    let res = rv
                        .parse(src)
                        .and_then(|e| rv.resolve_expr(src, &e, Scope::Edit(node)));
                    match res {
                        Some(r) => {
                            let parents: BTreeSet<NodeId> =
                                r.refs.iter().map(|(n, _)| *n).collect();
                            if levels[node.index()] == Level::Sample
                                && let Some(at) = crate::structure::unit_read(&r.expr, &levels)
                            {
                                rv.err(
                                    Diagnostic::new(
                                        Code::Structure,
                                        at,
                                        format!(
                                            "edit `{name}` makes sample-level node `{}` read a unit-level value",
                                            t.name
                                        ),
                                        "unit-level",
                                    )
                                    .with_help("aggregate it: sum_units(..), mean_units(..), count_units(..) or max_units(..)"),
                                );
                            }
                            let from = match (entry.from, rv.periods) {
                                (None, _) => 0,
                                (Some((f, _)), Some(p)) if f >= 0 && f < i64::from(p) => f as u32,
                                (Some((f, fspan)), p) => {
                                    let d = match p {
                                        Some(p) => Diagnostic::new(
                                            Code::Structure,
                                            fspan,
                                            format!(
                                                "`from` is {f}, but periods run from 0 to {}",
                                                p - 1
                                            ),
                                            "out of range",
                                        )
                                        .with_help(format!("pick a period from 0 to {}", p - 1)),
                                        None => Diagnostic::new(
                                            Code::Structure,
                                            fspan,
                                            "`from` needs periods",
                                            "no `[periods]`",
                                        )
                                        .with_help("declare them: `[periods] count = 12`"),
                                    };
                                    rv.err(d);
                                    0
                                }
                            };
                            edit.nodes.push(NodeEdit {
                                node,
                                expr: r.expr,
                                reads_self: r.reads_self,
                                span: t.span,
                                parents: parents.into_iter().collect(),
                                from,
                            });
                            refs_per.push(r.refs);
                        }
                        None => ok = false,
                    }
                }
                (EditValue::Num(n), _, Some(param)) => {
                    edit.params.push(ParamOverride {
                        param,
                        value: n.value,
                        span: t.span,
                    });
                }
                (EditValue::Num(n), Some(_), None) => rv.err(
                    Diagnostic::new(
                        Code::WrongType,
                        n.span,
                        format!(
                            "edit of node `{}` in `{name}` must be an expression string",
                            t.name
                        ),
                        "a number",
                    )
                    .with_help(format!(
                        "write `{} = \"{}\"` for a hard intervention",
                        t.name,
                        fmt_num(n.value)
                    )),
                ),
                (EditValue::Expr(src), None, Some(_)) => rv.err(
                    Diagnostic::new(
                        Code::WrongType,
                        src.span,
                        format!(
                            "override of param `{}` in `{name}` must be a number",
                            t.name
                        ),
                        "a string",
                    )
                    .with_help("params are constants; to make it vary, turn it into a node"),
                ),
                (_, None, None) => {
                    let help = did_you_mean(&t.name, rv.value_names());
                    rv.err(
                        Diagnostic::new(
                            Code::UnknownEditTarget,
                            t.span,
                            format!(
                                "edit `{name}` targets `{}`, which is neither a node nor a param",
                                t.name
                            ),
                            "unknown target",
                        )
                        .with_opt_help(help),
                    );
                }
            }
        }
        edit_ids.insert(name.clone(), EditId(edits.len() as u32));
        edits.push(edit);
        edit_refs.push(refs_per);
    }

    // Noise sites: mechanisms first (file order), then edits.
    let mut sites = SiteTable::default();
    for n in nodes.iter_mut() {
        let mut ord = 0;
        sites.assign(&mut n.expr, &n.name, None, &mut ord, &mut rv.diags);
    }
    // `init` draws are their own sites (`node@(init)#k`: not an identifier,
    // so no edit can share them).
    for n in nodes.iter_mut() {
        if let Some(init) = n.init.as_mut() {
            let mut ord = 0;
            sites.assign(init, &n.name, Some("(init)"), &mut ord, &mut rv.diags);
        }
    }
    for e in edits.iter_mut() {
        for ne in e.nodes.iter_mut() {
            let node_name = nodes[ne.node.index()].name.clone();
            let edit = if ne.reads_self {
                Some(e.name.as_str())
            } else {
                None
            };
            let mut ord = 0;
            sites.assign(&mut ne.expr, &node_name, edit, &mut ord, &mut rv.diags);
        }
    }

    // Baseline graph.
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let baseline_cycles = find_cycles(&node_refs);
    for cyc in &baseline_cycles {
        rv.err(cycle_diag(
            Code::Cycle,
            "the causal graph has a cycle",
            cyc,
            &names,
            None,
        ));
    }
    let topo_order = if baseline_cycles.is_empty() {
        topo(&node_refs)
    } else {
        vec![]
    };

    // Worlds: baseline first.
    let mut worlds = Worlds {
        list: vec![World {
            name: "baseline".into(),
            edits: vec![],
            topo_order: vec![],
            span: None,
        }],
        keys: vec![BTreeSet::new()],
    };
    let world_ref = |rv: &mut Resolver<'_>,
                     worlds: &mut Worlds,
                     parts: &[(String, Span)],
                     span: Span,
                     listed: bool|
     -> Option<WorldId> {
        if parts.len() == 1 && parts[0].0 == "baseline" {
            return Some(WorldId(0));
        }
        let mut key = WorldKey::new();
        let mut order = Vec::new();
        let mut good = true;
        for (p, pspan) in parts {
            match edit_ids.get(p) {
                Some(&e) => {
                    if !key.insert(e) {
                        rv.err(Diagnostic::new(
                            Code::ConflictingEdits,
                            *pspan,
                            format!("world `{}` names edit `{p}` twice", join(parts)),
                            "repeated edit",
                        ));
                        good = false;
                    }
                    order.push(e);
                }
                None => {
                    let help = if p == "baseline" {
                        Some("`baseline` stands alone; a combination lists only edits".to_string())
                    } else {
                        did_you_mean(p, edits.iter().map(|e| e.name.as_str()))
                    };
                    rv.err(
                        Diagnostic::new(
                            Code::UnknownEdit,
                            *pspan,
                            format!("unknown edit `{p}` in world `{}`", join(parts)),
                            "unknown edit",
                        )
                        .with_opt_help(help),
                    );
                    good = false;
                }
            }
        }
        if !good {
            return None;
        }
        // Two edits of one node or param do not commute: reject the combo.
        let mut touched: BTreeMap<(u8, u32), EditId> = BTreeMap::new();
        for &e in &order {
            let ed = &edits[e.index()];
            let targets = ed
                .nodes
                .iter()
                .map(|n| (0u8, n.node.0))
                .chain(ed.params.iter().map(|p| (1u8, p.param.0)));
            for t in targets {
                if let Some(&other) = touched.get(&t) {
                    let what = if t.0 == 0 {
                        &nodes[t.1 as usize].name
                    } else {
                        &rv.params[t.1 as usize].name
                    };
                    rv.err(
                        Diagnostic::new(
                            Code::ConflictingEdits,
                            span,
                            format!(
                                "world `{}` edits `{what}` twice (in `{}` and `{}`)",
                                join(parts),
                                edits[other.index()].name,
                                ed.name
                            ),
                            "conflicting edits",
                        )
                        .with_help("edits in one world must touch different nodes and params so they commute"),
                    );
                    return None;
                }
                touched.insert(t, e);
            }
        }
        if let Some(w) = worlds.find(&key) {
            if listed {
                rv.err(
                    Diagnostic::new(
                        Code::DuplicateWorld,
                        span,
                        format!("world `{}` is listed twice", join(parts)),
                        "listed again",
                    )
                    .with_opt_help(
                        worlds.list[w.index()]
                            .span
                            .map(|_| "edits in a world commute: `a+b` is `b+a`".to_string()),
                    ),
                );
            }
            return Some(w);
        }
        let id = WorldId(worlds.list.len() as u32);
        let name = order
            .iter()
            .map(|e| edits[e.index()].name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        worlds.list.push(World {
            name,
            edits: order,
            topo_order: vec![],
            span: Some(span),
        });
        worlds.keys.push(key);
        Some(id)
    };
    let split = |s: &str, span: Span| -> Vec<(String, Span)> {
        s.split('+').map(|p| (p.trim().to_string(), span)).collect()
    };
    match &sc.run_worlds {
        Some(list) => {
            for (w, span) in list {
                world_ref(&mut rv, &mut worlds, &split(w, *span), *span, true);
            }
        }
        None => {
            for e in &edits {
                let key: WorldKey = [edit_ids[&e.name]].into_iter().collect();
                if worlds.find(&key).is_none() {
                    worlds.list.push(World {
                        name: e.name.clone(),
                        edits: key.iter().copied().collect(),
                        topo_order: vec![],
                        span: None,
                    });
                    worlds.keys.push(key);
                }
            }
        }
    }

    // Metrics.
    let mut metrics: Vec<Metric> = Vec::new();
    let mut metric_ids: HashMap<String, MetricId> = HashMap::new();
    for (id, src) in &sc.metrics {
        if let Some(what) = reserved(&id.name) {
            rv.err(Diagnostic::new(
                Code::ReservedName,
                id.span,
                format!("metric name `{}` is {what}", id.name),
                "reserved name",
            ));
            continue;
        }
        if rv.param_ids.contains_key(&id.name) {
            rv.err(
                Diagnostic::new(
                    Code::DuplicateName,
                    id.span,
                    format!("metric `{}` has the name of a param", id.name),
                    "ambiguous in checks",
                )
                .with_secondary(
                    rv.params[rv.param_ids[&id.name].index()].span,
                    "param declared here",
                ),
            );
            continue;
        }
        let Some(e) = rv.parse(src) else { continue };
        if let Some(m) = resolve_metric(&mut rv, &id.name, id.span, src, &e) {
            metric_ids.insert(id.name.clone(), MetricId(metrics.len() as u32));
            metrics.push(m);
        }
    }

    // Checks.
    let mut checks = Vec::new();
    for (i, c) in sc.checks.iter().enumerate() {
        let Some(e) = rv.parse(&c.expect) else {
            continue;
        };
        let mut cx = CheckCx {
            metric_ids: &metric_ids,
            metrics: &metrics,
            src: &c.expect,
        };
        let Some(expect) = cx.expr(&mut rv, &e, &mut |rv, parts, span| {
            world_ref(rv, &mut worlds, parts, span, false)
        }) else {
            continue;
        };
        if expect.ty != Type::Bool {
            rv.err(
                Diagnostic::new(
                    Code::TypeMismatch,
                    expect.span,
                    "check `expect` must be a boolean, found a number",
                    "a number",
                )
                .with_help("compare it, e.g. `effect(expected_loss, recession) < 100`"),
            );
            continue;
        }
        checks.push(Check {
            name: c.name.clone().unwrap_or_else(|| format!("check {}", i + 1)),
            expect_source: c.expect.text.clone(),
            expect,
            span: c.span,
        });
    }

    // Guardrails: explicit worlds may add worlds, defaults use the final list.
    let mut guardrails = Vec::new();
    let mut pending_default = Vec::new();
    for g in &sc.guardrails {
        let Some(&node) = rv.node_ids.get(&g.node.name) else {
            let help = did_you_mean(&g.node.name, rv.node_names());
            rv.err(
                Diagnostic::new(
                    Code::UnknownName,
                    g.node.span,
                    format!("guardrail on unknown node `{}`", g.node.name),
                    "not a node",
                )
                .with_opt_help(help),
            );
            continue;
        };
        let mut good = true;
        if g.min.is_none() && g.max.is_none() {
            rv.err(Diagnostic::new(
                Code::InvalidGuardrail,
                g.node.span,
                format!("guardrail on `{}` has neither `min` nor `max`", g.node.name),
                "no bound",
            ));
            good = false;
        }
        if let (Some(lo), Some(hi)) = (g.min, g.max)
            && lo.value > hi.value
        {
            rv.err(
                Diagnostic::new(
                    Code::InvalidGuardrail,
                    lo.span.to(hi.span),
                    format!(
                        "guardrail on `{}` has min {} above max {}",
                        g.node.name,
                        fmt_num(lo.value),
                        fmt_num(hi.value)
                    ),
                    "empty range",
                )
                .with_secondary(hi.span, "max"),
            );
            good = false;
        }
        let max_share = g.max_share.map(|s| s.value).unwrap_or(0.0);
        if let Some(s) = g.max_share
            && !(0.0..=1.0).contains(&s.value)
        {
            rv.err(Diagnostic::new(
                Code::InvalidGuardrail,
                s.span,
                format!(
                    "`max_share` of guardrail `{}` is {}, but must be in [0, 1]",
                    g.node.name,
                    fmt_num(s.value)
                ),
                "out of [0, 1]",
            ));
            good = false;
        }
        let mut ws = Vec::new();
        if let Some(list) = &g.worlds {
            for (w, span) in list {
                match world_ref(&mut rv, &mut worlds, &split(w, *span), *span, false) {
                    Some(id) => ws.push(id),
                    None => good = false,
                }
            }
        }
        if good {
            if g.worlds.is_none() {
                pending_default.push(guardrails.len());
            }
            guardrails.push(Guardrail {
                node,
                min: g.min.map(|n| n.value),
                max: g.max.map(|n| n.value),
                max_share,
                worlds: ws,
                span: g.node.span,
            });
        }
    }
    let policy_worlds: Vec<WorldId> = worlds
        .list
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            w.edits
                .iter()
                .any(|e| edits[e.index()].kind == EditKind::Intervention)
        })
        .map(|(i, _)| WorldId(i as u32))
        .collect();
    for i in pending_default {
        guardrails[i].worlds = policy_worlds.clone();
    }

    // Per-world graphs: acyclic, with a topological order.
    if baseline_cycles.is_empty() {
        worlds.list[0].topo_order = topo_order.clone();
        for w in worlds.list.iter_mut().skip(1) {
            let mut refs = node_refs.clone();
            let mut edited_by: Vec<Option<EditId>> = vec![None; nodes.len()];
            for &e in &w.edits {
                for (k, ne) in edits[e.index()].nodes.iter().enumerate() {
                    let mut r = edit_refs[e.index()][k].clone();
                    // `Natural(n)` evaluates n's baseline mechanism on this
                    // world's parents, so those stay dependencies.
                    if ne.reads_self {
                        r.extend(node_refs[ne.node.index()].iter().copied());
                    }
                    refs[ne.node.index()] = r;
                    edited_by[ne.node.index()] = Some(e);
                }
            }
            let cycles = find_cycles(&refs);
            for cyc in &cycles {
                let at = w.span.unwrap_or_else(|| {
                    cyc.iter()
                        .find_map(|(child, _, _)| edited_by[*child].map(|e| edits[e.index()].span))
                        .unwrap_or_default()
                });
                let msg = format!("the edits of world `{}` create a cycle", w.name);
                rv.err(cycle_diag(Code::WorldCycle, &msg, cyc, &names, Some(at)));
            }
            if cycles.is_empty() {
                w.topo_order = topo(&refs);
            }
        }
    }

    let _ = ok;
    for m in &metrics {
        for a in &m.args {
            if let Some(at) = crate::structure::unit_read(a, &levels) {
                rv.err(
                    Diagnostic::new(
                        Code::Structure,
                        at,
                        format!("metric `{}` reads a unit-level value", m.name),
                        "unit-level",
                    )
                    .with_help("metrics summarise samples: aggregate it first in a node, e.g. `portfolio_loss = \"sum_units(loss)\"`"),
                );
            }
        }
    }
    // A data row is one unit in one period: `[units]` (a portfolio per
    // Monte Carlo path, read through aggregates) has no row-wise meaning,
    // while `[periods]` does once the rows say which period they are in.
    if let (Some(d), true) = (&sc.data, units.is_some()) {
        rv.err(
            Diagnostic::new(
                Code::Structure,
                d.span,
                "`[data]` with `[units]` is not supported",
                "portfolio model",
            )
            .with_help(
                "backtest the per-unit model: one data row per unit and period, `[data] unit` naming the unit column",
            ),
        );
    }
    if let (Some(d), true) = (&sc.data, rv.periods.is_some())
        && d.period.is_none()
    {
        rv.err(
                Diagnostic::new(
                    Code::Structure,
                    d.span,
                    "a multi-period model's `[data]` needs a `period` column",
                    "no `period` here",
                )
                .with_help(
                    "name the column of 0-based period numbers, e.g. `period = \"quarter\"`, so that `lag` reads the unit's previous row",
                ),
            );
    }
    let data = sc
        .data
        .as_ref()
        .and_then(|d| crate::data::resolve_data(d, &nodes, &mut rv.diags));
    let sweeps = crate::sweep::resolve_sweeps(&sc.sweeps, &rv.params, &metrics, &mut rv.diags);
    if !rv.diags.is_empty() {
        return Err(rv.diags);
    }
    // Sweeps are checked again on the whole model: every grid point must
    // give valid constant distribution parameters.
    crate::sweep::check_grids(CausalModel {
        name: sc.header.name.clone().unwrap_or_else(|| "unnamed".into()),
        description: sc.header.description.clone(),
        n_samples,
        seed,
        params: rv.params,
        nodes,
        topo_order,
        sites: sites.sites,
        edits,
        worlds: worlds.list,
        metrics,
        checks,
        guardrails,
        data,
        sweeps,
        units,
        periods: rv.periods.unwrap_or(1),
        has_periods: rv.periods.is_some(),
    })
}

fn join(parts: &[(String, Span)]) -> String {
    parts
        .iter()
        .map(|(p, _)| p.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

fn resolve_metric(
    rv: &mut Resolver<'_>,
    name: &str,
    span: Span,
    src: &Src,
    e: &ast::Expr,
) -> Option<Metric> {
    let A::Call {
        name: agg,
        name_span,
        args,
    } = &e.kind
    else {
        rv.err(
            Diagnostic::new(
                Code::InvalidMetric,
                src.span_of(e.span),
                format!("metric `{name}` is not an aggregate call"),
                "not an aggregate",
            )
            .with_help(format!(
                "wrap it in an aggregate: {}",
                AGGREGATES.join(", ")
            )),
        );
        return None;
    };
    let call_span = src.span_of(e.span);
    let (n_args, sig) = match agg.as_str() {
        "mean" | "var" | "sd" => (1, "x"),
        "prob" => (1, "condition"),
        "quantile" | "value_at_risk" | "expected_shortfall" => (2, "x, q"),
        "corr" => (2, "x, y"),
        _ => {
            let help = did_you_mean(agg, AGGREGATES.iter().copied())
                .unwrap_or_else(|| format!("aggregates: {}", AGGREGATES.join(", ")));
            rv.err(
                Diagnostic::new(
                    Code::InvalidMetric,
                    src.span_of(*name_span),
                    format!("`{agg}` is not an aggregate"),
                    "not an aggregate",
                )
                .with_help(help),
            );
            return None;
        }
    };
    if args.len() != n_args {
        rv.err(Diagnostic::new(
            Code::Arity,
            call_span,
            format!(
                "`{agg}` takes {n_args} argument{} ({sig}), found {}",
                plural(n_args),
                args.len()
            ),
            format!("{} argument{}", args.len(), plural(args.len())),
        ));
        return None;
    }
    let resolved: Vec<Option<Expr>> = args
        .iter()
        .map(|a| rv.resolve_expr(src, a, Scope::Metric).map(|r| r.expr))
        .collect();
    let resolved: Vec<Expr> = resolved.into_iter().collect::<Option<_>>()?;
    let level = |rv: &mut Resolver<'_>| -> Option<f64> {
        let q = &resolved[1];
        match const_eval(q, &rv.params) {
            Some(v) if v > 0.0 && v < 1.0 && q.ty == Type::Num => Some(v),
            Some(v) => {
                rv.err(Diagnostic::new(
                    Code::InvalidMetric,
                    q.span,
                    format!(
                        "level of `{agg}` in metric `{name}` is {}, but must be in (0, 1)",
                        fmt_num(v)
                    ),
                    "out of (0, 1)",
                ));
                None
            }
            None => {
                rv.err(Diagnostic::new(
                    Code::InvalidMetric,
                    q.span,
                    format!("level of `{agg}` in metric `{name}` must be a constant"),
                    "not a constant",
                ));
                None
            }
        }
    };
    let kind = match agg.as_str() {
        "mean" => MetricKind::Mean,
        "var" => MetricKind::Var,
        "sd" => MetricKind::Sd,
        "prob" => {
            if !rv.need_bool("the argument of `prob`", &resolved[0]) {
                return None;
            }
            MetricKind::Prob
        }
        "quantile" => MetricKind::Quantile(level(rv)?),
        "value_at_risk" => MetricKind::ValueAtRisk(level(rv)?),
        "expected_shortfall" => MetricKind::ExpectedShortfall(level(rv)?),
        _ => MetricKind::Corr,
    };
    let mut args = resolved;
    args.truncate(kind.n_exprs());
    Some(Metric {
        name: name.to_string(),
        span,
        source: src.text.clone(),
        kind,
        args,
    })
}

/// Resolution of `[[checks]] expect` expressions.
struct CheckCx<'c> {
    metric_ids: &'c HashMap<String, MetricId>,
    metrics: &'c [Metric],
    src: &'c Src,
}

type WorldFn<'f> = dyn FnMut(&mut Resolver<'_>, &[(String, Span)], Span) -> Option<WorldId> + 'f;

impl CheckCx<'_> {
    fn metric(&self, rv: &mut Resolver<'_>, name: &str, span: Span) -> Option<MetricId> {
        if let Some(&m) = self.metric_ids.get(name) {
            return Some(m);
        }
        let (msg, help) = if rv.node_ids.contains_key(name) {
            (
                format!("check reads node `{name}` directly"),
                Some(format!(
                    "checks read metrics: declare one, e.g. `mean_{name} = \"mean({name})\"`"
                )),
            )
        } else {
            (
                format!("unknown metric `{name}`"),
                did_you_mean(name, self.metrics.iter().map(|m| m.name.as_str())),
            )
        };
        rv.err(Diagnostic::new(Code::UnknownMetric, span, msg, "not a metric").with_opt_help(help));
        None
    }

    /// A world written as an expression (`recession`, `a + b`, `baseline`).
    fn world(&self, rv: &mut Resolver<'_>, e: &ast::Expr, wf: &mut WorldFn<'_>) -> Option<WorldId> {
        fn flatten(e: &ast::Expr, out: &mut Vec<(String, Span)>) -> bool {
            match &e.kind {
                A::Name(n) => {
                    out.push((n.clone(), e.span));
                    true
                }
                A::Binary {
                    op: BinOp::Add,
                    lhs,
                    rhs,
                } => flatten(lhs, out) && flatten(rhs, out),
                _ => false,
            }
        }
        let mut parts = Vec::new();
        if !flatten(e, &mut parts) {
            rv.err(
                Diagnostic::new(
                    Code::UnknownEdit,
                    self.src.span_of(e.span),
                    "expected a world: `baseline` or edits joined by `+`",
                    "not a world",
                )
                .with_help("e.g. `raise_limits+recession`"),
            );
            return None;
        }
        let parts: Vec<_> = parts
            .into_iter()
            .map(|(n, s)| (n, self.src.span_of(s)))
            .collect();
        wf(rv, &parts, self.src.span_of(e.span))
    }

    fn expr(
        &mut self,
        rv: &mut Resolver<'_>,
        e: &ast::Expr,
        wf: &mut WorldFn<'_>,
    ) -> Option<CheckExpr> {
        let span = self.src.span_of(e.span);
        let mk = |kind: CheckExprKind, ty: Type| Some(CheckExpr { kind, span, ty });
        let need_bool = |rv: &mut Resolver<'_>, what: &str, x: &CheckExpr| {
            if x.ty == Type::Bool {
                return true;
            }
            rv.err(Diagnostic::new(
                Code::TypeMismatch,
                x.span,
                format!("{what} must be a boolean, found a number"),
                "a number",
            ));
            false
        };
        match &e.kind {
            A::Num(v) => mk(CheckExprKind::Num(*v), Type::Num),
            A::Name(n) => {
                if let Some(&p) = rv.param_ids.get(n) {
                    return mk(CheckExprKind::Param(p), Type::Num);
                }
                let metric = self.metric(rv, n, span)?;
                mk(
                    CheckExprKind::Metric {
                        metric,
                        world: WorldId(0),
                    },
                    Type::Num,
                )
            }
            A::Index {
                name,
                name_span,
                world,
            } => {
                let metric = self.metric(rv, name, self.src.span_of(*name_span));
                let parts: Vec<_> = world
                    .iter()
                    .map(|(n, s)| (n.clone(), self.src.span_of(*s)))
                    .collect();
                let w = wf(rv, &parts, span);
                mk(
                    CheckExprKind::Metric {
                        metric: metric?,
                        world: w?,
                    },
                    Type::Num,
                )
            }
            A::Neg(x) => {
                let x = self.expr(rv, x, wf)?;
                mk(CheckExprKind::Neg(Box::new(x)), Type::Num)
            }
            A::Not(x) => {
                let x = self.expr(rv, x, wf)?;
                if !need_bool(rv, "the operand of `not`", &x) {
                    return None;
                }
                mk(CheckExprKind::Not(Box::new(x)), Type::Bool)
            }
            A::Binary { op, lhs, rhs } => {
                let l = self.expr(rv, lhs, wf);
                let r = self.expr(rv, rhs, wf);
                let (l, r) = (l?, r?);
                let ty = match op {
                    BinOp::And | BinOp::Or => {
                        let a =
                            need_bool(rv, &format!("the left operand of `{}`", op.symbol()), &l);
                        let b =
                            need_bool(rv, &format!("the right operand of `{}`", op.symbol()), &r);
                        if !(a && b) {
                            return None;
                        }
                        Type::Bool
                    }
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => {
                        Type::Bool
                    }
                    _ => Type::Num,
                };
                mk(
                    CheckExprKind::Binary {
                        op: *op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                    },
                    ty,
                )
            }
            A::Call {
                name,
                name_span,
                args,
            } => {
                let nspan = self.src.span_of(*name_span);
                let arity_err = |rv: &mut Resolver<'_>, want: usize, sig: &str| {
                    rv.err(Diagnostic::new(
                        Code::Arity,
                        span,
                        format!(
                            "`{name}` takes {want} argument{} ({sig}), found {}",
                            plural(want),
                            args.len()
                        ),
                        format!("{} argument{}", args.len(), plural(args.len())),
                    ));
                };
                let metric_arg = |this: &Self, rv: &mut Resolver<'_>, a: &ast::Expr| match &a.kind {
                    A::Name(n) => this.metric(rv, n, this.src.span_of(a.span)),
                    _ => {
                        rv.err(Diagnostic::new(
                            Code::UnknownMetric,
                            this.src.span_of(a.span),
                            format!("the first argument of `{name}` must be a metric name"),
                            "not a metric name",
                        ));
                        None
                    }
                };
                match name.as_str() {
                    "effect" => {
                        if args.len() != 2 {
                            arity_err(rv, 2, "metric, world");
                            return None;
                        }
                        let m = metric_arg(self, rv, &args[0]);
                        let w = self.world(rv, &args[1], wf);
                        mk(
                            CheckExprKind::Effect {
                                metric: m?,
                                world: w?,
                            },
                            Type::Num,
                        )
                    }
                    "ratio" => {
                        if args.len() != 3 {
                            arity_err(rv, 3, "metric, world, other");
                            return None;
                        }
                        let m = metric_arg(self, rv, &args[0]);
                        let w = self.world(rv, &args[1], wf);
                        let o = self.world(rv, &args[2], wf);
                        mk(
                            CheckExprKind::Ratio {
                                metric: m?,
                                world: w?,
                                other: o?,
                            },
                            Type::Num,
                        )
                    }
                    _ => {
                        let Some(func) = Func::from_name(name) else {
                            let msg = if Dist::from_name(name).is_some()
                                || name == "if"
                                || AGGREGATES.contains(&name.as_str())
                            {
                                format!("`{name}` cannot be used in a check")
                            } else {
                                format!("unknown function `{name}`")
                            };
                            let cands = Func::ALL
                                .iter()
                                .map(|f| f.name())
                                .chain(["effect", "ratio"]);
                            rv.err(
                                Diagnostic::new(
                                    Code::UnknownFunction,
                                    nspan,
                                    msg,
                                    "not available in checks",
                                )
                                .with_opt_help(did_you_mean(name, cands)),
                            );
                            return None;
                        };
                        if args.len() != func.arity() {
                            arity_err(rv, func.arity(), "numbers");
                            return None;
                        }
                        let xs: Vec<Option<CheckExpr>> =
                            args.iter().map(|a| self.expr(rv, a, wf)).collect();
                        let xs: Vec<CheckExpr> = xs.into_iter().collect::<Option<_>>()?;
                        mk(CheckExprKind::Call { func, args: xs }, Type::Num)
                    }
                }
            }
        }
    }
}

/// One cycle: edges `(child, parent, span of the reference in child)`, in
/// causal order starting at the earliest node in file order.
type Cycle = Vec<(usize, usize, Span)>;

/// Finds cycles in the "reads" graph, one per knot: Kahn's algorithm peels
/// off everything acyclic; from the earliest remaining node a walk along
/// remaining parents must repeat a node, giving a cycle, whose nodes are
/// then dropped before looking again.
fn find_cycles(refs: &[Vec<(NodeId, Span)>]) -> Vec<Cycle> {
    let n = refs.len();
    let mut alive = vec![true; n];
    let mut out = Vec::new();
    loop {
        let remaining = kahn_remaining(refs, &alive);
        let Some(start) = (0..n).find(|&i| remaining[i]) else {
            return out;
        };
        let mut pos_in_walk: HashMap<usize, usize> = HashMap::new();
        let mut walk: Vec<(usize, usize, Span)> = Vec::new();
        let mut cur = start;
        loop {
            if let Some(&k) = pos_in_walk.get(&cur) {
                // The walk follows "reads" edges; reverse for causal order.
                let mut cyc: Vec<_> = walk[k..].to_vec();
                cyc.reverse();
                let first = cyc
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, p, _))| *p)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                cyc.rotate_left(first);
                for (c, _, _) in &cyc {
                    alive[*c] = false;
                }
                out.push(cyc);
                break;
            }
            pos_in_walk.insert(cur, walk.len());
            let Some(&(p, span)) = refs[cur].iter().find(|(p, _)| remaining[p.index()]) else {
                // Cannot happen: every remaining node has a remaining parent.
                return out;
            };
            walk.push((cur, p.index(), span));
            cur = p.index();
        }
    }
}

/// Nodes Kahn's algorithm cannot order (on a cycle or downstream of one).
fn kahn_remaining(refs: &[Vec<(NodeId, Span)>], alive: &[bool]) -> Vec<bool> {
    let order = topo_alive(refs, alive);
    let mut remaining = alive.to_vec();
    for i in order {
        remaining[i.index()] = false;
    }
    remaining
}

fn topo_alive(refs: &[Vec<(NodeId, Span)>], alive: &[bool]) -> Vec<NodeId> {
    let n = refs.len();
    let mut indeg = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![vec![]; n];
    for (c, rs) in refs.iter().enumerate() {
        if !alive[c] {
            continue;
        }
        let ps: BTreeSet<usize> = rs
            .iter()
            .map(|(p, _)| p.index())
            .filter(|&p| alive[p])
            .collect();
        indeg[c] = ps.len();
        for p in ps {
            children[p].push(c);
        }
    }
    let mut heap: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| alive[i] && indeg[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = heap.pop() {
        order.push(NodeId(i as u32));
        for &c in &children[i] {
            indeg[c] -= 1;
            if indeg[c] == 0 {
                heap.push(Reverse(c));
            }
        }
    }
    order
}

/// Topological order, ties broken by file order (smallest index first).
fn topo(refs: &[Vec<(NodeId, Span)>]) -> Vec<NodeId> {
    topo_alive(refs, &vec![true; refs.len()])
}

fn cycle_diag(
    code: Code,
    what: &str,
    cyc: &Cycle,
    names: &[String],
    at: Option<Span>,
) -> Diagnostic {
    // Causal order: parent -> child; each edge is (child, parent, span).
    let mut text: Vec<&str> = cyc.iter().map(|(_, p, _)| names[*p].as_str()).collect();
    if let Some(first) = text.first().copied() {
        text.push(first);
    }
    let path = text.join(" -> ");
    let primary = at.unwrap_or_else(|| cyc.first().map(|e| e.2).unwrap_or_default());
    let mut d = Diagnostic::new(
        code,
        primary,
        format!("{what}: {path}"),
        if at.is_some() {
            "this world"
        } else {
            "cycle starts here"
        },
    )
    .with_help("a node cannot depend on itself through other nodes; break one edge");
    for (i, (c, p, span)) in cyc.iter().enumerate() {
        if at.is_none() && i == 0 {
            // The primary label already sits on this edge.
            d.label = format!("`{}` reads `{}`", names[*c], names[*p]);
            continue;
        }
        d = d.with_secondary(*span, format!("`{}` reads `{}`", names[*c], names[*p]));
    }
    d
}
