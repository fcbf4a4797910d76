//! Lowering: a [`CausalModel`] and a set of worlds become one [`Program`].
//!
//! Every world is lowered on its own, its ops tagged with the world, exactly
//! as the model reads: node by node in the world's topological order, each
//! through the mechanism the world gives it. Nothing is shared yet; the
//! `share` pass later hoists whatever no edit reaches. Keeping lowering this
//! literal makes it easy to trust, and the unoptimised program is the
//! reference the optimised one is tested against.
//!
//! Structured models: periods are unrolled (every node once per period, in
//! period order; `lag(x, k)` reads the value `k` periods back, or `x`'s
//! `init` before period 0; a draw carries its period into the Philox key).
//! Units stay a dimension: a unit-level node's ops read covariates and draw
//! per unit, and `sum_units(..)` and friends become [`Op::UnitAgg`]; the
//! schedule in [`crate::structure`] turns that into unit loops. A bare node
//! in a metric means its value at the last period.

use crate::program::{
    BinaryOp, Op, Output, OutputRole, ParamSlot, Probe, Program, UnaryOp, UnitTable, ValueId,
};
use std::collections::BTreeMap;
use whatif_lang::{
    BinOp, CausalModel, Dist, Expr, ExprKind, Func, Level, Mechanism, NodeId, PathFn, SiteId,
    WorldId,
};

/// Lower the given worlds of `model` (baseline is always world 0 of the
/// program, whether listed or not). World order is kept otherwise.
pub fn lower(model: &CausalModel, worlds: &[WorldId]) -> Program {
    let mut selected: Vec<WorldId> = vec![WorldId(0)];
    for &w in worlds {
        if !selected.contains(&w) {
            selected.push(w);
        }
    }
    let mut p = empty_program(model, &selected);
    for (wi, &world) in selected.iter().enumerate() {
        WorldLowering::new(model, world, wi as u32, &mut p).run();
    }
    p
}

/// A program of `worlds` with no ops yet: the model's params (one slot
/// each), names, seed, units and periods.
fn empty_program(model: &CausalModel, worlds: &[WorldId]) -> Program {
    Program {
        ops: vec![],
        op_world: vec![],
        params: model
            .params
            .iter()
            .map(|q| ParamSlot {
                name: q.name.clone(),
                value: q.value,
                world: None,
            })
            .collect(),
        worlds: worlds
            .iter()
            .map(|w| model.worlds[w.index()].name.clone())
            .collect(),
        outputs: vec![],
        probes: vec![],
        seed: model.seed,
        metric_names: model.metrics.iter().map(|m| m.name.clone()).collect(),
        guardrail_names: model
            .guardrails
            .iter()
            .map(|g| model.node(g.node).name.clone())
            .collect(),
        units: model.units.as_ref().map(|u| UnitTable {
            count: u.count,
            names: u.covariates.clone(),
            columns: u.values.clone(),
        }),
        periods: model.periods,
        inputs: None,
    }
}

/// Lower every world the model evaluates.
pub fn lower_all(model: &CausalModel) -> Program {
    let ids: Vec<WorldId> = (0..model.worlds.len() as u32).map(WorldId).collect();
    lower(model, &ids)
}

/// The lane inputs of a backtest replay program, in column order:
/// `observed`, then `sites`, then `lags`, then (with `period`) each lane's
/// period number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayColumns {
    /// Nodes taken as observed instead of recomputed.
    pub observed: Vec<NodeId>,
    /// Noise sites: the standard noise each draw applies (see
    /// [`lower_replay`]).
    pub sites: Vec<SiteId>,
    /// `lag(node, k)` reads: the value the caller resolved (the same
    /// draw's counterfactual from the unit's earlier row, or `init`).
    pub lags: Vec<(NodeId, u32)>,
    /// A last column holds each lane's period (for edits with `from`).
    pub period: bool,
}

impl ReplayColumns {
    /// Number of input columns.
    pub fn len(&self) -> usize {
        self.observed.len() + self.sites.len() + self.lags.len() + usize::from(self.period)
    }

