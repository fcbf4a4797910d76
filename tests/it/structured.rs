//! Structured models (units and periods) against closed forms, the
//! reference interpreter, the unstructured model, and across threads,
//! chunk sizes and shards.

use crate::common::{effect, metric, run_src, within};
use whatif::engine::{Backend, RunOptions};
use whatif_ir::exec::ExecOptions;
use whatif_ir::layout::BlockLayout;
use whatif_ir::opt::PassOptions;
use whatif_lang::WorldId;
use whatif_stats::special::{normal_cdf, normal_ppf};

fn cpu() -> RunOptions {
    RunOptions {
        backend: Backend::Cpu,
        ..RunOptions::default()
    }
}

/// AR(1) `x_t = φ x_{t-1} + ε_t`, `x_{-1} = x0`: mean `φ^{t+1} x0`,
/// variance `Σ_{j≤t} φ^{2j}`. A shift of +1 from period 6 moves the final
/// mean by `Σ_{j<6} φ^j` exactly (common random numbers).
#[test]
fn ar1_mean_and_variance_per_period() {
    let src = r#"
[scenario]
name = "ar1"
samples = 400_000
seed = 11

[periods]
count = 12

[params]
phi = 0.8

[nodes]
x = { expr = "phi * lag(x) + normal(0, 1)", init = "2" }

[interventions.shock]
x = { expr = "phi * lag(x) + normal(0, 1) + 1", from = 6 }

[metrics]
m0 = "mean(at(x, 0))"
v0 = "var(at(x, 0))"
m4 = "mean(at(x, 4))"
v4 = "var(at(x, 4))"
m11 = "mean(x)"
v11 = "var(final(x))"
total = "mean(path_sum(x))"
"#;
    let r = run_src(src, &cpu());
    let phi: f64 = 0.8;
    for (t, m, v) in [(0, "m0", "v0"), (4, "m4", "v4"), (11, "m11", "v11")] {
        let mean = phi.powi(t + 1) * 2.0;
        let var: f64 = (0..=t).map(|j| phi.powi(2 * j)).sum();
        let (e, se) = metric(&r, "baseline", m);
        within(m, e, se, mean, 4.5);
        let (e, se) = metric(&r, "baseline", v);
        within(v, e, se, var, 4.5);
    }
    // E[Σ_t x_t] = Σ_t φ^{t+1} x0.
    let total: f64 = (0..12).map(|t| phi.powi(t + 1) * 2.0).sum();
    let (e, se) = metric(&r, "baseline", "total");
    within("total", e, se, total, 4.5);

    // The policy starts at period 6: nothing moves before, the final mean
    // moves by Σ_{j<6} φ^j with the same noise (a difference of SE ~0).
    let (d, _) = effect(&r, "shock", "m4");
    assert_eq!(d, 0.0, "period 4 is before `from`");
    let (d, dse) = effect(&r, "shock", "m11");
    let exact: f64 = (0..6).map(|j| phi.powi(j)).sum();
    assert!((d - exact).abs() < 1e-5, "final shift {d} vs {exact}");
    assert!(dse < 1e-6, "paired SE {dse}");
}

/// One-factor Gaussian copula: default iff `√ρ Z + √(1-ρ) ε_i < Φ⁻¹(p)`.
/// As units → ∞ the default fraction L has the Vasicek distribution
/// `P(L ≤ x) = Φ((√(1-ρ) Φ⁻¹(x) − Φ⁻¹(p)) / √ρ)`. With 10,000 units the
/// finite-portfolio correction is far below the Monte Carlo error here.
#[test]
fn vasicek_portfolio_matches_large_portfolio_limit() {
    let (p, rho) = (0.02_f64, 0.15_f64);
    let c = normal_ppf(p);
    let xs = [0.005, 0.01, 0.02, 0.04, 0.08, 0.12];
    let mut src = format!(
        r#"
[scenario]
name = "vasicek"
samples = 8_000
seed = 5

[units]
count = 10_000

[params]
rho = {rho}
c = {c}

[nodes]
z = "normal(0, 1)"
default = {{ expr = "sqrt(rho) * z + sqrt(1 - rho) * normal(0, 1) < c", level = "unit" }}
loss = "mean_units(default)"

[metrics]
el = "mean(loss)"
q99 = "quantile(loss, 0.99)"
"#
    );
    for (i, x) in xs.iter().enumerate() {
        src.push_str(&format!("cdf{i} = \"prob(loss <= {x})\"\n"));
    }
    let r = run_src(&src, &cpu());
    let (e, se) = metric(&r, "baseline", "el");
    within("expected loss", e, se, p, 4.5);
    let vasicek = |x: f64| normal_cdf(((1.0 - rho).sqrt() * normal_ppf(x) - c) / rho.sqrt());
    for (i, x) in xs.iter().enumerate() {
        let (e, se) = metric(&r, "baseline", &format!("cdf{i}"));
        // Binomial noise of L given Z shifts the CDF by O(1/units): allow
        // 0.005 on top of 4.5 SE.
        let truth = vasicek(*x);
        assert!(
            (e - truth).abs() <= 4.5 * se + 0.005,
            "P(L <= {x}) = {e} ± {se}, Vasicek {truth}"
        );
    }
    // The 99% quantile of the limit: Φ((Φ⁻¹(p) + √ρ Φ⁻¹(0.99)) / √(1-ρ)).
    let q = normal_cdf((c + rho.sqrt() * normal_ppf(0.99)) / (1.0 - rho).sqrt());
    let (e, se) = metric(&r, "baseline", "q99");
    assert!(
        (e - q).abs() <= 4.5 * se + 0.003,
        "99% quantile {e} ± {se}, Vasicek {q}"
    );
}

