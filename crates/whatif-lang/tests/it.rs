//! Integration tests of the scenario front end: golden diagnostics, the
//! expression parser, spans inside TOML strings, the shipped scenarios, the
//! graph export and property tests (print → parse round-trip, no panic on
//! arbitrary input).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use whatif_lang::ast::{Expr, ExprKind};
use whatif_lang::{BinOp, Code, compile, graph, parse_expr, render_diagnostics};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- goldens

/// Every `tests/diagnostics/<case>/scenario.toml` must fail to compile and
/// render exactly `expected.txt`. `WHATIF_BLESS=1` rewrites the expectations.
#[test]
fn golden_diagnostics() {
    let dir = crate_dir().join("tests/diagnostics");
    let bless = std::env::var_os("WHATIF_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/diagnostics exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let source = std::fs::read_to_string(case.join("scenario.toml")).expect("scenario.toml");
        let diags = match compile(&source) {
            Ok(_) => {
                failures.push(format!("{name}: compiled without diagnostics"));
                continue;
            }
            Err(d) => d,
        };
        let text = render_diagnostics(&diags, "scenario.toml", &source);
        let expected_path = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &text).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != text {
            failures.push(format!(
                "{name}: rendered diagnostics differ\n--- expected\n{expected}\n--- actual\n{text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\n{} golden case(s) failed; if the new output is right, rerun with WHATIF_BLESS=1 to rewrite expected.txt",
        failures.join("\n"),
        failures.len()
    );
}

fn diags(src: &str) -> Vec<whatif_lang::Diagnostic> {
    compile(src).expect_err("expected diagnostics")
}

#[test]
fn diagnostics_are_sorted_and_all_collected() {
    let src = "[nodes]\na = \"b + 1\"\nb = \"a + 1\"\nc = \"normal(0, 0)\"\nd = \"nope\"\n";
    let ds = diags(src);
    let codes: Vec<Code> = ds.iter().map(|d| d.code).collect();
    assert!(
        codes.contains(&Code::Cycle)
            && codes.contains(&Code::InvalidDistParam)
            && codes.contains(&Code::UnknownName)
    );
    assert!(ds.windows(2).all(|w| w[0].span.start <= w[1].span.start));
}

#[test]
fn cycle_names_whole_cycle_with_label_per_edge() {
    let src = "[nodes]\na = \"c + 1\"\nb = \"a * 2\"\nc = \"b - 1\"\n";
    let ds = diags(src);
    let d = ds.iter().find(|d| d.code == Code::Cycle).expect("cycle");
    assert!(d.message.contains("a -> b -> c -> a"), "{}", d.message);
    assert_eq!(d.secondary.len() + 1, 3, "one label per edge");
}

#[test]
fn json_diagnostics_have_positions() {
    let src = "[nodes]\nx = \"1 + yy\"\n";
    let ds = diags(src);
    let j = whatif_lang::diagnostics_json(&ds, "f.toml", src);
    let first = &j[0];
    assert_eq!(first["code"], "whatif::unknown_name");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 10);
    assert_eq!(first["span"]["start"], 17);
    assert_eq!(first["file"], "f.toml");
}

// ---------------------------------------------------------------- parser

fn p(s: &str) -> String {
    parse_expr(s)
        .map(|e| e.to_string())
        .unwrap_or_else(|e| format!("error: {e}"))
}

fn shape(s: &str) -> Expr {
    parse_expr(s).expect("parses").without_spans()
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(shape("-x^2"), shape("-(x^2)"));
    assert_ne!(shape("-x^2"), shape("(-x)^2"));
    assert_eq!(shape("a^b^c"), shape("a^(b^c)"));
    assert_eq!(shape("a - b - c"), shape("(a - b) - c"));
    assert_eq!(shape("a / b * c"), shape("(a / b) * c"));
    assert_eq!(shape("1 + 2 * 3"), shape("1 + (2 * 3)"));
    assert_eq!(
        shape("not a < b and c or d"),
        shape("((not (a < b)) and c) or d")
    );
    assert_eq!(shape("2^-1"), shape("2^(-1)"));
    assert_eq!(p("(a - b) - c"), "a - b - c");
    assert_eq!(p("a - (b - c)"), "a - (b - c)");
    assert_eq!(p("(a^b)^c"), "(a^b)^c");
    assert_eq!(p("(-x)^2"), "(-x)^2");
    assert!(p("a < b < c").starts_with("error"));
}

#[test]
fn numbers() {
    let num = |s: &str| match parse_expr(s).expect("parses").kind {
        ExprKind::Num(v) => v,
        k => panic!("not a number: {k:?}"),
    };
    assert_eq!(num("1_000"), 1000.0);
    assert_eq!(num("2.5e-3"), 0.0025);
    assert_eq!(num("1E3"), 1000.0);
    assert_eq!(num("0.5"), 0.5);
    assert!(parse_expr("1__0").is_err());
    assert!(parse_expr("1e999").is_err());
    assert!(parse_expr("1_").is_err());
}

#[test]
fn expression_spans() {
    let e = parse_expr("a + max(b, 2)").expect("parses");
    let ExprKind::Binary {
        op: BinOp::Add,
        rhs,
        ..
    } = &e.kind
    else {
        panic!("not an addition")
    };
    assert_eq!((rhs.span.start, rhs.span.end), (4, 13));
    assert_eq!((e.span.start, e.span.end), (0, 13));
    let err = parse_expr("a + * b").expect_err("syntax error");
    assert_eq!((err.span.start, err.span.end), (4, 5));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&deep).is_err());
    let long = vec!["x"; 5_000].join(" + ");
    assert!(parse_expr(&long).is_err());
    let negs = format!("{}x", "-".repeat(10_000));
    assert!(parse_expr(&negs).is_err());
}

