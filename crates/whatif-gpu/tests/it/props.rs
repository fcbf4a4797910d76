//! Property-generated Programs on the fused kernel vs the reference
//! interpreter. FEW cases: lavapipe compiles every new Program.

use crate::common::*;
use proptest::prelude::*;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::interp::eval_outputs;
use whatif_ir::layout::BlockLayout;
use whatif_ir::{BinaryOp, Dist, Op, Program, UnaryOp, ValueId};

/// A random well-formed program: draws, then ops over earlier values.
fn program() -> impl Strategy<Value = Program> {
    let ops = prop::collection::vec((0u8..6, 0usize..1000, 0usize..1000, 0u8..15), 3..25);
    (any::<u32>(), ops).prop_map(|(seed, spec)| {
        let mut p = empty(u64::from(seed));
        let zero = p.push(Op::Const(0.0), None);
        let one = p.push(Op::Const(1.0), None);
        let mut vals: Vec<ValueId> = vec![];
        vals.push(p.push(
            Op::Draw {
                dist: Dist::Normal,
                site: 1,
                args: vec![zero, one],
                period: 0,
                unit: false,
            },
            None,
        ));
        vals.push(p.push(
            Op::Draw {
                dist: Dist::Uniform,
                site: 2,
                args: vec![zero, one],
                period: 0,
                unit: false,
            },
            None,
        ));
        let unaries = [
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Sigmoid,
            UnaryOp::Tanh,
            UnaryOp::Floor,
            UnaryOp::Exp,
        ];
        let binaries = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Min,
            BinaryOp::Max,
            BinaryOp::Lt,
            BinaryOp::Ge,
            BinaryOp::Add,
            BinaryOp::Mul,
            BinaryOp::Sub,
            BinaryOp::And,
            BinaryOp::Or,
            BinaryOp::Ne,
            BinaryOp::Le,
            BinaryOp::Gt,
        ];
        for (i, (kind, a, b, code)) in spec.into_iter().enumerate() {
            let x = vals[a % vals.len()];
            let y = vals[b % vals.len()];
            let v = match kind {
                0 => p.push(Op::Unary(unaries[code as usize % unaries.len()], x), None),
                1 | 2 => p.push(Op::Binary(binaries[code as usize], x, y), None),
                3 => p.push(Op::Select(x, y, one), None),
                4 => {
                    let sd = p.push(Op::Unary(UnaryOp::Sigmoid, y), None);
                    p.push(
                        Op::Draw {
                            dist: Dist::Normal,
                            site: 10 + i as u32,
                            args: vec![x, sd],
                            period: 0,
                            unit: false,
                        },
                        None,
                    )
                }
                _ => {
                    let s = p.push(Op::Unary(UnaryOp::Sigmoid, x), None);
                    p.push(
                        Op::Draw {
                            dist: Dist::Bernoulli,
                            site: 10 + i as u32,
                            args: vec![s],
                            period: 0,
                            unit: false,
                        },
                        None,
                    )
                }
            };
            vals.push(v);
        }
        let last = *vals.last().expect("non-empty");
        out(&mut p, last);
        out(&mut p, vals[vals.len() / 2]);
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn fused_matches_reference(p in program()) {
        let Some(a) = gpu() else { return Ok(()) };
        let v = verified(&p);
        let n = 2_000;
        let layout = BlockLayout::with_block_size(n, 1024);
        let exec = gpu_exec(&v, &a, GpuPath::Fused, 0, TensorDevice::Wgpu);
        let (c, _) = run_gpu(&exec, &v, layout);
        // exp of exp and chains of discontinuities amplify f32 rounding:
        // looser than the hand-written suite, still per lane.
        assert_close("prop fused vs reference", &c, &eval_outputs(&p, 0..n), 1e-3, 0.01);
    }
}
