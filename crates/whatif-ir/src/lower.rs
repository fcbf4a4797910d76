//! Lowering: a [`CausalModel`] and a set of worlds become one [`Program`].
//!
//! Every world is lowered on its own, its ops tagged with the world, exactly
//! as the model reads: node by node in the world's topological order, each
//! through the mechanism the world gives it. Nothing is shared yet; the
//! `share` pass later hoists whatever no edit reaches. Keeping lowering this
//! literal makes it easy to trust, and the unoptimised program is the
//! reference the optimised one is tested against.

use crate::program::{
    BinaryOp, Op, Output, OutputRole, ParamSlot, Probe, Program, UnaryOp, ValueId,
};
use whatif_lang::{BinOp, CausalModel, Expr, ExprKind, Func, Mechanism, NodeId, WorldId};

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
    env: Vec<Option<ValueId>>,
    /// Param id → slot for this world.
    slots: Vec<u32>,
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
            env: vec![None; model.nodes.len()],
            slots,
        }
    }

    fn run(mut self) {
        let model = self.model;
        for &n in &model.worlds[self.world.index()].topo_order {
            let v = match model.mechanism(self.world, n) {
                Mechanism::Natural(e) => self.expr(e),
                Mechanism::Edited { node_edit, .. } => self.expr(&node_edit.expr),
            };
            self.env[n.index()] = Some(v);
            self.p.probes.push(Probe {
                node: model.node(n).name.clone(),
                worlds: vec![self.tag],
                value: v,
            });
        }
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
        for (gi, g) in model.guardrails.iter().enumerate() {
            if g.worlds.contains(&self.world) {
                let v = self.node(g.node);
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
        self.env[n.index()].unwrap_or_else(|| {
            panic!(
                "invariant: topological order visits {} before its readers",
                self.model.node(n).name
            )
        })
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
                })
            }
        }
    }
}
