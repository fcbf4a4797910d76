//! Criterion benchmarks of the engine (the one bench target), per backend.
//!
//! - `w1/<backend>/N`: the 20-node linear-Gaussian chain (benches/w1.toml),
//!   model → report (executor, reductions, summary).
//! - `w3/<backend>/1e6`: the credit-risk scenario, 4 worlds, with
//!   expected_shortfall.
//!
//! Backends: `cpu` always; `wgpu` (fused kernel) and `wgpu-tensor` when the
//! binary has the `gpu` feature and a wgpu adapter exists (lavapipe counts:
//! the fused-vs-tensor ratio is measured there too). Every iteration is a
//! whole `run` (it opens the device and builds its executor); cubecl keeps
//! compiled kernels for the life of the process, so a Program's kernels
//! are compiled in criterion's warm-up and the timed iterations do not pay
//! for it (on lavapipe that first compile takes seconds).
//!
//! On lavapipe the whole bench takes about 15 minutes (`w1/wgpu-tensor/1e7`
//! alone about 4: ~23 s an iteration); a dev-profile run, which avoids a
//! release build of burn:
//! `cargo bench -p whatif -p whatif-gpu --profile dev --bench engine --
//! --warm-up-time 1 --measurement-time 5` (BENCHMARKS.md).
//! - `vasicek/cpu/1e4x1e4`: a one-factor credit portfolio
//!   (benches/vasicek.toml) cut to 10,000 paths × 10,000 borrowers (1e8
//!   unit evaluations); throughput in unit evaluations.
//! - `compile/200_nodes`: scenario text → verified Program for a generated
//!   200-node scenario.
//! - `replay/<backend>/262144`: a backtest's prediction step alone, 2^18
//!   lanes (rows × posterior draws) of the credit-risk scenario under
//!   `raise_limits+recession` (every node recomputed from given noise):
//!   the f64 reference evaluator (`cpu-f64`) against the executors of
//!   `run`, in one process so the ratio is on the same machine and load.
//!
//! Throughput is reported in node-samples (elements = nodes × samples).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use whatif::engine::{Backend, RunOptions, ScenarioInfo, run};

fn load(path: &str) -> (String, whatif_lang::CausalModel) {
    let src = std::fs::read_to_string(path).expect("bench scenario exists");
    let model =
        whatif_lang::compile(&src).unwrap_or_else(|d| panic!("{path} has {} diagnostics", d.len()));
    (src, model)
}

fn info() -> ScenarioInfo {
    ScenarioInfo {
        sha256: "0".repeat(64),
    }
}

/// The backends to measure on this machine.
fn backends() -> Vec<(&'static str, Backend)> {
    #[cfg_attr(not(feature = "gpu"), allow(unused_mut))]
    let mut b = vec![("cpu", Backend::Cpu)];
    #[cfg(feature = "gpu")]
    if whatif_gpu::adapters().is_empty() {
        eprintln!("no wgpu adapter: GPU backends not measured");
    } else {
        b.push(("wgpu", Backend::Wgpu));
        b.push(("wgpu-tensor", Backend::WgpuTensor));
    }
    b
}

fn opts(backend: Backend) -> RunOptions {
    RunOptions {
        backend,
        ..RunOptions::default()
    }
}

fn w1(c: &mut Criterion) {
    let (_, base) = load("benches/w1.toml");
    let mut g = c.benchmark_group("w1");
    g.sample_size(10);
    for (name, backend) in backends() {
        for n in [1_000_000u64, 10_000_000] {
            let mut model = base.clone();
            model.n_samples = n;
            g.throughput(Throughput::Elements(n * model.nodes.len() as u64));
            g.bench_function(format!("{name}/{n}"), |b| {
                b.iter(|| run(&model, &info(), &opts(backend), &mut |_, _| {}).expect("runs"))
            });
        }
    }
    g.finish();
}

fn w3(c: &mut Criterion) {
    let (_, mut model) = load("scenarios/credit_risk.toml");
    model.n_samples = 1_000_000;
    let mut g = c.benchmark_group("w3");
    g.sample_size(10);
    g.throughput(Throughput::Elements(
        model.n_samples * model.nodes.len() as u64 * model.worlds.len() as u64,
    ));
    for (name, backend) in backends() {
        g.bench_function(format!("{name}/1e6"), |b| {
            b.iter(|| run(&model, &info(), &opts(backend), &mut |_, _| {}).expect("runs"))
        });
    }
    g.finish();
}

