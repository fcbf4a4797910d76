//! Lowering a verified Program into the comptime [`KProgram`] of the fused
//! kernel, and the runtime values (parameters) that go with it.

use crate::kernels::dists::*;
use crate::kernels::fused::{KAgg, KOp, KProgram, KSlot, agg, bin, un};
use whatif_ir::structure::{Step, schedule};
use whatif_ir::{BinaryOp, Dist, Op, Program, UnaryOp, UnitAgg, ValueId};

/// The distribution code of `d` in the kernel.
pub fn dist_code(d: Dist) -> u32 {
    match d {
        Dist::Normal => D_NORMAL,
        Dist::LogNormal => D_LOGNORMAL,
        Dist::Uniform => D_UNIFORM,
        Dist::Bernoulli => D_BERNOULLI,
        Dist::Exponential => D_EXPONENTIAL,
        Dist::Laplace => D_LAPLACE,
        Dist::Logistic => D_LOGISTIC,
        Dist::Gamma => D_GAMMA,
        Dist::StudentT => D_STUDENT_T,
        Dist::Beta => D_BETA,
    }
}

/// The kernel code of a unary op.
pub fn unary_code(u: UnaryOp) -> u32 {
    match u {
        UnaryOp::Neg => un::NEG,
        UnaryOp::Not => un::NOT,
        UnaryOp::Exp => un::EXP,
        UnaryOp::Log => un::LOG,
        UnaryOp::Sqrt => un::SQRT,
        UnaryOp::Abs => un::ABS,
        UnaryOp::Sigmoid => un::SIGMOID,
        UnaryOp::Logit => un::LOGIT,
        UnaryOp::Tanh => un::TANH,
        UnaryOp::Floor => un::FLOOR,
        UnaryOp::Ceil => un::CEIL,
        UnaryOp::Round => un::ROUND,
    }
}

/// The kernel code of a binary op.
pub fn binary_code(b: BinaryOp) -> u32 {
    match b {
        BinaryOp::Add => bin::ADD,
        BinaryOp::Sub => bin::SUB,
        BinaryOp::Mul => bin::MUL,
        BinaryOp::Div => bin::DIV,
        BinaryOp::Pow => bin::POW,
        BinaryOp::Min => bin::MIN,
        BinaryOp::Max => bin::MAX,
        BinaryOp::Lt => bin::LT,
        BinaryOp::Le => bin::LE,
        BinaryOp::Gt => bin::GT,
        BinaryOp::Ge => bin::GE,
        BinaryOp::Eq => bin::EQ,
        BinaryOp::Ne => bin::NE,
        BinaryOp::And => bin::AND,
        BinaryOp::Or => bin::OR,
    }
}

/// One op of `p` as a kernel op, its operands renamed by `id`.
pub fn lower_op(op: &Op, id: &dyn Fn(ValueId) -> u32) -> KOp {
    match op {
        Op::Const(x) => KOp::Const((*x as f32).to_bits()),
        Op::Param(k) => KOp::Param(*k),
        Op::Covariate(c) => KOp::Covariate(*c),
        Op::Input(c) => KOp::Input(*c),
        Op::Draw {
            dist,
            site,
            args,
            period,
            unit,
        } => {
            let a0 = args.first().map_or(0, |v| id(*v));
            let a1 = args.get(1).map_or(a0, |v| id(*v));
            KOp::Draw {
                dist: dist_code(*dist),
                site: *site,
                a0,
                a1,
                period: *period,
                unit: *unit,
            }
        }
        Op::Unary(u, a) => KOp::Unary(unary_code(*u), id(*a)),
        Op::Binary(b, x, y) => KOp::Binary(binary_code(*b), id(*x), id(*y)),
        Op::Select(c, a, b) => KOp::Select(id(*c), id(*a), id(*b)),
        Op::UnitAgg(..) => unreachable!("aggregates are lowered with their unit loop"),
    }
}

/// The kernel code of an aggregate.
fn agg_code(a: UnitAgg) -> u32 {
    match a {
        UnitAgg::Sum => agg::SUM,
        UnitAgg::Mean => agg::MEAN,
        UnitAgg::Count => agg::COUNT,
        UnitAgg::Max => agg::MAX,
    }
}

/// The whole program: every op, every output, every probe. Ops go in
/// schedule order (`whatif_ir::structure`), renumbered in that order, so
/// the kernel's value `v` is the `v`-th value it computes; a unit loop's
/// body values are renumbered per loop (a unit op two loops need is
/// computed in both).
pub fn lower(p: &Program) -> KProgram {
    let sched = schedule(p);
    let mut kid: Vec<Option<u32>> = vec![None; p.ops.len()];
    let mut next = 0u32;
    let mut ops = vec![];
    let id_of = |kid: &Vec<Option<u32>>, v: ValueId| {
        kid[v.index()].expect("invariant: operand lowered before its reader")
    };
    for step in &sched.steps {
        match step {
            Step::Ops(vs) => {
                for v in vs {
                    let k = &kid;
                    ops.push(lower_op(&p.ops[v.index()], &|x| id_of(k, x)));
                    kid[v.index()] = Some(next);
                    next += 1;
                }
            }
            Step::Units { body, aggs } => {
                let mut kbody = vec![];
                for v in body {
                    let k = &kid;
                    kbody.push(lower_op(&p.ops[v.index()], &|x| id_of(k, x)));
                    kid[v.index()] = Some(next);
                    next += 1;
                }
                let kaggs = aggs
                    .iter()
                    .enumerate()
                    .map(|(slot, a)| {
                        let Op::UnitAgg(kind, x) = p.ops[a.index()] else {
                            unreachable!("schedule lists aggregates only")
                        };
                        KAgg {
                            kind: agg_code(kind),
                            slot: slot as u32,
                            value: id_of(&kid, x),
                        }
                    })
                    .collect();
                for v in body {
                    kid[v.index()] = None;
                }
                for a in aggs {
                    kid[a.index()] = Some(next);
                    next += 1;
                }
                ops.push(KOp::Units {
                    body: kbody,
                    aggs: kaggs,
                });
            }
        }
    }
    let slot = |i: usize, v: ValueId| KSlot {
        idx: i as u32,
        value: id_of(&kid, v),
    };
    KProgram {
        ops,
        outputs: p
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| slot(i, o.value))
            .collect(),
        probes: p
            .probes
            .iter()
            .enumerate()
            .map(|(i, pr)| slot(i, pr.value))
            .collect(),
        units_param: p.params.len() as u32,
    }
}

/// Unit covariates as the fused kernel reads them, `[c · units + u]`
/// (`None` without covariates).
pub fn covariates(p: &Program) -> Option<Vec<f32>> {
    let u = p.units.as_ref().filter(|u| !u.columns.is_empty())?;
    Some(u.columns.iter().flatten().map(|&x| x as f32).collect())
}

/// The parameter buffer: each slot's value rounded to f32 once (as the CPU
/// plan does). Never empty (a zero-sized binding is not allowed).
pub fn params(p: &Program) -> Vec<f32> {
    let mut v: Vec<f32> = p.params.iter().map(|s| s.value as f32).collect();
    // The unit count, at `KProgram::units_param` (exact: at most 2^24).
    v.push(p.unit_count() as f32);
    v
}
