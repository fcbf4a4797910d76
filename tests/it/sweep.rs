//! Parameter sweeps and reverse stress search: every grid point equals a
//! single run with the parameter edited, grid points share common random
//! numbers, metrics follow their closed forms along the grid, the search
//! brackets a breaking point known in closed form, and the CLI validates,
//! writes and prints the results.

use crate::common::{metric, model};
use std::process::{Command, Output};
use whatif::engine::sweep::{BreakingOptions, SweepError, find_breaking, grid, run_sweep};
use whatif::engine::{RunOptions, ScenarioInfo, run};
use whatif_lang::sweep::{SweepSpec, sweep_from_spec};
use whatif_report::sweep::{BreakingSearch, SweepReport};

/// y = b·x + e with x ~ N(1, 0.5²), e ~ N(0, 1): E[y] = b, and under
/// common random numbers the estimate is exactly b·x̄ + ē (linear in b).
const LG: &str = r#"
[scenario]
name = "sweep-lg"
samples = 20000
seed = 11

[params]
b = 1.0

[nodes]
x = "normal(1, 0.5)"
y = "b * x + normal(0, 1)"

[stresses]
shock = { x = "normal(1.5, 0.5)" }

[metrics]
mean_y = "mean(y)"
mean_x = "mean(x)"

[[checks]]
name = "y stays low"
expect = "mean_y < 2"

[[checks]]
name = "y stays high"
expect = "mean_y > 0.5"
"#;

fn info() -> ScenarioInfo {
    ScenarioInfo {
        sha256: "0".repeat(64),
    }
}

fn opts() -> RunOptions {
    RunOptions {
        threads: 2,
        ..RunOptions::default()
    }
}

fn sweep_lg(lo: f64, hi: f64, points: i64) -> SweepReport {
    let m = model(LG);
    let s = sweep_from_spec(
        &m,
        &SweepSpec {
            name: "b".into(),
            lo,
            hi,
            points,
        },
    )
    .expect("valid sweep");
    run_sweep(&m, &info(), &opts(), &[s], &mut |_, _| {}).expect("sweep runs")
}

fn row(r: &SweepReport, point: u32, world: &str, metric: &str) -> (f64, f64) {
    let row = r
        .metrics
        .iter()
        .find(|x| x.point == point && x.world == world && x.metric == metric)
        .unwrap_or_else(|| panic!("no row {point}/{world}/{metric}"));
    (
        row.estimate.expect("finite"),
        row.std_error.expect("finite"),
    )
}

#[test]
fn grid_points_equal_single_runs_with_the_param_edited() {
    let r = sweep_lg(0.5, 2.0, 4);
    assert_eq!(r.metrics.len(), 4 * 2 * 2, "points × worlds × metrics");
    for (i, b) in [0.5, 1.0, 1.5, 2.0].into_iter().enumerate() {
        // The same scenario with the value written into the file.
        let src = LG.replace("b = 1.0", &format!("b = {b:?}"));
        let single = run(&model(&src), &info(), &opts(), &mut |_, _| {}).expect("runs");
        for w in ["baseline", "shock"] {
            for m in ["mean_y", "mean_x"] {
                let got = row(&r, i as u32, w, m);
                let want = metric(&single, w, m);
                assert_eq!(got, want, "b = {b}, {w}, {m}: bit-identical");
            }
        }
        let check = r
            .checks
            .iter()
            .find(|c| c.point == i as u32 && c.name == "y stays low")
            .expect("check row");
        assert_eq!(check.passed, b < 2.0 - 0.1, "b = {b}");
    }
}

#[test]
fn grid_points_share_common_random_numbers() {
    let r = sweep_lg(0.0, 3.0, 7);
    let (xbar, _) = row(&r, 0, "baseline", "mean_x");
    let (y0, _) = row(&r, 0, "baseline", "mean_y");
    for i in 0..7u32 {
        let b = 0.5 * f64::from(i);
        let (y, se) = row(&r, i, "baseline", "mean_y");
        // Closed form: E[y] = b·E[x] = b (false-failure probability per
        // point < 1e-4 at 4 SE).
        crate::common::within(&format!("mean_y at b = {b}"), y, se, b, 4.0);
        // Common random numbers: y(b) − y(0) = b·x̄ exactly up to f32
        // rounding of the lanes. Independent runs would differ by about
        // √2·SE ≈ 0.01 here; the tolerance is 1/1000 of the SE.
        let diff = y - y0;
        assert!(
            (diff - b * xbar).abs() < 1e-3 * se,
            "b = {b}: Δ = {diff}, b·x̄ = {}, SE {se}",
            b * xbar
        );
    }
    // Adjacent differences have far smaller error than the metric itself:
    // second differences of a linear function vanish.
    for i in 1..6u32 {
        let (a, se) = row(&r, i - 1, "baseline", "mean_y");
        let (b, _) = row(&r, i, "baseline", "mean_y");
        let (c, _) = row(&r, i + 1, "baseline", "mean_y");
        assert!(
            (a - 2.0 * b + c).abs() < 1e-3 * se,
            "second difference at {i}"
        );
    }
    // x does not depend on b: identical at every point.
    for i in 1..7u32 {
        assert_eq!(row(&r, i, "shock", "mean_x"), row(&r, 0, "shock", "mean_x"));
    }
}

