//! Multi-period backtests: `lag(x)` reads the unit's observed previous row
//! during abduction and fitting, and its counterfactual previous row during
//! prediction, so a policy's effect carries over; the period column's
//! order, gaps and values are checked with diagnostics.

use std::path::Path;

use whatif_data::backtest::{self, BacktestManifest, BacktestOptions, RowSink};
use whatif_data::fit::{self, FitOptions};
use whatif_data::simulate::simulate_panel_csv;
use whatif_data::{DataError, DataSource};
use whatif_lang::CausalModel;

fn model(src: &str) -> CausalModel {
    match whatif_lang::compile(src) {
        Ok(m) => m,
        Err(d) => panic!("{}", whatif_lang::render_diagnostics(&d, "t.toml", src)),
    }
}

/// Demand carries over 60% of last period's; a price cut of 1 from
/// period 3 on raises demand by 2 that period, so the counterfactual gap
/// at period t ≥ 3 is 2·Σ_{j ≤ t−3} 0.6^j.
const PRICING: &str = r#"
[scenario]
name = "t"
seed = 7

[periods]
count = 8

[nodes]
price = "10 + normal(0, 1)"
demand = "RHO * lag(demand) + 50 - 2 * price + normal(0, 1)"

[interventions]
cut = { price = { expr = "price - 1", from = 3 } }

[data]
path = "d.csv"
period = "period"
unit = "unit"
"#;

fn pricing(rho: &str) -> CausalModel {
    model(&PRICING.replace("RHO", rho))
}

fn gap(t: u32) -> f64 {
    (3..=t).map(|s| 2.0 * 0.6f64.powi((t - s) as i32)).sum()
}

fn open(m: &CausalModel, dir: &Path, csv: &str) -> DataSource {
    let p = dir.join("d.csv");
    std::fs::write(&p, csv).expect("write");
    DataSource::open_path(m, &p, "d.csv").expect("opens")
}

#[derive(Default)]
struct Rows {
    header: Vec<String>,
    rows: Vec<(String, Vec<f64>)>,
}

impl RowSink for Rows {
    fn header(&mut self, c: &[String]) -> Result<(), DataError> {
        self.header = c.to_vec();
        Ok(())
    }
    fn row(&mut self, _: u64, _: &str, period: &str, v: &[f64]) -> Result<(), DataError> {
        self.rows.push((period.to_string(), v.to_vec()));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), DataError> {
        Ok(())
    }
}

fn run(
    m: &CausalModel,
    src: &DataSource,
    sink: Option<&mut dyn RowSink>,
) -> Result<backtest::BacktestReport, DataError> {
    let opts = BacktestOptions {
        policy: "cut".into(),
        draws: 4,
        seed: 99,
        chunk_rows: 37,
        ..BacktestOptions::default()
    };
    backtest::backtest(m, src, &opts, BacktestManifest::default(), sink)
}