    /// Whether there are no input columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column names, for dumps and diagnostics.
    pub fn names(&self, model: &CausalModel) -> Vec<String> {
        let mut v: Vec<String> = self
            .observed
            .iter()
            .map(|n| model.node(*n).name.clone())
            .collect();
        v.extend(
            self.sites
                .iter()
                .map(|s| format!("noise {:#010x}", model.sites[s.index()].hash)),
        );
        v.extend(
            self.lags
                .iter()
                .map(|(n, k)| format!("lag({}, {k})", model.node(*n).name)),
        );
        if self.period {
            v.push("period".into());
        }
        v
    }
}

/// Lower one world of `model` as a backtest replay: each lane is one
/// (row, posterior draw). Nodes in `cols.observed` read their input; every
/// other node is recomputed through the world's mechanism (the edited one
/// from its `from` period on, chosen per lane by the period column), with
/// each draw applying its site's standard noise `s` from the inputs instead
/// of drawing: normal, laplace and logistic `a + b·s`, lognormal
/// `exp(a + b·s)`, uniform `a + (b − a)·s`, bernoulli `s ≤ p`, exponential
/// `s / rate`; NaN where the arguments are invalid, as a draw would be.
/// Outputs are the recomputed nodes' values, in node order
/// ([`OutputRole::Node`]), then the metrics' arguments that are not a bare
/// node, metric by metric (NaN for an argument over paths: a replayed row
/// is not a path).
/// The program has no probes and `inputs: None`; the caller fills the
/// columns per batch.
///
/// # Panics
/// When a mechanism draws from a site without a column, or reads a lag
/// without one (the caller lists them), or draws from a distribution with
/// no standard-noise form (gamma, beta, student_t: backtests refuse them).
pub fn lower_replay(model: &CausalModel, world: WorldId, cols: &ReplayColumns) -> Program {
    // World 0 is baseline in every program; the replay's ops are all the
    // policy's (world 1). A replay has no unit dimension and one period
    // (a lane is one row), whatever the model unrolls in `run`.
    let mut p = empty_program(model, &[WorldId(0), world]);
    p.units = None;
    p.periods = 1;
    let n_obs = cols.observed.len() as u32;
    let n_sites = cols.sites.len() as u32;
    let mut map = ReplayMap {
        sites: BTreeMap::new(),
        lags: BTreeMap::new(),
        period: None,
    };
    for (i, s) in cols.sites.iter().enumerate() {
        map.sites.insert(*s, n_obs + i as u32);
    }
    for (i, l) in cols.lags.iter().enumerate() {
        map.lags.insert(*l, n_obs + n_sites + i as u32);
    }
    let mut wl = WorldLowering::new(model, world, 1, &mut p);
    wl.env = vec![vec![None; model.nodes.len()]];
    if cols.period {
        map.period = Some(wl.push(Op::Input(cols.len() as u32 - 1)));
    }
    wl.replay = Some(map);
    for &n in &model.worlds[world.index()].topo_order {
        let v = if let Some(c) = cols.observed.iter().position(|o| *o == n) {
            wl.push(Op::Input(c as u32))
        } else {
            match model.mechanism(world, n) {
                Mechanism::Natural(e) => wl.expr(e),
                Mechanism::Edited { node_edit, .. } => {
                    let edited = wl.expr(&node_edit.expr);
                    let t = wl.replay.as_ref().and_then(|r| r.period);
                    match t {
                        Some(t) if node_edit.from > 0 => {
                            let natural = wl.expr(&model.node(n).expr);
                            let from = wl.push(Op::Const(f64::from(node_edit.from)));
                            let on = wl.push(Op::Binary(BinaryOp::Ge, t, from));
                            wl.push(Op::Select(on, edited, natural))
                        }
                        _ => edited,
                    }
                }
            }
        };
        wl.env[0][n.index()] = Some(v);
    }
    let values: Vec<(usize, ValueId)> = (0..model.nodes.len())
        .filter(|n| !cols.observed.iter().any(|o| o.index() == *n))
        .map(|n| (n, wl.env[0][n].expect("every node is lowered")))
        .collect();
    let mut args = vec![];
    for (mi, m) in model.metrics.iter().enumerate() {
        for (ai, a) in m.args.iter().enumerate() {
            // A bare node is read from the node outputs (or the row).
            if matches!(a.kind, ExprKind::Node(_)) {
                continue;
            }
            let mut on_paths = false;
            a.walk(&mut |x| on_paths |= matches!(x.kind, ExprKind::Path { .. }));
            // A backtest row is one unit in one period, not a path.
            let v = if on_paths {
                wl.push(Op::Const(f64::NAN))
            } else {
                wl.expr(a)
            };
            args.push((mi as u32, ai as u32, v));
        }
    }
    for (n, v) in values {
        p.outputs.push(Output {
            world: 1,
            role: OutputRole::Node { node: n as u32 },
            value: v,
        });
    }
    for (metric, arg, value) in args {
        p.outputs.push(Output {
            world: 1,
            role: OutputRole::MetricArg { metric, arg },
            value,
        });
    }
    p
}

