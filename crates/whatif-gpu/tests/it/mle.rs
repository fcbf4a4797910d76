//! Maximum likelihood by burn autodiff (issue #5): data generated from a
//! known model, fitted through `whatif_data::fit::fit` with the burn
//! solver. Each fit is checked three ways: the truth within 3 SE; the
//! standard errors against the analytic information (or least squares on
//! the same data); and the optimum against the f64 reference objective of
//! `whatif_data::mle` (its gradient, by central differences in f64 on the
//! host, is negligible there: the f64 Newton step from the estimate is a
//! tiny share of an SE). The flex (CPU) backend always runs; the wgpu
//! adapter when there is one.

use std::cell::RefCell;

use burn::tensor::{Device, Tensor, TensorData};

use whatif_data::DataSource;
use whatif_data::fit::{self, FitOptions, FitResult, invert_spd};
use whatif_data::mle::{MleFit, MleProblem, MleSolver, RowBatch, RowSource};
use whatif_data::simulate::{PeriodSpec, simulate_csv};
use whatif_gpu::mle::{BurnMle, ln_gamma};
use whatif_lang::CausalModel;

/// The f64 Newton step from the estimate, in SEs, stays below this.
const F64_STEP_SE: f64 = 0.02;

fn model(nodes: &str) -> CausalModel {
    let src = format!(
        "[scenario]\nname = \"t\"\nseed = 7\n\n[nodes]\n{nodes}\n\n[data]\npath = \"d.csv\"\nperiod = \"period\"\nunit = \"unit\"\n"
    );
    match whatif_lang::compile(&src) {
        Ok(m) => m,
        Err(d) => panic!("{}", whatif_lang::render_diagnostics(&d, "t.toml", &src)),
    }
}

/// Simulates `rows` rows of `m` (true params `truth`) into `dir/d.csv`.
fn simulate(m: &CausalModel, dir: &std::path::Path, rows: usize, truth: &[(&str, f64)]) {
    let periods = [PeriodSpec {
        label: "p1".into(),
        rows,
        params: truth.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
    }];
    let csv = simulate_csv(m, &periods, 20260, "unit", "period");
    std::fs::write(dir.join("d.csv"), csv).expect("write");
}

fn open(m: &CausalModel, dir: &std::path::Path) -> DataSource {
    DataSource::open_path(m, &dir.join("d.csv"), "d.csv").expect("opens")
}

/// Runs the burn solver and keeps the problem and the rows it was given,
/// for the f64 checks.
struct Keep {
    inner: BurnMle,
    seen: RefCell<Option<(MleProblem, Vec<RowBatch>, MleFit)>>,
}

impl MleSolver for Keep {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn solve(
        &self,
        problem: &MleProblem,
        rows: &mut dyn RowSource,
    ) -> Result<MleFit, whatif_data::DataError> {
        let mut kept = Vec::new();
        rows.for_each_batch(&mut |b| {
            kept.push(b.clone());
            Ok(())
        })?;
        let fit = self.inner.solve(problem, rows)?;
        *self.seen.borrow_mut() = Some((problem.clone(), kept, fit.clone()));
        Ok(fit)
    }
}

struct Fitted {
    res: FitResult,
    problem: MleProblem,
    rows: Vec<RowBatch>,
    fit: MleFit,
}

fn fit_with(solver: BurnMle, m: &CausalModel, src: &DataSource) -> Fitted {
    let keep = Keep {
        inner: solver,
        seen: RefCell::new(None),
    };
    let opts = FitOptions {
        chunk_rows: Some(1500),
        mle: Some(&keep),
        ..Default::default()
    };
    let res = fit::fit(m, src, &opts).unwrap_or_else(|e| panic!("fit: {e}"));
    let (problem, rows, fit) = keep.seen.into_inner().expect("the solver ran");
    Fitted {
        res,
        problem,
        rows,
        fit,
    }
}

fn nll(f: &Fitted, theta: &[f64]) -> f64 {
    f.rows.iter().map(|b| f.problem.neg_log_lik(theta, b)).sum()
}

