//! Numeric faults: per probe, the count of non-finite lanes and the first
//! sample index, per block, identical to the CPU executor.

use crate::common::*;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::layout::BlockLayout;
use whatif_ir::{BinaryOp, Dist, Op, Probe, UnaryOp};

#[test]
fn fault_counts_match_cpu() {
    let Some(a) = gpu() else { return };
    let mut p = empty(5);
    let zero = p.push(Op::Const(0.0), None);
    let one = p.push(Op::Const(1.0), None);
    let x = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 3,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let lx = p.push(Op::Unary(UnaryOp::Log, x), None); // NaN for x < 0
    let big = p.push(Op::Const(3.5), None);
    let gt = p.push(Op::Binary(BinaryOp::Gt, x, big), None);
    let inv = p.push(Op::Binary(BinaryOp::Div, one, gt), None); // +inf unless x > 3.5
    let fine = p.push(Op::Binary(BinaryOp::Mul, x, x), None);
    p.probes.push(Probe {
        node: "lx".into(),
        worlds: vec![0],
        value: lx,
    });
    p.probes.push(Probe {
        node: "inv".into(),
        worlds: vec![0],
        value: inv,
    });
    p.probes.push(Probe {
        node: "fine".into(),
        worlds: vec![0],
        value: fine,
    });
    p.probes.push(Probe {
        node: "const".into(),
        worlds: vec![0],
        value: one,
    });
    out(&mut p, fine);
    let v = verified(&p);
    let layout = BlockLayout::with_block_size(50_001, 4096);
    let (_, cpu) = run_cpu(&v, layout);
    assert!(cpu[0].lanes > 20_000 && cpu[1].lanes > 40_000 && cpu[2].lanes == 0);
    for path in [GpuPath::Fused, GpuPath::Tensor] {
        let exec = gpu_exec(&v, &a, path, 16_384, TensorDevice::Wgpu);
        let (_, g) = run_gpu(&exec, &v, layout);
        assert_eq!(g, cpu, "{path:?}");
    }
}

#[test]
fn no_adapter_is_an_error_not_a_panic() {
    // Whatever this machine has, these never panic.
    let all = whatif_gpu::adapters();
    let auto = whatif_gpu::auto_pick();
    if let Some(a) = &auto {
        assert!(!a.is_software());
    }
    for a in &all {
        let _ = a.describe();
    }
}
