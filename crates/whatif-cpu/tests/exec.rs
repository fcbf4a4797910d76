//! Executor tests on hand-built programs: agreement with the reference
//! interpreter, bit-identical results across thread counts and chunk
//! sizes, fault counting, and register reuse.

use whatif_cpu::CpuExecutor;
use whatif_ir::exec::{BlockReducer, ExecOptions, FaultCount};
use whatif_ir::layout::BlockLayout;
use whatif_ir::{
    BinaryOp, Dist, Op, Output, OutputRole, ParamSlot, Probe, Program, UnaryOp, ValueId, verify,
};

fn empty(seed: u64) -> Program {
    Program {
        ops: vec![],
        op_world: vec![],
        params: vec![ParamSlot {
            name: "rho".into(),
            value: 0.9,
            world: None,
        }],
        worlds: vec!["baseline".into()],
        outputs: vec![],
        probes: vec![],
        seed,
        metric_names: vec!["m".into(), "n".into(), "o".into()],
        guardrail_names: vec![],
        units: None,
        periods: 1,
        inputs: None,
    }
}

/// X0 = normal(0,1), Xi = rho·X(i−1) + normal(0,1); outputs X(n−1) and a
/// mixed bag of ops of it.
fn chain(n: usize, seed: u64) -> Program {
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
        p.probes.push(Probe {
            node: format!("x{i}"),
            worlds: vec![0],
            value: x,
        });
    }
    let ex = p.push(Op::Unary(UnaryOp::Exp, x), None);
    let gt = p.push(Op::Binary(BinaryOp::Gt, x, one), None);
    let sel = p.push(Op::Select(gt, ex, x), None);
    let u = p.push(
        Op::Draw {
            dist: Dist::Uniform,
            site: 77,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let b = p.push(
        Op::Draw {
            dist: Dist::Bernoulli,
            site: 78,
            args: vec![u],
            period: 0,
            unit: false,
        },
        None,
    );
    let mx = p.push(Op::Binary(BinaryOp::Max, sel, b), None);
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: 0, arg: 0 },
        value: x,
    });
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: 1, arg: 0 },
        value: mx,
    });
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: 2, arg: 0 },
        value: one,
    });
    p
}

use whatif_ir::exec::CollectColumns as Collect;

fn run_cols(p: &Program, n: u64, threads: usize, chunk: usize) -> (Vec<Vec<f32>>, Vec<FaultCount>) {
    let v = verify::verify(p.clone()).expect("valid program");
    let exec = CpuExecutor::new(&v, ExecOptions { threads, chunk }).expect("executor");
    let layout = BlockLayout::for_samples(n);
    let mut cols: Vec<Vec<f32>> = vec![vec![]; p.outputs.len()];
    let mut faults = vec![FaultCount::default(); p.probes.len()];
    let mut next = 0;
    exec.run(layout, 0..layout.n_blocks(), &Collect, |r| {
        assert_eq!(r.block, next, "blocks arrive in order");
        next += 1;
        for (c, b) in cols.iter_mut().zip(r.partial) {
            c.extend(b);
        }
        for (f, b) in faults.iter_mut().zip(r.faults) {
            f.merge(b);
        }
    });
    (cols, faults)
}

/// f32 kernels vs the f64 interpreter: polynomial transcendental functions
/// are accurate to ~1e-6 relative; a 20-step AR chain accumulates at most a
/// few ulps per step.
const CONTINUOUS_TOL: f64 = 2e-5;