/// f64 gradient and Hessian of the reference objective by central
/// differences (steps scaled to the reported SEs).
fn f64_grad_hess(f: &Fitted) -> (Vec<f64>, Vec<f64>) {
    let th = &f.fit.estimates;
    let p = th.len();
    let h: Vec<f64> = f.fit.std_errors.iter().map(|s| 0.05 * s).collect();
    let at = |d: &[(usize, f64)]| {
        let mut t = th.clone();
        for &(j, x) in d {
            t[j] += x;
        }
        nll(f, &t)
    };
    let g = (0..p)
        .map(|j| (at(&[(j, h[j])]) - at(&[(j, -h[j])])) / (2.0 * h[j]))
        .collect();
    let mut hess = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            hess[i * p + j] = (at(&[(i, h[i]), (j, h[j])])
                - at(&[(i, h[i]), (j, -h[j])])
                - at(&[(i, -h[i]), (j, h[j])])
                + at(&[(i, -h[i]), (j, -h[j])]))
                / (4.0 * h[i] * h[j]);
        }
    }
    (g, hess)
}

/// The estimate is the f64 optimum (the Newton step from it is a tiny
/// share of an SE) and the SEs match the f64 observed information.
fn assert_f64_optimum(f: &Fitted) {
    let p = f.fit.estimates.len();
    let (g, h) = f64_grad_hess(f);
    let inv = invert_spd(&h, p).expect("f64 Hessian positive definite");
    for j in 0..p {
        let step: f64 = (0..p).map(|k| inv[j * p + k] * g[k]).sum();
        let se = f.fit.std_errors[j];
        assert!(
            step.abs() < F64_STEP_SE * se,
            "{}: f64 Newton step {step} vs SE {se}",
            f.problem.params[j]
        );
        let se64 = inv[j * p + j].sqrt();
        eprintln!(
            "{}: estimate {} SE {se} f64 SE {se64} ratio {:.4}",
            f.problem.params[j],
            f.fit.estimates[j],
            se / se64
        );
        assert!(
            (se / se64 - 1.0).abs() < 0.03,
            "{}: SE {se} vs f64 observed information {se64}",
            f.problem.params[j]
        );
    }
}

fn assert_within_3se(res: &FitResult, truth: &[(&str, f64)]) {
    for (name, t) in truth {
        let p = res
            .params
            .iter()
            .find(|p| format!("?{}", p.name) == *name)
            .unwrap_or_else(|| panic!("no estimate for {name}"));
        assert!(
            p.std_error > 0.0 && (p.estimate - t).abs() <= 3.0 * p.std_error,
            "{name}: estimate {} ± {} vs truth {t}",
            p.estimate,
            p.std_error
        );
    }
}

fn est(res: &FitResult, name: &str) -> (f64, f64) {
    let p = res
        .params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    (p.estimate, p.std_error)
}

const EXP_MEAN: &str = "x = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"";
const EXP_TRUTH: [(&str, f64); 3] = [("?a", 2.0), ("?b", 0.3), ("?s", 0.5)];

/// `?a * exp(?b * x) + normal(0, ?s)`: least squares finds the mean is
/// not linear on the data and hands the node to maximum likelihood.
#[test]
fn mle_flex_fits_a_nonlinear_mean_with_normal_noise() {
    let m = model(EXP_MEAN);
    let dir = tempfile::tempdir().expect("tmp");
    simulate(&m, dir.path(), 4000, &EXP_TRUTH);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    let node = &f.res.nodes[0];
    assert_eq!(node.method, "mle_autodiff (flex)");
    assert_eq!((node.rows, f.rows.len()), (4000, 3));
    assert!(node.iterations < 50, "{} iterations", node.iterations);
    assert_within_3se(&f.res, &EXP_TRUTH);
    assert_f64_optimum(&f);
}

/// The same fit on the wgpu adapter agrees with flex to a small share of
/// an SE (both f32 on the device, f64 on the host).
#[test]
fn mle_wgpu_agrees_with_flex() {
    let Some(a) = crate::common::gpu() else {
        return;
    };
    let m = model(EXP_MEAN);
    let dir = tempfile::tempdir().expect("tmp");
    simulate(&m, dir.path(), 4000, &EXP_TRUTH);
    let src = open(&m, dir.path());
    let g = fit_with(BurnMle::on_adapter(&a), &m, &src);
    assert_eq!(g.res.nodes[0].method, "mle_autodiff (wgpu)");
    assert_f64_optimum(&g);
    let c = fit_with(BurnMle::flex(), &m, &src);
    for (x, y) in g.res.params.iter().zip(&c.res.params) {
        assert!(
            (x.estimate - y.estimate).abs() < 0.02 * y.std_error,
            "{}: wgpu {} vs flex {}",
            x.name,
            x.estimate,
            y.estimate
        );
        assert!((x.std_error / y.std_error - 1.0).abs() < 0.02);
    }
}

