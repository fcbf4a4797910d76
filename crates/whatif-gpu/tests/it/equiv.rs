//! Equivalence suite: reference interpreter (f64), CPU executor, fused
//! GPU kernel and tensor path on the same (Program, seed, sample range),
//! lane by lane, within the named tolerances of `common`.

use crate::common::*;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::interp::eval_outputs;
use whatif_ir::layout::BlockLayout;
use whatif_ir::{BinaryOp, Dist, Op, Program, UnaryOp, ValueId};

/// W1: X0 = normal(0,1), Xi = rho·X(i−1) + normal(0,1), 20 nodes.
pub fn chain(n: usize, seed: u64) -> Program {
    let mut p = empty(seed);
    let zero = p.push(Op::Const(0.0), None);
    let one = p.push(Op::Const(1.0), None);
    let rho = p.push(Op::Param(0), None);
    let mut x = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 1000,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    for i in 1..n {
        let e = p.push(
            Op::Draw {
                dist: Dist::Normal,
                site: 1000 + i as u32,
                args: vec![zero, one],
                period: 0,
                unit: false,
            },
            None,
        );
        let m = p.push(Op::Binary(BinaryOp::Mul, rho, x), None);
        x = p.push(Op::Binary(BinaryOp::Add, m, e), None);
        p.probes.push(whatif_ir::Probe {
            node: format!("x{i}"),
            worlds: vec![0],
            value: x,
        });
    }
    out(&mut p, x);
    p
}

/// Every unary op on a spread of inputs.
fn unaries(seed: u64) -> Program {
    let mut p = empty(seed);
    let zero = p.push(Op::Const(0.0), None);
    let three = p.push(Op::Const(3.0), None);
    let x = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 5,
            args: vec![zero, three],
            period: 0,
            unit: false,
        },
        None,
    );
    let ax = p.push(Op::Unary(UnaryOp::Abs, x), None);
    let s = p.push(Op::Unary(UnaryOp::Sigmoid, x), None);
    for (u, arg) in [
        (UnaryOp::Neg, x),
        (UnaryOp::Not, x),
        (UnaryOp::Exp, x),
        (UnaryOp::Log, ax),
        (UnaryOp::Sqrt, ax),
        (UnaryOp::Abs, x),
        (UnaryOp::Sigmoid, x),
        (UnaryOp::Logit, s),
        (UnaryOp::Tanh, x),
        (UnaryOp::Floor, x),
        (UnaryOp::Ceil, x),
        (UnaryOp::Round, x),
    ] {
        let v = p.push(Op::Unary(u, arg), None);
        out(&mut p, v);
    }
    // Round exactly at halves: 2.5 -> 3, -2.5 -> -3.
    let h = p.push(Op::Binary(BinaryOp::Mul, x, three), None);
    let hf = p.push(Op::Unary(UnaryOp::Floor, h), None);
    let half = p.push(Op::Const(0.5), None);
    let hh = p.push(Op::Binary(BinaryOp::Add, hf, half), None);
    let r = p.push(Op::Unary(UnaryOp::Round, hh), None);
    out(&mut p, r);
    p
}

/// Every binary op and select.
fn binaries(seed: u64) -> Program {
    let mut p = empty(seed);
    let zero = p.push(Op::Const(0.0), None);
    let one = p.push(Op::Const(1.0), None);
    let x = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 11,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let y = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 12,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let fy = p.push(Op::Unary(UnaryOp::Floor, y), None);
    let ax = p.push(Op::Unary(UnaryOp::Abs, x), None);
    for b in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
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
        let v = p.push(Op::Binary(b, x, y), None);
        out(&mut p, v);
    }
    // pow: positive base with any exponent; negative base with integer ones.
    let pw = p.push(Op::Binary(BinaryOp::Pow, ax, y), None);
    out(&mut p, pw);
    let pn = p.push(Op::Binary(BinaryOp::Pow, x, fy), None);
    out(&mut p, pn);
    let eq = p.push(Op::Binary(BinaryOp::Eq, fy, zero), None);
    let and0 = p.push(Op::Binary(BinaryOp::And, fy, zero), None);
    out(&mut p, eq);
    out(&mut p, and0);
    let c = p.push(Op::Binary(BinaryOp::Gt, x, y), None);
    let s = p.push(Op::Select(c, x, y), None);
    out(&mut p, s);
    let one_sel = p.push(Op::Select(one, x, y), None);
    out(&mut p, one_sel);
    p
}

