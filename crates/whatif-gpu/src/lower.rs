//! Lowering a verified Program into the comptime [`KProgram`] of the fused
//! kernel, and the runtime values (parameters) that go with it.

use crate::kernels::dists::*;
use crate::kernels::fused::{KOp, KProgram, KSlot, bin, un};
use whatif_ir::{BinaryOp, Dist, Op, Program, UnaryOp};

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

/// One op of `p` as a kernel op (operands keep their value indices).
pub fn lower_op(p: &Program, op: &Op) -> KOp {
    let _ = p;
    match op {
        Op::Const(x) => KOp::Const((*x as f32).to_bits()),
        Op::Param(k) => KOp::Param(*k),
        Op::Draw { dist, site, args } => {
            let a0 = args.first().map_or(0, |v| v.0);
            let a1 = args.get(1).map_or(a0, |v| v.0);
            KOp::Draw {
                dist: dist_code(*dist),
                site: *site,
                a0,
                a1,
            }
        }
        Op::Unary(u, a) => KOp::Unary(unary_code(*u), a.0),
        Op::Binary(b, x, y) => KOp::Binary(binary_code(*b), x.0, y.0),
        Op::Select(c, a, b) => KOp::Select(c.0, a.0, b.0),
    }
}

/// The whole program: every op, every output, every probe.
pub fn lower(p: &Program) -> KProgram {
    KProgram {
        ops: p.ops.iter().map(|op| lower_op(p, op)).collect(),
        outputs: p
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| KSlot {
                idx: i as u32,
                value: o.value.0,
            })
            .collect(),
        probes: p
            .probes
            .iter()
            .enumerate()
            .map(|(i, pr)| KSlot {
                idx: i as u32,
                value: pr.value.0,
            })
            .collect(),
    }
}

/// The parameter buffer: each slot's value rounded to f32 once (as the CPU
/// plan does). Never empty (a zero-sized binding is not allowed).
pub fn params(p: &Program) -> Vec<f32> {
    let mut v: Vec<f32> = p.params.iter().map(|s| s.value as f32).collect();
    if v.is_empty() {
        v.push(0.0);
    }
    v
}