/// `bernoulli(1 - exp(-?lam * dose))`: the SE matches the analytic Fisher
/// information Σ d² e^{−λd} / (1 − e^{−λd}) at the estimate.
#[test]
fn mle_flex_fits_a_one_hit_dose_response() {
    let m = model("dose = \"uniform(0, 3)\"\ny = \"bernoulli(1 - exp(-?lam * dose))\"");
    let dir = tempfile::tempdir().expect("tmp");
    simulate(&m, dir.path(), 4000, &[("?lam", 0.7)]);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    assert_within_3se(&f.res, &[("?lam", 0.7)]);
    assert_f64_optimum(&f);
    let (lam, se) = est(&f.res, "lam");
    let info: f64 = f
        .rows
        .iter()
        .flat_map(|b| b.columns[0].iter())
        .map(|d| {
            let q = (-lam * d).exp();
            d * d * q / (1.0 - q)
        })
        .sum();
    let want = 1.0 / info.sqrt();
    assert!((se / want - 1.0).abs() < 0.1, "SE {se} vs Fisher {want}");
}

/// `exponential(exp(?c0 + ?c1 * x))`: a log-linear rate, whose expected
/// information is exactly XᵀX.
#[test]
fn mle_flex_fits_a_log_linear_exponential_rate() {
    let m = model("x = \"normal(0, 1)\"\ny = \"exponential(exp(?c0 + ?c1 * x))\"");
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?c0", 0.5), ("?c1", -0.8)];
    simulate(&m, dir.path(), 4000, &truth);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    assert_within_3se(&f.res, &truth);
    assert_f64_optimum(&f);
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for x in f.rows.iter().flat_map(|b| b.columns[0].iter()) {
        s0 += 1.0;
        s1 += x;
        s2 += x * x;
    }
    let inv = invert_spd(&[s0, s1, s1, s2], 2).expect("XᵀX");
    for (k, name) in ["c0", "c1"].iter().enumerate() {
        let (_, se) = est(&f.res, name);
        let want = inv[k * 2 + k].sqrt();
        assert!((se / want - 1.0).abs() < 0.1, "{name}: SE {se} vs {want}");
    }
}

/// `?a + ?b * x + normal(0, exp(?ls))` is least squares in disguise (the
/// sd is not a lone param, so least squares refuses it): maximum
/// likelihood gives least squares' coefficients, SEs smaller by exactly
/// √((n − 2) / n) (σ̂ divides by n, not n − 2), and exp(l̂s) = σ̂_ML.
#[test]
fn mle_flex_matches_least_squares_on_a_linear_model() {
    let ls = model("x = \"normal(0, 1)\"\ny = \"?a + ?b * x + normal(0, ?s)\"");
    let ml = model("x = \"normal(0, 1)\"\ny = \"?a + ?b * x + normal(0, exp(?ls))\"");
    let dir = tempfile::tempdir().expect("tmp");
    simulate(
        &ls,
        dir.path(),
        3000,
        &[("?a", 1.0), ("?b", 2.0), ("?s", 0.5)],
    );
    let exact = fit::fit(&ls, &open(&ls, dir.path()), &FitOptions::default()).expect("ls");
    assert_eq!(exact.nodes[0].method, "least_squares");
    let f = fit_with(BurnMle::flex(), &ml, &open(&ml, dir.path()));
    assert_f64_optimum(&f);
    let n: f64 = 3000.0;
    let ratio = ((n - 2.0) / n).sqrt();
    for name in ["a", "b"] {
        let (e0, s0) = est(&exact, name);
        let (e1, s1) = est(&f.res, name);
        assert!((e1 - e0).abs() < 0.01 * s0, "{name}: mle {e1} vs ls {e0}");
        assert!((s1 / s0 - ratio).abs() < 5e-3, "{name}: SE {s1} vs ls {s0}");
    }
    let (sigma_unbiased, _) = est(&exact, "s");
    let (ls_hat, _) = est(&f.res, "ls");
    let want = sigma_unbiased * ratio;
    assert!(
        (ls_hat.exp() / want - 1.0).abs() < 1e-3,
        "exp(ls) {} vs {want}",
        ls_hat.exp()
    );
}

