//! The backtest replay on the backends of `whatif run`: the lowered replay
//! program (`whatif_ir::lower::lower_replay`) against the f64 reference
//! replayer lane by lane, and `whatif backtest --backend` row by row.

use std::process::{Command, Output};

use whatif::engine::Backend;
use whatif::engine::replay::BackendReplayer;
use whatif_data::backtest::replay_layout;
use whatif_data::replay::{ReferenceReplayer, ReplayLayout, Replayer};
use whatif_ir::exec::ExecOptions;
use whatif_ir::lower::{ReplayColumns, lower_replay};
use whatif_ir::{LaneInputs, Program};
use whatif_lang::{CausalModel, Dist};

use crate::common::model;

/// Every standard-noise distribution, comparisons, `if`, `clamp`, a lag, an
/// edit that starts at period 3 and reads its own natural value, a param
/// override, a
/// latent node, a scale that can go negative (NaN lanes), and metrics whose
/// arguments the replay computes per lane.
const MODEL: &str = r#"
[scenario]
name = "replay"
seed = 5

[periods]
count = 8

[params]
k = 0.5

[nodes]
h = { expr = "normal(0, 1)", latent = true }
x = "normal(1, 2) + h"
w = "uniform(-1, 3)"
g = "bernoulli(sigmoid(x - 1))"
r = "exponential(1 + abs(x)) + uniform(x - 1, x + w)"
l = "laplace(x, 0.5) + logistic(0, 1)"
y = { expr = "k * lag(y) + (if(g > 0, x, w)) + lognormal(0, 0.3) + clamp(r, 0, 2)", init = "10" }
z = "max(y, 3) + normal(0, w)"

[interventions]
policy = { x = { expr = "x + 1", from = 3 }, k = 0.7 }

[metrics]
level = "mean(z + 2 * y)"
link = "corr(x, y)"
"#;

const LANES: usize = 4099;

/// Inputs for every column of `layout`: observed values, standard noise of
/// the right kind per site, lagged values and periods (a fixed stream).
fn inputs(layout: &ReplayLayout, lanes: usize) -> Vec<Vec<f64>> {
    // A fixed stream of uniforms in (0, 1): the backtest's own.
    let mut i = 0u64;
    let mut u = move || {
        i += 1;
        whatif_data::backtest::uniform(0x5eed, 0, i, 0)
    };
    let mut cols = vec![];
    for _ in &layout.observed {
        cols.push((0..lanes).map(|_| 6.0 * u() - 3.0).collect());
    }
    for &(_, dist) in &layout.sites {
        cols.push(
            (0..lanes)
                .map(|_| {
                    let v = u();
                    match dist {
                        Dist::Uniform | Dist::Bernoulli => v,
                        Dist::Exponential => -v.ln(),
                        _ => whatif_stats::special::normal_ppf(v),
                    }
                })
                .collect(),
        );
    }
    for _ in &layout.lags {
        cols.push((0..lanes).map(|_| 20.0 * u() - 5.0).collect());
    }
    if layout.period {
        cols.push((0..lanes).map(|_| (8.0 * u()).floor()).collect());
    }
    cols
}

fn replay_program(m: &CausalModel, layout: &ReplayLayout, cols: Vec<Vec<f64>>) -> Program {
    let rc = ReplayColumns {
        observed: layout.observed.clone(),
        sites: layout.sites.iter().map(|(s, _)| *s).collect(),
        lags: layout.lags.clone(),
        period: layout.period,
    };
    let policy = m.world_id("policy").expect("policy");
    let mut p = lower_replay(m, policy, &rc);
    p.inputs = Some(LaneInputs {
        names: rc.names(m),
        columns: cols,
    });
    p
}

/// Lanes where `got` is not within `rel` (relative to max(1, |want|)) of
/// `want`; NaN matches NaN only.
fn mismatches(want: &[Vec<f64>], got: &[Vec<f64>], rel: f64) -> usize {
    assert_eq!(want.len(), got.len());
    want.iter()
        .zip(got)
        .flat_map(|(w, g)| {
            assert_eq!(w.len(), g.len());
            w.iter().zip(g)
        })
        .filter(|(w, g)| {
            if w.is_nan() || g.is_nan() {
                return w.is_nan() != g.is_nan();
            }
            (*w - *g).abs() > rel * w.abs().max(1.0)
        })
        .count()
}

