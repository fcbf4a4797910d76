//! The engine against closed forms: linear-Gaussian observational and
//! interventional moments, pairing under common random numbers, tails,
//! guardrails, numeric faults and determinism.
//!
//! Statistical assertions use |estimate − truth| ≤ 4·SE: with ~20 such
//! assertions at a fixed seed the false-alarm probability is below
//! 20 × 6.3e-5 ≈ 1.3e-3 per change of seed; the seed is fixed, so a pass is
//! reproducible and a failure means the engine changed.

use crate::common::{effect, metric, run_src, within};
use whatif::engine::RunOptions;
use whatif_stats::special::normal_cdf;

const LINEAR: &str = r#"
[scenario]
name = "linear"
samples = 200_000
seed = 11

[nodes]
z = "normal(0, 1)"
x = "0.5 * z + normal(0, 1)"
y = "2 * x + 1.5 * z + normal(0, 1)"

[interventions.set_x]
x = "1"

[interventions.shift_x]
x = "x + 1"

[stresses.shock_z]
z = "normal(1, 1)"

[metrics]
mean_y = "mean(y)"
var_y = "var(y)"
sd_x = "sd(x)"
p_pos = "prob(y > 0)"
corr_xy = "corr(x, y)"
q95 = "quantile(y, 0.95)"
es95 = "expected_shortfall(y, 0.95)"
"#;

#[test]
fn linear_gaussian_closed_forms() {
    let r = run_src(LINEAR, &RunOptions::default());
    // y = 2.5 z + 2 e_x + e_y: mean 0, variance 6.25 + 4 + 1 = 11.25.
    let (m, se) = metric(&r, "baseline", "mean_y");
    within("E[y]", m, se, 0.0, 4.0);
    let (v, se) = metric(&r, "baseline", "var_y");
    within("Var[y]", v, se, 11.25, 4.0);
    let (s, se) = metric(&r, "baseline", "sd_x");
    within("sd[x]", s, se, 1.25f64.sqrt(), 4.0);
    let (p, se) = metric(&r, "baseline", "p_pos");
    within("P(y>0)", p, se, 0.5, 4.0);
    // Cov(x, y) = 1.25 + 2 = 3.25; corr = 3.25 / sqrt(1.25 · 11.25).
    let (c, se) = metric(&r, "baseline", "corr_xy");
    within("corr", c, se, 3.25 / (1.25f64 * 11.25).sqrt(), 4.0);
    let sd_y = 11.25f64.sqrt();
    let z95 = whatif_stats::special::normal_ppf(0.95);
    let (q, se) = metric(&r, "baseline", "q95");
    within("q95", q, se, z95 * sd_y, 4.0);
    let phi = (-0.5 * z95 * z95).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (es, se) = metric(&r, "baseline", "es95");
    within("ES95", es, se, sd_y * phi / 0.05, 4.0);

    // do(x = 1): y = 2 + 1.5 z + e_y: mean 2, variance 3.25.
    let (m, se) = metric(&r, "set_x", "mean_y");
    within("E[y | do(x=1)]", m, se, 2.0, 4.0);
    let (v, se) = metric(&r, "set_x", "var_y");
    within("Var[y | do(x=1)]", v, se, 3.25, 4.0);
    let (p, se) = metric(&r, "set_x", "p_pos");
    within(
        "P(y>0 | do(x=1))",
        p,
        se,
        normal_cdf(2.0 / 3.25f64.sqrt()),
        4.0,
    );
    let (s, _) = metric(&r, "set_x", "sd_x");
    assert_eq!(s, 0.0, "a hard intervention has no spread");

    // Stress z ~ N(1, 1), reusing z's draw: E[x] = 0.5, E[y] = 2.5.
    let (m, se) = metric(&r, "shock_z", "mean_y");
    within("E[y | z~N(1,1)]", m, se, 2.5, 4.0);
    let (v, se) = metric(&r, "shock_z", "var_y");
    within("Var[y | z~N(1,1)]", v, se, 11.25, 4.0);
}