#[test]
fn a_policy_carries_over_through_lags_exactly() {
    let m = pricing("0.6");
    let dir = tempfile::tempdir().expect("tmp");
    let src = open(
        &m,
        dir.path(),
        &simulate_panel_csv(&m, 40, &[], 5, "unit", "period"),
    );
    let mut rows = Rows::default();
    let rep = run(&m, &src, Some(&mut rows)).expect("backtest");
    assert_eq!(rep.overall.rows, 320);
    assert_eq!(rep.periods.len(), 8);
    for p in &rep.periods {
        let t: u32 = p.period.parse().expect("numeric period");
        let by = |name: &str| {
            p.nodes
                .iter()
                .find(|n| n.node == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let want_price = if t >= 3 { -1.0 } else { 0.0 };
        assert!((by("price").difference - want_price).abs() < 1e-9, "{p:?}");
        let d = by("demand");
        assert!(
            (d.difference - gap(t)).abs() < 1e-9,
            "period {t}: {} vs {}",
            d.difference,
            gap(t)
        );
        // Every noise is a point, so the draws agree.
        assert_eq!(d.counterfactual_lo, d.counterfactual_hi);
    }
    // Row by row too: demand_counterfactual − demand_observed.
    let col = |name: &str| rows.header.iter().position(|h| h == name).expect(name) - 3;
    let (o, c) = (col("demand_observed"), col("demand_counterfactual"));
    for (period, v) in &rows.rows {
        let t: u32 = period.parse().expect("period");
        assert!((v[c] - v[o] - gap(t)).abs() < 1e-9, "{period}: {v:?}");
    }
}

#[test]
fn rows_sorted_by_unit_give_the_same_backtest() {
    let m = pricing("0.6");
    let dir = tempfile::tempdir().expect("tmp");
    let csv = simulate_panel_csv(&m, 25, &[], 9, "unit", "period");
    let interleaved = run(&m, &open(&m, dir.path(), &csv), None).expect("backtest");
    let mut lines: Vec<&str> = csv.lines().collect();
    let header = lines.remove(0);
    lines.sort_by_key(|l| {
        let mut f = l.split(',');
        let u = f.next().unwrap_or("").to_string();
        let t: u32 = f.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        (u, t)
    });
    let sorted = format!("{header}\n{}\n", lines.join("\n"));
    let by_unit = run(&m, &open(&m, dir.path(), &sorted), None).expect("backtest");
    assert_eq!(interleaved.periods, by_unit.periods);
}

#[test]
fn fitting_reads_the_observed_previous_period() {
    let truth = pricing("0.6");
    let dir = tempfile::tempdir().expect("tmp");
    let csv = simulate_panel_csv(&truth, 400, &[], 21, "unit", "period");
    let m = model(&PRICING.replace(
        "RHO * lag(demand) + 50 - 2 * price + normal(0, 1)",
        "?rho * lag(demand) + ?a + ?b * price + normal(0, ?s)",
    ));
    let src = open(&m, dir.path(), &csv);
    let res = fit::fit(&m, &src, &FitOptions::default()).expect("fits");
    assert_eq!(res.rows, 3200);
    for (name, t) in [("rho", 0.6), ("a", 50.0), ("b", -2.0), ("s", 1.0)] {
        let p = res.params.iter().find(|p| p.name == name).expect(name);
        assert!(
            (p.estimate - t).abs() <= 3.0 * p.std_error && p.std_error > 0.0,
            "?{name}: {} ± {} vs {t}",
            p.estimate,
            p.std_error
        );
    }
    // ρ is identified only through the lag: its SE is small.
    let rho = res.params.iter().find(|p| p.name == "rho").expect("rho");
    assert!(rho.std_error < 0.01, "{rho:?}");
}

#[test]
fn one_step_holdout_predictions_are_calibrated() {
    let m = pricing("0.6");
    let dir = tempfile::tempdir().expect("tmp");
    let src = open(
        &m,
        dir.path(),
        &simulate_panel_csv(&m, 300, &[], 33, "unit", "period"),
    );
    let h =
        backtest::holdout(&m, &src, &["6".into(), "7".into()], 200, 1, 0, 101).expect("holdout");
    assert_eq!(h.rows, 600);
    let d = h.nodes.iter().find(|n| n.node == "demand").expect("demand");
    let cov = d.coverage90.expect("continuous");
    assert!((0.85..=0.95).contains(&cov), "coverage {cov}");
    assert!(d.mean_error.abs() < 0.15, "{d:?}");
}

fn err_of(m: &CausalModel, csv: &str) -> DataError {
    let dir = tempfile::tempdir().expect("tmp");
    match run(m, &open(m, dir.path(), csv), None) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

#[test]
fn bad_period_columns_are_diagnosed() {
    let m = pricing("0.6");
    let head = "unit,period,price,demand\n";
    let e = err_of(&m, &format!("{head}a,0,10,30\na,q1,10,30\n"));
    assert!(
        matches!(&e, DataError::BadPeriod { row: 3, value, .. } if value == "q1"),
        "{e}"
    );
    let e = err_of(
        &m,
        &format!("{head}a,0,10,30\nb,0,10,30\na,1,10,30\na,1,10,30\n"),
    );
    assert!(e.to_string().contains("increasing period order"), "{e}");
    assert!(matches!(&e, DataError::BadPeriod { row: 5, .. }), "{e}");
    let e = err_of(&m, &format!("{head}a,0,10,30\na,2,10,30\n"));
    assert!(
        matches!(&e, DataError::MissingLag { row: 3, unit, node, .. } if unit == "a" && node == "demand"),
        "{e}"
    );
    assert!(e.to_string().contains("no row for period 1"), "{e}");
    let e = err_of(&m, &format!("{head}a,0,10,30\na,8,10,30\n"));
    assert!(e.to_string().contains("`[periods] count` is 8"), "{e}");
    // A unit that starts late reads `init` before its first row.
    let ok = run(
        &m,
        &open(
            &m,
            tempfile::tempdir().expect("tmp").path(),
            &format!("{head}a,0,10,30\nb,4,10,30\nb,5,10,40\n"),
        ),
        None,
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn lags_of_unobservable_values_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = "unit,period,price,demand\na,0,10,30\n";
    let random_init = model(&PRICING.replace(
        "demand = \"RHO * lag(demand) + 50 - 2 * price + normal(0, 1)\"",
        "demand = { expr = \"0.6 * lag(demand) + 50 - 2 * price + normal(0, 1)\", init = \"normal(30, 5)\" }",
    ));
    let e = run(&random_init, &open(&random_init, dir.path(), csv), None).expect_err("refused");
    assert!(
        matches!(&e, DataError::CannotAbduct { node, reason } if node == "demand" && reason.contains("`init` draws noise")),
        "{e}"
    );
}

/// The true parameters of the shipped pricing example.
fn pricing_truth() -> Vec<(String, f64)> {
    [
        ("?p0", 10.0),
        ("?p_sd", 0.5),
        ("?carry", 0.5),
        ("?d0", 130.0),
        ("?d1", -6.0),
        ("?d_sd", 4.0),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), *v))
    .collect()
}

/// The shipped `scenarios/pricing_backtest.csv` is what the panel
/// generator gives (150 stores × 12 months); `WHATIF_BLESS=1` rewrites it.
/// Its fit recovers the truth within 3 SE.
#[test]
fn shipped_pricing_data_is_reproducible() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src =
        std::fs::read_to_string(root.join("scenarios/pricing_backtest.toml")).expect("scenario");
    let m = model(&src);
    let csv = simulate_panel_csv(&m, 150, &pricing_truth(), 2026, "store", "month");
    assert!(csv.len() < 1 << 20, "shipped data must stay under 1 MB");
    let path = root.join("scenarios/pricing_backtest.csv");
    if std::env::var_os("WHATIF_BLESS").is_some() {
        std::fs::write(&path, &csv).expect("bless");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == csv,
        "scenarios/pricing_backtest.csv differs from the generator; rerun with WHATIF_BLESS=1"
    );
    let ds = DataSource::open(&m, &root.join("scenarios")).expect("opens");
    let res = fit::fit(&m, &ds, &FitOptions::default()).expect("fits");
    assert_eq!(res.rows, 1800);
    for (name, t) in pricing_truth() {
        let p = res
            .params
            .iter()
            .find(|p| p.name == name[1..])
            .expect("param");
        assert!(
            (p.estimate - t).abs() <= 3.0 * p.std_error,
            "{name}: {} ± {} vs {t}",
            p.estimate,
            p.std_error
        );
    }
}

/// A point-identified row whose lag reads a counterfactual that differs by
/// draw (its unit's previous row was censored, so its noise is an
/// interval) keeps every draw: its counterfactual interval has width.
#[test]
fn draws_that_differ_in_the_history_carry_into_point_identified_rows() {
    let m = model(&PRICING.replace(
        "RHO * lag(demand) + 50 - 2 * price + normal(0, 1)",
        "max(0.6 * lag(demand) + 50 - 2 * price + normal(0, 1), 25)",
    ));
    let dir = tempfile::tempdir().expect("tmp");
    // From period 3 the price is cut. Unit a's first row is censored (25 is
    // the floor: its noise is only bounded), its second a point; unit b has
    // points only.
    let csv = "unit,period,price,demand\na,3,10,25\na,4,10,40\nb,3,10,30\nb,4,10,48\n";
    let mut rows = Rows::default();
    run(&m, &open(&m, dir.path(), csv), Some(&mut rows)).expect("backtest");
    let col = |name: &str| rows.header.iter().position(|h| h == name).expect(name) - 3;
    let (lo, hi) = (col("demand_lo"), col("demand_hi"));
    let width: Vec<f64> = rows.rows.iter().map(|(_, v)| v[hi] - v[lo]).collect();
    assert!(width[0] > 0.0, "censored row: {width:?}");
    assert!(
        width[1] > 0.0,
        "the next row inherits the spread: {width:?}"
    );
    assert_eq!(width[2], 0.0, "{width:?}");
    assert_eq!(width[3], 0.0, "{width:?}");
}

/// Path functions summarise simulated paths: in a backtest their metrics
/// are null with a note, checks on them are skipped, and row metrics are
/// computed as usual.
#[test]
fn path_metrics_are_null_with_a_note_in_backtests() {
    let src = PRICING.replace("RHO", "0.6").replace(
        "[data]",
        "[metrics]\nlast = \"mean(final(demand))\"\nall_rows = \"mean(demand)\"\n\n[[checks]]\nname = \"final\"\nexpect = \"last[cut] > last\"\n\n[data]",
    );
    let m = model(&src);
    let dir = tempfile::tempdir().expect("tmp");
    let src = open(
        &m,
        dir.path(),
        &simulate_panel_csv(&m, 10, &[], 3, "unit", "period"),
    );
    let rep = run(&m, &src, None).expect("backtest");
    let last = &rep.metrics[0];
    assert!(last.observed.is_none() && last.counterfactual.is_none());
    assert!(
        last.note.as_deref().is_some_and(|n| n.contains("final")),
        "{last:?}"
    );
    let all = &rep.metrics[1];
    let want = rep
        .overall
        .nodes
        .iter()
        .find(|n| n.node == "demand")
        .expect("demand");
    assert!((all.counterfactual.expect("value") - want.counterfactual).abs() < 1e-9);
    assert_eq!(rep.checks[0].status, "skipped");
}