/// Where a replay program reads each site's noise, each lag and the period.
struct ReplayMap {
    sites: BTreeMap<SiteId, u32>,
    lags: BTreeMap<(NodeId, u32), u32>,
    period: Option<ValueId>,
}

struct WorldLowering<'a> {
    model: &'a CausalModel,
    world: WorldId,
    tag: u32,
    p: &'a mut Program,
    /// `env[t][node]`: the node's value at period `t`.
    env: Vec<Vec<Option<ValueId>>>,
    /// Param id → slot for this world.
    slots: Vec<u32>,
    /// The period being lowered.
    period: u32,
    /// Lowering a unit-level value (a unit-level node or an aggregate's
    /// argument): draws are per unit.
    unit: bool,
    /// Each node's `init` value, lowered once.
    inits: Vec<Option<ValueId>>,
    /// Lowering a backtest replay: draws apply input noise, lags read
    /// inputs.
    replay: Option<ReplayMap>,
}

impl<'a> WorldLowering<'a> {
    fn new(model: &'a CausalModel, world: WorldId, tag: u32, p: &'a mut Program) -> Self {
        let mut slots: Vec<u32> = (0..model.params.len() as u32).collect();
        for &e in &model.worlds[world.index()].edits {
            for o in &model.edits[e.index()].params {
                slots[o.param.index()] = p.params.len() as u32;
                p.params.push(ParamSlot {
                    name: model.params[o.param.index()].name.clone(),
                    value: o.value,
                    world: Some(tag),
                });
            }
        }
        WorldLowering {
            model,
            world,
            tag,
            p,
            env: vec![vec![None; model.nodes.len()]; model.periods as usize],
            slots,
            period: 0,
            unit: false,
            inits: vec![None; model.nodes.len()],
            replay: None,
        }
    }

