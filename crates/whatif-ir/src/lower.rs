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
use whatif_lang::{
    BinOp, CausalModel, Expr, ExprKind, Func, Level, Mechanism, NodeId, PathFn, WorldId,
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
    let mut p = Program {
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
        worlds: selected
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
    };
    for (wi, &world) in selected.iter().enumerate() {
        WorldLowering::new(model, world, wi as u32, &mut p).run();
    }
    p
}

/// Lower every world the model evaluates.
pub fn lower_all(model: &CausalModel) -> Program {
    let ids: Vec<WorldId> = (0..model.worlds.len() as u32).map(WorldId).collect();
    lower(model, &ids)
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
        }
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