/// Simulates `rows` rows of `m` (true params `truth`) into `dir/d.csv`
/// with the IR's own samplers, through the reference interpreter:
/// `whatif_data::simulate` draws only the distributions the backtest can
/// invert, not gamma, beta or student_t. Each observed node is a metric
/// `m_<node> = "mean(<node>)"` of the model, so it is an output per sample.
fn simulate_ir(m: &CausalModel, dir: &std::path::Path, rows: u64, truth: &[(&str, f64)]) {
    let mut p = whatif_ir::lower::lower_all(m);
    for (name, v) in truth {
        let slot = p
            .params
            .iter_mut()
            .find(|s| s.name == *name)
            .unwrap_or_else(|| panic!("no param {name}"));
        slot.value = *v;
    }
    let cols = whatif_ir::interp::eval_outputs(&p, 0..rows);
    let names: Vec<String> = p
        .outputs
        .iter()
        .map(|o| match o.role {
            whatif_ir::OutputRole::MetricArg { metric, .. } => {
                p.metric_names[metric as usize]["m_".len()..].to_string()
            }
            _ => panic!("only metric outputs"),
        })
        .collect();
    let mut csv = format!("unit,period,{}\n", names.join(","));
    for i in 0..rows as usize {
        csv.push_str(&format!("u{i:06},p1"));
        for c in &cols {
            csv.push_str(&format!(",{}", c[i]));
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("d.csv"), csv).expect("write");
}

/// `nodes` with a `mean` metric per observed node (for [`simulate_ir`]).
fn model_with_metrics(nodes: &str, observed: &[&str]) -> CausalModel {
    let metrics: String = observed
        .iter()
        .map(|n| format!("m_{n} = \"mean({n})\"\n"))
        .collect();
    model(&format!("{nodes}\n\n[metrics]\n{metrics}"))
}

/// ψ′(x), the trigamma function, for x > 0: the recurrence up to x ≥ 10,
/// then its asymptotic series (error below 1e-12 there).
fn trigamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let r = 1.0 / x;
    let r2 = r * r;
    acc + r + r2 / 2.0 + r * r2 * (1.0 / 6.0 - r2 * (1.0 / 30.0 - r2 * (1.0 / 42.0 - r2 / 30.0)))
}

/// Standard errors of the inverse of `info` (p × p).
fn inverse_se(info: &[f64], p: usize) -> Vec<f64> {
    let inv = invert_spd(info, p).expect("information positive definite");
    (0..p).map(|j| inv[j * p + j].sqrt()).collect()
}

/// `gamma(?k, exp(?b0 + ?b1 * x))`: a gamma with a log-linear scale. Its
/// expected information at the estimates, with η = b0 + b1·x, is
/// [[n ψ′(k), n, Σx], [n, k n, k Σx], [Σx, k Σx, k Σx²]]; the SEs match it.
#[test]
fn mle_flex_fits_a_gamma_with_a_log_linear_scale() {
    let m = model_with_metrics(
        "x = \"normal(0, 1)\"\ny = \"gamma(?k, exp(?b0 + ?b1 * x))\"",
        &["x", "y"],
    );
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?k", 2.5), ("?b0", 0.3), ("?b1", 0.5)];
    simulate_ir(&m, dir.path(), 4000, &truth);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    assert_eq!(f.res.nodes[0].method, "mle_autodiff (flex)");
    assert_eq!(f.res.nodes[0].rows, 4000);
    assert_within_3se(&f.res, &truth);
    assert_f64_optimum(&f);
    let (k, _) = est(&f.res, "k");
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for x in f.rows.iter().flat_map(|b| b.columns[0].iter()) {
        s0 += 1.0;
        s1 += x;
        s2 += x * x;
    }
    let info = [
        s0 * trigamma(k),
        s0,
        s1,
        s0,
        k * s0,
        k * s1,
        s1,
        k * s1,
        k * s2,
    ];
    for (name, want) in ["k", "b0", "b1"].iter().zip(inverse_se(&info, 3)) {
        let (_, se) = est(&f.res, name);
        eprintln!("{name}: SE {se} vs expected information {want}");
        assert!((se / want - 1.0).abs() < 0.1, "{name}: SE {se} vs {want}");
    }
}