#[test]
fn cpu_matches_reference_interpreter() {
    let p = chain(20, 7);
    let n = 5000;
    let (cols, _) = run_cols(&p, n, 2, 256);
    let want = whatif_ir::interp::eval_outputs(&p, 0..n);
    let mut flips = 0;
    for i in 0..n as usize {
        let (a, b) = (f64::from(cols[0][i]), want[0][i]);
        assert!(
            (a - b).abs() <= CONTINUOUS_TOL * (1.0 + b.abs()),
            "lane {i}: {a} vs {b}"
        );
        let (a, b) = (f64::from(cols[1][i]), want[1][i]);
        if (a - b).abs() > CONTINUOUS_TOL * (1.0 + b.abs()) {
            flips += 1;
        }
        assert_eq!(cols[2][i], 1.0);
    }
    // Discontinuous ops (the `x > 1` select, bernoulli) may flip lanes whose
    // input sits within rounding of the threshold: a handful at most.
    assert!(flips <= 5, "{flips} lanes differ beyond rounding");
}

#[test]
fn bit_identical_across_threads_and_chunks() {
    let p = chain(10, 3);
    let n = 100_000;
    let (a, _) = run_cols(&p, n, 1, 2048);
    let (b, _) = run_cols(&p, n, 2, 64);
    let (c, _) = run_cols(&p, n, 3, 1024);
    for o in 0..a.len() {
        assert!(
            a[o].iter()
                .zip(&b[o])
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "output {o}: 1 vs 2 threads"
        );
        assert!(
            a[o].iter()
                .zip(&c[o])
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "output {o}: chunk sizes"
        );
    }
    assert_eq!(a[0].len(), n as usize);
}

#[test]
fn seed_changes_values() {
    let (a, _) = run_cols(&chain(3, 1), 1000, 1, 256);
    let (b, _) = run_cols(&chain(3, 2), 1000, 1, 256);
    assert!(a[0].iter().zip(&b[0]).filter(|(x, y)| x != y).count() > 990);
}

#[test]
fn faults_are_counted_with_first_sample() {
    let mut p = empty(5);
    let zero = p.push(Op::Const(0.0), None);
    let one = p.push(Op::Const(1.0), None);
    let z = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 9,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    let l = p.push(Op::Unary(UnaryOp::Log, z), None); // NaN where z < 0
    p.probes.push(Probe {
        node: "l".into(),
        worlds: vec![0],
        value: l,
    });
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: 0, arg: 0 },
        value: l,
    });
    let n = 10_000;
    let (cols, faults) = run_cols(&p, n, 2, 512);
    let want = whatif_ir::interp::eval_outputs(&p, 0..n);
    let bad = want[0].iter().filter(|x| !x.is_finite()).count() as u64;
    let first = want[0]
        .iter()
        .position(|x| !x.is_finite())
        .expect("some negative normal") as u64;
    assert_eq!(faults[0].lanes, bad);
    assert_eq!(faults[0].first_sample, first);
    assert!(cols[0][first as usize].is_nan());
    assert!((4000..6000).contains(&bad), "about half the lanes: {bad}");
}

#[test]
fn registers_are_reused() {
    let p = chain(50, 1);
    let v = verify::verify(p).expect("valid");
    let plan = whatif_cpu::plan::Plan::new(&v);
    // Outputs and probes pin their registers; everything else is recycled.
    assert!(plan.n_regs <= 55, "{} registers", plan.n_regs);
    let unpinned = {
        let mut p = chain(50, 1);
        p.probes.clear();
        verify::verify(p).expect("valid")
    };
    let plan = whatif_cpu::plan::Plan::new(&unpinned);
    assert!(plan.n_regs <= 8, "{} registers without probes", plan.n_regs);
}

#[test]
fn rejects_bad_chunk() {
    let v = verify::verify(chain(2, 0)).expect("valid");
    assert!(
        CpuExecutor::new(
            &v,
            ExecOptions {
                threads: 1,
                chunk: 100
            }
        )
        .is_err()
    );
}

#[test]
fn unused_value_id_is_harmless() {
    // A value defined and never read must not break allocation.
    let mut p = chain(2, 0);
    let dead = p.push(Op::Const(3.0), None);
    let _ = p.push(Op::Unary(UnaryOp::Neg, dead), None);
    let (cols, _) = run_cols(&p, 300, 1, 64);
    assert_eq!(cols[0].len(), 300);
    let _ = ValueId(0);
}

