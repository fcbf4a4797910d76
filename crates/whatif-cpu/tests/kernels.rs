//! Tests of the f32 batch kernels: agreement with the f64 reference
//! (`whatif_ir::dist::sample_f64`) lane by lane on the same Philox words,
//! independence from chunking, bit-identity of the dispatched ISA copies,
//! the polynomial math, and distribution checks (KS against the exact CDF,
//! mean and variance) for every distribution at a fixed seed.
//!
//! False alarms: the agreement, slicing and bit-identity tests are
//! deterministic (no false alarms; tolerances are measured bounds with
//! margin). Each KS check fails when p < 1e-4, each moment check at 5
//! standard errors (two-sided p ≈ 5.7e-7): with 24 KS and 48 moment checks
//! the chance that a correct implementation fails for a random seed is
//! about 24·1e-4 + 48·5.7e-7 ≈ 2.4e-3; at the fixed seed used here the
//! outcome is deterministic.

use whatif_cpu::Variant;
use whatif_cpu::kernels::math::{exp_f32, ln_f32, logit_f32, sigmoid_f32, sincos_turn, tanh_f32};
use whatif_cpu::kernels::philox::bm_radius;
use whatif_cpu::kernels::{Arg, MathOp, fill, fill_dispatched, map_math};
use whatif_ir::Dist;
use whatif_ir::dist::sample_f64;
use whatif_ir::rng::RngStream;
use whatif_stats::special::{beta_i, gamma_p, ks_pvalue, ks_statistic, normal_cdf, student_t_cdf};

const SEED: u64 = 0x5EED_2024;
const SITE: u32 = 0x1234_ABCD;

/// One parameter set per distribution (f32-exact values), with the boosted
/// (shape < 1) gamma paths covered by student_t(1.5) and gamma(0.4, ·).
const CASES: [(Dist, &[f32]); 13] = [
    (Dist::Normal, &[0.0, 1.0]),
    (Dist::Normal, &[1.0, 2.0]),
    (Dist::LogNormal, &[0.0, 0.5]),
    (Dist::Uniform, &[-1.0, 3.0]),
    (Dist::Bernoulli, &[0.3]),
    (Dist::Exponential, &[2.0]),
    (Dist::Laplace, &[1.0, 0.5]),
    (Dist::Logistic, &[0.0, 1.5]),
    (Dist::StudentT, &[10.0]),
    (Dist::StudentT, &[1.5]),
    (Dist::Gamma, &[2.5, 2.0]),
    (Dist::Gamma, &[0.4, 1.0]),
    (Dist::Beta, &[2.0, 3.0]),
];

fn scalars(a: &[f32]) -> Vec<Arg<'static>> {
    a.iter().map(|&x| Arg::Scalar(x)).collect()
}

fn kernel(dist: Dist, args: &[f32], start: u64, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    fill(dist, &scalars(args), SEED, SITE, start, &mut out);
    out
}

fn reference(dist: Dist, args: &[f32], i: u64) -> f64 {
    let a: Vec<f64> = args.iter().map(|&x| f64::from(x)).collect();
    sample_f64(dist, &a, SEED, SITE, i)
}

/// The f32 − f64 difference of one lane, scaled by what f32 rounding of the
/// formula can be expected to give: location–scale families by
/// `|m| + s + |x − m|` (so normals are measured as |Δz|/(1 + |z|)), the
/// lognormal relative to `x(1 + |ln x|)` (rounding of `mu + sigma z` is
/// magnified by `exp`), positive families by `x + scale`.
fn scaled_err(dist: Dist, args: &[f32], x32: f32, x64: f64) -> f64 {
    let a: Vec<f64> = args.iter().map(|&v| f64::from(v)).collect();
    let d = (f64::from(x32) - x64).abs();
    let denom = match dist {
        Dist::Normal | Dist::Laplace | Dist::Logistic => a[0].abs() + a[1] + (x64 - a[0]).abs(),
        Dist::LogNormal => x64 * (1.0 + x64.ln().abs()),
        Dist::Uniform => a[0].abs().max(a[1].abs()),
        Dist::Bernoulli => 1.0,
        Dist::Exponential => x64 + 1.0 / a[0],
        Dist::Gamma => x64 + a[1],
        Dist::StudentT => 1.0 + x64.abs(),
        Dist::Beta => 1.0,
    };
    d / denom
}