/// With one unit, a unit-level node and its `sum_units` are the
/// unstructured node draw for draw: unit 0 uses the unstructured stream.
#[test]
fn one_unit_reproduces_the_unstructured_model() {
    let base = r#"
[scenario]
name = "u1"
samples = 50_000
seed = 3

[nodes]
z = "normal(0, 1)"
"#;
    let structured = format!(
        "{base}
[units]
count = 1

[nodes.y]
expr = \"2 * z + lognormal(0, 0.5)\"
level = \"unit\"

[nodes.total]
expr = \"sum_units(y)\"

[metrics]
m = \"mean(total)\"
q = \"quantile(total, 0.9)\"
es = \"expected_shortfall(total, 0.95)\"
"
    );
    let plain = format!(
        "{base}
[nodes.y]
expr = \"2 * z + lognormal(0, 0.5)\"

[nodes.total]
expr = \"y + 0\"

[metrics]
m = \"mean(total)\"
q = \"quantile(total, 0.9)\"
es = \"expected_shortfall(total, 0.95)\"
"
    );
    let a = run_src(&structured, &cpu());
    let b = run_src(&plain, &cpu());
    for m in ["m", "q", "es"] {
        assert_eq!(
            metric(&a, "baseline", m),
            metric(&b, "baseline", m),
            "metric {m}"
        );
    }
}

/// A model with covariates, lags of unit-level nodes, two aggregate stages
/// (a unit op reads a sample node that reads an aggregate) and every
/// aggregate kind: the CPU executor equals the f64 interpreter lane by lane
/// to f32 accuracy.
/// The shared fixture `tests/fixtures/mixed_units` (its own comments say
/// what it exercises).
const MIXED: &str = include_str!("../fixtures/mixed_units/scenario.toml");

fn write_units(dir: &std::path::Path) {
    std::fs::copy(
        "tests/fixtures/mixed_units/units.csv",
        dir.join("units.csv"),
    )
    .expect("copy units.csv");
}

#[test]
fn cpu_matches_interpreter_with_units_periods_and_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_units(dir.path());
    let m = whatif_lang::compile_at(MIXED, Some(dir.path()))
        .unwrap_or_else(|d| panic!("{}", whatif_lang::render_diagnostics(&d, "mixed", MIXED)));
    assert_eq!(m.unit_count(), 37);
    let worlds: Vec<WorldId> = (0..m.worlds.len() as u32).map(WorldId).collect();
    for passes in [PassOptions::ALL, PassOptions::NONE] {
        let v = whatif_ir::compile(&m, &worlds, passes);
        let sched = whatif_ir::structure::schedule(&v);
        let loops = sched
            .steps
            .iter()
            .filter(|s| matches!(s, whatif_ir::structure::Step::Units { .. }))
            .count();
        assert!(
            loops >= 2,
            "the model has two aggregate stages ({loops} loops)"
        );
        let n = 600u64;
        let want = whatif_ir::interp::eval_outputs(&v, 0..n);
        for (threads, chunk) in [(1, 64), (2, 128)] {
            let exec =
                whatif_cpu::CpuExecutor::new(&v, ExecOptions { threads, chunk }).expect("executor");
            let layout = BlockLayout::for_samples(n);
            let mut got: Vec<Vec<f32>> = vec![vec![]; v.outputs.len()];
            exec.run(
                layout,
                0..layout.n_blocks(),
                &whatif_ir::exec::CollectColumns,
                |r| {
                    for (c, b) in got.iter_mut().zip(r.partial) {
                        c.extend(b);
                    }
                },
            );
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.len(), w.len());
                for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
                    let tol = 2e-4 * (1.0 + w.abs());
                    assert!(
                        (f64::from(g) - w).abs() <= tol,
                        "output {o} ({:?}) sample {i}: cpu {g} vs reference {w}",
                        v.outputs[o].role
                    );
                }
            }
        }
    }
}