// ---------------------------------------------------------------- spans in strings

fn primary(src: &str) -> &str {
    let d = &diags(src)[0];
    &src[d.span.start..d.span.end]
}

#[test]
fn span_inside_plain_string() {
    assert_eq!(primary("[nodes]\nx = \"1 + 2 * yy\"\n"), "yy");
}

#[test]
fn span_inside_string_with_escapes() {
    // `\u0032` decodes to `2`, `\t` to a tab: the offsets after them shift.
    let src = "[nodes]\nx = \"normal(0, 1)\"\ny = \"\\u0032 * x + \\t foo\"\n";
    assert_eq!(primary(src), "foo");
    let src = "[nodes]\ny = \"\\\"q\\\" + bar\"\n";
    assert_eq!(
        primary(src),
        "\\\"",
        "the unexpected quote, escape included"
    );
}

#[test]
fn span_inside_multiline_strings() {
    let src = "[nodes]\nx = \"normal(0, 1)\"\ny = \"\"\"\n  2 * x\n    + normal(0, 0)\n\"\"\"\n";
    assert_eq!(primary(src), "0");
    let src = "[nodes]\nx = \"normal(0, 1)\"\ny = \"\"\"2 * x + \\\n       lg(x)\"\"\"\n";
    assert_eq!(primary(src), "lg");
    let src = "[nodes]\ny = '''\n1 + zz'''\n";
    assert_eq!(primary(src), "zz");
}

#[test]
fn unmappable_string_points_at_whole_string() {
    // A CRLF inside a multi-line string may be normalised by the TOML
    // parser; either way the span must lie inside the string.
    let src = "[nodes]\ny = \"\"\"\r\n1 + zz\"\"\"\n";
    let d = &diags(src)[0];
    let s = &src[d.span.start..d.span.end];
    assert!(s == "zz" || s.starts_with("\"\"\""), "{s:?}");
}

// ---------------------------------------------------------------- scenarios

fn scenario(name: &str) -> (String, whatif_lang::CausalModel) {
    let path = crate_dir().join("../../scenarios").join(name);
    let src = std::fs::read_to_string(&path).expect("scenario exists");
    match whatif_lang::compile_at(&src, path.parent()) {
        Ok(m) => (src, m),
        Err(d) => panic!(
            "{}",
            render_diagnostics(&d, &path.display().to_string(), &src)
        ),
    }
}