/// Allowed [`scaled_err`] per lane: the worst case measured by
/// `kernels_agree_with_f64_reference` (~70k lanes per distribution, printed
/// with `--nocapture`), rounded up. For normals this is the bound
/// |z₃₂ − z₆₄| ≤ 1e-6 · (1 + |z|).
fn tolerance(dist: Dist) -> f64 {
    match dist {
        Dist::Normal => 3e-7,      // measured 1.2e-7
        Dist::LogNormal => 3e-7,   // measured 1.0e-7
        Dist::Uniform => 1e-7,     // measured 4.0e-8
        Dist::Bernoulli => 0.0,    // exact
        Dist::Exponential => 2e-7, // measured 6.0e-8
        Dist::Laplace => 2e-7,     // measured 8.0e-8
        Dist::Logistic => 3e-7,    // measured 1.2e-7
        Dist::StudentT => 3e-6,    // measured 1.4e-6 (df 1.5), 2.5e-7 (df 10)
        Dist::Gamma => 1e-6,       // measured 3.5e-7
        Dist::Beta => 5e-7,        // measured 2.0e-7
    }
}

/// Worst scaled error and number of "flipped" lanes (error above
/// tolerance: only acceptable for the accept/reject step of gamma).
fn compare(dist: Dist, args: &[f32], start: u64, out: &[f32]) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut flips = 0;
    for (j, &x) in out.iter().enumerate() {
        let r = reference(dist, args, start + j as u64);
        assert!(
            x.is_finite() == r.is_finite(),
            "{dist:?} lane {j}: {x} vs {r}"
        );
        let e = scaled_err(dist, args, x, r);
        worst = worst.max(e);
        if e > tolerance(dist) {
            flips += 1;
        }
    }
    (worst, flips)
}

/// Many chunk starts (multiples of 4, including ones past 2^32 blocks) and
/// lengths (including ones that are not multiples of 4 or of the group).
const CHUNKS: [(u64, usize); 9] = [
    (0, 1),
    (0, 3),
    (4, 5),
    (64, 63),
    (1_000, 4_099),
    (123_456, 1_000),
    ((1u64 << 34) - 32, 257), // crosses the 2^32-block counter boundary
    (1u64 << 50, 130),
    (8_000_000, 60_000),
];

#[test]
fn kernels_agree_with_f64_reference() {
    for (dist, args) in CASES {
        let mut worst: f64 = 0.0;
        let mut flips = 0;
        let mut lanes = 0;
        for (start, n) in CHUNKS {
            let out = kernel(dist, args, start, n);
            let (w, f) = compare(dist, args, start, &out);
            worst = worst.max(w);
            flips += f;
            lanes += n;
        }
        println!(
            "{dist:?}{args:?}: worst scaled error {worst:.3e} over {lanes} lanes, {flips} flipped"
        );
        // Only gamma-based draws may flip (accept/reject decided differently
        // in f32 and f64); bound the share at 1e-4.
        let may_flip = matches!(dist, Dist::Gamma | Dist::Beta | Dist::StudentT);
        assert!(
            flips == 0 || (may_flip && flips * 10_000 <= lanes),
            "{dist:?}: {flips} lanes off"
        );
    }
}