/// Every distribution, with scalar and per-lane arguments.
fn dists(seed: u64) -> Program {
    let mut p = empty(seed);
    let c = |p: &mut Program, x: f64| p.push(Op::Const(x), None);
    let (zero, one, two, half, tenth) = (
        c(&mut p, 0.0),
        c(&mut p, 1.0),
        c(&mut p, 2.0),
        c(&mut p, 0.5),
        c(&mut p, 0.3),
    );
    let u = p.push(
        Op::Draw {
            dist: Dist::Uniform,
            site: 1,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let su = p.push(Op::Binary(BinaryOp::Add, u, half), None); // lane-varying positive arg
    let mut site = 100;
    let mut draw = |p: &mut Program, d: Dist, args: Vec<ValueId>| {
        site += 1;
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
        out(p, v);
    };
    draw(&mut p, Dist::Normal, vec![one, two]);
    draw(&mut p, Dist::Normal, vec![u, su]);
    draw(&mut p, Dist::LogNormal, vec![zero, half]);
    draw(&mut p, Dist::Uniform, vec![zero, two]);
    draw(&mut p, Dist::Uniform, vec![u, su]);
    draw(&mut p, Dist::Bernoulli, vec![tenth]);
    draw(&mut p, Dist::Bernoulli, vec![u]);
    draw(&mut p, Dist::Exponential, vec![two]);
    draw(&mut p, Dist::Exponential, vec![su]);
    draw(&mut p, Dist::Laplace, vec![one, half]);
    draw(&mut p, Dist::Logistic, vec![zero, two]);
    draw(&mut p, Dist::Gamma, vec![two, half]);
    draw(&mut p, Dist::Gamma, vec![tenth, one]);
    draw(&mut p, Dist::Gamma, vec![su, one]);
    draw(&mut p, Dist::StudentT, vec![two]);
    draw(&mut p, Dist::StudentT, vec![su]);
    draw(&mut p, Dist::Beta, vec![two, half]);
    draw(&mut p, Dist::Beta, vec![su, two]);
    // Invalid parameters give NaN everywhere.
    let neg = c(&mut p, -1.0);
    draw(&mut p, Dist::Normal, vec![zero, neg]);
    draw(&mut p, Dist::Bernoulli, vec![two]);
    p
}

/// Compare every backend on `p` over `n` samples with reduction blocks of
/// `block` and GPU launches of `chunk` lanes.
pub fn check_all(
    name: &str,
    p: &Program,
    n: u64,
    block: u64,
    chunk: usize,
    flips: f64,
    with_tensor: bool,
) {
    let Some(a) = gpu() else { return };
    let v = verified(p);
    let layout = BlockLayout::with_block_size(n, block);
    let reference = eval_outputs(p, 0..n);
    let (cpu, cpu_f) = run_cpu(&v, layout);
    assert_close(
        &format!("{name}: cpu vs reference"),
        &cpu,
        &reference,
        GPU_VS_REF_REL,
        flips,
    );
    let fused = gpu_exec(&v, &a, GpuPath::Fused, chunk, TensorDevice::Wgpu);
    assert_eq!(fused.kernel_name(), "wgpu-fused");
    let (fc, ff) = run_gpu(&fused, &v, layout);
    assert_close(
        &format!("{name}: fused vs reference"),
        &fc,
        &reference,
        GPU_VS_REF_REL,
        flips,
    );
    assert_close(
        &format!("{name}: fused vs cpu"),
        &fc,
        &to_f64(&cpu),
        FUSED_VS_CPU_REL,
        flips,
    );
    assert_eq!(ff, cpu_f, "{name}: fault counts of fused vs cpu");
    if with_tensor {
        let tensor = gpu_exec(&v, &a, GpuPath::Tensor, chunk, TensorDevice::Wgpu);
        assert_eq!(tensor.kernel_name(), "wgpu-tensor");
        let (tc, tf) = run_gpu(&tensor, &v, layout);
        assert_close(
            &format!("{name}: tensor vs reference"),
            &tc,
            &reference,
            GPU_VS_REF_REL,
            flips,
        );
        assert_eq!(tf, cpu_f, "{name}: fault counts of tensor vs cpu");
    }
}

#[test]
fn chain_w1_all_backends() {
    // 10,003 samples: a ragged last block and a tail that is not a multiple of 4.
    check_all("w1", &chain(20, 2026), 10_003, 1024, 4096, 0.0, true);
}

#[test]
fn unary_ops_all_backends() {
    check_all("unary", &unaries(7), 8_191, 1024, 2048, FLIP_SHARE, true);
}

#[test]
fn binary_ops_all_backends() {
    check_all("binary", &binaries(8), 8_192, 2048, 8192, FLIP_SHARE, true);
}

#[test]
fn distributions_all_backends() {
    check_all("dists", &dists(9), 6_000, 1024, 1 << 20, FLIP_SHARE, true);
}

#[test]
fn fused_sample_range_independent_of_chunk() {
    // The value of (seed, site, sample) never depends on the launch size.
    let Some(a) = gpu() else { return };
    let p = chain(5, 3);
    let v = verified(&p);
    let layout = BlockLayout::with_block_size(20_000, 1024);
    let small = run_gpu(
        &gpu_exec(&v, &a, GpuPath::Fused, 1024, TensorDevice::Wgpu),
        &v,
        layout,
    );
    let big = run_gpu(
        &gpu_exec(&v, &a, GpuPath::Fused, 1 << 20, TensorDevice::Wgpu),
        &v,
        layout,
    );
    assert_eq!(small.0, big.0);
}

#[test]
fn tensor_path_on_flex_matches_reference() {
    let Some(a) = gpu() else { return };
    let p = binaries(21);
    let v = verified(&p);
    let n = 4_096;
    let layout = BlockLayout::with_block_size(n, 1024);
    let exec = gpu_exec(&v, &a, GpuPath::Tensor, 2048, TensorDevice::Flex);
    assert_eq!(exec.kernel_name(), "flex-tensor");
    let (c, _) = run_gpu(&exec, &v, layout);
    assert_close(
        "flex tensor vs reference",
        &c,
        &eval_outputs(&p, 0..n),
        GPU_VS_REF_REL,
        FLIP_SHARE,
    );
}

#[test]
fn fused_matches_cpu_beyond_the_65533_vector_limit() {
    // burn's reductions on lavapipe stop after 65,533 vectors of a long
    // axis (see reduce_bug); the fused kernel indexes by its own lane
    // count and must be right far beyond that.
    let Some(a) = gpu() else { return };
    let p = chain(4, 11);
    let v = verified(&p);
    let layout = BlockLayout::with_block_size(300_003, 65_536);
    let (cpu, _) = run_cpu(&v, layout);
    let (fc, _) = run_gpu(
        &gpu_exec(&v, &a, GpuPath::Fused, 1 << 20, TensorDevice::Wgpu),
        &v,
        layout,
    );
    assert_close(
        "fused vs cpu at 300k lanes",
        &fc,
        &to_f64(&cpu),
        FUSED_VS_CPU_REL,
        0.0,
    );
}