#[test]
fn every_shipped_scenario_compiles() {
    let dir = crate_dir().join("../../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            let (_, m) = scenario(&name);
            assert!(
                !m.nodes.is_empty() && !m.metrics.is_empty() && !m.checks.is_empty(),
                "{name}"
            );
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn linear_gaussian_structure() {
    let (_, m) = scenario("linear_gaussian.toml");
    let worlds: Vec<&str> = m.worlds.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(worlds, ["baseline", "set_x", "shift_x"]);
    let names: Vec<&str> = m
        .topo_order
        .iter()
        .map(|&n| m.node(n).name.as_str())
        .collect();
    assert_eq!(names, ["z", "x", "y"]);
    assert!(m.node(m.node_id("z").expect("z")).latent);
    let set_x = m.world_id("set_x").expect("set_x");
    let shift_x = m.world_id("shift_x").expect("shift_x");
    let x = m.node_id("x").expect("x");
    match m.mechanism(set_x, x) {
        whatif_lang::Mechanism::Edited { node_edit, .. } => {
            assert!(!node_edit.reads_self && node_edit.parents.is_empty())
        }
        _ => panic!("x is edited in set_x"),
    }
    match m.mechanism(shift_x, x) {
        whatif_lang::Mechanism::Edited { node_edit, .. } => assert!(node_edit.reads_self),
        _ => panic!("x is edited in shift_x"),
    }
    // The hard intervention cuts z -> x in the graph.
    let dot = graph::to_dot(&m, Some(set_x));
    assert!(!dot.contains("\"z\" -> \"x\""), "{dot}");
    assert!(graph::to_dot(&m, None).contains("\"z\" -> \"x\""));
    assert!(dot.contains("do(set_x)"));
    let mermaid = graph::to_mermaid(&m, Some(shift_x));
    assert!(
        mermaid.contains("z -.-> x") && mermaid.contains("edited by shift_x"),
        "{mermaid}"
    );
}

#[test]
fn credit_risk_structure_and_noise_sites() {
    let (_, m) = scenario("credit_risk.toml");
    let worlds: Vec<&str> = m.worlds.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        worlds,
        [
            "baseline",
            "recession",
            "raise_limits",
            "raise_limits+recession"
        ]
    );
    // The recession redraw reuses the baseline's site (coupled worlds).
    let recession = &m.edits[m
        .edits
        .iter()
        .position(|e| e.name == "recession")
        .expect("recession")];
    let whatif_lang::ExprKind::Call { args, .. } = &recession.nodes[0].expr.kind else {
        panic!("max(...)")
    };
    let whatif_lang::ExprKind::Draw { site, .. } = &args[0].kind else {
        panic!("normal(...)")
    };
    assert_eq!(m.sites[site.index()].key.to_string(), "unemployment#0");
    assert_eq!(m.sites.len(), 5, "no new sites for pure replacements");
    // Guardrail defaults to the worlds with an intervention.
    let g = &m.guardrails[0];
    let gw: Vec<&str> = g
        .worlds
        .iter()
        .map(|w| m.worlds[w.index()].name.as_str())
        .collect();
    assert_eq!(gw, ["raise_limits", "raise_limits+recession"]);
    assert!(
        matches!(m.metrics[m.metric_id("es99").expect("es99").index()].kind, whatif_lang::MetricKind::ExpectedShortfall(q) if q == 0.99)
    );
}

#[test]
fn shift_with_new_noise_gets_fresh_site() {
    let src = "[nodes]\nu = \"normal(0, 1)\"\n[stresses.shock]\nu = \"u + normal(0.03, 0.01)\"\n[interventions.redraw]\nu = \"normal(1, 1) + normal(2, 1)\"\n";
    let m = compile(src).expect("compiles");
    let keys: Vec<String> = m.sites.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(keys, ["u#0", "u@shock#0", "u#1"]);
    assert_eq!(m.sites[0].hash, whatif_lang::site_hash(&m.sites[0].key));
}

#[test]
fn default_worlds_include_check_worlds_and_combos_commute() {
    let src = "[nodes]\nx = \"normal(0, 1)\"\ny = \"normal(0, 1)\"\n[interventions.a]\nx = \"1\"\n[stresses.b]\ny = \"2\"\n[metrics]\nm = \"mean(x + y)\"\n[[checks]]\nexpect = \"m[b+a] > m[a+b] - 1\"\n";
    let m = compile(src).expect("compiles");
    let worlds: Vec<&str> = m.worlds.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(worlds, ["baseline", "a", "b", "b+a"]);
}

// ---------------------------------------------------------------- properties

fn arb_expr() -> impl Strategy<Value = Expr> {
    let name = prop::sample::select(vec!["x", "y", "income", "_z1"])
        .prop_map(|s| Expr::new(ExprKind::Name(s.into())));
    let num = prop_oneof![
        (0u32..1000).prop_map(f64::from),
        (0.0f64..1e6),
        Just(2.5e-3),
        Just(1e21)
    ]
    .prop_map(|v| Expr::new(ExprKind::Num(v)));
    let leaf = prop_oneof![name, num];
    leaf.prop_recursive(6, 64, 3, |inner| {
        let ops = prop::sample::select(vec![
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Pow,
            BinOp::Lt,
            BinOp::Le,
            BinOp::Gt,
            BinOp::Ge,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::And,
            BinOp::Or,
        ]);
        prop_oneof![
            inner
                .clone()
                .prop_map(|e| Expr::new(ExprKind::Neg(Box::new(e)))),
            inner
                .clone()
                .prop_map(|e| Expr::new(ExprKind::Not(Box::new(e)))),
            (ops, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(l),
                    rhs: Box::new(r)
                }
            )),
            (
                prop::sample::select(vec!["max", "normal", "if"]),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(n, args)| Expr::new(ExprKind::Call {
                    name: n.into(),
                    name_span: Default::default(),
                    args
                })),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// print → parse gives back the same tree.
    #[test]
    fn print_parse_round_trips(e in arb_expr()) {
        let text = e.to_string();
        let back = parse_expr(&text);
        prop_assert!(back.is_ok(), "{text:?} does not parse: {:?}", back.err());
        prop_assert_eq!(back.map(|b| b.without_spans()).ok(), Some(e), "text: {}", text);
    }

    /// No input makes the front end panic (a byte-level fuzzer that runs in
    /// `cargo test`; `fuzz/` has the coverage-guided one).
    #[test]
    fn compile_never_panics(s in "\\PC{0,200}") {
        let _ = compile(&s);
    }

    /// Mutations of a valid scenario never panic either, and every span a
    /// diagnostic carries lies inside the source.
    #[test]
    fn mutated_scenarios_never_panic(cut in 0usize..2000, insert in "[\\[\\]\"'=+\\-*/^(),.a-z0-9 \\n\\\\]{0,8}") {
        let base = std::fs::read_to_string(crate_dir().join("../../scenarios/credit_risk.toml")).unwrap_or_default();
        let mut cut = cut.min(base.len());
        while !base.is_char_boundary(cut) { cut -= 1; }
        let src = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        if let Err(ds) = compile(&src) {
            for d in &ds {
                prop_assert!(d.span.start <= d.span.end && d.span.end <= src.len(), "{:?}", d);
            }
            let _ = render_diagnostics(&ds, "f.toml", &src);
        }
    }
}

#[test]
fn design_md_sketch_compiles() {
    let src = r#"
[scenario]
name = "credit-limit-policy"
samples = 1_000_000
seed = 2026

[params]
lgd = 0.6

[nodes]
unemployment = "max(normal(0.05, 0.01), 0)"
income       = "lognormal(10.5, 0.4) * (1 - 2 * unemployment)"
credit_limit = "max(0.3 * income + normal(0, 500), 500)"
utilization  = "sigmoid(-1 + 8 * unemployment + normal(0, 0.5))"
default      = "bernoulli(sigmoid(-4 + 20 * unemployment + 2 * utilization - 0.00002 * income))"
loss         = "default * utilization * credit_limit * lgd"

[interventions]
raise_limits = { credit_limit = "credit_limit * 1.2" }

[stresses]
recession = { unemployment = "max(normal(0.08, 0.015), 0)" }

[run]
worlds = ["baseline", "recession", "raise_limits", "raise_limits+recession"]

[metrics]
expected_loss = "mean(loss)"
es99          = "expected_shortfall(loss, 0.99)"

[[checks]]
name = "policy is safe in a recession"
expect = "expected_loss[raise_limits+recession] / expected_loss[recession] < 1.05"
"#;
    let m = compile(src).expect("the DESIGN.md sketch compiles");
    assert_eq!(m.n_samples, 1_000_000);
    assert_eq!(m.worlds.len(), 4);
    let _ = Path::new("");
}

// ---------------------------------------------------------------- sweeps

#[test]
fn sweeps_resolve_with_exact_end_points() {
    let m = compile(
        r#"
[params]
k = 1.0
j = 2.0
[nodes]
x = "normal(0, 1) * k + j"
[sweeps]
k = { lo = 0.1, hi = 0.7, points = 7 }
j = { lo = -1, hi = 1, points = 2 }
"#,
    )
    .expect("compiles");
    assert_eq!(m.sweeps.len(), 2);
    let k = &m.sweeps[0];
    assert_eq!(k.param, m.param_id("k").expect("k"));
    let v = k.values();
    assert_eq!(v.len(), 7);
    assert_eq!((v[0], v[6]), (0.1, 0.7), "both ends exact");
    assert!(v.windows(2).all(|w| ((w[1] - w[0]) - 0.1).abs() < 1e-12));
    assert_eq!(m.sweeps[1].values(), vec![-1.0, 1.0]);
    // with_params sets values and keeps everything else.
    let m2 = whatif_lang::sweep::with_params(&m, &[(k.param, 0.5)]).expect("valid");
    assert_eq!(m2.params[k.param.index()].value, 0.5);
    assert_eq!(m2.sites, m.sites, "same noise sites: common random numbers");
}

#[test]
fn sweep_specs_parse_and_validate_like_the_file() {
    use whatif_lang::sweep::{parse_range, parse_spec, sweep_from_spec, with_params};
    let s = parse_spec("limit_mult=1:1.5:6").expect("parses");
    assert_eq!(
        (s.name.as_str(), s.lo, s.hi, s.points),
        ("limit_mult", 1.0, 1.5, 6)
    );
    assert!(parse_spec("k=1:2").is_err());
    assert!(parse_spec("=1:2:3").is_err());
    assert!(parse_spec("k=1:inf:3").is_err());
    assert!(parse_spec("k=1:2:x").is_err());
    assert_eq!(
        parse_range("k=3:1").expect("parses"),
        ("k".into(), 3.0, 1.0)
    );
    assert!(parse_range("k=1:1").is_err());
    let m = compile("[params]\nsd = 1.0\n[nodes]\nx = \"normal(0, sd)\"\n").expect("compiles");
    let spec = |lo, hi, points| whatif_lang::sweep::SweepSpec {
        name: "sd".into(),
        lo,
        hi,
        points,
    };
    assert!(sweep_from_spec(&m, &spec(0.5, 2.0, 4)).is_ok());
    assert!(
        sweep_from_spec(&m, &spec(2.0, 0.5, 4))
            .unwrap_err()
            .contains("lo must be less")
    );
    assert!(
        sweep_from_spec(&m, &spec(0.5, 2.0, 1))
            .unwrap_err()
            .contains("at least 2")
    );
    assert!(
        sweep_from_spec(&m, &spec(0.5, 2.0, 100_000))
            .unwrap_err()
            .contains("at most")
    );
    let sd = m.param_id("sd").expect("sd");
    let err = with_params(&m, &[(sd, 0.0)]).expect_err("sd = 0 is invalid");
    assert_eq!(err[0].code, Code::InvalidDistParam);
}