/// Rough W1 throughput (run with `--release -- --ignored --nocapture`);
/// the real figures come from the criterion benches.
#[test]
#[ignore]
fn timing_w1() {
    struct Sum;
    impl BlockReducer for Sum {
        type Partial = f64;
        type Output = f64;
        fn begin(&self, _b: u64, _r: std::ops::Range<u64>) -> f64 {
            0.0
        }
        fn feed(&self, p: &mut f64, _s: u64, cols: &[&[f32]]) {
            *p += cols[0].iter().map(|&x| f64::from(x)).sum::<f64>();
        }
        fn end(&self, p: f64) -> f64 {
            p
        }
    }
    let mut p = chain(20, 1);
    p.probes.clear();
    p.outputs.truncate(1);
    let p = whatif_ir::opt::optimise(p, whatif_ir::opt::PassOptions::ALL);
    let v = verify::verify(p).expect("valid");
    for threads in [1, 2] {
        for chunk in [512, 1024, 2048, 4096] {
            let exec = CpuExecutor::new(&v, ExecOptions { threads, chunk }).expect("executor");
            let n = 10_000_000u64;
            let layout = BlockLayout::for_samples(n);
            let t = std::time::Instant::now();
            let mut total = 0.0;
            exec.run(layout, 0..layout.n_blocks(), &Sum, |r| total += r.partial);
            let s = t.elapsed().as_secs_f64();
            println!(
                "threads {threads} chunk {chunk}: {:.0} M node-samples/s (mean {:.4})",
                20.0 * n as f64 / s / 1e6,
                total / n as f64
            );
        }
    }
}

#[test]
#[ignore]
fn timing_parts() {
    struct Nop;
    impl BlockReducer for Nop {
        type Partial = ();
        type Output = ();
        fn begin(&self, _b: u64, _r: std::ops::Range<u64>) {}
        fn feed(&self, _p: &mut (), _s: u64, _cols: &[&[f32]]) {}
        fn end(&self, _p: ()) {}
    }
    let time = |p: Program, what: &str| {
        let v = verify::verify(p).expect("valid");
        let exec = CpuExecutor::new(
            &v,
            ExecOptions {
                threads: 1,
                chunk: 2048,
            },
        )
        .expect("executor");
        let n = 4_000_000u64;
        let layout = BlockLayout::for_samples(n);
        let t = std::time::Instant::now();
        exec.run(layout, 0..layout.n_blocks(), &Nop, |_| {});
        println!(
            "{what}: {:.2} ns/sample",
            t.elapsed().as_secs_f64() * 1e9 / n as f64
        );
    };
    for dist in [Dist::Normal, Dist::Uniform, Dist::Exponential] {
        let mut p = empty(1);
        let zero = p.push(Op::Const(0.0), None);
        let one = p.push(Op::Const(1.0), None);
        let x = p.push(
            Op::Draw {
                dist,
                site: 1,
                args: vec![zero, one],
                period: 0,
                unit: false,
            },
            None,
        );
        p.outputs.push(Output {
            world: 0,
            role: OutputRole::MetricArg { metric: 0, arg: 0 },
            value: x,
        });
        time(p, dist.name());
    }
    let mut p = empty(1);
    let zero = p.push(Op::Const(0.0), None);
    let one = p.push(Op::Const(1.0), None);
    let mut x = p.push(
        Op::Draw {
            dist: Dist::Uniform,
            site: 1,
            args: vec![zero, one],
            period: 0,
            unit: false,
        },
        None,
    );
    for _ in 0..10 {
        x = p.push(Op::Binary(BinaryOp::Mul, x, one), None);
        x = p.push(Op::Binary(BinaryOp::Add, x, one), None);
    }
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: 0, arg: 0 },
        value: x,
    });
    time(p, "uniform + 20 arith");
}
