//! The equivalence suite on real scenarios: every shipped scenario and every
//! golden IR case, compiled by the language and IR crates exactly as
//! `whatif run` compiles them, on the reference interpreter, the CPU
//! executor, the fused kernel and the tensor path.

use crate::common::FLIP_SHARE;

/// Share of lanes allowed beyond the per-lane tolerance on real scenarios.
const SCENARIO_SHARE: f64 = 2.5 * FLIP_SHARE;
use crate::equiv::check_all;
use std::path::{Path, PathBuf};
use whatif_ir::opt::PassOptions;
use whatif_lang::WorldId;

fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![];
    for dir in ["scenarios", "tests/golden"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("scenario directory").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "toml") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    files
}

fn program(path: &Path, passes: PassOptions) -> whatif_ir::Program {
    let src = std::fs::read_to_string(path).expect("read scenario");
    let model = whatif_lang::compile_at(&src, path.parent())
        .unwrap_or_else(|d| panic!("{} does not compile: {d:?}", path.display()));
    let worlds: Vec<WorldId> = (0..model.worlds.len() as u32).map(WorldId).collect();
    whatif_ir::compile(&model, &worlds, passes)
        .program()
        .clone()
}

#[test]
fn every_shipped_scenario_and_golden_case_on_all_backends() {
    let files = scenario_files();
    assert!(files.len() >= 6, "found only {files:?}");
    for f in &files {
        let name = f.display().to_string();
        // Fitted `?params` are NaN here (the fit lock is read above this
        // crate): such a scenario checks that NaN reaches every backend's
        // outputs alike (tests/it/nan.rs has the op-by-op version).
        let p = program(f, PassOptions::ALL);
        if let Some(u) = &p.units {
            // A portfolio: the reference interpreter evaluates every unit of
            // every sample in f64, so a few samples (a ragged block) are
            // plenty; the tensor path has no unit loop.
            let n = (200_000 / u64::from(u.count)).clamp(4, 600) + 2;
            check_all(&name, &p, n, 1024, 2048, SCENARIO_SHARE, false);
            continue;
        }
        if p.periods > 1 {
            // Unrolled over periods, a long horizon is one very large kernel
            // (pricing_carryover: 24 months × 5 worlds, 1,673 ops) that
            // lavapipe's LLVM takes many minutes to compile. Periods on
            // the GPU are covered by `units_and_periods_on_the_fused_path`
            // here and by the root `gpu::` tests.
            if p.ops.len() > 1_000 {
                eprintln!(
                    "skip {name}: {} ops unrolled over periods (lavapipe compile time)",
                    p.ops.len()
                );
                continue;
            }
            check_all(&name, &p, 2_000, 1024, 2048, SCENARIO_SHARE, true);
            continue;
        }
        // 5,000 samples over blocks of 1024: a ragged last block; the tensor
        // path too, and the unoptimised program on the fused path (a
        // different kernel per program, same values). Real scenarios
        // subtract nearly equal values (margins, losses net of recoveries),
        // where the tensor path's device exp/log error (~1e-5) is amplified
        // past the per-lane tolerance on a few lanes: allow 2.5× the usual
        // share of out-of-tolerance lanes.
        check_all(
            &name,
            &program(f, PassOptions::ALL),
            5_000,
            1024,
            2048,
            SCENARIO_SHARE,
            true,
        );
        check_all(
            &format!("{name} (unoptimised)"),
            &program(f, PassOptions::NONE),
            3_000,
            1024,
            4096,
            SCENARIO_SHARE,
            false,
        );
    }
}

#[test]
fn the_tensor_path_refuses_units() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = program(
        &root.join("scenarios/credit_portfolio.toml"),
        PassOptions::ALL,
    );
    assert!(p.units.is_some());
    let v = whatif_ir::verify::verify(p).expect("valid");
    let Some(info) = crate::common::gpu() else {
        return;
    };
    let e = whatif_gpu::GpuExecutor::on_adapter(
        &v,
        whatif_gpu::GpuPath::Tensor,
        whatif_ir::exec::ExecOptions::default(),
        &info,
        whatif_gpu::TensorDevice::Wgpu,
    )
    .expect_err("the tensor path has no unit loop");
    assert!(matches!(e, whatif_gpu::GpuError::Structured), "{e}");
}

/// The shared fixture `tests/fixtures/mixed_units` (units with covariates,
/// lags of unit-level nodes, two aggregate stages, every aggregate kind,
/// periods, an edit from a period): the fused kernel's unit loops against
/// the interpreter and the CPU.
#[test]
fn units_and_periods_on_the_fused_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mixed_units");
    let src = std::fs::read_to_string(dir.join("scenario.toml")).expect("fixture");
    let model = whatif_lang::compile_at(&src, Some(&dir)).expect("compiles");
    let worlds: Vec<WorldId> = (0..model.worlds.len() as u32).map(WorldId).collect();
    for passes in [PassOptions::ALL, PassOptions::NONE] {
        let p = whatif_ir::compile(&model, &worlds, passes)
            .program()
            .clone();
        check_all(
            "units and periods",
            &p,
            1_500,
            1024,
            512,
            SCENARIO_SHARE,
            false,
        );
    }
}