#[test]
fn several_dimensions_form_a_full_grid_first_slowest() {
    let src = LG.replace("b = 1.0", "b = 1.0\nc = 0.0").replace(
        "y = \"b * x + normal(0, 1)\"",
        "y = \"b * x + c + normal(0, 1)\"",
    );
    let m = model(&src);
    let spec = |name: &str, lo, hi, points| SweepSpec {
        name: name.into(),
        lo,
        hi,
        points,
    };
    let sb = sweep_from_spec(&m, &spec("b", 1.0, 2.0, 2)).expect("b");
    let sc = sweep_from_spec(&m, &spec("c", 0.0, 1.0, 3)).expect("c");
    let points = grid(&[sb.clone(), sc.clone()]);
    assert_eq!(
        points,
        vec![
            vec![1.0, 0.0],
            vec![1.0, 0.5],
            vec![1.0, 1.0],
            vec![2.0, 0.0],
            vec![2.0, 0.5],
            vec![2.0, 1.0]
        ]
    );
    let r = run_sweep(&m, &info(), &opts(), &[sb, sc], &mut |_, _| {}).expect("runs");
    let (base, _) = row(&r, 0, "baseline", "mean_y");
    for (i, p) in points.iter().enumerate() {
        let row = r
            .metrics
            .iter()
            .find(|x| x.point == i as u32 && x.world == "baseline" && x.metric == "mean_y")
            .expect("row");
        assert_eq!(row.params["b"], p[0]);
        assert_eq!(row.params["c"], p[1]);
        // c shifts y by exactly c under common random numbers.
        let (xbar, _) = (r.metrics[1].estimate.expect("x̄"), 0.0);
        let want = base + (p[0] - 1.0) * xbar + p[1];
        let got = row.estimate.expect("finite");
        assert!((got - want).abs() < 1e-5, "point {i}: {got} vs {want}");
    }
}

#[test]
fn a_grid_point_with_invalid_parameters_fails_before_running() {
    let src = LG.replace("normal(0, 1)", "normal(0, b)");
    let m = model(&src);
    let s = sweep_from_spec(
        &m,
        &SweepSpec {
            name: "b".into(),
            lo: -1.0,
            hi: 1.0,
            points: 3,
        },
    )
    .expect("name and range are fine");
    let mut blocks = 0;
    match run_sweep(&m, &info(), &opts(), &[s], &mut |_, _| blocks += 1) {
        Err(SweepError::InvalidPoint { diagnostics, .. }) => {
            assert_eq!(diagnostics[0].code, whatif_lang::Code::InvalidDistParam);
        }
        other => panic!("expected an invalid point, got {other:?}"),
    }
    assert_eq!(blocks, 0, "nothing ran");
}

fn search(src: &str, from: f64, to: f64, check: &str, k: f64) -> BreakingSearch {
    let m = model(src);
    let param = m.param_id("b").expect("b");
    find_breaking(
        &m,
        &info(),
        &opts(),
        &BreakingOptions {
            param,
            from,
            to,
            checks: vec![check.into()],
            k,
            tolerance: Some(0.005),
            max_evaluations: 40,
        },
        &mut |_, _| {},
    )
    .expect("search runs")
}

