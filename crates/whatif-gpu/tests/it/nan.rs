//! NaN semantics: NaN lanes and NaN parameters through every op, on the
//! tensor path, the fused kernel and the CPU executor, lane by lane against
//! the reference interpreter. A NaN must stay NaN (`min`/`max` propagate it, arithmetic
//! and transcendental ops keep it, a draw with a NaN argument is NaN) and
//! must never turn into a finite value, nor a finite value into NaN;
//! comparisons with NaN are false, `!=` true, and `select`/`and`/`or`/`not`
//! treat NaN as non-zero (`whatif_ir::{UnaryOp, BinaryOp}::eval`,
//! `whatif_ir::dist`).
//!
//! This is what a scenario whose fitted `?params` have no lock looks like
//! (they are NaN): `lending_backtest` gave 0 on the tensor path where the
//! reference and the fused kernel give NaN (burn's fused `exp` chains lose
//! NaN); the fused kernel's `!=` was the ordered comparison, so `ne`, `and`,
//! `or` and `select` treated a NaN as zero.

use crate::common::*;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::interp::eval_outputs;
use whatif_ir::layout::BlockLayout;
use whatif_ir::{BinaryOp, Dist, Op, ParamSlot, Program, UnaryOp};

/// A program whose values are NaN on about half the lanes (`x`), NaN on
/// every lane (`q`, a NaN parameter, and `qx`, a NaN lane column) or
/// finite (`y`), fed through every unary op, every binary op in both
/// operand orders, `select` and the draws with lane arguments.
fn nan_program(seed: u64) -> Program {
    let mut p = empty(seed);
    p.params.push(ParamSlot {
        name: "unfitted".into(),
        value: f64::NAN,
        world: None,
    });
    let c = |p: &mut Program, x: f64| p.push(Op::Const(x), None);
    let (zero, one, m1) = (c(&mut p, 0.0), c(&mut p, 1.0), c(&mut p, -1.0));
    let q = p.push(Op::Param(1), None); // NaN, a broadcast scalar
    // sd in (-1, 1]: normal(0, sd) is NaN (invalid sd) on about half the lanes.
    let sd = p.push(
        Op::Draw {
            dist: Dist::Uniform,
            site: 1,
            args: vec![m1, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let x = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 2,
            args: vec![zero, sd],
            period: 0,
            unit: false,
        },
        None,
    );
    let y = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 3,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    // NaN on every lane, as a lane column (a draw with a NaN parameter, as
    // `?u_mean + normal(0, ?u_sd)` without a lock).
    let qd = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 4,
            args: vec![zero, q],
            period: 0,
            unit: false,
        },
        None,
    );
    let qx = p.push(Op::Binary(BinaryOp::Add, q, qd), None);
    out(&mut p, x);
    out(&mut p, qx);
    for u in [
        UnaryOp::Neg,
        UnaryOp::Not,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Sigmoid,
        UnaryOp::Logit,
        UnaryOp::Tanh,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ] {
        for a in [x, qx] {
            let v = p.push(Op::Unary(u, a), None);
            out(&mut p, v);
        }
    }
    for b in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::And,
        BinaryOp::Or,
    ] {
        for (l, r) in [(x, y), (y, x), (q, y), (y, q), (qx, y), (x, qx)] {
            let v = p.push(Op::Binary(b, l, r), None);
            out(&mut p, v);
        }
    }
    // select: a NaN condition is non-zero (takes `then`); NaN operands pass.
    for (cnd, a, b) in [(x, y, zero), (qx, y, zero), (q, y, zero), (y, x, qx)] {
        let v = p.push(Op::Select(cnd, a, b), None);
        out(&mut p, v);
    }
    // Draws with NaN (lane or scalar) arguments are NaN; bernoulli of the
    // sigmoid of a NaN logit (lending_backtest's `default`) too.
    let sx = p.push(Op::Unary(UnaryOp::Sigmoid, x), None);
    let sqx = p.push(Op::Unary(UnaryOp::Sigmoid, qx), None);
    let ax = p.push(Op::Unary(UnaryOp::Abs, x), None);
    for (site, (d, args)) in (101..).zip([
        (Dist::Bernoulli, vec![sx]),
        (Dist::Bernoulli, vec![sqx]),
        (Dist::Bernoulli, vec![q]),
        (Dist::Normal, vec![x, one]),
        (Dist::Normal, vec![y, qx]),
        (Dist::Uniform, vec![x, c(&mut p, 5.0)]),
        (Dist::Exponential, vec![ax]),
        (Dist::Gamma, vec![ax, one]),
        (Dist::Beta, vec![one, ax]),
        (Dist::StudentT, vec![ax]),
    ]) {
        let v = p.push(
            Op::Draw {
                dist: d,
                site,
                args,
                period: 0,
                unit: false,
            },
            None,
        );
        out(&mut p, v);
    }
    p
}

/// Lanes where exactly one side is NaN, with the first such lane.
fn nan_mismatches(got: &[f32], want: &[f64]) -> (usize, String) {
    let mut bad = 0;
    let mut first = String::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() != w.is_nan() {
            if bad == 0 {
                first = format!("lane {i}: {g} vs reference {w}");
            }
            bad += 1;
        }
    }
    (bad, first)
}

fn assert_nan_lanes(what: &str, p: &Program, got: &[Vec<f32>], want: &[Vec<f64>]) {
    let mut msgs = vec![];
    for (o, (g, w)) in got.iter().zip(want).enumerate() {
        let op = &p.ops[p.outputs[o].value.index()];
        let (bad, first) = nan_mismatches(g, w);
        if bad > 0 {
            msgs.push(format!(
                "output {o} ({op:?}): NaN on {bad} lanes; first {first}"
            ));
            continue;
        }
        // Elsewhere the values agree within the usual tolerance.
        let (share, bad, first) = mismatch_share(g, w, GPU_VS_REF_REL);
        if share > FLIP_SHARE {
            msgs.push(format!(
                "output {o} ({op:?}): {bad} lanes differ; first {first}"
            ));
        }
    }
    assert!(
        msgs.is_empty(),
        "{what}: {} outputs differ from the reference:\n{}",
        msgs.len(),
        msgs.join("\n")
    );
}

#[test]
fn nan_lanes_and_params_propagate_like_the_reference() {
    let Some(a) = gpu() else { return };
    let p = nan_program(31);
    let v = verified(&p);
    let n = 4_100;
    let layout = BlockLayout::with_block_size(n, 1024);
    let reference = eval_outputs(&p, 0..n);
    for (what, path, td) in [
        ("tensor (wgpu)", GpuPath::Tensor, TensorDevice::Wgpu),
        ("fused", GpuPath::Fused, TensorDevice::Wgpu),
    ] {
        let (got, _) = run_gpu(&gpu_exec(&v, &a, path, 2048, td), &v, layout);
        assert_nan_lanes(what, &p, &got, &reference);
    }
    let (cpu, _) = run_cpu(&v, layout);
    assert_nan_lanes("cpu", &p, &cpu, &reference);
}