/// `beta(?a, ?b)`: the SEs match the expected information
/// n [[ψ′(a) − ψ′(a+b), −ψ′(a+b)], [−ψ′(a+b), ψ′(b) − ψ′(a+b)]].
#[test]
fn mle_flex_fits_a_beta() {
    let m = model_with_metrics("y = \"beta(?a, ?b)\"", &["y"]);
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?a", 2.0), ("?b", 5.0)];
    simulate_ir(&m, dir.path(), 3000, &truth);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    assert_within_3se(&f.res, &truth);
    assert_f64_optimum(&f);
    let ((a, _), (b, _)) = (est(&f.res, "a"), est(&f.res, "b"));
    let n = 3000.0;
    let tab = trigamma(a + b);
    let info = [
        n * (trigamma(a) - tab),
        -n * tab,
        -n * tab,
        n * (trigamma(b) - tab),
    ];
    for (name, want) in ["a", "b"].iter().zip(inverse_se(&info, 2)) {
        let (_, se) = est(&f.res, name);
        eprintln!("{name}: SE {se} vs expected information {want}");
        assert!((se / want - 1.0).abs() < 0.1, "{name}: SE {se} vs {want}");
    }
}

/// `?mu + student_t(?df)`: a location and heavy tails (df's gradient is a
/// small difference of digammas, the least precise in f32: the f64
/// reference checks it).
#[test]
fn mle_flex_fits_a_shifted_student_t() {
    let m = model_with_metrics("y = \"?mu + student_t(?df)\"", &["y"]);
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?mu", 1.5), ("?df", 4.0)];
    simulate_ir(&m, dir.path(), 5000, &truth);
    let f = fit_with(BurnMle::flex(), &m, &open(&m, dir.path()));
    assert_within_3se(&f.res, &truth);
    assert_f64_optimum(&f);
}

/// lnΓ(x) and ψ(x) = d lnΓ / dx at x (mpmath, 30 digits).
const LN_GAMMA_CASES: [(f64, f64, f64); 11] = [
    (0.05, 2.968_879_201_051_730_6, -20.497_844_991_299_87),
    (0.5, 0.572_364_942_924_700_1, -1.963_510_026_021_423_5),
    (1.0, 0.0, -0.577_215_664_901_532_9),
    (1.5, -0.120_782_237_635_245_22, 0.036_489_973_978_576_52),
    (2.5, 0.284_682_870_472_919_2, 0.703_156_640_645_243_2),
    (3.7, 1.428_072_326_665_387_9, 1.167_153_539_361_511_3),
    (7.3, 7.147_892_523_022_249, 1.917_820_335_637_986_2),
    (12.0, 17.502_307_845_873_887, 2.442_661_679_975_812),
    (50.0, 144.565_743_946_344_9, 3.901_989_673_427_892),
    (300.0, 1_409.202_067_470_411_7, 5.702_114_882_064_637),
    (4000.0, 29_172.970_494_954_6, 8.293_924_634_893_694),
];

/// The device's lnΓ (burn has none) against pinned values, and its
/// autodiff derivative against ψ, to f32 rounding: an error of one
/// Stirling term shows (dropping 1/(360z³) moves lnΓ(0.05) by 1.3e-5).
#[test]
fn ln_gamma_tensor_matches_known_values() {
    let dev = Device::flex().autodiff();
    let xs: Vec<f32> = LN_GAMMA_CASES.iter().map(|c| c.0 as f32).collect();
    let n = xs.len();
    let x = Tensor::<1>::from_data(TensorData::new(xs, [n]), &dev).require_grad();
    let y = ln_gamma(x.clone());
    let grads = y.clone().sum().backward();
    let g = x.grad(&grads).expect("x requires grad");
    let y: Vec<f32> = y.into_data().try_to_vec().expect("read");
    let g: Vec<f32> = g.into_data().try_to_vec().expect("read");
    for (k, &(x, lg, psi)) in LN_GAMMA_CASES.iter().enumerate() {
        let (ey, eg) = ((y[k] as f64 - lg).abs(), (g[k] as f64 - psi).abs());
        eprintln!("lnΓ({x}): error {ey:.2e}, ψ error {eg:.2e}");
        assert!(
            ey < LN_GAMMA_TOL * (1.0 + lg.abs()),
            "lnΓ({x}) = {} vs {lg}",
            y[k]
        );
        assert!(
            eg < LN_GAMMA_TOL * (1.0 + psi.abs()),
            "ψ({x}) = {} vs {psi}",
            g[k]
        );
    }
}

/// f32 rounding of lnΓ and ψ, relative to 1 + |value|.
const LN_GAMMA_TOL: f64 = 2e-6;