#[test]
fn shift_effect_is_exact_under_common_random_numbers() {
    let r = run_src(LINEAR, &RunOptions::default());
    // x + 1 raises y by exactly 2 in every sample: the paired effect is 2
    // up to f32 rounding and its SE is rounding noise.
    let (d, se) = effect(&r, "shift_x", "mean_y");
    assert!((d - 2.0).abs() / 2.0 < 1e-5, "effect {d}");
    assert!(se < 1e-5, "paired SE {se}");
    // The stress re-draws z from the same uniforms: paired, so its SE is
    // far below the independent-runs SE (√(2 · 11.25 / n) ≈ 0.0106).
    let (d, se) = effect(&r, "shock_z", "mean_y");
    within("stress effect", d, se, 2.5, 4.0);
    assert!(se < 0.002, "paired SE {se} should be far below 0.0106");
}

#[test]
fn pairing_issue_example() {
    let src = r#"
[scenario]
name = "pairing"
samples = 100_000
[nodes]
t = "normal(0, 1)"
y = "2 * t + normal(0, 1)"
[interventions.bump]
t = "t + 1"
[metrics]
mean_y = "mean(y)"
"#;
    let r = run_src(src, &RunOptions::default());
    let (d, se) = effect(&r, "bump", "mean_y");
    assert!((d - 2.0).abs() / 2.0 < 1e-5, "effect {d}");
    assert!(se < 1e-5, "SE {se}");
}

#[test]
fn new_randomness_in_a_shift_is_independent() {
    // `x + normal(0, 1)` gets a fresh site: Var(x_w − x_b) = 1, so the
    // effect on mean(x) is ~0 with SE ≈ 1/√n, not 0.
    let src = r#"
[scenario]
name = "fresh"
samples = 100_000
[nodes]
x = "normal(0, 1)"
[interventions.noisy]
x = "x + normal(0, 1)"
[metrics]
mean_x = "mean(x)"
var_x = "var(x)"
"#;
    let r = run_src(src, &RunOptions::default());
    let (d, se) = effect(&r, "noisy", "mean_x");
    within("fresh noise effect", d, se, 0.0, 4.0);
    assert!(
        (se * (100_000f64).sqrt() - 1.0).abs() < 0.05,
        "SE {se} should be ~1/sqrt(n)"
    );
    let (v, se) = metric(&r, "noisy", "var_x");
    within("Var[x + e]", v, se, 2.0, 4.0);
}

#[test]
fn deterministic_across_threads_and_chunks() {
    let src = std::fs::read_to_string("scenarios/credit_risk.toml").expect("shipped scenario");
    let mut m = crate::common::model(&src);
    m.n_samples = 150_000;
    let info = whatif::engine::ScenarioInfo {
        sha256: "0".repeat(64),
    };
    let go = |threads, chunk| {
        let opts = RunOptions {
            threads,
            chunk,
            ..RunOptions::default()
        };
        let r = whatif::engine::run(&m, &info, &opts, &mut |_, _| {}).expect("runs");
        serde_json::to_string(&r.without_run_info()).expect("serialises")
    };
    let a = go(1, 2048);
    assert_eq!(a, go(2, 2048), "1 vs 2 threads");
    assert_eq!(a, go(2, 64), "chunk 2048 vs 64");
    assert_eq!(a, go(3, 512), "3 threads, chunk 512");
}

#[test]
fn seed_changes_results() {
    let opts = RunOptions::default();
    let a = run_src(LINEAR, &opts);
    let b = run_src(&LINEAR.replace("seed = 11", "seed = 12"), &opts);
    assert_ne!(
        metric(&a, "baseline", "mean_y").0,
        metric(&b, "baseline", "mean_y").0
    );
}

#[test]
fn guardrails_count_violations() {
    let src = r#"
[scenario]
name = "guard"
samples = 50_000
[nodes]
x = "normal(0, 1)"
limit = "x * 100"
[interventions.loose]
limit = "limit * 2"
[metrics]
m = "mean(limit)"
[guardrails]
limit = { max = 300, max_share = 0.01 }
"#;
    let r = run_src(src, &RunOptions::default());
    assert_eq!(r.guardrails.len(), 1, "only the policy world is guarded");
    let g = &r.guardrails[0];
    assert_eq!(g.world, "loose");
    // P(200 x > 300) = P(x > 1.5) ≈ 0.0668 > 1%: fails.
    let share = g.share.expect("finite");
    assert!((share - 0.0668).abs() < 0.004, "share {share}");
    assert!(!g.passed);
    assert!(g.share_upper95.expect("finite") > share);
    assert!(!r.passed());
}