#[test]
fn per_lane_arguments_match_reference() {
    let n = 1_003;
    let start = 4_000;
    let v1: Vec<f32> = (0..n).map(|j| (j as f32) * 0.01 - 3.0).collect();
    let v2: Vec<f32> = (0..=n).map(|j| 0.25 + (j % 7) as f32 * 0.5).collect();
    let p: Vec<f32> = (0..n).map(|j| (j % 11) as f32 / 10.0).collect();
    for dist in Dist::ALL {
        let (a, b): (&[f32], Vec<f32>) = match dist {
            // b = a + width keeps a < b
            Dist::Uniform => (&v1, v1.iter().zip(&v2).map(|(x, w)| x + w).collect()),
            Dist::Normal | Dist::LogNormal | Dist::Laplace | Dist::Logistic => (&v1, v2.clone()),
            Dist::Bernoulli => (&p, p.clone()),
            _ => (&v2[..n], v2[1..].to_vec()),
        };
        let args: Vec<Arg<'_>> = if dist.arity() == 1 {
            vec![Arg::Lanes(a)]
        } else {
            vec![Arg::Lanes(a), Arg::Lanes(&b)]
        };
        let mut out = vec![0f32; n];
        fill(dist, &args, SEED, SITE, start, &mut out);
        let mut flips = 0;
        for j in 0..n {
            let lane_args: Vec<f32> = if dist.arity() == 1 {
                vec![a[j]]
            } else {
                vec![a[j], b[j]]
            };
            let r = reference(dist, &lane_args, start + j as u64);
            let e = scaled_err(dist, &lane_args, out[j], r);
            if e.is_nan() || e > tolerance(dist) {
                flips += 1;
            }
        }
        let may_flip = matches!(dist, Dist::Gamma | Dist::Beta | Dist::StudentT);
        assert!(flips <= usize::from(may_flip), "{dist:?}: {flips}");
    }
}

#[test]
fn values_do_not_depend_on_chunking() {
    for (dist, args) in CASES {
        let whole = kernel(dist, args, 0, 10_000);
        for (start, n) in [
            (0usize, 10_000usize),
            (4, 1),
            (8, 63),
            (100, 4_097),
            (5_000, 5_000),
            (9_996, 4),
        ] {
            let part = kernel(dist, args, start as u64, n);
            for j in 0..n {
                assert_eq!(
                    part[j].to_bits(),
                    whole[start + j].to_bits(),
                    "{dist:?} start {start} lane {j}"
                );
            }
        }
        // Scalar and per-lane arguments with equal values are bit-identical.
        let lanes: Vec<Vec<f32>> = args.iter().map(|&x| vec![x; 777]).collect();
        let a: Vec<Arg<'_>> = lanes.iter().map(|v| Arg::Lanes(v)).collect();
        let mut out = vec![0f32; 777];
        fill(dist, &a, SEED, SITE, 0, &mut out);
        assert!(
            out.iter()
                .zip(&whole)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{dist:?}"
        );
    }
}

#[test]
fn dispatched_copies_are_bit_identical() {
    let s = RngStream::new(SEED, SITE);
    for (dist, args) in CASES {
        let a = scalars(args);
        let mut base = vec![0f32; 2_051];
        fill_dispatched(Variant::Baseline, dist, &a, &s, 400, &mut base);
        for v in [Variant::Avx2Fma, Variant::Avx512Fma] {
            let mut o = vec![0f32; 2_051];
            fill_dispatched(v, dist, &a, &s, 400, &mut o);
            assert!(
                o.iter().zip(&base).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{dist:?} {v:?}"
            );
        }
    }
}