/// Lanes whose bits differ.
fn differing_bits(a: &[Vec<f64>], b: &[Vec<f64>]) -> usize {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
        + a.iter()
            .flatten()
            .count()
            .abs_diff(b.iter().flatten().count())
}

fn setup() -> (CausalModel, ReplayLayout, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let m = model(MODEL);
    let policy = m.world_id("policy").expect("policy");
    let layout = replay_layout(&m, policy);
    let cols = inputs(&layout, LANES);
    let reference = ReferenceReplayer::new(&m, policy, layout.clone())
        .replay(LANES, &cols)
        .expect("reference");
    (m, layout, cols, reference)
}

/// The layout reads what the mechanisms read: the latent and every node
/// downstream of `x` are recomputed, `w` is observed, the period column
/// exists (the edit starts at 3), and the sites of `x`'s natural value
/// (read by its edit) are listed.
#[test]
fn replay_layout_lists_recomputed_nodes_sites_lags_and_the_period() {
    let (m, layout, _, reference) = setup();
    let names = |v: &[whatif_lang::NodeId]| -> Vec<String> {
        v.iter().map(|n| m.node(*n).name.clone()).collect()
    };
    assert_eq!(
        names(&layout.recomputed),
        ["h", "x", "g", "r", "l", "y", "z"]
    );
    assert_eq!(names(&layout.observed), ["w"]);
    assert!(layout.period);
    assert_eq!(layout.lags.len(), 1);
    let dists: Vec<Dist> = layout.sites.iter().map(|(_, d)| *d).collect();
    // Every site but w's: h, x, g, r (two), l (two), y, z.
    assert_eq!(dists.len(), 9, "{dists:?}");
    // Some lanes have a negative `w`: z's draw is invalid there.
    let z = &reference[6];
    let nan = z.iter().filter(|v| v.is_nan()).count();
    assert!(nan > LANES / 10 && nan < 6 * LANES / 10, "{nan} NaN lanes");
}

/// The lowered program, run by the f64 interpreter (before and after the
/// optimisation passes), is the reference replayer lane by lane.
#[test]
fn lowered_replay_is_the_reference_in_f64() {
    let (m, layout, cols, reference) = setup();
    let p = replay_program(&m, &layout, cols);
    let raw = whatif_ir::interp::eval_outputs(&p, 0..LANES as u64);
    assert_eq!(mismatches(&reference, &raw, 1e-12), 0);
    let opt = whatif_ir::opt::optimise(p, whatif_ir::opt::PassOptions::ALL);
    let v = whatif_ir::verify::verify(opt).expect("verified");
    let optimised = whatif_ir::interp::eval_outputs(&v, 0..LANES as u64);
    assert_eq!(mismatches(&reference, &optimised, 1e-12), 0);
}

/// The CPU executor (f32, polynomial transcendentals) agrees with the f64
/// reference to f32 rounding. A bernoulli whose noise and `p` straddle an
/// f32 rounding step may flip (then `if` picks the other branch): at most
/// a handful of lanes in 4,099.
#[test]
fn cpu_replay_matches_the_reference_to_f32_rounding() {
    let (m, layout, cols, reference) = setup();
    let got = backend_replay(&m, &layout, &cols, Backend::Cpu, 0);
    let bad = mismatches(&reference, &got, 2e-5);
    assert!(bad <= 4, "{bad} lanes differ");
    // Chunks of 64 lanes (inputs read at each chunk's offset) and one
    // thread give the same bits.
    let small = backend_replay(&m, &layout, &cols, Backend::Cpu, 64);
    assert_eq!(differing_bits(&small, &got), 0);
}

/// The same on both GPU paths (lavapipe in CI).
#[cfg(feature = "gpu")]
#[test]
fn gpu_replay_matches_the_reference_to_f32_rounding() {
    if !crate::gpu::adapter_present() {
        return;
    }
    let (m, layout, cols, reference) = setup();
    for backend in [Backend::Wgpu, Backend::WgpuTensor] {
        let got = backend_replay(&m, &layout, &cols, backend, 0);
        let bad = mismatches(&reference, &got, 2e-5);
        assert!(bad <= 4, "{backend:?}: {bad} lanes differ");
        // Several launches per batch: each uploads its own lanes' inputs.
        let small = backend_replay(&m, &layout, &cols, backend, 1024);
        assert_eq!(differing_bits(&small, &got), 0, "{backend:?}");
    }
}

