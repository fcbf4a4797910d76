//! Tests of observed data: readers and their diagnostics, fitting against
//! known truths, abduction and replay against closed forms, and the shipped
//! lending example's data (regenerated bit for bit; `WHATIF_BLESS=1`
//! rewrites it).

use std::path::{Path, PathBuf};

use whatif_data::backtest::{self, BacktestManifest, BacktestOptions, RowSink};
use whatif_data::fit::{self, FitOptions};
use whatif_data::simulate::{PeriodSpec, simulate_csv};
use whatif_data::{DataError, DataSource};
use whatif_lang::CausalModel;

fn model(src: &str) -> CausalModel {
    match whatif_lang::compile(src) {
        Ok(m) => m,
        Err(d) => panic!("{}", whatif_lang::render_diagnostics(&d, "t.toml", src)),
    }
}

fn with_data(nodes: &str, extra: &str) -> String {
    format!(
        "[scenario]\nname = \"t\"\nseed = 7\n\n[nodes]\n{nodes}\n{extra}\n[data]\npath = \"d.csv\"\nperiod = \"period\"\nunit = \"unit\"\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn one_period(rows: usize, params: &[(&str, f64)]) -> Vec<PeriodSpec> {
    vec![PeriodSpec {
        label: "p1".into(),
        rows,
        params: params.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
    }]
}

/// Simulates `rows` rows of `m` with the given true params into d.csv.
fn simulate(m: &CausalModel, dir: &Path, periods: &[PeriodSpec], seed: u64) -> DataSource {
    let csv = simulate_csv(m, periods, seed, "unit", "period");
    let p = write(dir, "d.csv", &csv);
    DataSource::open_path(m, &p, "d.csv").expect("opens")
}

fn assert_within_3se(res: &fit::FitResult, truth: &[(&str, f64)]) {
    for (name, t) in truth {
        let p = res
            .params
            .iter()
            .find(|p| p.name == *name)
            .unwrap_or_else(|| panic!("no estimate for {name}"));
        assert!(
            (p.estimate - t).abs() <= 3.0 * p.std_error,
            "?{name}: estimate {} ± {} vs truth {t}",
            p.estimate,
            p.std_error
        );
        assert!(p.std_error > 0.0 && p.std_error.is_finite());
    }
}

#[test]
fn least_squares_recovers_known_parameters() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"?a + ?b * x + normal(0, ?sigma)\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?a", 1.0), ("?b", 2.0), ("?sigma", 0.5)];
    let src = simulate(&m, dir.path(), &one_period(4000, &truth), 11);
    let res = fit::fit(&m, &src, &FitOptions::default()).expect("fits");
    assert_eq!(res.rows, 4000);
    assert_eq!(res.nodes[0].method, "least_squares");
    assert_within_3se(&res, &[("a", 1.0), ("b", 2.0), ("sigma", 0.5)]);
}

#[test]
fn logistic_irls_recovers_known_parameters() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\nd = \"bernoulli(sigmoid(?c0 + ?c1 * x))\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [("?c0", -1.0), ("?c1", 1.5)];
    let src = simulate(&m, dir.path(), &one_period(5000, &truth), 12);
    let res = fit::fit(&m, &src, &FitOptions::default()).expect("fits");
    assert_eq!(res.nodes[0].method, "logistic_irls");
    assert!(res.nodes[0].iterations > 1 && res.nodes[0].iterations < 30);
    assert_within_3se(&res, &[("c0", -1.0), ("c1", 1.5)]);
}

#[test]
fn fit_refuses_mechanisms_it_cannot_estimate() {
    for (nodes, node, needle) in [
        (
            "x = \"normal(0, 1)\"\ny = \"exp(?a * x) + normal(0, 1)\"",
            "y",
            "not linear",
        ),
        (
            "x = \"normal(0, 1)\"\ny = \"?a * x + laplace(0, 1)\"",
            "y",
            "normal",
        ),
        (
            "u = { expr = \"normal(0, 1)\", latent = true }\ny = \"?a * u + normal(0, 1)\"",
            "y",
            "latent",
        ),
    ] {
        let m = model(&with_data(nodes, ""));
        match fit::check_fittable(&m, &FitOptions::default()).and_then(|_| {
            let dir = tempfile::tempdir().expect("tmp");
            let src = simulate(&m, dir.path(), &one_period(50, &[("?a", 1.0)]), 1);
            fit::fit(&m, &src, &FitOptions::default()).map(|_| ())
        }) {
            Err(DataError::CannotFit { node: n, reason }) => {
                assert_eq!(n, node);
                assert!(reason.contains(needle), "{reason}");
            }
            other => panic!("{nodes}: expected CannotFit, got {other:?}"),
        }
    }
}