#[test]
fn invalid_parameters_give_nan_lanes() {
    for (dist, args) in [
        (Dist::Normal, [0.0f32, -1.0].as_slice()),
        (Dist::Uniform, &[2.0, 1.0]),
        (Dist::Bernoulli, &[1.01]),
        (Dist::Gamma, &[0.0, 1.0]),
        (Dist::Beta, &[1.0, f32::NAN]),
        (Dist::StudentT, &[-2.0]),
    ] {
        assert!(
            kernel(dist, args, 0, 9).iter().all(|x| x.is_nan()),
            "{dist:?}"
        );
    }
    // Per lane: only the invalid lane is NaN.
    let sd = [1.0f32, 0.0, 1.0];
    let mut out = [0f32; 3];
    fill(
        Dist::Normal,
        &[Arg::Scalar(0.0), Arg::Lanes(&sd)],
        SEED,
        SITE,
        0,
        &mut out,
    );
    assert!(out[0].is_finite() && out[1].is_nan() && out[2].is_finite());
}

#[test]
fn normal_tail_reaches_full_depth_in_f32() {
    // Word 0 is the smallest uniform 2^-32: radius sqrt(64 ln 2) ≈ 6.66044.
    let r = bm_radius(0);
    assert!(
        (f64::from(r) - (64.0 * std::f64::consts::LN_2).sqrt()).abs() < 2e-6,
        "{r}"
    );
    let (s, c) = sincos_turn(0);
    assert_eq!((s, c), (0.0, 1.0));
    assert!(bm_radius(u32::MAX) == 0.0);
}

#[test]
fn polynomial_math_accuracy() {
    // Dense sweeps against f64 libm; bounds are relative (absolute near 0).
    let mut worst = [0f64; 6];
    let mut k: u32 = 1;
    while k < 0x7f80_0000 {
        let x = f32::from_bits(k); // positive floats, subnormals included
        let l = f64::from(x).ln();
        worst[0] = worst[0].max((f64::from(ln_f32(x)) - l).abs() / l.abs().max(1.0));
        k += 4_001;
    }
    for i in 0..200_000 {
        let x = -103.0 + 191.0 * (i as f32) / 200_000.0;
        let e = f64::from(x).exp();
        if e > 1e-37 && e < 3e38 {
            worst[1] = worst[1].max((f64::from(exp_f32(x)) - e).abs() / e);
        }
        let t = -12.0 + 24.0 * (i as f32) / 200_000.0;
        let tt = f64::from(t);
        if t != 0.0 {
            worst[2] = worst[2].max((f64::from(tanh_f32(t)) - tt.tanh()).abs() / tt.tanh().abs());
        }
        let sg = 1.0 / (1.0 + (-tt).exp());
        worst[3] = worst[3].max((f64::from(sigmoid_f32(t)) - sg).abs() / sg);
        let p = (i as f32 + 0.5) / 200_000.0;
        let lg = (f64::from(p) / (1.0 - f64::from(p))).ln();
        worst[4] = worst[4].max((f64::from(logit_f32(p)) - lg).abs() / lg.abs().max(1.0));
    }
    for w in (0..u32::MAX).step_by(9_973) {
        let th = std::f64::consts::TAU * f64::from(w) * 2f64.powi(-32);
        let (s, c) = sincos_turn(w);
        worst[5] = worst[5]
            .max((f64::from(s) - th.sin()).abs())
            .max((f64::from(c) - th.cos()).abs());
    }
    println!(
        "ln {:.2e} exp {:.2e} tanh {:.2e} sigmoid {:.2e} logit {:.2e} sincos(abs) {:.2e}",
        worst[0], worst[1], worst[2], worst[3], worst[4], worst[5]
    );
    assert!(
        worst[0] < 2e-7
            && worst[1] < 2e-7
            && worst[2] < 4e-7
            && worst[3] < 4e-7
            && worst[4] < 4e-7
            && worst[5] < 2e-7,
        "{worst:?}"
    );
    // Special values.
    assert!(ln_f32(-1.0).is_nan() && ln_f32(f32::NAN).is_nan());
    assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
    assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
    assert_eq!(exp_f32(0.0), 1.0);
    assert_eq!(exp_f32(100.0), f32::INFINITY);
    assert_eq!(exp_f32(-200.0), 0.0);
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    assert!(exp_f32(f32::NAN).is_nan());
    assert!(exp_f32(-100.0) > 0.0); // subnormal range
    assert_eq!(tanh_f32(30.0), 1.0);
    assert_eq!(tanh_f32(-30.0), -1.0);
    assert_eq!(logit_f32(0.0), f32::NEG_INFINITY);
    assert_eq!(logit_f32(1.0), f32::INFINITY);
    let src = [0.5f32, 1.0, 2.0];
    let mut dst = [0f32; 3];
    map_math(MathOp::Exp, &src, &mut dst);
    assert_eq!(dst, src.map(exp_f32));
}