    /// `dist(args)` applied to the standard noise `s` (see [`lower_replay`]).
    fn apply_noise(&mut self, dist: Dist, a: &[ValueId], s: ValueId) -> ValueId {
        let c = |me: &mut Self, x: f64| me.push(Op::Const(x));
        let bin = |me: &mut Self, op, x, y| me.push(Op::Binary(op, x, y));
        let zero = c(self, 0.0);
        let value = match dist {
            Dist::Normal | Dist::Laplace | Dist::Logistic | Dist::LogNormal => {
                let bs = bin(self, BinaryOp::Mul, a[1], s);
                let v = bin(self, BinaryOp::Add, a[0], bs);
                if dist == Dist::LogNormal {
                    self.push(Op::Unary(UnaryOp::Exp, v))
                } else {
                    v
                }
            }
            Dist::Uniform => {
                let w = bin(self, BinaryOp::Sub, a[1], a[0]);
                let ws = bin(self, BinaryOp::Mul, w, s);
                bin(self, BinaryOp::Add, a[0], ws)
            }
            Dist::Bernoulli => bin(self, BinaryOp::Le, s, a[0]),
            Dist::Exponential => bin(self, BinaryOp::Div, s, a[0]),
            Dist::Gamma | Dist::Beta | Dist::StudentT => panic!(
                "invariant: backtests refuse {} (no standard-noise form)",
                dist.name()
            ),
        };
        let valid = match dist {
            Dist::Normal | Dist::Laplace | Dist::Logistic | Dist::LogNormal => {
                bin(self, BinaryOp::Gt, a[1], zero)
            }
            Dist::Uniform => bin(self, BinaryOp::Lt, a[0], a[1]),
            Dist::Bernoulli => {
                let one = c(self, 1.0);
                let ge = bin(self, BinaryOp::Ge, a[0], zero);
                let le = bin(self, BinaryOp::Le, a[0], one);
                bin(self, BinaryOp::And, ge, le)
            }
            _ => bin(self, BinaryOp::Gt, a[0], zero),
        };
        // Every argument finite (NaN and ±∞ fail `|x| < ∞`).
        let inf = c(self, f64::INFINITY);
        let mut ok = valid;
        for &x in a {
            let ax = self.push(Op::Unary(UnaryOp::Abs, x));
            let fin = bin(self, BinaryOp::Lt, ax, inf);
            ok = bin(self, BinaryOp::And, ok, fin);
        }
        let nan = c(self, f64::NAN);
        self.push(Op::Select(ok, value, nan))
    }

    fn run(mut self) {
        let model = self.model;
        for t in 0..model.periods {
            self.period = t;
            for &n in &model.worlds[self.world.index()].topo_order {
                self.unit = model.node(n).level == Level::Unit;
                let v = match model.mechanism_at(self.world, n, t) {
                    Mechanism::Natural(e) => self.expr(e),
                    Mechanism::Edited { node_edit, .. } => self.expr(&node_edit.expr),
                };
                self.env[t as usize][n.index()] = Some(v);
                // Unit-level values are watched through their aggregates.
                if !self.unit {
                    let name = &model.node(n).name;
                    self.p.probes.push(Probe {
                        node: if model.has_periods {
                            format!("{name} (period {t})")
                        } else {
                            name.clone()
                        },
                        worlds: vec![self.tag],
                        value: v,
                    });
                }
            }
        }
        self.unit = false;
        self.period = model.periods - 1;
        for (mi, m) in model.metrics.iter().enumerate() {
            for (ai, arg) in m.args.iter().enumerate() {
                // Metric arguments read nodes only; `Natural` cannot occur.
                let v = self.expr(arg);
                self.p.outputs.push(Output {
                    world: self.tag,
                    role: OutputRole::MetricArg {
                        metric: mi as u32,
                        arg: ai as u32,
                    },
                    value: v,
                });
            }
        }
        // Fan charts: every sample-level node a metric reads, per period.
        if model.has_periods {
            let mut read = vec![false; model.nodes.len()];
            for m in &model.metrics {
                for a in &m.args {
                    a.walk(&mut |x| {
                        if let ExprKind::Node(n) = x.kind {
                            read[n.index()] = model.node(n).level == Level::Sample;
                        }
                    });
                }
            }
            for (n, _) in read.iter().enumerate().filter(|(_, r)| **r) {
                for t in 0..model.periods {
                    let value = self.env[t as usize][n].expect("every node is lowered per period");
                    self.p.outputs.push(Output {
                        world: self.tag,
                        role: OutputRole::Path {
                            node: n as u32,
                            period: t,
                        },
                        value,
                    });
                }
            }
        }
        for (gi, g) in model.guardrails.iter().enumerate() {
            if g.worlds.contains(&self.world) {
                let v = if model.is_structured() {
                    self.violations(g)
                } else {
                    self.node(g.node)
                };
                self.p.outputs.push(Output {
                    world: self.tag,
                    role: OutputRole::Guardrail {
                        guardrail: gi as u32,
                    },
                    value: v,
                });
            }
        }
    }

