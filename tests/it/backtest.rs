//! `whatif fit` and `whatif backtest` end to end: the lock's life cycle
//! (written, used by `run` and `backtest`, refused when stale, required for
//! `?params`), the backtest JSON against its schema, per-row outputs, exit
//! codes of checks on backtest metrics, and data errors as diagnostics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn whatif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `whatif run FILE --samples N -q --out OUT`: exits 0 or 1 (checks may
/// fail) and writes the JSON report, returned parsed.
fn run_report(sc: &str, samples: &str, out: &Path) -> (Output, serde_json::Value) {
    let o = whatif(&[
        "run",
        sc,
        "--samples",
        samples,
        "-q",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let r = serde_json::from_slice(&std::fs::read(out).expect("report")).expect("json");
    (o, r)
}

/// A copy of the shipped lending example (scenario + data, no lock) in a
/// temporary directory.
fn lending_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["lending_backtest.toml", "lending_backtest.csv"] {
        std::fs::copy(Path::new("scenarios").join(f), dir.path().join(f)).expect("copy");
    }
    let s = dir.path().join("lending_backtest.toml");
    (dir, s)
}

#[test]
fn fit_writes_a_lock_that_run_and_backtest_use() {
    let (dir, scenario) = lending_copy();
    let sc = scenario.to_str().expect("utf8");
    // `?params` without a lock: a clear error, exit 2.
    let o = whatif(&["run", sc, "--samples", "1000", "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("whatif fit"), "{}", stderr(&o));
    let o = whatif(&["fit", sc]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lock_path = dir.path().join("lending_backtest.fit.lock");
    let lock = std::fs::read_to_string(&lock_path).expect("lock written");
    for key in [
        "scenario_sha256",
        "data_sha256",
        "std_error",
        "rows = 2000",
        "logistic_irls",
    ] {
        assert!(lock.contains(key), "{key} missing from lock:\n{lock}");
    }
    // run uses it, says so, and records its hash in the manifest.
    let (o, r) = run_report(sc, "2000", &dir.path().join("r.json"));
    assert!(stderr(&o).contains("using fit lock"), "{}", stderr(&o));
    let lock_sha = whatif::output::sha256_hex(lock.as_bytes());
    assert_eq!(r["manifest"]["fit_lock_sha256"], lock_sha.as_str());
    // backtest: JSON valid against `whatif schema backtest`.
    let rows = dir.path().join("rows.parquet");
    let o = whatif(&[
        "backtest",
        sc,
        "--policy",
        "raise_limits",
        "--draws",
        "40",
        "--format",
        "json",
        "--rows-out",
        rows.to_str().expect("utf8"),
        "--holdout",
        "2024Q4",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let schema = whatif_report::schema::by_name("backtest").expect("schema");
    let v = jsonschema::validator_for(&schema).expect("valid schema");
    let errs: Vec<String> = v.iter_errors(&report).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(report["periods"].as_array().expect("periods").len(), 8);
    assert_eq!(report["manifest"]["fit_lock_sha256"], lock_sha.as_str());
    assert!(
        report["holdout"]["nodes"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
    );
    let printed = whatif(&["schema", "backtest"]);
    assert_eq!(printed.status.code(), Some(0));
    // The per-row output is a Parquet file (magic bytes at both ends).
    let bytes = std::fs::read(&rows).expect("rows written");
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    // A stale lock (the data changed) is refused unless --stale-fit-ok.
    let data = dir.path().join("lending_backtest.csv");
    let mut text = std::fs::read_to_string(&data).expect("data");
    text.push_str(
        &text
            .lines()
            .last()
            .expect("a row")
            .replace("u002000", "u002001"),
    );
    text.push('\n');
    std::fs::write(&data, text).expect("write");
    let o = whatif(&["backtest", sc, "--policy", "raise_limits", "--draws", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("whatif::fit::stale_lock"),
        "{}",
        stderr(&o)
    );
    let o = whatif(&[
        "backtest",
        sc,
        "--policy",
        "raise_limits",
        "--draws",
        "5",
        "--stale-fit-ok",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = whatif(&["run", sc, "--samples", "1000", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

const TOY: &str = r#"
[scenario]
name = "toy"
seed = 3

[nodes]
x = "normal(0, 1)"
y = "1 + 2 * x + normal(0, 1)"

[interventions]
shift = { x = "x + 1" }

[metrics]
mean_y = "mean(y)"

[[checks]]
name = "y rises by less than one"
expect = "mean_y[shift] - mean_y < 1"

[data]
path = "toy.csv"
"#;

#[test]
fn checks_on_backtest_metrics_fail_with_exit_1_and_rows_out_csv() {
    let dir = tempfile::tempdir().expect("tmp");
    let sc = dir.path().join("toy.toml");
    std::fs::write(&sc, TOY).expect("write");
    std::fs::write(dir.path().join("toy.csv"), "x,y\n0.5,2.1\n-1,-0.7\n0,1.3\n").expect("data");
    let rows = dir.path().join("rows.csv");
    let o = whatif(&[
        "backtest",
        sc.to_str().expect("utf8"),
        "--policy",
        "shift",
        "--rows-out",
        rows.to_str().expect("utf8"),
    ]);
    // y' = y + 2 exactly, so the check (< 1) fails.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("FAIL") && table.contains("+2.0000"),
        "{table}"
    );
    let csv = std::fs::read_to_string(&rows).expect("rows");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "row,unit,period,x_observed,x_counterfactual,x_lo,x_hi,y_observed,y_counterfactual,y_lo,y_hi"
        )
    );
    // The replay runs in f32 on the CPU backend: 4.1 to f32 rounding.
    let y_cf: f64 = lines
        .next()
        .and_then(|l| l.split(',').nth(8))
        .expect("a row")
        .parse()
        .expect("number");
    assert!((y_cf - 4.1).abs() < 4.1 * 2e-7, "{y_cf}");
}

#[test]
fn data_errors_are_diagnostics_with_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let sc = dir.path().join("toy.toml");
    std::fs::write(&sc, TOY).expect("write");
    let sc = sc.to_str().expect("utf8");
    for (data, needle) in [
        ("x\n1\n", "whatif::data::missing_column"),
        (
            "x,y\n1,2\n2,oops\n",
            "toy.csv:3: column `y`: `oops` is not a number",
        ),
        ("x,y\n", "whatif::data::empty"),
        ("x,y\n1,NaN\n", "must be observed"),
    ] {
        std::fs::write(dir.path().join("toy.csv"), data).expect("data");
        let o = whatif(&["backtest", sc, "--policy", "shift"]);
        assert_eq!(o.status.code(), Some(2), "{data}");
        assert!(stderr(&o).contains(needle), "{data}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    std::fs::write(dir.path().join("toy.csv"), "x,y\n1,2\n").expect("data");
    let o = whatif(&["backtest", sc, "--policy", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown policy `nope`"),
        "{}",
        stderr(&o)
    );
    // fit on a scenario without ?params says so.
    let o = whatif(&["fit", sc]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no `?params`"), "{}", stderr(&o));
}

/// The shipped example's lock matches its scenario and data (no
/// `--stale-fit-ok`), and its backtest passes its check and guardrail.
#[test]
fn shipped_lending_backtest_is_fresh_and_passes() {
    let o = whatif(&[
        "backtest",
        "scenarios/lending_backtest.toml",
        "--policy",
        "raise_limits",
        "--draws",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("2024Q4") && table.contains("PASS"),
        "{table}"
    );
    assert!(stderr(&o).contains("using fit lock"), "{}", stderr(&o));
}

/// The shipped multi-period example: its lock is fresh, and per month the
/// backtest's demand gap is the closed form of the fitted carry-over,
/// `−d1·Σ_{j ≤ t−6} carry^j` from month 6 on (every noise is a point, so
/// the counterfactual is exact), and the reported interval has no width.
///
/// The replay runs on the CPU backend in f32 (demand is about 100, so a
/// row is exact to ~1e-5) and on the f64 reference (to 1e-9).
#[test]
fn shipped_pricing_backtest_carries_the_cut_over_months() {
    for (backend, tol) in [("cpu", 1e-4), ("cpu-f64", 1e-9)] {
        pricing_gap_per_month(backend, tol);
    }
}

fn pricing_gap_per_month(backend: &str, tol: f64) {
    let o = whatif(&[
        "backtest",
        "scenarios/pricing_backtest.toml",
        "--policy",
        "cut_from_6",
        "--draws",
        "8",
        "--format",
        "json",
        "--backend",
        backend,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("using fit lock"), "{}", stderr(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ran = rep["manifest"]["backend"].as_str().expect("backend");
    let want = if backend == "cpu" { "cpu (" } else { "cpu-f64" };
    assert!(ran.starts_with(want), "{ran}");
    let lock = std::fs::read_to_string("scenarios/pricing_backtest.fit.lock").expect("lock");
    let lock: toml::Value = toml::from_str(&lock).expect("lock toml");
    let est = |name: &str| {
        lock["params"]
            .as_array()
            .expect("params")
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["estimate"].as_float())
            .unwrap_or_else(|| panic!("no {name} in lock"))
    };
    let (carry, d1) = (est("carry"), est("d1"));
    let periods = rep["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 12);
    for p in periods {
        let t: i32 = p["period"]
            .as_str()
            .expect("period")
            .parse()
            .expect("month");
        let want: f64 = (6..=t).map(|s| -d1 * carry.powi(t - s)).sum();
        let demand = p["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == "demand")
            .expect("demand");
        let got = demand["difference"].as_f64().expect("difference");
        assert!(
            (got - want).abs() < tol,
            "{backend}, month {t}: {got} vs {want}"
        );
        assert_eq!(demand["counterfactual_lo"], demand["counterfactual_hi"]);
    }
    assert!(
        rep["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["status"] == "pass"),
        "{}",
        rep["checks"]
    );
}

/// `[periods]` without `count` takes it from the data's period column (the
/// largest period + 1), for `check`, `fit`, `backtest`, `run` and a sharded
/// run's merge (which does not read the data); a bad period cell is a data
/// diagnostic with exit 2.
#[test]
fn periods_count_comes_from_the_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = std::fs::read_to_string("scenarios/pricing_backtest.toml").expect("scenario");
    assert!(src.contains("count = 12\n"));
    let scenario = dir.path().join("p.toml");
    std::fs::write(&scenario, src.replace("count = 12\n", "")).expect("write");
    std::fs::copy(
        "scenarios/pricing_backtest.csv",
        dir.path().join("pricing_backtest.csv"),
    )
    .expect("copy");
    let sc = scenario.to_str().expect("utf8");
    let o = whatif(&["check", sc]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = whatif(&["fit", sc]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, single) = run_report(sc, "4000", &dir.path().join("r.json"));
    assert_eq!(single["manifest"]["structure"]["periods"], 12);
    let mut parts = Vec::new();
    for i in 0..2 {
        let p = dir.path().join(format!("part{i}.json"));
        let spec = format!("{i}/2");
        let o = whatif(&[
            "run",
            sc,
            "--samples",
            "4000",
            "-q",
            "--shard",
            &spec,
            "--out",
            p.to_str().expect("utf8"),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        parts.push(p.display().to_string());
    }
    // The merge runs where the data is not.
    std::fs::remove_file(dir.path().join("pricing_backtest.csv")).expect("rm");
    let merged = dir.path().join("merged.json");
    let o = whatif(&[
        "merge",
        "--out",
        merged.to_str().expect("utf8"),
        &parts[0],
        &parts[1],
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&merged).expect("merged")).expect("json");
    assert_eq!(merged["worlds"], single["worlds"]);
    // A period cell that is not a whole number.
    std::fs::write(
        dir.path().join("pricing_backtest.csv"),
        "store,month,price,demand,revenue,margin\ns1,0,10,140,1400,560\ns1,one,10,140,1400,560\n",
    )
    .expect("write");
    let o = whatif(&["check", sc]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("pricing_backtest.csv:3") && err.contains("`one`"),
        "{err}"
    );
}

/// Issue #5: `whatif fit` on a mechanism neither least squares nor IRLS
/// takes (`?a * exp(?b * x) + normal(0, ?s)`) fits it by maximum
/// likelihood with burn's autodiff and writes the lock; a build without
/// the `gpu` feature refuses it, naming the node and the feature.
#[test]
fn fit_by_maximum_likelihood_writes_the_lock_issue_5() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = "[scenario]\nname = \"mle\"\nseed = 3\n\n[nodes]\nx = \"normal(0, 1)\"\ny = \"?a * exp(?b * x) + normal(0, ?s)\"\n\n[metrics]\nm = \"mean(y)\"\n\n[data]\npath = \"d.csv\"\n";
    let sc = dir.path().join("mle.toml");
    std::fs::write(&sc, text).expect("scenario");
    let model = whatif_lang::compile(text).expect("compiles");
    let truth = [("?a", 2.0), ("?b", 0.3), ("?s", 0.5)];
    let csv = whatif_data::simulate::simulate_csv(
        &model,
        &[whatif_data::simulate::PeriodSpec {
            label: "p".into(),
            rows: 2000,
            params: truth.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }],
        5,
        "unit",
        "period",
    );
    std::fs::write(dir.path().join("d.csv"), csv).expect("data");
    let o = whatif(&["fit", sc.to_str().expect("utf8")]);
    if cfg!(not(feature = "gpu")) {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("node `y`") && stderr(&o).contains("`gpu` feature"),
            "{}",
            stderr(&o)
        );
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("mle.fit.lock")).expect("lock");
    let lock = whatif_data::lock::FitLock::parse(&text, "mle.fit.lock").expect("parses");
    assert_eq!(lock.rows, 2000);
    assert!(
        lock.nodes[0].method.starts_with("mle_autodiff ("),
        "{}",
        lock.nodes[0].method
    );
    for (name, t) in truth {
        let p = lock
            .params
            .iter()
            .find(|p| format!("?{}", p.name) == name)
            .expect("param");
        assert!(
            (p.estimate - t).abs() <= 3.0 * p.std_error && p.std_error > 0.0,
            "{name}: {} ± {} vs {t}",
            p.estimate,
            p.std_error
        );
    }
    // `run` accepts the lock.
    let o = whatif(&["run", sc.to_str().expect("utf8"), "--samples", "1000", "-q"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
}

/// A gap a lag needs, late in the file, is a diagnostic naming the line,
/// unit and period, with exit 2, and neither `--rows-out` nor `--out` is
/// left half-written.
#[test]
fn a_lag_gap_late_in_the_data_writes_no_outputs() {
    let dir = tempfile::tempdir().expect("tmp");
    for f in [
        "pricing_backtest.toml",
        "pricing_backtest.csv",
        "pricing_backtest.fit.lock",
    ] {
        std::fs::copy(Path::new("scenarios").join(f), dir.path().join(f)).expect("copy");
    }
    let data = dir.path().join("pricing_backtest.csv");
    let text = std::fs::read_to_string(&data).expect("data");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("s0007,5,"))
        .collect();
    std::fs::write(&data, kept.join("\n") + "\n").expect("write");
    let rows = dir.path().join("rows.csv");
    let out = dir.path().join("rep.json");
    let o = whatif(&[
        "backtest",
        dir.path()
            .join("pricing_backtest.toml")
            .to_str()
            .expect("utf8"),
        "--policy",
        "cut_from_6",
        "--stale-fit-ok",
        "--rows-out",
        rows.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("pricing_backtest.csv:907")
            && err.contains("unit `s0007`")
            && err.contains("no row for period 5"),
        "{err}"
    );
    assert!(!rows.exists() && !out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}