// ---------------------------------------------------------------------------
// Distribution checks: KS against the exact CDF, mean and variance.

type Cdf = Box<dyn Fn(f64) -> f64>;

struct Truth {
    cdf: Option<Cdf>,
    /// (mean, variance, excess kurtosis) where finite.
    moments: Option<(f64, f64, f64)>,
}

fn truth(dist: Dist, a: &[f32]) -> Truth {
    let a: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
    let (p, q) = (a[0], a.get(1).copied().unwrap_or(0.0));
    let lognorm_kurt =
        |s2: f64| (4.0 * s2).exp() + 2.0 * (3.0 * s2).exp() + 3.0 * (2.0 * s2).exp() - 6.0;
    match dist {
        Dist::Normal => Truth {
            cdf: Some(Box::new(move |x| normal_cdf((x - p) / q))),
            moments: Some((p, q * q, 0.0)),
        },
        Dist::LogNormal => Truth {
            cdf: Some(Box::new(move |x| {
                if x <= 0.0 {
                    0.0
                } else {
                    normal_cdf((x.ln() - p) / q)
                }
            })),
            moments: Some((
                (p + q * q / 2.0).exp(),
                ((q * q).exp() - 1.0) * (2.0 * p + q * q).exp(),
                lognorm_kurt(q * q),
            )),
        },
        Dist::Uniform => Truth {
            cdf: Some(Box::new(move |x| ((x - p) / (q - p)).clamp(0.0, 1.0))),
            moments: Some(((p + q) / 2.0, (q - p).powi(2) / 12.0, -1.2)),
        },
        Dist::Bernoulli => Truth {
            cdf: None,
            moments: Some((
                p,
                p * (1.0 - p),
                (1.0 - 6.0 * p * (1.0 - p)) / (p * (1.0 - p)),
            )),
        },
        Dist::Exponential => Truth {
            cdf: Some(Box::new(
                move |x| if x <= 0.0 { 0.0 } else { -(-p * x).exp_m1() },
            )),
            moments: Some((1.0 / p, 1.0 / (p * p), 6.0)),
        },
        Dist::Laplace => Truth {
            cdf: Some(Box::new(move |x| {
                if x < p {
                    0.5 * ((x - p) / q).exp()
                } else {
                    1.0 - 0.5 * (-(x - p) / q).exp()
                }
            })),
            moments: Some((p, 2.0 * q * q, 3.0)),
        },
        Dist::Logistic => Truth {
            cdf: Some(Box::new(move |x| 1.0 / (1.0 + (-(x - p) / q).exp()))),
            moments: Some((p, q * q * std::f64::consts::PI.powi(2) / 3.0, 1.2)),
        },
        Dist::StudentT => Truth {
            cdf: Some(Box::new(move |x| student_t_cdf(x, p))),
            moments: (p > 4.0).then(|| (0.0, p / (p - 2.0), 6.0 / (p - 4.0))),
        },
        Dist::Gamma => Truth {
            cdf: Some(Box::new(
                move |x| if x <= 0.0 { 0.0 } else { gamma_p(p, x / q) },
            )),
            moments: Some((p * q, p * q * q, 6.0 / p)),
        },
        Dist::Beta => Truth {
            cdf: Some(Box::new(move |x| beta_i(p, q, x.clamp(0.0, 1.0)))),
            moments: Some((
                p / (p + q),
                p * q / ((p + q).powi(2) * (p + q + 1.0)),
                6.0 * ((p - q).powi(2) * (p + q + 1.0) - p * q * (p + q + 2.0))
                    / (p * q * (p + q + 2.0) * (p + q + 3.0)),
            )),
        },
    }
}

