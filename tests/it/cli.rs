//! The CLI as a user meets it: exit codes, outputs, atomic writes, schema.

use std::path::Path;
use std::process::{Command, Output};

fn whatif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_whatif"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write scenario");
    p.display().to_string()
}

const PASSING: &str = r#"
[scenario]
name = "cli"
samples = 20_000
seed = 3
[nodes]
x = "normal(0, 1)"
y = "x + 1"
[interventions.up]
x = "x + 1"
[metrics]
mean_y = "mean(y)"
[[checks]]
name = "up raises y"
expect = "effect(mean_y, up) > 0.5"
"#;

#[test]
fn run_passes_and_prints_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(dir.path(), "s.toml", PASSING);
    let out = whatif(&["run", &f]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mean_y"), "{text}");
    assert!(text.contains("PASS  up raises y"), "{text}");
}

#[test]
fn failing_check_exits_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(dir.path(), "s.toml", &PASSING.replace("> 0.5", "> 1.5"));
    let out = whatif(&["run", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  up raises y"));
}

#[test]
fn bad_input_exits_2_with_location() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(
        dir.path(),
        "bad.toml",
        &PASSING.replace("x + 1\"\n[interventions", "x + incom\"\n[interventions"),
    );
    for cmd in ["check", "run"] {
        let out = whatif(&[cmd, &f]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:8:"), "{cmd}: {err}");
    }
    let out = whatif(&["check", "--format", "json", &f]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON diagnostics");
    assert!(v.to_string().contains("\"line\":8"), "{v}");
}

#[test]
fn absurd_samples_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(dir.path(), "s.toml", PASSING);
    for n in ["0", "9007199254740993"] {
        let out = whatif(&["run", &f, "--samples", n]);
        assert_eq!(out.status.code(), Some(2), "--samples {n}");
    }
    let out = whatif(&["run", &f, "--world", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown world `nope`"));
}

#[test]
fn out_is_atomic_and_valid_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(dir.path(), "s.toml", PASSING);
    let out_path = dir.path().join("report.json");
    let out = whatif(&[
        "run",
        &f,
        "--out",
        out_path.to_str().expect("utf8"),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).expect("report written"))
            .expect("valid JSON");
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout JSON");
    assert_eq!(file["worlds"], stdout["worlds"]);
    assert_eq!(file["schema"], 1);
    // A directory that does not exist: error, exit 2, nothing left behind.
    let missing = dir.path().join("nope").join("r.json");
    let out = whatif(&["run", &f, "--out", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!missing.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only s.toml and report.json: {leftovers:?}"
    );
}

#[test]
fn reports_validate_against_schema() {
    let schema_out = whatif(&["schema", "report"]);
    assert_eq!(schema_out.status.code(), Some(0));
    let schema: serde_json::Value =
        serde_json::from_slice(&schema_out.stdout).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for scenario in [
        "scenarios/credit_risk.toml",
        "scenarios/linear_gaussian.toml",
        "scenarios/pricing_policy.toml",
    ] {
        let out = whatif(&["run", scenario, "--samples", "20000", "--format", "json"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
        let errors: Vec<String> = validator
            .iter_errors(&report)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{scenario}: {errors:#?}");
    }
    // The schema is strict: an unknown field fails validation.
    let mut bad: serde_json::Value = serde_json::from_slice(
        &whatif(&[
            "run",
            "scenarios/linear_gaussian.toml",
            "--samples",
            "5000",
            "--format",
            "json",
        ])
        .stdout,
    )
    .expect("JSON");
    bad["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&bad));
}

#[test]
fn same_seed_same_json_except_run_info() {
    let a = whatif(&[
        "run",
        "scenarios/credit_risk.toml",
        "--samples",
        "30000",
        "--format",
        "json",
        "--threads",
        "1",
    ]);
    let b = whatif(&[
        "run",
        "scenarios/credit_risk.toml",
        "--samples",
        "30000",
        "--format",
        "json",
        "--threads",
        "2",
        "--chunk",
        "256",
    ]);
    let strip = |o: &Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        v["manifest"]["run"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&a), strip(&b));
    let c = whatif(&[
        "run",
        "scenarios/credit_risk.toml",
        "--samples",
        "30000",
        "--format",
        "json",
        "--seed",
        "99",
    ]);
    assert_ne!(strip(&a)["worlds"], strip(&c)["worlds"]);
}

#[test]
fn check_is_clean_on_shipped_scenarios() {
    let mut args = vec!["check"];
    let files: Vec<String> = std::fs::read_dir("scenarios")
        .expect("scenarios/")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .map(|p| p.display().to_string())
        .collect();
    args.extend(files.iter().map(String::as_str));
    let out = whatif(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn graph_renders_with_graphviz() {
    let out = whatif(&["graph", "scenarios/credit_risk.toml"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(dot.starts_with("digraph"), "{dot}");
    let mermaid = whatif(&[
        "graph",
        "scenarios/credit_risk.toml",
        "--format",
        "mermaid",
        "--world",
        "raise_limits",
    ]);
    assert_eq!(mermaid.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&mermaid.stdout).contains("graph")
            || String::from_utf8_lossy(&mermaid.stdout).contains("flowchart")
    );
    let dot_bin = Command::new("dot").arg("-V").output();
    if dot_bin.is_err() {
        if std::env::var_os("WHATIF_REQUIRE_GRAPHVIZ").is_some() {
            panic!("graphviz `dot` is required (WHATIF_REQUIRE_GRAPHVIZ) but missing");
        }
        eprintln!("skipping the Graphviz render: `dot` is not installed");
        return;
    }
    for world in [None, Some("raise_limits+recession")] {
        let mut args = vec!["graph", "scenarios/credit_risk.toml"];
        if let Some(w) = world {
            args.extend(["--world", w]);
        }
        let text = whatif(&args).stdout;
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dot runs");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), &text).expect("pipe");
        let r = child.wait_with_output().expect("dot finishes");
        assert!(
            r.status.success(),
            "dot failed: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(String::from_utf8_lossy(&r.stdout).contains("<svg"));
    }
}

#[test]
fn html_markdown_junit_and_diff() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = write(dir.path(), "s.toml", PASSING);
    let html = dir.path().join("r.html");
    let md = dir.path().join("r.md");
    let junit = dir.path().join("j.xml");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let out = whatif(&[
        "run",
        &f,
        "--report",
        &s(&html),
        "--junit",
        &s(&junit),
        "--out",
        &s(&a),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(
        page.contains("<svg") && page.contains("mean_y"),
        "charts and metrics"
    );
    // Self-contained: nothing is fetched from a network.
    for attr in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(attr), "page references {attr}");
    }
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("<testcase") && xml.contains("up raises y"),
        "{xml}"
    );
    let out = whatif(&["run", &f, "--report", &s(&md), "--out", &s(&b)]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&md).expect("md written");
    let svgs: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    assert!(!svgs.is_empty());
    for svg in &svgs {
        assert!(text.contains(svg.as_str()), "markdown links {svg}");
    }
    // A report in a directory that does not exist yet: it is created.
    let nested = dir.path().join("reports/2026/r.md");
    let out = whatif(&["run", &f, "--report", &s(&nested)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(nested.exists() && nested.with_file_name("r-dag.svg").exists());
    // Same seed: nothing moved.
    let out = whatif(&["diff", &s(&a), &s(&b), "--fail-on-change"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A real change moves and fails with --fail-on-change.
    let g = write(
        dir.path(),
        "g.toml",
        &PASSING.replace("y = \"x + 1\"", "y = \"x + 1.2\""),
    );
    let c = dir.path().join("c.json");
    assert_eq!(whatif(&["run", &g, "--out", &s(&c)]).status.code(), Some(0));
    let out = whatif(&["diff", &s(&a), &s(&c), "--fail-on-change"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(whatif(&["diff", &s(&a), &s(&c)]).status.code(), Some(0));
    // Bad inputs.
    assert_eq!(
        whatif(&["run", &f, "--report", &s(&dir.path().join("r.pdf"))])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(whatif(&["diff", &s(&a), &f]).status.code(), Some(2));
}

#[test]
fn worlds_named_by_checks_are_always_evaluated() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = PASSING.replace(
        "[metrics]",
        "[interventions.down]\nx = \"x - 1\"\n\n[metrics]",
    );
    let f = write(dir.path(), "s.toml", &src);
    // Only `down` asked for; the check needs `up`, which is added.
    let out = whatif(&["run", &f, "--world", "down", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = v["worlds"]
        .as_array()
        .expect("worlds")
        .iter()
        .map(|w| w["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["baseline", "down", "up"]);
}