    fn node(&self, n: NodeId) -> ValueId {
        self.env[self.period as usize][n.index()].unwrap_or_else(|| {
            panic!(
                "invariant: topological order visits {} before its readers",
                self.model.node(n).name
            )
        })
    }

    /// A structured model's guardrail output: each sample's number of
    /// violating evaluations, over periods (and units, for a unit-level
    /// node). `!(min <= x && x <= max)` counts NaN as a violation, as the
    /// unstructured guard slot does.
    fn violations(&mut self, g: &whatif_lang::Guardrail) -> ValueId {
        let unit = self.model.node(g.node).level == Level::Unit;
        let (saved_p, saved_u) = (self.period, self.unit);
        self.unit = unit;
        let lo = self.push(Op::Const(g.min.unwrap_or(f64::NEG_INFINITY)));
        let hi = self.push(Op::Const(g.max.unwrap_or(f64::INFINITY)));
        let mut total: Option<ValueId> = None;
        for t in 0..self.model.periods {
            self.period = t;
            let x = self.node(g.node);
            let ge = self.push(Op::Binary(BinaryOp::Ge, x, lo));
            let le = self.push(Op::Binary(BinaryOp::Le, x, hi));
            let inside = self.push(Op::Binary(BinaryOp::And, ge, le));
            let mut out = self.push(Op::Unary(UnaryOp::Not, inside));
            if unit {
                out = self.push(Op::UnitAgg(crate::program::UnitAgg::Count, out));
            }
            total = Some(match total {
                None => out,
                Some(acc) => self.push(Op::Binary(BinaryOp::Add, acc, out)),
            });
        }
        self.period = saved_p;
        self.unit = saved_u;
        total.expect("at least one period")
    }

    /// `node`'s value before period 0: its `init` (period 0's draws, at the
    /// node's level), or 0.
    fn init(&mut self, node: NodeId) -> ValueId {
        if let Some(v) = self.inits[node.index()] {
            return v;
        }
        let n = self.model.node(node);
        let (saved_p, saved_u) = (self.period, self.unit);
        self.period = 0;
        self.unit = n.level == Level::Unit;
        let v = match &n.init {
            Some(e) => self.expr(e),
            None => self.push(Op::Const(0.0)),
        };
        self.period = saved_p;
        self.unit = saved_u;
        self.inits[node.index()] = Some(v);
        v
    }

    fn push(&mut self, op: Op) -> ValueId {
        self.p.push(op, Some(self.tag))
    }

