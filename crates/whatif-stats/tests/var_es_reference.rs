//! VaR and ES against numpy's `inverted_cdf` quantile and an independent
//! Acerbi–Tasche implementation, on data with atoms. The expected numbers are
//! pinned from `benches/reference/var_es_reference.py` (rerun it to
//! regenerate; the data generators below mirror the script's exactly).

use whatif_stats::TailKeeper;
use whatif_stats::tail::{expected_shortfall, value_at_risk};

fn hash32(i: u64) -> u64 {
    ((i * 2_654_435_761) & 0xFFFF_FFFF) >> 8
}

/// 95% exact zeros, the rest in (0, 103).
fn data_atoms(n: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = hash32(i);
            if !h.is_multiple_of(20) {
                0.0
            } else {
                ((h % 9973) as f64 / 97.0) as f32
            }
        })
        .collect()
}

/// Heavily tied levels plus a continuous part.
fn data_ties(n: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = hash32(i);
            match h % 10 {
                0..=2 => 1.0,
                3..=4 => 2.5,
                _ => ((h % 100_003) as f64 / 1000.0) as f32,
            }
        })
        .collect()
}

/// (q, value_at_risk, expected_shortfall), printed by the script.
const ATOMS: [(f64, f64, f64); 7] = [
    (0.5, 0.0, 5.160630860709996),
    (0.9, 0.0, 25.803154303549988),
    (0.95, 0.5360824465751648, 51.60431412699526),
    (0.975, 51.391754150390625, 77.10093146284416),
    (0.99, 82.02062225341797, 92.29816658932619),
    (0.995, 92.09278106689453, 97.47973438170305),
    (0.999, 100.74227142333984, 101.85489056967374),
];

const TIES: [(f64, f64, f64); 7] = [
    (0.5, 2.5, 49.79991440627185),
    (0.9, 79.90899658203125, 89.61599169038615),
    (0.95, 90.28600311279297, 94.62045917133557),
    (0.975, 94.33999633789062, 96.83529450810958),
    (0.99, 97.12999725341797, 98.53767468065303),
    (0.995, 98.53299713134766, 99.2691975619682),
    (0.999, 99.75399780273438, 99.88212222202812),
];

fn check(xs: &[f32], expected: &[(f64, f64, f64)]) {
    let mut sorted: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
    sorted.sort_by(f64::total_cmp);
    let n = xs.len() as u64;
    for &(q, var, es) in expected {
        assert_eq!(value_at_risk(&sorted, q), var, "VaR at q = {q}");
        let got = expected_shortfall(&sorted, q);
        assert!(
            (got - es).abs() <= 1e-12 * es.abs(),
            "ES at q = {q}: got {got}, want {es}"
        );
        // The streaming keeper, fed in uneven blocks and chunks, agrees.
        let mut keeper = TailKeeper::new_upper(n, q);
        for block in xs.chunks(1000) {
            let mut b = TailKeeper::new_upper(n, q);
            for chunk in block.chunks(333) {
                b.push(chunk);
            }
            keeper.merge(&b);
        }
        let e = keeper.estimate().expect("all samples in");
        assert_eq!(e.value_at_risk, var, "keeper VaR at q = {q}");
        let kes = e.expected_shortfall.unwrap();
        assert!((kes - es).abs() <= 1e-12 * es.abs(), "keeper ES at q = {q}");
        assert!(kes >= var);
    }
}

#[test]
fn var_es_match_numpy_reference_with_atoms() {
    check(&data_atoms(10_007), &ATOMS);
}

#[test]
fn var_es_match_numpy_reference_with_ties() {
    check(&data_ties(5003), &TIES);
}