#[test]
fn reverse_stress_search_brackets_the_closed_form_breaking_point() {
    // mean_y < 2 breaks at b* = 2 (E[y] = b). With k = 3 each verdict is
    // wrong with probability < 0.14%, so b* lies in [last_pass,
    // first_fail] except with probability < 0.3%; the seed is fixed.
    let b = search(LG, 0.0, 4.0, "y stays low", 3.0);
    assert_eq!(b.outcome, "bracketed", "{b:#?}");
    let (lo, hi) = (b.last_pass.expect("pass"), b.first_fail.expect("fail"));
    assert!(lo < 2.0 && 2.0 < hi, "bracket [{lo}, {hi}]");
    // The bracket is as narrow as Monte Carlo error allows: the undecided
    // zone is where |margin| < k·SE, about 2·k·SE wide since the margin's
    // slope in b is E[x] = 1 (10% slack for the sample slope and SE),
    // plus at most the tolerance on each side.
    let se = b
        .evaluations
        .iter()
        .filter(|e| e.value >= lo && e.value <= hi)
        .map(|e| e.checks[0].lhs_std_error.expect("finite SE"))
        .fold(0.0, f64::max);
    assert!(
        hi - lo <= 1.1 * 2.0 * 3.0 * se + 2.0 * 0.005,
        "width {} with SE {se}",
        hi - lo
    );
    // The point estimate solves b·x̄ + ē = 2: within 4 SE of b*.
    let est = b.estimate.expect("estimate");
    assert!((est - 2.0).abs() < 4.0 * se, "estimate {est}");
    assert!(lo <= est && est <= hi);
    // Every verdict agrees with its z and k.
    for e in &b.evaluations {
        let z = e.checks[0].z.expect("finite z");
        let want = if z >= 3.0 {
            "fail"
        } else if z <= -3.0 {
            "pass"
        } else {
            "undecided"
        };
        assert_eq!(e.verdict, want, "at {}", e.value);
    }
    // An undecided point is never inside the bracket's decided ends.
    if let Some([u0, u1]) = b.undecided {
        assert!(lo < u0 && u1 < hi);
    }
}

#[test]
fn reverse_stress_search_runs_downward_and_reports_other_outcomes() {
    // mean_y > 0.5 breaks when b falls through 0.5.
    let b = search(LG, 3.0, 0.0, "y stays high", 3.0);
    assert_eq!(b.outcome, "bracketed");
    let (pass, fail) = (b.last_pass.expect("pass"), b.first_fail.expect("fail"));
    assert!(fail < 0.5 && 0.5 < pass, "bracket {fail} < 0.5 < {pass}");
    // Never fails in range.
    let b = search(LG, 0.0, 1.5, "y stays low", 2.0);
    assert_eq!(b.outcome, "passes_throughout");
    assert_eq!(b.evaluations.len(), 2);
    // Already fails at the mild end.
    let b = search(LG, 2.5, 4.0, "y stays low", 2.0);
    assert_eq!(b.outcome, "fails_at_start");
    assert_eq!(b.evaluations.len(), 1);
    // An end within k SE of the threshold is undecided, not a verdict.
    let b = search(LG, 0.0, 2.0, "y stays low", 2.0);
    assert_eq!(b.outcome, "undecided_at_end");
}