    /// Lower `e`, which is (part of) a node's mechanism or a probe argument.
    fn expr(&mut self, e: &Expr) -> ValueId {
        match &e.kind {
            ExprKind::Num(x) => self.push(Op::Const(*x)),
            ExprKind::Param(q) => {
                let slot = self.slots[q.index()];
                self.push(Op::Param(slot))
            }
            ExprKind::Node(n) => self.node(*n),
            ExprKind::Natural(n) => {
                // The node's own baseline mechanism on this world's parents.
                let base = &self.model.node(*n).expr;
                self.expr(base)
            }
            ExprKind::Neg(a) => {
                let a = self.expr(a);
                self.push(Op::Unary(UnaryOp::Neg, a))
            }
            ExprKind::Not(a) => {
                let a = self.expr(a);
                self.push(Op::Unary(UnaryOp::Not, a))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr(lhs);
                let b = self.expr(rhs);
                let op = match op {
                    BinOp::Add => BinaryOp::Add,
                    BinOp::Sub => BinaryOp::Sub,
                    BinOp::Mul => BinaryOp::Mul,
                    BinOp::Div => BinaryOp::Div,
                    BinOp::Pow => BinaryOp::Pow,
                    BinOp::Lt => BinaryOp::Lt,
                    BinOp::Le => BinaryOp::Le,
                    BinOp::Gt => BinaryOp::Gt,
                    BinOp::Ge => BinaryOp::Ge,
                    BinOp::Eq => BinaryOp::Eq,
                    BinOp::Ne => BinaryOp::Ne,
                    BinOp::And => BinaryOp::And,
                    BinOp::Or => BinaryOp::Or,
                };
                self.push(Op::Binary(op, a, b))
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.expr(cond);
                let a = self.expr(then);
                let b = self.expr(otherwise);
                self.push(Op::Select(c, a, b))
            }
            ExprKind::Call { func, args } => {
                let vs: Vec<ValueId> = args.iter().map(|a| self.expr(a)).collect();
                let un = |u| Op::Unary(u, vs[0]);
                let op = match func {
                    Func::Exp => un(UnaryOp::Exp),
                    Func::Log => un(UnaryOp::Log),
                    Func::Sqrt => un(UnaryOp::Sqrt),
                    Func::Abs => un(UnaryOp::Abs),
                    Func::Sigmoid => un(UnaryOp::Sigmoid),
                    Func::Logit => un(UnaryOp::Logit),
                    Func::Tanh => un(UnaryOp::Tanh),
                    Func::Floor => un(UnaryOp::Floor),
                    Func::Ceil => un(UnaryOp::Ceil),
                    Func::Round => un(UnaryOp::Round),
                    Func::Min => Op::Binary(BinaryOp::Min, vs[0], vs[1]),
                    Func::Max => Op::Binary(BinaryOp::Max, vs[0], vs[1]),
                    Func::Pow => Op::Binary(BinaryOp::Pow, vs[0], vs[1]),
                    Func::Clamp => {
                        let lo = self.push(Op::Binary(BinaryOp::Max, vs[0], vs[1]));
                        Op::Binary(BinaryOp::Min, lo, vs[2])
                    }
                };
                self.push(op)
            }
            ExprKind::Draw { dist, args, site } => {
                let vs: Vec<ValueId> = args.iter().map(|a| self.expr(a)).collect();
                if let Some(r) = &self.replay {
                    let col = *r
                        .sites
                        .get(site)
                        .expect("invariant: every replayed site has a noise column");
                    let s = self.push(Op::Input(col));
                    return self.apply_noise(*dist, &vs, s);
                }
                let hash = self.model.sites[site.index()].hash;
                self.push(Op::Draw {
                    dist: *dist,
                    site: hash,
                    args: vs,
                    period: self.period,
                    unit: self.unit,
                })
            }
            ExprKind::Covariate(c) => self.push(Op::Covariate(*c)),
            ExprKind::Lag { node, k } => {
                if let Some(r) = &self.replay {
                    let col = *r
                        .lags
                        .get(&(*node, *k))
                        .expect("invariant: every replayed lag has a column");
                    return self.push(Op::Input(col));
                }
                if self.period >= *k {
                    let saved = self.period;
                    self.period -= *k;
                    let v = self.node(*node);
                    self.period = saved;
                    v
                } else {
                    self.init(*node)
                }
            }
            ExprKind::UnitAgg { agg, arg } => {
                let saved = self.unit;
                self.unit = true;
                let v = self.expr(arg);
                self.unit = saved;
                self.push(Op::UnitAgg(*agg, v))
            }
            ExprKind::Path { path, arg } => {
                let saved = self.period;
                let last = self.model.periods - 1;
                let v = match path {
                    PathFn::At(t) => {
                        self.period = *t;
                        self.expr(arg)
                    }
                    PathFn::Final => {
                        self.period = last;
                        self.expr(arg)
                    }
                    PathFn::Max | PathFn::Sum => {
                        let op = if *path == PathFn::Max {
                            BinaryOp::Max
                        } else {
                            BinaryOp::Add
                        };
                        self.period = 0;
                        let mut acc = self.expr(arg);
                        for t in 1..=last {
                            self.period = t;
                            let v = self.expr(arg);
                            acc = self.push(Op::Binary(op, acc, v));
                        }
                        acc
                    }
                };
                self.period = saved;
                v
            }
        }
    }
}