fn check_sample(label: &str, dist: Dist, args: &[f32], mut xs: Vec<f64>) {
    let n = xs.len();
    let t = truth(dist, args);
    if let Some((mean, var, kurt)) = t.moments {
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let se_m = (var / n as f64).sqrt();
        let se_v = var * ((kurt + 2.0) / n as f64).sqrt();
        println!(
            "{label} {dist:?}{args:?}: mean {m:.5} ({:+.2} se), var {v:.5} ({:+.2} se)",
            (m - mean) / se_m,
            (v - var) / se_v
        );
        assert!(
            (m - mean).abs() < 5.0 * se_m,
            "{label} {dist:?}{args:?}: mean {m} vs {mean} (se {se_m})"
        );
        assert!(
            (v - var).abs() < 5.0 * se_v,
            "{label} {dist:?}{args:?}: var {v} vs {var} (se {se_v})"
        );
    }
    if let Some(cdf) = t.cdf {
        xs.sort_by(|a, b| a.total_cmp(b));
        let d = ks_statistic(&xs, cdf);
        let p = ks_pvalue(d, n);
        println!("{label} {dist:?}{args:?}: KS D = {d:.5}, p = {p:.3}");
        assert!(p > 1e-4, "{label} {dist:?}{args:?}: KS D = {d}, p = {p}");
    }
}

const N_STAT: usize = 200_000;

#[test]
fn f32_kernels_have_the_right_distributions() {
    for (dist, args) in CASES {
        let xs = kernel(dist, args, 0, N_STAT)
            .into_iter()
            .map(f64::from)
            .collect();
        check_sample("f32", dist, args, xs);
    }
}

#[test]
fn f64_reference_has_the_right_distributions() {
    // A different range of sample indices than the f32 test, so the two
    // checks are not the same draws.
    let base = 1u64 << 33;
    for (dist, args) in CASES {
        let xs = (0..N_STAT as u64)
            .map(|i| reference(dist, args, base + i))
            .collect();
        check_sample("f64", dist, args, xs);
    }
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn time_fill_normal() {
    let s = RngStream::new(SEED, SITE);
    let v = whatif_cpu::variant();
    let chunk = 4_096;
    let total: u64 = 100_000_000;
    let mut out = vec![0f32; chunk];
    let mut sink = 0f32;
    for (label, dist, args) in [
        ("normal(0,1)", Dist::Normal, scalars(&[0.0, 1.0])),
        ("uniform(0,1)", Dist::Uniform, scalars(&[0.0, 1.0])),
        ("exponential(1)", Dist::Exponential, scalars(&[1.0])),
    ] {
        for variant in [v, Variant::Baseline] {
            let n = if variant == Variant::Baseline {
                total / 10
            } else {
                total
            };
            let t = std::time::Instant::now();
            let cpu0 = thread_cpu_ns();
            let mut start = 0;
            while start < n {
                fill_dispatched(variant, dist, &args, &s, start, &mut out);
                sink += out[17];
                start += chunk as u64;
            }
            let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
            // On-CPU time of this thread (robust on a busy machine).
            let cpu = thread_cpu_ns()
                .zip(cpu0)
                .map(|(b, a)| (b - a) as f64 / n as f64);
            println!(
                "{label} [{}]: {ns:.3} ns/sample wall ({:.0} M/s), {} ns/sample on-CPU, {n} samples, 1 thread",
                variant.name(),
                1e3 / ns,
                cpu.map_or("?".to_string(), |c| format!("{c:.3}")),
            );
        }
    }
    assert!(sink.is_finite());
}

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), if known.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