#[test]
fn numeric_faults_name_the_node() {
    let src = r#"
[scenario]
name = "faults"
samples = 10_000
[nodes]
z = "normal(0, 1)"
bad = "log(z)"
ok = "z * 2"
[metrics]
m = "mean(bad)"
n = "mean(ok)"
"#;
    let r = run_src(src, &RunOptions::default());
    let f = r
        .numeric_faults
        .iter()
        .find(|f| f.node == "bad")
        .expect("fault on `bad`");
    assert!((4000..6000).contains(&f.lanes), "lanes {}", f.lanes);
    assert_eq!(f.worlds, vec!["baseline".to_string()]);
    assert!(
        r.worlds[0].metrics[0].estimate.is_none(),
        "NaN mean is null, never averaged away"
    );
    assert!(r.worlds[0].metrics[1].estimate.is_some());
    assert!(!r.numeric_faults.iter().any(|f| f.node == "ok"));
}

#[test]
fn every_shipped_scenario_runs() {
    let mut n = 0;
    for entry in std::fs::read_dir("scenarios").expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("readable");
        let mut m = whatif_lang::compile_at(&src, path.parent()).unwrap_or_else(|d| {
            panic!(
                "{}",
                whatif_lang::render_diagnostics(&d, &path.display().to_string(), &src)
            )
        });
        // A scenario with `?params` ships its fit lock (as `run` applies it).
        if let Ok(lock) = std::fs::read_to_string(whatif_data::lock::lock_path(&path)) {
            whatif_data::lock::FitLock::parse(&lock, "lock")
                .and_then(|l| l.apply(&mut m, "lock"))
                .expect("shipped fit lock applies");
        }
        m.n_samples = m.n_samples.min(50_000);
        let info = whatif::engine::ScenarioInfo {
            sha256: "0".repeat(64),
        };
        let r =
            whatif::engine::run(&m, &info, &RunOptions::default(), &mut |_, _| {}).expect("runs");
        assert!(
            r.numeric_faults.is_empty(),
            "{}: {:?}",
            path.display(),
            r.numeric_faults
        );
        for w in &r.worlds {
            for mr in &w.metrics {
                // Undefined metrics (corr under a hard intervention) are null
                // and must be explained by a warning.
                let explained = r
                    .warnings
                    .iter()
                    .any(|x| x.contains(&format!("`{}` in world `{}`", mr.name, w.name)));
                assert!(
                    mr.estimate.is_some() || explained,
                    "{}: {}/{} is not finite",
                    path.display(),
                    w.name,
                    mr.name
                );
            }
        }
        n += 1;
    }
    assert!(n >= 3, "at least three shipped scenarios, found {n}");
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Memory is bounded by the chunk size, not by the number of samples: the
/// W1 chain at 1e8 samples (2e9 node-samples) stays far below what one
/// column of 1e8 f32 would take (381 MiB). Not part of CI (about 10 s in
/// release); run with `cargo test --release --test it -- --ignored rss`.
#[test]
#[ignore]
fn rss_bounded_at_1e8_samples() {
    let src = std::fs::read_to_string("benches/w1.toml").expect("benches/w1.toml");
    let mut m = crate::common::model(&src);
    m.n_samples = 100_000_000;
    let info = whatif::engine::ScenarioInfo {
        sha256: "0".repeat(64),
    };
    let t = std::time::Instant::now();
    let r = whatif::engine::run(&m, &info, &RunOptions::default(), &mut |_, _| {}).expect("runs");
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_mib().expect("Linux /proc");
    println!(
        "W1 1e8: {secs:.2} s, {:.0} M node-samples/s, peak RSS {rss:.1} MiB",
        20.0 * 1e8 / secs / 1e6
    );
    let (mean, se) = crate::common::metric(&r, "baseline", r.worlds[0].metrics[0].name.as_str());
    within("mean(x19)", mean, se, 0.0, 4.0);
    assert!(rss < 200.0, "peak RSS {rss} MiB");
}