/// Collects `--rows-out` rows in memory.
#[derive(Default)]
struct Rows {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl RowSink for Rows {
    fn header(&mut self, c: &[String]) -> Result<(), DataError> {
        self.header = c.to_vec();
        Ok(())
    }
    fn row(&mut self, _: u64, _: &str, _: &str, v: &[f64]) -> Result<(), DataError> {
        self.rows.push(v.to_vec());
        Ok(())
    }
    fn finish(&mut self) -> Result<(), DataError> {
        Ok(())
    }
}

fn run_backtest(
    m: &CausalModel,
    src: &DataSource,
    policy: &str,
    draws: u32,
    rows: &mut Rows,
) -> backtest::BacktestReport {
    let opts = BacktestOptions {
        policy: policy.into(),
        draws,
        seed: 99,
        chunk_rows: 333,
        ..BacktestOptions::default()
    };
    backtest::backtest(m, src, &opts, BacktestManifest::default(), Some(rows)).expect("backtest")
}

#[test]
fn additive_noise_counterfactuals_equal_the_closed_form_per_row() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"1 + 2 * x + normal(0, 0.5)\"\nz = \"3 * y - x + normal(0, 1)\"\nw = \"exp(0.1 * z + normal(0, 0.2))\"",
        "[interventions]\nshift = { x = \"x + 1\" }\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(1000, &[]), 3);
    let mut rows = Rows::default();
    let r = run_backtest(&m, &src, "shift", 5, &mut rows);
    assert_eq!(r.nodes, ["x", "y", "z", "w"]);
    assert!(r.abduction.iter().all(|a| a.interval_rows == 0));
    // Columns: per node observed, counterfactual, lo, hi.
    for row in &rows.rows {
        let (x, y, z, w) = (row[0], row[4], row[8], row[12]);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(row[1], x + 1.0));
        assert!(close(row[5], y + 2.0), "y {} vs {}", row[5], y + 2.0);
        assert!(close(row[9], z + 5.0));
        // Multiplicative noise: w' = w · exp(0.1 · 5).
        assert!(close(row[13], w * (0.5f64).exp()));
        // Point-identified: the interval is the point.
        assert!(close(row[6], row[5]) && close(row[7], row[5]));
    }
    let o = &r.overall.nodes[1];
    assert!((o.difference - 2.0).abs() < 1e-9 && o.mc_se == 0.0);
    // A correct model: no flagged noise diagnostics at this seed.
    assert!(
        r.noise.residuals.iter().all(|x| !x.flagged),
        "{:?}",
        r.noise
    );
    assert!(
        r.noise.correlations.iter().all(|x| !x.flagged),
        "{:?}",
        r.noise
    );
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn bernoulli_counterfactual_rate_matches_the_analytic_value() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\nd = \"bernoulli(sigmoid(-1 + x))\"",
        "[interventions]\nshift = { x = \"x + 1\" }\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(2000, &[]), 5);
    let mut rows = Rows::default();
    let r = run_backtest(&m, &src, "shift", 400, &mut rows);
    // Given the row, U ~ U(0, p) if d = 1 (then d' = 1 since p' > p), else
    // U ~ U(p, 1) and d' = 1 with probability (p' − p)/(1 − p).
    let mut analytic = 0.0;
    for row in &rows.rows {
        let (x, d) = (row[0], row[4]);
        let (p, p2) = (sigmoid(-1.0 + x), sigmoid(x));
        analytic += if d == 1.0 { 1.0 } else { (p2 - p) / (1.0 - p) };
    }
    analytic /= rows.rows.len() as f64;
    let o = r.overall.nodes.iter().find(|n| n.node == "d").expect("d");
    assert!(o.mc_se > 0.0);
    assert!(
        (o.counterfactual - analytic).abs() < 4.0 * o.mc_se,
        "cf rate {} vs analytic {analytic} (MC SE {})",
        o.counterfactual,
        o.mc_se
    );
    assert!(o.counterfactual_lo <= analytic && analytic <= o.counterfactual_hi);
    // Observed ones stay ones in every draw (monotone policy).
    for row in &rows.rows {
        if row[4] == 1.0 {
            assert_eq!(row[6], 1.0);
        }
    }
}

#[test]
fn fresh_noise_in_a_policy_is_drawn_from_its_prior() {
    // `y + normal(0, 2)` in an edit is new randomness (its own site): the
    // counterfactual mean moves by 0 in expectation, with MC error.
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"x + normal(0, 1)\"",
        "[interventions]\njitter = { y = \"y + normal(0, 2)\" }\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(400, &[]), 4);
    let mut rows = Rows::default();
    let r = run_backtest(&m, &src, "jitter", 200, &mut rows);
    let o = r.overall.nodes.iter().find(|n| n.node == "y").expect("y");
    assert!(o.mc_se > 0.0);
    // sd of the period mean over draws: 2 / √400 = 0.1; its mean over 200
    // draws has SE 0.1 / √200.
    assert!((o.mc_se - 0.1 / 200f64.sqrt()).abs() < 0.003, "{o:?}");
    assert!(o.difference.abs() < 4.0 * o.mc_se, "{o:?}");
    assert!(o.difference_lo < 0.0 && o.difference_hi > 0.0);
}