fn vasicek(c: &mut Criterion) {
    let (_, mut model) = load("benches/vasicek.toml");
    model.n_samples = 10_000;
    let mut g = c.benchmark_group("vasicek");
    g.sample_size(10);
    g.throughput(Throughput::Elements(
        model.n_samples * u64::from(model.unit_count()),
    ));
    g.bench_function("cpu/1e4x1e4", |b| {
        b.iter(|| run(&model, &info(), &opts(Backend::Cpu), &mut |_, _| {}).expect("runs"))
    });
    g.finish();
}

/// A 200-node scenario: a chain with side branches, two edits.
pub fn big_scenario(n: usize) -> String {
    let mut s = String::from(
        "[scenario]\nname = \"big\"\nsamples = 1000\n\n[nodes]\nx0 = \"normal(0, 1)\"\n",
    );
    for i in 1..n {
        let extra = if i >= 3 {
            format!(" + 0.1 * x{}", i - 3)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "x{i} = \"0.9 * x{} + normal(0, 1){extra}\"\n",
            i - 1
        ));
    }
    s.push_str(&format!(
        "\n[interventions.shift]\nx10 = \"x10 + 1\"\n\n[stresses.shock]\nx0 = \"normal(1, 2)\"\n\n[metrics]\nm = \"mean(x{})\"\n",
        n - 1
    ));
    s
}

fn compile(c: &mut Criterion) {
    let src = big_scenario(200);
    c.bench_function("compile/200_nodes", |b| {
        b.iter(|| {
            let model = whatif_lang::compile(&src).expect("valid");
            let worlds: Vec<whatif_lang::WorldId> = (0..model.worlds.len() as u32)
                .map(whatif_lang::WorldId)
                .collect();
            whatif_ir::compile(&model, &worlds, whatif_ir::opt::PassOptions::ALL)
        })
    });
}

/// Standard noise for every site of `layout` (a fixed uniform stream):
/// what abduction would hand the replay.
fn replay_inputs(layout: &whatif_data::replay::ReplayLayout, lanes: usize) -> Vec<Vec<f64>> {
    // A fixed stream of uniforms in (0, 1): the backtest's own.
    let mut i = 0u64;
    let mut u = move || {
        i += 1;
        whatif_data::backtest::uniform(0x5eed, 0, i, 0)
    };
    assert!(layout.observed.is_empty() && layout.lags.is_empty() && !layout.period);
    layout
        .sites
        .iter()
        .map(|&(_, dist)| {
            (0..lanes)
                .map(|_| match dist {
                    whatif_lang::Dist::Uniform | whatif_lang::Dist::Bernoulli => u(),
                    _ => whatif_stats::special::normal_ppf(u()),
                })
                .collect()
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    use whatif::engine::replay::BackendReplayer;
    use whatif_data::replay::{ReferenceReplayer, Replayer};
    const LANES: usize = 1 << 18;
    let (_, model) = load("scenarios/credit_risk.toml");
    let policy = model
        .world_id("raise_limits+recession")
        .expect("combined world");
    let layout = whatif_data::backtest::replay_layout(&model, policy);
    let cols = replay_inputs(&layout, LANES);
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(
        (LANES * layout.recomputed.len()) as u64,
    ));
    let mut reference = ReferenceReplayer::new(&model, policy, layout.clone());
    g.bench_function(format!("cpu-f64/{LANES}"), |b| {
        b.iter(|| reference.replay(LANES, &cols).expect("replays"))
    });
    for (name, backend) in backends() {
        let exec = whatif_ir::exec::ExecOptions::default();
        let mut r = BackendReplayer::new(&model, policy, &layout, backend, exec).expect("backend");
        g.bench_function(format!("{name}/{LANES}"), |b| {
            b.iter(|| r.replay(LANES, &cols).expect("replays"))
        });
    }
    g.finish();
}

criterion_group!(benches, w1, w3, vasicek, compile, replay);
criterion_main!(benches);