fn backend_replay(
    m: &CausalModel,
    layout: &ReplayLayout,
    cols: &[Vec<f64>],
    backend: Backend,
    chunk: usize,
) -> Vec<Vec<f64>> {
    let policy = m.world_id("policy").expect("policy");
    let threads = if chunk == 0 { 0 } else { 1 };
    let opts = ExecOptions { threads, chunk };
    let mut r = BackendReplayer::new(m, policy, layout, backend, opts).expect("backend");
    // Two batches, as `backtest` hands them over.
    let half = LANES / 2;
    let (a, b): (Vec<Vec<f64>>, Vec<Vec<f64>>) = cols
        .iter()
        .map(|c| (c[..half].to_vec(), c[half..].to_vec()))
        .unzip();
    let mut out = r.replay(half, &a).expect("batch 1");
    let rest = r.replay(LANES - half, &b).expect("batch 2");
    for (o, x) in out.iter_mut().zip(rest) {
        o.extend(x);
    }
    out
}

fn whatif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(args)
        .output()
        .expect("whatif runs")
}

/// `--rows-out` of the shipped lending backtest on `backend`, parsed.
fn rows(dir: &std::path::Path, backend: &str, extra: &[&str]) -> (String, Vec<Vec<f64>>) {
    let out = dir.join(format!("{backend}{}.csv", extra.join("")));
    let mut args = vec![
        "backtest",
        "scenarios/lending_backtest.toml",
        "--policy",
        "raise_limits",
        "--draws",
        "40",
        "--backend",
        backend,
        "--rows-out",
        out.to_str().expect("utf8"),
    ];
    args.extend(extra);
    let o = whatif(&args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("rows");
    let parsed = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .skip(3)
                .map(|c| c.parse::<f64>().expect("number"))
                .collect()
        })
        .collect();
    (text, parsed)
}

/// Row by row, the CPU backend's counterfactuals equal the f64 reference's
/// to f32 rounding (bernoulli draws can flip for a few rows), and its rows
/// are bit-identical across thread counts and chunk sizes.
#[test]
fn backtest_backends_agree_row_by_row_and_cpu_is_deterministic() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, f64_rows) = rows(dir.path(), "cpu-f64", &[]);
    let (cpu_text, cpu_rows) = rows(dir.path(), "cpu", &[]);
    assert_eq!(f64_rows.len(), 2000);
    // 80,000 bernoulli draws: a flip needs noise and `p` within an f32
    // rounding step of each other.
    assert!(mismatches(&f64_rows, &cpu_rows, 1e-4) <= 2);
    let (one, _) = rows(dir.path(), "cpu", &["--threads", "1"]);
    let (chunked, _) = rows(dir.path(), "cpu", &["--chunk-rows", "37"]);
    assert_eq!(cpu_text, one);
    assert_eq!(cpu_text, chunked);
}

/// The GPU paths agree with the CPU backend row by row.
#[cfg(feature = "gpu")]
#[test]
fn backtest_on_gpu_agrees_with_cpu_row_by_row() {
    if !crate::gpu::adapter_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let (_, cpu_rows) = rows(dir.path(), "cpu", &[]);
    for backend in ["wgpu", "wgpu-tensor"] {
        let (_, g) = rows(dir.path(), backend, &[]);
        let bad = mismatches(&cpu_rows, &g, 1e-4);
        assert!(bad <= 2, "{backend}: {bad} cells differ");
    }
}

/// Absurd `--draws` and `--threads` are diagnostics with exit 2, at once:
/// not an allocation failure, and not minutes spent spawning threads.
#[test]
fn absurd_draws_and_threads_are_refused_with_exit_2() {
    let backtest = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "scenarios/lending_backtest.toml",
            "--policy",
            "raise_limits",
        ];
        args.extend(extra);
        whatif(&args)
    };
    let cases: [(Output, &str); 4] = [
        (backtest(&["--draws", "4000000000"]), "between 1 and 10000"),
        (backtest(&["--draws", "0"]), "between 1 and 10000"),
        (
            backtest(&["--backend", "cpu", "--threads", "100000"]),
            "limit of 1024",
        ),
        (
            whatif(&[
                "run",
                "scenarios/credit_risk.toml",
                "--samples",
                "1000",
                "--threads",
                "100000",
            ]),
            "limit of 1024",
        ),
    ];
    for (o, want) in cases {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
