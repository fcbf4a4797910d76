//! Sharded runs as a scheduler runs them: separate processes of the built
//! binary, each a shard (`whatif run --shard i/4`), merged by `whatif merge`
//! (with a second phase for exact tails) into a report identical to a single
//! run's outside `manifest.run`; parts and plans validate against their
//! schemas; broken sets of parts are refused with clear errors; target
//! precision stops at the same N for the same seed.

use crate::common::model;
use std::path::Path;
use std::process::{Command, Output};
use whatif::engine::RunOptions;
use whatif::engine::target::{parse_targets, run_to_target};
use whatif_report::Report;

fn whatif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn ok(out: &Output, what: &str) {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{what}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

const WITH_TAILS: &str = r#"
[scenario]
name = "shards"
samples = 120_000
seed = 17
[nodes]
u = "normal(0, 1)"
hit = "bernoulli(0.05)"
loss = "hit * exp(u) * 100"
y = "2 * u + normal(0, 1)"
[stresses.worse]
hit = "bernoulli(0.09)"
[metrics]
mean_loss = "mean(loss)"
sd_y = "sd(y)"
corr_uy = "corr(u, y)"
p_hit = "prob(hit > 0.5)"
var95 = "value_at_risk(loss, 0.95)"
es99 = "expected_shortfall(loss, 0.99)"
q10 = "quantile(y, 0.1)"
[[checks]]
name = "worse is worse"
expect = "es99[worse] > es99[baseline]"
[guardrails]
y = { max = 7, max_share = 0.01, worlds = ["baseline", "worse"] }
"#;

const NO_TAILS: &str = r#"
[scenario]
name = "shards-plain"
samples = 90_000
seed = 4
[nodes]
x = "normal(0, 1)"
y = "x * x + normal(0, 0.5)"
[interventions.up]
x = "x + 1"
[metrics]
mean_y = "mean(y)"
var_y = "var(y)"
p = "prob(y > 1)"
"#;

fn report_of(path: &Path) -> Report {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report JSON")
}

/// Run `n` shards of `phase` as concurrent processes.
fn shards(scenario: &str, dir: &Path, n: usize, prefix: &str, extra: &[&str]) -> Vec<String> {
    let children: Vec<(String, std::process::Child)> = (0..n)
        .map(|i| {
            let out = dir.join(format!("{prefix}-{i}.json")).display().to_string();
            let spec = format!("{i}/{n}");
            let child = Command::new(env!("CARGO_BIN_EXE_whatif"))
                .args([
                    "run",
                    scenario,
                    "--threads",
                    "1",
                    "-q",
                    "--shard",
                    &spec,
                    "--out",
                    &out,
                ])
                .args(extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn shard");
            (out, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(out, child)| {
            let o = child.wait_with_output().expect("shard finishes");
            assert_eq!(
                o.status.code(),
                Some(0),
                "shard {out}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            out
        })
        .collect()
}

fn single(scenario: &str, dir: &Path) -> Report {
    let out = dir.join("single.json");
    let o = whatif(&["run", scenario, "-q", "--out", out.to_str().unwrap()]);
    ok(&o, "single run");
    report_of(&out)
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

#[test]
fn four_shard_processes_equal_a_single_run_with_tails() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, WITH_TAILS).unwrap();
    let scenario = scenario.to_str().unwrap();
    let want = single(scenario, dir.path());

    let p1 = shards(scenario, dir.path(), 4, "p1", &[]);
    // Phase-1 parts alone: a plan, not a report.
    let plan = dir.path().join("plan.json");
    let o = whatif(&args(&["merge", "--plan-out", plan.to_str().unwrap()], &p1));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(plan.exists());
    // Without --plan-out that is an error that says what to do.
    let o = whatif(&args(&["merge"], &p1));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plan-out"));

    let p2 = shards(
        scenario,
        dir.path(),
        4,
        "p2",
        &["--resolve", plan.to_str().unwrap()],
    );
    let merged = dir.path().join("merged.json");
    let all: Vec<String> = p1.iter().chain(&p2).cloned().collect();
    let o = whatif(&args(&["merge", "--out", merged.to_str().unwrap()], &all));
    ok(&o, "merge");
    let got = report_of(&merged);
    assert_eq!(got.without_run_info(), want.without_run_info());
    assert!(
        got.worlds[0]
            .metrics
            .iter()
            .any(|m| m.name == "es99" && m.estimate.is_some())
    );

    // Schemas: parts and the plan validate.
    for (name, files) in [
        ("part", vec![p1[0].clone(), p2[3].clone()]),
        ("plan", vec![plan.display().to_string()]),
    ] {
        let s = whatif(&["schema", name]);
        assert_eq!(s.status.code(), Some(0));
        let schema: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
        let v = jsonschema::validator_for(&schema).expect("schema compiles");
        for f in files {
            let doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            let errors: Vec<String> = v
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{f}: {errors:#?}");
        }
    }

    // A phase-2 part of another plan is refused.
    let mut wrong: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p2[1]).unwrap()).unwrap();
    wrong["plan_sha256"] = serde_json::json!("0".repeat(64));
    let wrong_path = dir.path().join("wrong.json");
    std::fs::write(&wrong_path, wrong.to_string()).unwrap();
    let mut set: Vec<String> = p1.clone();
    set.extend([
        p2[0].clone(),
        wrong_path.display().to_string(),
        p2[2].clone(),
        p2[3].clone(),
    ]);
    let o = whatif(&args(&["merge"], &set));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another plan"));
}

#[test]
fn four_shard_processes_equal_a_single_run_without_tails() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, NO_TAILS).unwrap();
    let scenario = scenario.to_str().unwrap();
    let want = single(scenario, dir.path());
    let p1 = shards(scenario, dir.path(), 4, "p1", &[]);
    let merged = dir.path().join("merged.json");
    let o = whatif(&args(&["merge", "--out", merged.to_str().unwrap()], &p1));
    ok(&o, "merge");
    assert_eq!(
        report_of(&merged).without_run_info(),
        want.without_run_info()
    );

    // Missing and duplicate shards.
    let o = whatif(&args(&["merge"], &p1[..3]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing phase-1 shard 3 of 4"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dup = [
        p1[0].clone(),
        p1[1].clone(),
        p1[1].clone(),
        p1[2].clone(),
        p1[3].clone(),
    ];
    let o = whatif(&args(&["merge"], &dup));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("duplicate shard 1/4"));

    // A shard of another seed: a different program.
    let other = dir.path().join("other.json");
    let o = whatif(&[
        "run",
        scenario,
        "-q",
        "--seed",
        "5",
        "--shard",
        "3/4",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let mixed = [
        p1[0].clone(),
        p1[1].clone(),
        p1[2].clone(),
        other.display().to_string(),
    ];
    let o = whatif(&args(&["merge"], &mixed));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("different programs") && err.contains("seed"),
        "{err}"
    );

    // A shard with another kernel variant: refused unless allowed.
    let mut part: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p1[2]).unwrap()).unwrap();
    part["identity"]["kernel"] = serde_json::json!("other-isa");
    let id: whatif::engine::shard::Identity =
        serde_json::from_value(part["identity"].clone()).unwrap();
    part["program_sha256"] = serde_json::json!(id.hash(true));
    let k = dir.path().join("kernel.json");
    std::fs::write(&k, part.to_string()).unwrap();
    let set = [
        p1[0].clone(),
        p1[1].clone(),
        k.display().to_string(),
        p1[3].clone(),
    ];
    let o = whatif(&args(&["merge"], &set));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-mixed-kernels"));
    let allowed = dir.path().join("allowed.json");
    let o = whatif(&args(
        &[
            "merge",
            "--allow-mixed-kernels",
            "--out",
            allowed.to_str().unwrap(),
        ],
        &set,
    ));
    ok(&o, "merge with mixed kernels");
    assert!(
        report_of(&allowed)
            .warnings
            .iter()
            .any(|w| w.contains("within rounding"))
    );

    // Not a part at all.
    let o = whatif(&["merge", scenario]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a whatif part"));
}

#[test]
fn shard_flags_are_checked() {
    let o = whatif(&[
        "run",
        "scenarios/linear_gaussian.toml",
        "--shard",
        "4/4",
        "--out",
        "/tmp/x.json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = whatif(&["run", "scenarios/linear_gaussian.toml", "--shard", "0/2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
    let o = whatif(&[
        "run",
        "scenarios/linear_gaussian.toml",
        "--shard",
        "0/2",
        "--out",
        "/tmp/x.json",
        "--target-se",
        "a[baseline]=1",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

const TARGET: &str = r#"
[scenario]
name = "target"
samples = 2_000_000
seed = 9
[nodes]
x = "normal(0, 1)"
loss = "max(x, 0) * 10"
[interventions.up]
x = "x + 0.5"
[metrics]
mean_x = "mean(x)"
es = "expected_shortfall(loss, 0.95)"
"#;

#[test]
fn target_se_stops_at_the_same_n_for_the_same_seed() {
    let m = model(TARGET);
    let opts = RunOptions::default();
    let info = whatif::engine::ScenarioInfo {
        sha256: "0".repeat(64),
    };
    let texts = vec![
        "mean_x[baseline]=0.004".to_string(),
        "effect(es, up)=0.5".to_string(),
        "es[up]=0.2".to_string(),
    ];
    let targets = parse_targets(&m, &opts, &texts).expect("targets parse");
    let a = run_to_target(&m, &info, &opts, &targets, false, &mut |_, _| {})
        .unwrap()
        .report;
    let b = run_to_target(&m, &info, &opts, &targets, false, &mut |_, _| {})
        .unwrap()
        .report;
    assert_eq!(a.without_run_info(), b.without_run_info());
    let t = a
        .manifest
        .target_se
        .as_ref()
        .expect("target_se in the manifest");
    assert!(t.reached);
    let n = a.manifest.samples;
    // sd(x) = 1: SE 0.004 needs n ≥ 62,500; far below the cap, at a block
    // boundary.
    assert!((62_500..2_000_000).contains(&n), "N = {n}");
    assert_eq!(n % a.manifest.block_size, 0);
    for r in &t.targets {
        assert!(r.std_error.unwrap() < r.value, "{r:?}");
    }
    let (_, se) = crate::common::metric(&a, "baseline", "mean_x");
    assert!(se < 0.004);

    // An unreachable target runs to the cap: the same numbers as a plain run.
    let mut small = m.clone();
    small.n_samples = 50_000;
    let targets = parse_targets(&small, &opts, &["mean_x[up]=1e-9".to_string()]).unwrap();
    let capped = run_to_target(&small, &info, &opts, &targets, false, &mut |_, _| {})
        .unwrap()
        .report;
    let plain = whatif::engine::run(&small, &info, &opts, &mut |_, _| {}).unwrap();
    assert!(!capped.manifest.target_se.as_ref().unwrap().reached);
    let mut c = capped.without_run_info();
    c.manifest.target_se = None;
    c.warnings.retain(|w| !w.contains("--target-se"));
    assert_eq!(c, plain.without_run_info());

    // Bad targets are diagnosed.
    for bad in [
        "nope[baseline]=1",
        "mean_x[mars]=1",
        "mean_x[baseline]=-1",
        "mean_x=1",
    ] {
        assert!(
            parse_targets(&m, &opts, &[bad.to_string()]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn target_se_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("t.toml");
    std::fs::write(&scenario, TARGET).unwrap();
    let out = dir.path().join("r.json");
    let o = whatif(&[
        "run",
        scenario.to_str().unwrap(),
        "-q",
        "--target-se",
        "mean_x[up]=0.01",
        "--max-samples",
        "500000",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o, "target run");
    let r = report_of(&out);
    assert!(r.manifest.target_se.as_ref().unwrap().reached);
    assert!(r.manifest.samples < 500_000);
    let o = whatif(&[
        "run",
        scenario.to_str().unwrap(),
        "-q",
        "--target-se",
        "mean_x[up]=abc",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// A fit-locked, multi-period scenario (the shipped pricing backtest with
/// its lock) shards like any other: three shard processes merge into the
/// single run's report, the manifest keeps the lock's hash, and a part run
/// under a different lock (one estimate changed) is refused by the merge.
#[test]
fn a_fit_locked_scenario_shards_and_refuses_parts_of_another_lock() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "pricing_backtest.toml",
        "pricing_backtest.csv",
        "pricing_backtest.fit.lock",
    ] {
        std::fs::copy(Path::new("scenarios").join(f), dir.path().join(f)).expect("copy");
    }
    let scenario = dir.path().join("pricing_backtest.toml");
    let scenario = scenario.to_str().unwrap();
    let n = ["--samples", "30000"];
    let single_out = dir.path().join("single.json");
    let o = whatif(&args(
        &["run", scenario, "-q", "--out", single_out.to_str().unwrap()],
        &n.map(String::from),
    ));
    ok(&o, "single run");
    let want = report_of(&single_out);
    let lock_hash = want.manifest.fit_lock_sha256.clone();
    assert!(lock_hash.is_some(), "the single run records the lock");
    let parts = shards(scenario, dir.path(), 3, "p", &n);
    let merged = dir.path().join("merged.json");
    let o = whatif(&args(&["merge", "--out", merged.to_str().unwrap()], &parts));
    ok(&o, "merge");
    let got = report_of(&merged);
    assert_eq!(got.manifest.fit_lock_sha256, lock_hash);
    assert_eq!(got.without_run_info(), want.without_run_info());

    // Shard 2 again, under a lock whose ?carry estimate differs.
    let lock_path = dir.path().join("pricing_backtest.fit.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    let i = lock.find("name = \"carry\"").expect("carry in lock");
    let j = i + lock[i..].find("estimate = ").expect("estimate") + "estimate = ".len();
    let end = j + lock[j..].find('\n').unwrap();
    let edited = format!("{}0.3{}", &lock[..j], &lock[end..]);
    std::fs::write(&lock_path, edited).unwrap();
    let other = dir.path().join("other-2.json");
    let o = whatif(&args(
        &[
            "run",
            scenario,
            "-q",
            "--shard",
            "2/3",
            "--out",
            other.to_str().unwrap(),
        ],
        &n.map(String::from),
    ));
    ok(&o, "shard under another lock");
    let mixed = [
        parts[0].clone(),
        parts[1].clone(),
        other.display().to_string(),
    ];
    let o = whatif(&args(&["merge"], &mixed));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("different parameter values") || err.contains("different programs"),
        "{err}"
    );
}