#[test]
fn latent_parents_are_conditioned_exactly() {
    // u latent ~ N(0, 1); x = u + e_x; y = x·u + e_y (linear in u given x).
    // Given a row, u | x, y is normal with precision 2 + x² and mean
    // (x + x·y) / (2 + x²); under do(x = 0), y' = e_y = y − x·u, so
    // E[y' | row] = y − x·E[u | row].
    let m = model(&with_data(
        "u = { expr = \"normal(0, 1)\", latent = true }\nx = \"u + normal(0, 1)\"\ny = \"x * u + normal(0, 1)\"",
        "[interventions]\nzero = { x = \"0\" }\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(500, &[]), 6);
    let mut rows = Rows::default();
    let r = run_backtest(&m, &src, "zero", 300, &mut rows);
    assert_eq!(r.nodes, ["x", "y"]);
    let mut analytic = 0.0;
    for row in &rows.rows {
        let (x, y) = (row[0], row[4]);
        analytic += y - x * (x + x * y) / (2.0 + x * x);
    }
    analytic /= rows.rows.len() as f64;
    let o = r.overall.nodes.iter().find(|n| n.node == "y").expect("y");
    assert!(
        (o.counterfactual - analytic).abs() < 4.0 * o.mc_se,
        "cf {} vs analytic {analytic} (MC SE {})",
        o.counterfactual,
        o.mc_se
    );
    // Sampling u from its prior would give E[y' | row] = y (E[u] = 0); the
    // posterior answer is far from that.
    let prior_answer: f64 = rows.rows.iter().map(|r| r[4]).sum::<f64>() / rows.rows.len() as f64;
    assert!((analytic - prior_answer).abs() > 10.0 * o.mc_se);
    assert!(
        r.noise.residuals.iter().all(|x| !x.flagged),
        "{:?}",
        r.noise
    );
}

/// Rows are abducted in parallel and taken in file order: the report
/// and the per-row output are identical for 1 and 3 threads and small
/// batches (a latent posterior and bernoulli intervals make every row
/// draw).
#[test]
fn reports_do_not_depend_on_threads_or_batches() {
    let m = model(&with_data(
        "u = { expr = \"normal(0, 1)\", latent = true }\nx = \"u + normal(0, 1)\"\nd = \"bernoulli(sigmoid(x))\"\ny = \"x * u + d + normal(0, 1)\"",
        "[interventions]\nshift = { x = \"x + 1\" }\n\n[metrics]\nmy = \"mean(y)\"\nq = \"quantile(y, 0.9)\"\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(700, &[]), 8);
    let run = |threads: usize, batch_lanes: usize| {
        let opts = BacktestOptions {
            policy: "shift".into(),
            draws: 30,
            seed: 4,
            chunk_rows: 250,
            threads,
            batch_lanes,
        };
        let mut rows = Rows::default();
        let mut r = backtest::backtest(
            &m,
            &src,
            &opts,
            BacktestManifest::default(),
            Some(&mut rows),
        )
        .expect("backtest");
        r.manifest.wall_seconds = 0.0;
        (serde_json::to_string(&r).expect("json"), rows.rows)
    };
    let one = run(1, 1 << 18);
    assert_eq!(one, run(3, 1 << 18));
    assert_eq!(one, run(3, 100));
}

#[test]
fn censored_max_is_interval_identified() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"max(x + normal(0, 1), 0)\"",
        "[interventions]\nshift = { x = \"x + 1\" }\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(500, &[]), 8);
    let mut rows = Rows::default();
    let r = run_backtest(&m, &src, "shift", 50, &mut rows);
    let a = r.abduction.iter().find(|a| a.node == "y").expect("y");
    assert!(a.interval_rows > 100 && a.point_rows > 100, "{a:?}");
    for row in &rows.rows {
        let (y, y2, lo, hi) = (row[4], row[5], row[6], row[7]);
        if y > 0.0 {
            assert!((y2 - (y + 1.0)).abs() < 1e-9);
        } else {
            // Noise below −x: the counterfactual lies in [0, 1].
            assert!(
                (0.0..=1.0).contains(&lo)
                    && (0.0..=1.0).contains(&hi)
                    && (0.0..=1.0).contains(&y2)
                    && lo <= hi,
                "row {row:?}"
            );
        }
    }
}

#[test]
fn models_that_cannot_be_abducted_are_refused_naming_the_node() {
    for (nodes, node, needle) in [
        (
            "x = \"normal(0, 1)\"\ny = \"x + normal(0, 1) + normal(0, 2)\"",
            "y",
            "2 noises",
        ),
        ("x = \"gamma(2, 1)\"", "x", "gamma"),
        (
            "x = \"normal(0, 1)\"\ny = \"abs(x + normal(0, 1))\"",
            "y",
            "abs",
        ),
        (
            "u = { expr = \"uniform(0, 1)\", latent = true }\ny = \"u + normal(0, 1)\"",
            "u",
            "linear-Gaussian",
        ),
        (
            "u = { expr = \"normal(0, 1)\", latent = true }\ny = \"bernoulli(sigmoid(u))\"",
            "y",
            "linear-Gaussian",
        ),
    ] {
        let m = model(&with_data(
            nodes,
            &format!("[interventions]\np = {{ {node} = \"1\" }}\n"),
        ));
        match whatif_data::abduct::plan(&m) {
            Err(DataError::CannotAbduct { node: n, reason }) => {
                assert_eq!(n, node, "{nodes}");
                assert!(reason.contains(needle), "{reason}");
            }
            other => panic!("{nodes}: {other:?}"),
        }
    }
}

#[test]
fn holdout_coverage_and_calibration() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"?a + ?b * x + normal(0, ?s)\"\nd = \"bernoulli(sigmoid(?c * y))\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let truth = vec![
        ("?a".to_string(), 0.5),
        ("?b".to_string(), 1.0),
        ("?s".to_string(), 1.0),
        ("?c".to_string(), 1.0),
    ];
    let periods: Vec<PeriodSpec> = ["q1", "q2", "q3"]
        .iter()
        .map(|l| PeriodSpec {
            label: l.to_string(),
            rows: 1000,
            params: truth.clone(),
        })
        .collect();
    let src = simulate(&m, dir.path(), &periods, 21);
    let keep = |p: &str| p != "q3";
    let res = fit::fit(
        &m,
        &src,
        &FitOptions {
            chunk_rows: None,
            use_period: Some(&keep),
            mle: None,
        },
    )
    .expect("fits");
    assert_eq!(res.rows, 2000);
    let mut fitted = m.clone();
    res.apply(&mut fitted);
    let h =
        backtest::holdout(&fitted, &src, &["q3".into()], 400, 1, res.rows, 1000).expect("holdout");
    assert_eq!(h.rows, 1000);
    let y = h.nodes.iter().find(|n| n.node == "y").expect("y");
    let cov = y.coverage90.expect("continuous");
    // 1000 rows: binomial SE of 90% coverage ≈ 0.0095.
    assert!((cov - 0.9).abs() < 0.04, "coverage {cov}");
    let d = h.nodes.iter().find(|n| n.node == "d").expect("d");
    let cal = d.calibration.as_ref().expect("binary");
    assert!(cal.iter().map(|b| b.n).sum::<u64>() == 1000);
    assert!(d.mean_error.abs() < 0.05);
}

#[test]
fn bad_data_gives_diagnostics_not_panics() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"2 * x + normal(0, 1)\"\nu = { expr = \"normal(0, 1)\", latent = true }",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let open = |text: &str| {
        let p = write(dir.path(), "d.csv", text);
        DataSource::open_path(&m, &p, "d.csv").and_then(|s| s.for_each_chunk(2, |_| Ok(())))
    };
    let read_all = |text: &str| {
        let p = write(dir.path(), "d.csv", text);
        let s = DataSource::open_path(&m, &p, "d.csv")?;
        s.for_each_chunk(2, |c| whatif_data::table::require_observed(&s, &m, c))
    };
    match open("unit,period,x\n1,a,0.5\n") {
        Err(e @ DataError::MissingColumn { .. }) => {
            assert!(e.to_string().contains("missing column `y`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match open("unit,period,x,y\n1,a,0.5,1\n2,a,0.1,1\n3,a,abc,2\n") {
        Err(DataError::NonNumeric {
            row, column, value, ..
        }) => {
            assert_eq!((row, column.as_str(), value.as_str()), (4, "x", "abc"));
        }
        other => panic!("{other:?}"),
    }
    match open("unit,period,x,y\n") {
        Err(e @ DataError::Empty { .. }) => assert_eq!(e.code(), "whatif::data::empty"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(open(""), Err(DataError::Empty { .. })));
    match read_all("unit,period,x,y\n1,a,0.5,1\n2,a,,1\n") {
        Err(e @ DataError::MissingValue { .. }) => {
            assert!(e.to_string().contains("d.csv:3: column `x`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match open("unit,period,x,y,u\n1,a,0.5,1,3\n") {
        Err(DataError::LatentHasColumn { node, .. }) => assert_eq!(node, "u"),
        other => panic!("{other:?}"),
    }
    match open("unit,period,x,y\n1,a,0.5\n") {
        Err(e @ DataError::Format { .. }) => assert!(e.to_string().contains("d.csv"), "{e}"),
        other => panic!("{other:?}"),
    }
    let missing = DataSource::open_path(&m, &dir.path().join("nope.csv"), "nope.csv");
    assert!(matches!(missing, Err(DataError::Io { .. })));
    // A model without [data].
    let bare = model("[nodes]\nx = \"normal(0, 1)\"\n");
    assert!(matches!(
        DataSource::open(&bare, dir.path()),
        Err(DataError::NoDataSection)
    ));
}

#[test]
fn parquet_reads_like_csv() {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"?a + ?b * x + normal(0, ?s)\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let n = 3000;
    let x: Vec<f64> = (0..n)
        .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
        .collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, x)| 1.0 + 3.0 * x + if i % 2 == 0 { 0.1 } else { -0.1 })
        .collect();
    let batch = RecordBatch::try_from_iter([
        (
            "unit",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        (
            "period",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("p{}", i % 3)),
            )) as ArrayRef,
        ),
        ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
        ("y", Arc::new(Float64Array::from(y)) as ArrayRef),
    ])
    .expect("batch");
    let path = dir.path().join("d.parquet");
    let f = std::fs::File::create(&path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let src = DataSource::open_path(&m, &path, "d.parquet").expect("opens");
    let mut chunks = 0;
    let rows = src
        .for_each_chunk(1000, |c| {
            chunks += 1;
            assert_eq!(c.period.as_ref().expect("period").len(), c.n_rows);
            Ok(())
        })
        .expect("reads");
    assert_eq!((rows, chunks), (3000, 3));
    let res = fit::fit(&m, &src, &FitOptions::default()).expect("fits");
    let b = res.params.iter().find(|p| p.name == "b").expect("b");
    assert!((b.estimate - 3.0).abs() < 1e-3, "{b:?}");
    // A non-numeric Parquet column is a diagnostic too.
    let bad = RecordBatch::try_from_iter([
        (
            "unit",
            Arc::new(Int64Array::from_iter_values(0..2)) as ArrayRef,
        ),
        (
            "period",
            Arc::new(StringArray::from(vec!["a", "a"])) as ArrayRef,
        ),
        (
            "x",
            Arc::new(StringArray::from(vec!["1.5", "oops"])) as ArrayRef,
        ),
        (
            "y",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let f = std::fs::File::create(&path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, bad.schema(), None).expect("writer");
    w.write(&bad).expect("write");
    w.close().expect("close");
    let src = DataSource::open_path(&m, &path, "d.parquet").expect("opens");
    match src.for_each_chunk(10, |_| Ok(())) {
        Err(DataError::NonNumeric { row, value, .. }) => {
            assert_eq!((row, value.as_str()), (2, "oops"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_locks_are_refused() {
    use whatif_data::lock::{FitLock, LockedParam};
    let l = FitLock {
        version: 1,
        engine_version: "0".into(),
        scenario: "s.toml".into(),
        scenario_sha256: "a".repeat(64),
        data: "d.csv".into(),
        data_sha256: "b".repeat(64),
        rows: 10,
        created: "now".into(),
        nodes: vec![],
        params: vec![LockedParam {
            name: "a".into(),
            node: "y".into(),
            estimate: 1.5,
            std_error: 0.1,
        }],
    };
    let text = l.render();
    let back = FitLock::parse(&text, "s.fit.lock").expect("round trip");
    assert_eq!(back, l);
    assert!(
        back.check("l", &"a".repeat(64), Some(&"b".repeat(64)), false)
            .expect("fresh")
            .is_empty()
    );
    assert!(matches!(
        back.check("l", &"c".repeat(64), Some(&"b".repeat(64)), false),
        Err(DataError::StaleLock { .. })
    ));
    assert!(matches!(
        back.check("l", &"a".repeat(64), Some(&"c".repeat(64)), false),
        Err(DataError::StaleLock { .. })
    ));
    assert_eq!(
        back.check("l", &"a".repeat(64), Some(&"c".repeat(64)), true)
            .expect("tolerated")
            .len(),
        1
    );
    let mut m = model("[nodes]\nx = \"normal(0, 1)\"\ny = \"?a * x + normal(0, 1)\"\n");
    back.apply(&mut m, "l").expect("applies");
    assert_eq!(m.params[0].value, 1.5);
    let mut other = model("[nodes]\nx = \"normal(0, 1)\"\ny = \"?z * x + normal(0, 1)\"\n");
    assert!(matches!(
        back.apply(&mut other, "l"),
        Err(DataError::BadLock { .. })
    ));
}

/// True parameters of the shipped lending example.
pub fn lending_truth() -> Vec<(String, f64)> {
    [
        ("?u_sd", 0.01),
        ("?s_mean", 680.0),
        ("?s_sd", 50.0),
        ("?l0", 500.0),
        ("?l1", 0.08),
        ("?l2", 5.0),
        ("?l_sd", 800.0),
        ("?d0", -4.5),
        ("?d1", 2.0),
        ("?d2", 4.0),
        ("?d3", 15.0),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), *v))
    .collect()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped `scenarios/lending_backtest.csv` is what this generator
/// gives (8 quarters × 250 loans, unemployment drifting by quarter);
/// `WHATIF_BLESS=1` rewrites it.
#[test]
fn shipped_lending_data_is_reproducible() {
    let root = repo_root();
    let src =
        std::fs::read_to_string(root.join("scenarios/lending_backtest.toml")).expect("scenario");
    let m = model(&src);
    let quarters = [
        ("2023Q1", 0.045),
        ("2023Q2", 0.047),
        ("2023Q3", 0.050),
        ("2023Q4", 0.055),
        ("2024Q1", 0.060),
        ("2024Q2", 0.058),
        ("2024Q3", 0.052),
        ("2024Q4", 0.048),
    ];
    let periods: Vec<PeriodSpec> = quarters
        .iter()
        .map(|(q, u)| {
            let mut params = lending_truth();
            params.push(("?u_mean".into(), *u));
            PeriodSpec {
                label: q.to_string(),
                rows: 250,
                params,
            }
        })
        .collect();
    let csv = simulate_csv(&m, &periods, 2026, "loan_id", "quarter");
    assert!(csv.len() < 1 << 20, "shipped data must stay under 1 MB");
    let path = root.join("scenarios/lending_backtest.csv");
    if std::env::var_os("WHATIF_BLESS").is_some() {
        std::fs::write(&path, &csv).expect("bless");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == csv,
        "scenarios/lending_backtest.csv differs from the generator; rerun with WHATIF_BLESS=1"
    );
    // The fit recovers the truth within 3 SE (the period-varying
    // unemployment mean is fitted as one mean, so it is not compared).
    let ds = DataSource::open(&m, &root.join("scenarios")).expect("opens");
    let res = fit::fit(&m, &ds, &FitOptions::default()).expect("fits");
    let truth: Vec<(String, f64)> = lending_truth()
        .into_iter()
        .filter(|(n, _)| n != "?u_sd")
        .map(|(n, v)| (n[1..].to_string(), v))
        .collect();
    let t: Vec<(&str, f64)> = truth.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_within_3se(&res, &t);
}

// ---- Tail metrics and corr in backtests (quantile sketch) ----

use whatif_data::sketch::{QuantileSketch, RELATIVE_ACCURACY};

/// The sketch's bound with a little slack for the rounding of ln/exp.
const ALPHA: f64 = RELATIVE_ACCURACY * (1.0 + 1e-9);

/// Acerbi–Tasche tail mean of |X| at level q over a sorted sample: the
/// scale of the sketch's expected-shortfall error bound (α times this).
fn abs_tail_mean(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len() as f64;
    let k = whatif_stats::tail::TailRanks::new(sorted.len() as u64, q).quantile as usize;
    let above: f64 = sorted[k..].iter().map(|x| x.abs()).sum();
    (above + (k as f64 - n * q) * sorted[k - 1].abs()) / (n - n * q)
}

/// Checks a sketch of `values` against the exact order statistics.
fn assert_sketch_matches_exact(values: &[f64], sketch: &QuantileSketch) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sketch.count(), values.len() as u64);
    for q in [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999] {
        let exact = whatif_stats::tail::quantile(&sorted, q);
        let est = sketch.quantile(q);
        assert!(
            (est - exact).abs() <= ALPHA * exact.abs(),
            "quantile {q}: sketch {est} vs exact {exact}"
        );
        let es = whatif_stats::tail::expected_shortfall(&sorted, q);
        let es_est = sketch.expected_shortfall(q);
        assert!(
            (es_est - es).abs() <= ALPHA * abs_tail_mean(&sorted, q) + 1e-12 * es.abs(),
            "ES {q}: sketch {es_est} vs exact {es}"
        );
    }
}

#[test]
fn sketch_quantiles_and_shortfall_are_within_the_stated_accuracy() {
    use whatif_data::backtest::uniform;
    use whatif_stats::special::normal_ppf;
    // 100k normal values with mean −1 and sd 3 (both signs), 2% exact zeros
    // and a few huge and tiny magnitudes.
    let mut values: Vec<f64> = (0..100_000u64)
        .map(|i| {
            if i % 50 == 0 {
                0.0
            } else {
                -1.0 + 3.0 * normal_ppf(uniform(11, 1, i, 0))
            }
        })
        .collect();
    values.extend([1e-12, -1e-9, 4e7, -2e6]);
    let mut whole = QuantileSketch::new();
    for &v in &values {
        whole.add(v);
    }
    assert_sketch_matches_exact(&values, &whole);
    // Merging sketches of two parts (in either order) gives the same
    // estimates as one sketch of everything.
    let (a, b) = values.split_at(37_123);
    let (mut sa, mut sb) = (QuantileSketch::new(), QuantileSketch::new());
    a.iter().for_each(|&v| sa.add(v));
    b.iter().for_each(|&v| sb.add(v));
    let mut ab = sa.clone();
    ab.merge(&sb);
    sb.merge(&sa);
    for q in [0.01, 0.5, 0.9, 0.99] {
        assert_eq!(ab.quantile(q), whole.quantile(q));
        assert_eq!(sb.quantile(q), whole.quantile(q));
        let (x, y) = (ab.expected_shortfall(q), whole.expected_shortfall(q));
        assert!((x - y).abs() <= 1e-12 * y.abs(), "{x} vs {y}");
    }
    // Positive losses with an atom at zero (95% zeros): VaR 0.9 is 0 and ES
    // weights the zeros in the tail, as the exact definition does.
    let losses: Vec<f64> = (0..20_000u64)
        .map(|i| {
            let u = uniform(12, 2, i, 0);
            if u < 0.95 {
                0.0
            } else {
                100.0 * (1.0 - u).ln().abs()
            }
        })
        .collect();
    let mut s = QuantileSketch::new();
    losses.iter().for_each(|&v| s.add(v));
    assert_eq!(s.quantile(0.9), 0.0);
    assert_sketch_matches_exact(&losses, &s);
}

#[test]
fn sketch_edge_cases_constants_nan_and_empty() {
    let mut c = QuantileSketch::new();
    for _ in 0..1000 {
        c.add(-4.25);
    }
    // Representatives are clamped to [min, max]: a constant is exact.
    assert_eq!(c.quantile(0.3), -4.25);
    assert_eq!(c.expected_shortfall(0.99), -4.25);
    assert!(QuantileSketch::new().quantile(0.5).is_nan());
    c.add(f64::NAN);
    assert!(c.quantile(0.5).is_nan() && c.expected_shortfall(0.5).is_nan());
    let mut inf = QuantileSketch::new();
    (0..99).for_each(|i| inf.add(f64::from(i)));
    inf.add(f64::INFINITY);
    assert_eq!(inf.quantile(0.999), f64::INFINITY);
    assert!((inf.quantile(0.5) - 49.0).abs() <= ALPHA * 49.0);
}

/// The `name` column of the generated d.csv.
fn csv_column(dir: &Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("d.csv")).expect("d.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let c = header.iter().position(|h| *h == name).expect("column");
    lines
        .map(|l| l.split(',').nth(c).expect("cell").parse().expect("number"))
        .collect()
}

fn metric<'a>(r: &'a backtest::BacktestReport, name: &str) -> &'a backtest::MetricResult {
    r.metrics.iter().find(|m| m.name == name).expect("metric")
}

/// |a − b| within the sketch's error of each side (a relative α each).
fn within_sketch(a: f64, b: f64) -> bool {
    (a - b).abs() <= ALPHA * (a.abs() + b.abs())
}

const TAIL_METRICS: &str = "[metrics]\nq10 = \"quantile(y, 0.1)\"\nq90 = \"quantile(y, 0.9)\"\nvar95 = \"value_at_risk(y, 0.95)\"\nes95 = \"expected_shortfall(y, 0.95)\"\nrho = \"corr(x, y)\"\n";

#[test]
fn tail_metrics_and_corr_shift_and_scale_with_the_policy() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"x + normal(0, 1)\"",
        &format!(
            "[interventions]\nshift = {{ y = \"y + 2\" }}\nscale = {{ y = \"3 * y\" }}\n\n{TAIL_METRICS}"
        ),
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(5000, &[]), 21);
    let mut ys = csv_column(dir.path(), "y");
    ys.sort_by(f64::total_cmp);
    let exact = |name: &str| match name {
        "q10" => whatif_stats::tail::quantile(&ys, 0.1),
        "q90" => whatif_stats::tail::quantile(&ys, 0.9),
        "var95" => whatif_stats::tail::value_at_risk(&ys, 0.95),
        _ => whatif_stats::tail::expected_shortfall(&ys, 0.95),
    };
    let shift = run_backtest(&m, &src, "shift", 20, &mut Rows::default());
    let scale = run_backtest(&m, &src, "scale", 20, &mut Rows::default());
    for name in ["q10", "q90", "var95", "es95"] {
        for (r, f) in [
            (&shift, &(|v: f64| v + 2.0) as &dyn Fn(f64) -> f64),
            (&scale, &|v: f64| 3.0 * v),
        ] {
            let mr = metric(r, name);
            let (o, c) = (mr.observed.expect("obs"), mr.counterfactual.expect("cf"));
            // Observed: the exact order statistic within the sketch's bound
            // (the tails at 0.9 and 0.95 are all positive, so the ES bound
            // is a relative α too).
            assert!(
                within_sketch(o, exact(name)),
                "{name}: {o} vs exact {}",
                exact(name)
            );
            // Counterfactual: y' = f(y) per row with f increasing, so the
            // order statistic moves through f (each side within α).
            let want = f(exact(name));
            assert!(within_sketch(c, want), "{name} {}: {c} vs {want}", r.policy);
            assert!(within_sketch(mr.difference.expect("diff"), c - o));
            // Point-identified: every draw agrees.
            assert_eq!(mr.mc_se, Some(0.0));
            assert_eq!(mr.counterfactual_lo, mr.counterfactual_hi);
            assert_eq!(mr.note, None);
        }
    }
    // Pearson correlation is invariant under a shift or a positive scale.
    for r in [&shift, &scale] {
        let rho = metric(r, "rho");
        let (o, c) = (rho.observed.expect("obs"), rho.counterfactual.expect("cf"));
        assert!((o - 0.5f64.sqrt()).abs() < 0.03, "corr(x, y) = {o}");
        assert!((c - o).abs() < 1e-9, "{c} vs {o}");
    }
}

#[test]
fn tail_metrics_merge_point_and_interval_identified_rows() {
    // y = max(x + e, −1): rows at −1 are interval-identified (drawn per
    // draw), the rest are point-identified (kept once for every draw).
    // Under x + 1 the uncensored rows move by exactly +1 and the censored
    // ones stay ≤ 0, so the upper tail is the observed one + 1 in every
    // draw, while the mean and corr vary over draws.
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"max(x + normal(0, 1), -1)\"",
        &format!(
            "[interventions]\nshift = {{ x = \"x + 1\" }}\n\n{TAIL_METRICS}q05 = \"quantile(y, 0.05)\"\n"
        ),
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(4000, &[]), 22);
    let r = run_backtest(&m, &src, "shift", 40, &mut Rows::default());
    let a = r.abduction.iter().find(|a| a.node == "y").expect("y");
    assert!(a.interval_rows > 500 && a.point_rows > 2000, "{a:?}");
    for name in ["q90", "var95", "es95"] {
        let mr = metric(&r, name);
        let (o, c) = (mr.observed.expect("obs"), mr.counterfactual.expect("cf"));
        assert!(within_sketch(c, o + 1.0), "{name}: {c} vs {o} + 1");
        let (lo, hi) = (
            mr.counterfactual_lo.expect("lo"),
            mr.counterfactual_hi.expect("hi"),
        );
        assert!(within_sketch(lo, c) && within_sketch(hi, c), "{mr:?}");
    }
    // The lower tail: ~24% of rows are censored at −1 and ~8% (x + e ≤ −2)
    // stay there under the policy, so the 5% quantile is −1 before and
    // after, in every draw.
    let q05 = metric(&r, "q05");
    assert!(within_sketch(q05.observed.expect("obs"), -1.0), "{q05:?}");
    assert!(
        within_sketch(q05.counterfactual.expect("cf"), -1.0),
        "{q05:?}"
    );
    assert_eq!(q05.mc_se, Some(0.0), "{q05:?}");
    // corr is computed per draw: it varies (MC error > 0) and rises with
    // the policy's shift out of the censored region.
    let rho = metric(&r, "rho");
    assert!(rho.mc_se.expect("se") > 0.0, "{rho:?}");
    assert!(
        rho.counterfactual.expect("cf") > rho.observed.expect("obs"),
        "{rho:?}"
    );
    assert!(rho.counterfactual_lo.expect("lo") < rho.counterfactual_hi.expect("hi"));
}

#[test]
fn checks_on_value_at_risk_pass_and_fail() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"x + normal(0, 1)\"",
        "[interventions]\nshift = { y = \"y + 2\" }\n\n[metrics]\nvar95 = \"value_at_risk(y, 0.95)\"\nes95 = \"expected_shortfall(y, 0.95)\"\n\n[[checks]]\nname = \"var moves by about two\"\nexpect = \"abs(var95[shift] - var95 - 2) < 0.05\"\n\n[[checks]]\nname = \"var moves by under one\"\nexpect = \"var95[shift] - var95 < 1\"\n\n[[checks]]\nname = \"es above var\"\nexpect = \"es95[shift] > var95[shift]\"\n",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let src = simulate(&m, dir.path(), &one_period(2000, &[]), 23);
    let r = run_backtest(&m, &src, "shift", 10, &mut Rows::default());
    let status: Vec<(&str, &str)> = r
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("var moves by about two", "pass"),
            ("var moves by under one", "fail"),
            ("es above var", "pass")
        ]
    );
    assert!(!r.passed());
}

/// What the solver double saw: node, params, rows, batches, and the
/// reference objective at 0.5 for every param.
type Seen = (String, Vec<String>, usize, usize, f64);

/// A solver double: records what `fit` hands it and returns fixed values.
struct Recorder {
    seen: std::cell::RefCell<Vec<Seen>>,
}

impl whatif_data::mle::MleSolver for Recorder {
    fn name(&self) -> String {
        "recorder".into()
    }

    fn solve(
        &self,
        problem: &whatif_data::mle::MleProblem,
        rows: &mut dyn whatif_data::mle::RowSource,
    ) -> Result<whatif_data::mle::MleFit, DataError> {
        let (mut n, mut batches, mut nll) = (0, 0, 0.0);
        let truth: Vec<f64> = problem.params.iter().map(|_| 0.5).collect();
        rows.for_each_batch(&mut |b| {
            n += b.len();
            batches += 1;
            assert_eq!(b.columns.len(), problem.columns.len());
            nll += problem.neg_log_lik(&truth, b);
            Ok(())
        })?;
        self.seen.borrow_mut().push((
            problem.node.clone(),
            problem.params.clone(),
            n,
            batches,
            nll,
        ));
        Ok(whatif_data::mle::MleFit {
            estimates: vec![1.0; problem.params.len()],
            std_errors: vec![0.1; problem.params.len()],
            iterations: 7,
            neg_log_lik: nll,
            method: "mle_recorder".into(),
        })
    }
}

/// Issue #5: without a solver the maximum likelihood shapes are refused,
/// naming the node and the missing build feature, both for shapes refused
/// before reading data and for means found nonlinear on the data.
#[test]
fn fit_without_a_solver_refuses_mle_shapes_naming_the_build() {
    for (nodes, params) in [
        (
            "x = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"",
            vec![("?a", 2.0), ("?b", 0.3), ("?s", 0.5)],
        ),
        (
            "x = \"uniform(0, 3)\"\ny = \"bernoulli(1 - exp(-?lam * x))\"",
            vec![("?lam", 0.7)],
        ),
    ] {
        let m = model(&with_data(nodes, ""));
        let dir = tempfile::tempdir().expect("tmp");
        let src = simulate(&m, dir.path(), &one_period(100, &params), 3);
        match fit::check_fittable(&m, &FitOptions::default())
            .and_then(|_| fit::fit(&m, &src, &FitOptions::default()).map(|_| ()))
        {
            Err(DataError::CannotFit { node, reason }) => {
                assert_eq!(node, "y");
                assert!(reason.contains("`gpu` feature"), "{reason}");
            }
            other => panic!("{nodes}: expected CannotFit, got {other:?}"),
        }
    }
}

/// With a solver, `fit` hands it the node's problem and only the rows the
/// fit uses (a holdout period skipped), one batch per chunk, and writes
/// what it returns into the lock; exact shapes keep least squares.
#[test]
fn fit_hands_mle_shapes_to_the_solver() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"\nz = \"?c + ?d * x + normal(0, ?e)\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    let truth = [
        ("?a", 2.0),
        ("?b", 0.3),
        ("?s", 0.5),
        ("?c", 1.0),
        ("?d", 1.0),
        ("?e", 1.0),
    ];
    let periods = [one_period(300, &truth), one_period(200, &truth)].concat();
    let mut periods = periods;
    periods[1].label = "p2".into();
    let src = simulate(&m, dir.path(), &periods, 5);
    let rec = Recorder {
        seen: Default::default(),
    };
    let keep = |p: &str| p != "p2";
    let opts = FitOptions {
        chunk_rows: Some(128),
        use_period: Some(&keep),
        mle: Some(&rec),
    };
    fit::check_fittable(&m, &opts).expect("fittable with a solver");
    let res = fit::fit(&m, &src, &opts).expect("fits");
    let seen = rec.seen.borrow();
    assert_eq!(seen.len(), 1, "only y goes to the solver");
    let (node, params, n, batches, nll) = &seen[0];
    assert_eq!((node.as_str(), *n, *batches), ("y", 300, 3));
    assert_eq!(params, &["?a", "?b", "?s"]);
    assert!(nll.is_finite());
    let y = res.nodes.iter().find(|n| n.node == "y").expect("y");
    assert_eq!(
        (y.method.as_str(), y.rows, y.iterations),
        ("mle_recorder", 300, 7)
    );
    assert_eq!(
        y.sigma_estimator.as_deref(),
        Some("maximum likelihood (divides by n)")
    );
    let z = res.nodes.iter().find(|n| n.node == "z").expect("z");
    assert_eq!(z.method, "least_squares");
    let a = res.params.iter().find(|p| p.name == "a").expect("a");
    assert_eq!((a.estimate, a.std_error), (1.0, 0.1));
}

/// A value outside the distribution's support is refused with its line.
#[test]
fn mle_refuses_values_outside_the_support() {
    let m = model(&with_data(
        "x = \"normal(0, 1)\"\ny = \"exponential(exp(?c * x))\"",
        "",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "d.csv",
        "unit,period,x,y\n1,p,0.5,1.0\n2,p,0.1,-2.0\n",
    );
    let src = DataSource::open_path(&m, &dir.path().join("d.csv"), "d.csv").expect("opens");
    let rec = Recorder {
        seen: Default::default(),
    };
    let opts = FitOptions {
        mle: Some(&rec),
        ..Default::default()
    };
    match fit::fit(&m, &src, &opts) {
        Err(DataError::Impossible {
            row, node, reason, ..
        }) => {
            assert_eq!((row, node.as_str()), (3, "y"));
            assert!(reason.contains("non-negative"), "{reason}");
        }
        other => panic!("expected Impossible, got {other:?}"),
    }
}
