//! The wgpu backends through the engine and the CLI: the same scenario on
//! `--backend cpu`, `wgpu` and `wgpu-tensor` gives the same report within
//! named tolerances, and `auto` never takes a software adapter.
//!
//! Skips with a printed reason when no adapter exists; fails instead under
//! `WHATIF_REQUIRE_GPU=1` (set by `.ci/run`, which installs lavapipe).

use crate::common::run_src;
use std::process::Command;
use whatif::engine::{Backend, RunOptions};
use whatif_report::Report;

/// Metric estimates of the same samples on two backends: the per-lane
/// values agree to a few f32 ULP (fused) or ~1e-5 (tensor path, device
/// transcendentals), so estimates agree far inside Monte Carlo error.
const METRIC_REL: f64 = 2e-4;
/// Share of a metric's standard error by which order-statistic metrics may
/// differ between backends.
const TAIL_SE_SHARE: f64 = 0.05;

pub(crate) fn adapter_present() -> bool {
    let present = !whatif_gpu::adapters().is_empty();
    if !present {
        if std::env::var("WHATIF_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("WHATIF_REQUIRE_GPU=1 but no wgpu adapter was found");
        }
        eprintln!("SKIP: no wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    }
    present
}

fn scenario(name: &str) -> String {
    std::fs::read_to_string(format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("shipped scenario")
}

fn with_samples(src: &str, n: u64) -> String {
    let mut out = String::new();
    for line in src.lines() {
        if line.trim_start().starts_with("samples") {
            out.push_str(&format!("samples = {n}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn opts(backend: Backend) -> RunOptions {
    RunOptions {
        backend,
        ..RunOptions::default()
    }
}

fn assert_reports_agree(what: &str, a: &Report, b: &Report) {
    assert_eq!(a.worlds.len(), b.worlds.len());
    let mut compared = 0;
    for (wa, wb) in a.worlds.iter().zip(&b.worlds) {
        for (ma, mb) in wa.metrics.iter().zip(&wb.metrics) {
            assert_eq!(ma.name, mb.name);
            match (ma.estimate, mb.estimate) {
                (Some(x), Some(y)) => {
                    // Order statistics (quantiles, VaR, ES) may pick a
                    // neighbouring sample when lanes differ in the last
                    // bits: allow a small share of their Monte Carlo SE too.
                    let se = ma.std_error.unwrap_or(0.0);
                    let tol = METRIC_REL * x.abs().max(y.abs()).max(1e-3) + TAIL_SE_SHARE * se;
                    assert!(
                        (x - y).abs() <= tol,
                        "{what}: {}[{}] {x} vs {y}",
                        ma.name,
                        wa.name
                    );
                    compared += 1;
                }
                (x, y) => assert_eq!(x.is_some(), y.is_some(), "{what}: {}", ma.name),
            }
        }
    }
    assert!(compared > 0);
    let pass = |r: &Report| r.checks.iter().map(|c| c.passed).collect::<Vec<_>>();
    assert_eq!(pass(a), pass(b), "{what}: check outcomes");
}

#[test]
fn shipped_scenarios_agree_on_cpu_and_both_wgpu_paths() {
    if !adapter_present() {
        return;
    }
    for name in [
        "linear_gaussian.toml",
        "credit_risk.toml",
        "pricing_policy.toml",
    ] {
        let src = with_samples(&scenario(name), 50_000);
        let cpu = run_src(&src, &opts(Backend::Cpu));
        assert_eq!(cpu.manifest.backend, "cpu");
        let fused = run_src(&src, &opts(Backend::Wgpu));
        assert_eq!(fused.manifest.backend, "wgpu");
        assert_eq!(fused.manifest.kernel, "wgpu-fused");
        assert_reports_agree(&format!("{name}: fused vs cpu"), &fused, &cpu);
        let tensor = run_src(&src, &opts(Backend::WgpuTensor));
        assert_eq!(tensor.manifest.kernel, "wgpu-tensor");
        assert_reports_agree(&format!("{name}: tensor vs cpu"), &tensor, &cpu);
    }
}

#[test]
fn auto_never_picks_a_software_adapter() {
    let soft_only = whatif_gpu::adapters().iter().all(|a| a.is_software());
    let r = run_src(
        &with_samples(&scenario("linear_gaussian.toml"), 4096),
        &opts(Backend::Auto),
    );
    if soft_only {
        assert_eq!(r.manifest.backend, "cpu");
    }
    assert_eq!(
        r.manifest.backend == "wgpu",
        whatif_gpu::auto_pick().is_some()
    );
}

#[test]
fn devices_lists_adapters_and_the_auto_choice() {
    let out = Command::new(env!("CARGO_BIN_EXE_whatif"))
        .arg("devices")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--backend auto: "), "{text}");
    for a in whatif_gpu::adapters() {
        assert!(text.contains(&a.name), "{} missing from {text}", a.name);
    }
}

#[test]
fn cli_wgpu_backend_runs_and_records_the_device() {
    if !adapter_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("r.json");
    let scenario = format!(
        "{}/scenarios/linear_gaussian.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let st = Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args([
            "run",
            &scenario,
            "--backend",
            "wgpu",
            "--samples",
            "20000",
            "-q",
        ])
        .args([
            "--format",
            "json",
            "--out",
            out.to_str().expect("utf-8 path"),
        ])
        .status()
        .expect("binary runs");
    assert!(st.success());
    let r: Report = serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    assert_eq!(r.manifest.backend, "wgpu");
    assert!(!r.manifest.device.is_empty());
}

/// Structured models: a multi-period model on both wgpu paths, and the
/// 10,000-borrower portfolio (12 quarters, unit loops in the fused
/// kernel) on the fused path, against the CPU.
#[test]
fn structured_scenarios_agree_on_cpu_and_wgpu() {
    if !adapter_present() {
        return;
    }
    let dir = format!("{}/scenarios", env!("CARGO_MANIFEST_DIR"));
    let load = |name: &str, n: u64| {
        let src = with_samples(&scenario(name), n);
        whatif_lang::compile_at(&src, Some(std::path::Path::new(&dir))).expect("compiles")
    };
    let run = |m: &whatif_lang::CausalModel, backend| {
        whatif::engine::run(
            m,
            &whatif::engine::ScenarioInfo {
                sha256: "0".repeat(64),
            },
            &opts(backend),
            &mut |_, _| {},
        )
        .expect("runs")
    };
    // Periods with a policy from period 3 (a short horizon: lavapipe
    // compiles long unrolled horizons slowly).
    let ar = crate::common::model(
        r#"
[scenario]
name = "ar"
samples = 20_000
seed = 4
[periods]
count = 6
[nodes]
x = { expr = "0.7 * lag(x) + normal(0, 1)", init = "1" }
y = "bernoulli(sigmoid(x)) * exp(x / 4)"
[interventions.up]
x = { expr = "0.7 * lag(x) + normal(0, 1) + 0.5", from = 3 }
[metrics]
m = "mean(y)"
total = "mean(path_sum(y))"
peak = "quantile(path_max(x), 0.9)"
"#,
    );
    let cpu = run(&ar, Backend::Cpu);
    let fused = run(&ar, Backend::Wgpu);
    assert_eq!(fused.manifest.kernel, "wgpu-fused");
    assert_reports_agree("periods: fused vs cpu", &fused, &cpu);
    let tensor = run(&ar, Backend::WgpuTensor);
    assert_reports_agree("periods: tensor vs cpu", &tensor, &cpu);

    let portfolio = load("credit_portfolio.toml", 256);
    let cpu = run(&portfolio, Backend::Cpu);
    let fused = run(&portfolio, Backend::Wgpu);
    assert_reports_agree("credit_portfolio: fused vs cpu", &fused, &cpu);
    assert_eq!(
        fused.manifest.structure.as_ref().map(|s| s.units),
        Some(10_000)
    );
}
