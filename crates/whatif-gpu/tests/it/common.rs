//! Shared helpers: adapter gating, program builders, running every backend
//! on the same (Program, seed, sample range), and the named tolerances.

use std::sync::OnceLock;
use whatif_cpu::CpuExecutor;
use whatif_gpu::{AdapterInfo, GpuExecutor, GpuPath, TensorDevice};
use whatif_ir::exec::{ExecOptions, FaultCount};
use whatif_ir::layout::BlockLayout;
use whatif_ir::{Output, OutputRole, ParamSlot, Program, VerifiedProgram, verify};

/// Per-lane tolerance of the fused path against the CPU executor (same
/// polynomials; WGSL may leave `fma` unfused and division/sqrt ~2 ULP off).
pub const FUSED_VS_CPU_REL: f64 = 2e-5;
/// Per-lane tolerance of either GPU path against the f64 interpreter.
pub const GPU_VS_REF_REL: f64 = 1e-4;
/// Absolute floor for values near zero (relative error is meaningless there).
pub const ABS_FLOOR: f64 = 1e-5;
/// Share of lanes allowed to disagree beyond tolerance: discontinuous ops
/// (bernoulli, floor, max, comparisons) flip lanes whose argument straddles
/// a threshold between f32 and f64 evaluation.
pub const FLIP_SHARE: f64 = 2e-3;

/// The adapter to test on, or `None` (with the reason printed) when there
/// is none. Panics when `WHATIF_REQUIRE_GPU=1` and there is none.
pub fn gpu() -> Option<AdapterInfo> {
    static PICK: OnceLock<Option<AdapterInfo>> = OnceLock::new();
    let pick = PICK
        .get_or_init(|| {
            let a = whatif_gpu::explicit_pick();
            match &a {
                Some(a) => eprintln!("whatif-gpu tests run on {}", a.describe()),
                None => {
                    eprintln!("SKIP: no wgpu adapter (install mesa-vulkan-drivers for lavapipe)")
                }
            }
            a
        })
        .clone();
    if pick.is_none() && std::env::var("WHATIF_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("WHATIF_REQUIRE_GPU=1 but no wgpu adapter was found");
    }
    pick
}

/// An empty program with one parameter `rho = 0.9`.
pub fn empty(seed: u64) -> Program {
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
        metric_names: vec![],
        guardrail_names: vec![],
        units: None,
        periods: 1,
        inputs: None,
    }
}

/// Mark `v` as output number `k`.
pub fn out(p: &mut Program, v: whatif_ir::ValueId) {
    let k = p.outputs.len() as u32;
    p.metric_names.push(format!("m{k}"));
    p.outputs.push(Output {
        world: 0,
        role: OutputRole::MetricArg { metric: k, arg: 0 },
        value: v,
    });
}

/// Collects every output column of a block.
pub use whatif_ir::exec::CollectColumns as Collect;

/// Output columns and faults of a run.
pub type Run = (Vec<Vec<f32>>, Vec<FaultCount>);

fn collect(
    n_out: usize,
    n_probes: usize,
    run: impl FnOnce(&mut dyn FnMut(whatif_ir::exec::BlockResult<Vec<Vec<f32>>>)),
) -> Run {
    let mut cols = vec![vec![]; n_out];
    let mut faults = vec![FaultCount::default(); n_probes];
    let mut next = 0;
    run(&mut |r| {
        assert_eq!(r.block, next, "blocks arrive in order");
        next += 1;
        for (acc, c) in cols.iter_mut().zip(r.partial) {
            acc.extend(c);
        }
        for (f, g) in faults.iter_mut().zip(r.faults) {
            f.merge(g);
        }
    });
    (cols, faults)
}

pub fn verified(p: &Program) -> VerifiedProgram {
    verify::verify(p.clone()).expect("valid program")
}

pub fn run_cpu(p: &VerifiedProgram, layout: BlockLayout) -> Run {
    let exec = CpuExecutor::new(
        p,
        ExecOptions {
            threads: 2,
            chunk: 0,
        },
    )
    .expect("cpu executor");
    collect(p.outputs.len(), p.probes.len(), |f| {
        exec.run(layout, 0..layout.n_blocks(), &Collect, f)
    })
}

pub fn gpu_exec(
    p: &VerifiedProgram,
    a: &AdapterInfo,
    path: GpuPath,
    chunk: usize,
    td: TensorDevice,
) -> GpuExecutor {
    GpuExecutor::on_adapter(p, path, ExecOptions { threads: 0, chunk }, a, td)
        .expect("gpu executor")
}

pub fn run_gpu(exec: &GpuExecutor, p: &VerifiedProgram, layout: BlockLayout) -> Run {
    collect(p.outputs.len(), p.probes.len(), |f| {
        exec.try_run(layout, 0..layout.n_blocks(), &Collect, f)
            .expect("gpu run")
    })
}

/// Per-lane comparison: the share of lanes (finite in both) outside
/// `rel · max(|a|, |b|, scale / 100) + ABS_FLOOR`, plus lanes where
/// finiteness differs. `scale` is the column's mean |b|: a value that is
/// the small difference of large ones (a margin near zero after a long
/// recursion) carries rounding error of the operands' size, not its own.
pub fn mismatch_share(a: &[f32], b: &[f64], rel: f64) -> (f64, usize, String) {
    assert_eq!(a.len(), b.len());
    let finite: Vec<f64> = b
        .iter()
        .filter(|y| y.is_finite())
        .map(|y| y.abs())
        .collect();
    let scale = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    let mut bad = 0usize;
    let mut first = String::new();
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let x = f64::from(x);
        let ok = if x.is_nan() || y.is_nan() {
            x.is_nan() && y.is_nan()
        } else if x.is_infinite() || y.is_infinite() {
            x == y || (x.abs() > 1e37 && y.abs() > 1e37 && x.signum() == y.signum())
        } else {
            (x - y).abs() <= rel * x.abs().max(y.abs()).max(scale / 100.0) + ABS_FLOOR
        };
        if !ok {
            if bad == 0 {
                first = format!("lane {i}: {x} vs {y}");
            }
            bad += 1;
        }
    }
    (bad as f64 / a.len().max(1) as f64, bad, first)
}

/// Assert columns agree lane by lane within `rel`, with at most
/// `flip_share` of lanes allowed to flip.
pub fn assert_close(what: &str, a: &[Vec<f32>], b: &[Vec<f64>], rel: f64, flip_share: f64) {
    for (o, (x, y)) in a.iter().zip(b).enumerate() {
        let (share, bad, first) = mismatch_share(x, y, rel);
        assert!(
            share <= flip_share,
            "{what}: output {o}: {bad} lanes ({share:.2e}) differ beyond {rel:e}; first {first}"
        );
    }
}

pub fn to_f64(c: &[Vec<f32>]) -> Vec<Vec<f64>> {
    c.iter()
        .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        .collect()
}