#[test]
fn reverse_stress_search_refuses_checks_it_cannot_decide() {
    let src = LG.replace("mean_y > 0.5", "mean_y > mean_x");
    let m = model(&src);
    let r = find_breaking(
        &m,
        &info(),
        &opts(),
        &BreakingOptions {
            param: m.param_id("b").expect("b"),
            from: 0.0,
            to: 1.0,
            checks: vec!["y stays high".into()],
            k: 2.0,
            tolerance: None,
            max_evaluations: 10,
        },
        &mut |_, _| {},
    );
    match r {
        Err(SweepError::Search(msg)) => assert!(msg.contains("both sides"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn whatif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(args)
        .output()
        .expect("binary runs")
}

#[test]
fn cli_writes_csv_and_json_that_validate_and_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let scen = dir.path().join("s.toml");
    let with_file_sweep = format!("{LG}\n[sweeps]\nb = {{ lo = 0.0, hi = 3.0, points = 4 }}\n");
    std::fs::write(&scen, with_file_sweep).expect("write");
    let scen = scen.to_str().expect("utf8");
    let csv = dir.path().join("s.csv");
    let json = dir.path().join("s.json");
    // The file's sweep: 4 points.
    let out = whatif(&[
        "run",
        scen,
        "--samples",
        "5000",
        "--sweep-out",
        csv.to_str().expect("utf8"),
        "--sweep-out",
        json.to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sweep: b = 0..3 (4 points)"), "{stdout}");
    let text = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "point,b,world,metric,estimate,std_error");
    assert_eq!(lines.len(), 1 + 4 * 2 * 2);
    assert!(lines[1].starts_with("0,0,baseline,mean_y,"));
    // The JSON validates against `whatif schema sweep`, and so would no
    // unknown field.
    let schema: serde_json::Value =
        serde_json::from_slice(&whatif(&["schema", "sweep"]).stdout).expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("JSON");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc["params"][0]["points"], 4);
    doc["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&doc));
    // The CLI overrides the file: 2 points, plus a search in the same document.
    let out = whatif(&[
        "run",
        scen,
        "--samples",
        "5000",
        "--sweep",
        "b=0:1:2",
        "--find-breaking",
        "b=0:4",
        "--breaking-check",
        "y stays low",
        "--sweep-out",
        json.to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("JSON");
    assert!(validator.is_valid(&doc), "{doc:#}");
    assert_eq!(doc["params"][0]["points"], 2);
    assert_eq!(doc["breaking"]["outcome"], "bracketed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Monte Carlo tolerance"), "{stdout}");
    assert!(stdout.contains("breaking point between"), "{stdout}");
    // Markdown reports draw one sweep chart per metric.
    let md = dir.path().join("r.md");
    let out = whatif(&[
        "run",
        scen,
        "--samples",
        "5000",
        "--report",
        md.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&md).expect("md");
    for name in ["r-sweep-0-mean_y_vs_b.svg", "r-sweep-1-mean_x_vs_b.svg"] {
        assert!(text.contains(name), "{name} linked: {text}");
        let svg = std::fs::read_to_string(dir.path().join(name)).expect("svg written");
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    }
    // --no-sweeps: no sweep output at all.
    let out = whatif(&["run", scen, "--samples", "5000", "--no-sweeps"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sweep:"));
}

#[test]
fn cli_rejects_bad_sweeps_with_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let scen = dir.path().join("s.toml");
    std::fs::write(&scen, LG).expect("write");
    let scen = scen.to_str().expect("utf8");
    let csv = dir.path().join("s.csv");
    for (arg, needle) in [
        ("b=0:1:1", "at least 2"),
        ("c=0:1:3", "no param of that name"),
        ("bb=0:1:3", "did you mean `b`"),
        ("b=2:1:3", "lo must be less than hi"),
        ("b=x:1:3", "not a finite number"),
        ("b=0:1:2.5", "not an integer"),
        ("b=0:1", "param=lo:hi:points"),
    ] {
        let out = whatif(&[
            "run",
            scen,
            "--samples",
            "1000",
            "--sweep",
            arg,
            "--sweep-out",
            csv.to_str().expect("utf8"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{arg}: {err}");
        assert!(!csv.exists(), "{arg}: nothing written");
    }
    // Grid values that break a distribution: the diagnostic points into
    // the file.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, LG.replace("normal(0, 1)", "normal(0, b)")).expect("write");
    let out = whatif(&["run", bad.to_str().expect("utf8"), "--sweep", "b=-1:1:3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at `b = -1`: sd of `normal` is -1"), "{err}");
    // A search needs checks it can decide.
    let out = whatif(&[
        "run",
        scen,
        "--find-breaking",
        "b=0:1",
        "--breaking-check",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown check `nope`"));
}

#[test]
fn shipped_sweep_scenario_scales_losses_exactly_with_the_limit() {
    let src = std::fs::read_to_string("scenarios/credit_limit_sweep.toml").expect("shipped");
    let mut m = model(&src);
    m.n_samples = 20_000;
    assert_eq!(m.sweeps.len(), 1, "the scenario declares one sweep");
    let sweeps = m.sweeps.clone();
    let r = run_sweep(&m, &info(), &opts(), &sweeps, &mut |_, _| {}).expect("runs");
    assert_eq!(r.params[0].name, "limit_mult");
    assert_eq!(r.params[0].nominal, 1.2);
    let (base, _) = row(&r, 0, "baseline", "expected_loss");
    for i in 0..6u32 {
        let mult = 1.0 + 0.1 * f64::from(i);
        // Under common random numbers every borrower's loss in
        // `raise_limits` is `limit_mult` times its baseline loss (the floor
        // applies before the multiplier), so the ratio is exact up to f32
        // rounding; independent runs would scatter by ~2% here.
        let (raised, _) = row(&r, i, "raise_limits", "expected_loss");
        assert!(
            (raised / base - mult).abs() < 1e-6,
            "point {i}: ratio {} vs {mult}",
            raised / base
        );
        assert_eq!(row(&r, i, "baseline", "expected_loss").0, base);
    }
}