#[test]
fn structured_reports_are_deterministic_across_threads_and_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_units(dir.path());
    let mut m = whatif_lang::compile_at(MIXED, Some(dir.path())).expect("compiles");
    m.n_samples = 20_000;
    let info = whatif::engine::ScenarioInfo {
        sha256: "0".repeat(64),
    };
    let go = |threads, chunk| {
        let opts = RunOptions {
            threads,
            chunk,
            ..cpu()
        };
        let r = whatif::engine::run(&m, &info, &opts, &mut |_, _| {}).expect("runs");
        serde_json::to_string(&r.without_run_info()).expect("serialises")
    };
    let a = go(1, 2048);
    assert_eq!(a, go(2, 64), "1 thread chunk 2048 vs 2 threads chunk 64");
    assert_eq!(a, go(3, 512), "3 threads, chunk 512");
    let r: serde_json::Value = serde_json::from_str(&a).expect("json");
    assert_eq!(r["manifest"]["structure"]["units"], 37);
    assert_eq!(r["manifest"]["structure"]["periods"], 3);
    assert_eq!(
        r["manifest"]["structure"]["unit_evaluations_per_world"],
        20_000 * 37 * 3
    );
}

/// Units are independent draws, identical across worlds: a stress that
/// only moves the macro factor leaves each unit's idiosyncratic noise in
/// place (the effect on a pure-noise aggregate is exactly 0).
#[test]
fn unit_noise_is_common_across_worlds_and_independent_across_units() {
    let src = r#"
[scenario]
name = "crn"
samples = 20_000
seed = 21

[units]
count = 400

[nodes]
z = "normal(0, 1)"
e = { expr = "normal(0, 1)", level = "unit" }
noise_sum = "sum_units(e)"
exposure = "sum_units(e + z)"

[stresses.down]
z = "normal(-1, 1)"

[metrics]
var_sum = "var(noise_sum)"
mean_exp = "mean(exposure)"
"#;
    let r = run_src(src, &cpu());
    // Independent units: Var(Σ e_u) = units.
    let (v, se) = metric(&r, "baseline", "var_sum");
    within(
        "variance of a sum of 400 independent normals",
        v,
        se,
        400.0,
        4.5,
    );
    let (d, dse) = effect(&r, "down", "var_sum");
    assert_eq!((d, dse), (0.0, 0.0), "unit noise is shared across worlds");
    let (d, _) = effect(&r, "down", "mean_exp");
    assert!((d + 400.0).abs() < 1e-2, "z shifts by -1 on 400 units: {d}");
}

#[test]
fn cli_runs_a_unit_file_relative_to_the_scenario_and_refuses_the_tensor_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_units(dir.path());
    let file = dir.path().join("mixed.toml");
    std::fs::write(&file, MIXED.replace("samples = 3_000", "samples = 2_000")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(["run", "--format", "json"])
        .arg(&file)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        r["manifest"]["run"]["unit_evaluations_per_second"]
            .as_f64()
            .is_some_and(|x| x > 0.0)
    );
    // The tensor path has no unit loop: refused, never run wrong (without
    // the `gpu` feature or an adapter, the backend itself is refused).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(["run", "--backend", "wgpu-tensor"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("units") || err.contains("`gpu` feature") || err.contains("adapter"),
        "{err}"
    );
}

/// Shards of a model with a unit file and tails merge into the single run's
/// report, and the merge needs no unit file (the parts carry its hash).
#[test]
fn shards_of_a_unit_model_merge_to_the_single_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_units(dir.path());
    let src = MIXED.replace("samples = 3_000", "samples = 40_000")
        + "q95 = \"quantile(s2, 0.95)\"\nes = \"expected_shortfall(s1, 0.99)\"\n";
    let file = dir.path().join("m.toml");
    std::fs::write(&file, &src).expect("write");
    let bin = env!("CARGO_BIN_EXE_whatif");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["run", "m.toml", "-q", "--out", "single.json"]);
    for i in 0..3 {
        run(&[
            "run",
            "m.toml",
            "-q",
            "--shard",
            &format!("{i}/3"),
            "--out",
            &format!("p1-{i}.json"),
        ]);
    }
    // Merge from another directory: the unit file is not needed there.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let abs = |f: &str| dir.path().join(f).display().to_string();
    let merge = |args: Vec<String>| {
        let o = std::process::Command::new(bin)
            .arg("merge")
            .args(&args)
            .current_dir(elsewhere.path())
            .output()
            .expect("runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let p1: Vec<String> = (0..3).map(|i| abs(&format!("p1-{i}.json"))).collect();
    merge([vec!["--plan-out".into(), abs("plan.json")], p1.clone()].concat());
    for i in 0..3 {
        run(&[
            "run",
            "m.toml",
            "-q",
            "--shard",
            &format!("{i}/3"),
            "--resolve",
            "plan.json",
            "--out",
            &format!("p2-{i}.json"),
        ]);
    }
    let p2: Vec<String> = (0..3).map(|i| abs(&format!("p2-{i}.json"))).collect();
    merge([vec!["--out".into(), abs("merged.json")], p1, p2].concat());
    let read = |f: &str| -> whatif_report::Report {
        serde_json::from_slice(&std::fs::read(dir.path().join(f)).expect("written")).expect("json")
    };
    assert_eq!(
        read("merged.json").without_run_info(),
        read("single.json").without_run_info()
    );
}

/// Guardrails count violating evaluations: over periods for a per-period
/// node, over units and periods for a unit-level node.
#[test]
fn guardrails_count_unit_and_period_evaluations() {
    let src = r#"
[scenario]
name = "guards"
samples = 4_000
seed = 8

[units]
count = 250

[periods]
count = 4

[nodes]
z = "normal(0, 1)"
e = { expr = "normal(0, 1)", level = "unit" }
n_big = "count_units(e > 1.6448536)"

[interventions.noop]
z = "z"

[metrics]
m = "mean(path_sum(n_big))"

[guardrails]
z = { max = 1.2815516, max_share = 0.2 }
e = { max = 1.6448536, max_share = 0.06 }
"#;
    let r = run_src(src, &cpu());
    let g = |node: &str| {
        r.guardrails
            .iter()
            .find(|g| g.node == node)
            .unwrap_or_else(|| panic!("guardrail {node}"))
    };
    let (gz, ge) = (g("z"), g("e"));
    // z: 4,000 samples × 4 periods, P(z > 1.2816) = 0.1.
    let share_z = gz.share.expect("share");
    assert!(
        (share_z - 0.1).abs() < 4.0 * (0.1f64 * 0.9 / 16_000.0).sqrt(),
        "{share_z}"
    );
    // e: 4,000 × 250 × 4 evaluations, P(e > 1.6449) = 0.05, and exactly
    // the count the metric sums.
    let (m, _) = metric(&r, "baseline", "m");
    assert_eq!(ge.violations as f64, (m * 4_000.0).round());
    let share_e = ge.share.expect("share");
    assert!((share_e - 0.05).abs() < 0.002, "{share_e}");
    assert!(gz.passed && ge.passed);
}

/// Fan charts: per world, the median and 5–95% band per period of each
/// node a metric reads; for the AR(1) they follow the normal quantiles.
#[test]
fn fan_charts_follow_the_ar1_quantiles() {
    let src = r#"
[scenario]
name = "fan"
samples = 40_000
seed = 2

[periods]
count = 6

[nodes]
x = { expr = "0.5 * lag(x) + normal(0, 1)", init = "4" }

[interventions.up]
x = { expr = "0.5 * lag(x) + normal(0, 1) + 1", from = 3 }

[metrics]
m = "mean(x)"
"#;
    let m = crate::common::model(src);
    let out = whatif::engine::run_with_charts(
        &m,
        &whatif::engine::ScenarioInfo {
            sha256: "0".repeat(64),
        },
        &cpu(),
        true,
        &mut |_, _| {},
    )
    .expect("runs");
    let fans = out.charts.fans.expect("fan charts of a multi-period model");
    assert_eq!(fans.len(), 1, "one node read by a metric");
    let fan = &fans[0];
    assert_eq!(fan.series.len(), 2, "baseline and up");
    let z95 = normal_ppf(0.95);
    for s in &fan.series {
        assert_eq!(s.y.len(), 6);
        for t in 0..6 {
            let shift: f64 = if s.label == "up" && t >= 3 {
                (0..=(t - 3)).map(|j| 0.5f64.powi(j)).sum()
            } else {
                0.0
            };
            let mean = 4.0 * 0.5f64.powi(t + 1) + shift;
            let sd = (0..=t).map(|j| 0.25f64.powi(j)).sum::<f64>().sqrt();
            let med = s.y[t as usize].expect("median");
            let [lo, hi] = s.band[t as usize].expect("band");
            assert!(
                (med - mean).abs() < 0.06,
                "{} t={t}: median {med} vs {mean}",
                s.label
            );
            assert!(
                (lo - (mean - z95 * sd)).abs() < 0.1,
                "{} t={t}: q05 {lo}",
                s.label
            );
            assert!(
                (hi - (mean + z95 * sd)).abs() < 0.1,
                "{} t={t}: q95 {hi}",
                s.label
            );
        }
    }
}
