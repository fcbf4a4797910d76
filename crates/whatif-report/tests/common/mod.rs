//! Shared test inputs: a realistic credit-stress report (from a JSON
//! fixture), a hand-built DAG, and per-sample chart data generated from a
//! small structural model with a fixed seed, so every test sees the same
//! numbers. Metric estimates in the report are recomputed from the generated
//! samples so the charts' marks and the tables agree.

#![allow(dead_code)] // each test binary uses a different subset

use whatif_lang::MetricKind;
use whatif_report::Report;
use whatif_report::charts::{ChartData, LineChartData, LineSeries, MetricInfo, MetricSamples};
use whatif_report::dag::{DagInput, DagNode};

/// The fixture report.
pub fn report() -> Report {
    let text = include_str!("../fixtures/credit_stress.json");
    serde_json::from_str(text).expect("fixture parses as a Report")
}

/// Metric descriptions as the model would give them.
pub fn metrics() -> Vec<MetricInfo> {
    let m = |name: &str, source: &str, kind| MetricInfo {
        name: name.into(),
        source: source.into(),
        kind: Some(kind),
    };
    vec![
        m("default_rate", "prob(default)", MetricKind::Prob),
        m("mean_loss", "mean(loss)", MetricKind::Mean),
        m(
            "var99_loss",
            "value_at_risk(loss, 0.99)",
            MetricKind::ValueAtRisk(0.99),
        ),
        m(
            "es99_loss",
            "expected_shortfall(loss, 0.99)",
            MetricKind::ExpectedShortfall(0.99),
        ),
        m("mean_income", "mean(income)", MetricKind::Mean),
    ]
}

/// The credit model's graph, edits marked as in the baseline view.
pub fn dag() -> DagInput {
    let node = |name: &str, latent, edited, hard, note: Option<&str>| DagNode {
        name: name.into(),
        latent,
        edited,
        hard,
        note: note.map(String::from),
    };
    let nodes = vec![
        node(
            "unemployment",
            false,
            true,
            true,
            Some("edited in: recession, raise_limits+recession"),
        ), // 0
        node(
            "house_prices",
            false,
            true,
            false,
            Some("edited in: recession, raise_limits+recession"),
        ), // 1
        node(
            "risk_appetite",
            true,
            false,
            false,
            Some("latent confounder"),
        ), // 2
        node("income", false, false, false, None), // 3
        node("credit_score", false, false, false, None), // 4
        node(
            "credit_limit",
            false,
            true,
            false,
            Some("edited in: raise_limits, raise_limits+recession"),
        ), // 5
        node("utilisation", false, false, false, None), // 6
        node("default", false, false, false, None), // 7
        node("collateral", false, false, false, None), // 8
        node("lgd", false, false, false, None),    // 9
        node("loss", false, false, false, None),   // 10
    ];
    let edges = vec![
        (0, 3),
        (0, 7),
        (1, 8),
        (2, 4),
        (2, 6),
        (3, 4),
        (3, 5),
        (4, 5),
        (4, 7),
        (5, 6),
        (6, 7),
        (8, 9),
        (7, 10),
        (9, 10),
        (5, 10),
        (6, 10),
    ];
    DagInput { nodes, edges }
}

/// SplitMix64: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Per-sample chart data for the four worlds (common random numbers: the
/// same draws in every world), and the report with estimates recomputed.
pub fn report_and_charts(n: usize) -> (Report, ChartData) {
    let mut report = report();
    let worlds = [
        "baseline",
        "raise_limits",
        "recession",
        "raise_limits+recession",
    ];
    let mut rng = Rng(42);
    let draws: Vec<[f64; 6]> = (0..n)
        .map(|_| {
            [
                rng.normal(),
                rng.normal(),
                rng.normal(),
                rng.uniform(),
                rng.normal(),
                rng.normal(),
            ]
        })
        .collect();
    let mut series = Vec::new();
    for (wi, w) in worlds.iter().enumerate() {
        let raise = wi == 1 || wi == 3;
        let recession = wi >= 2;
        let (mut default, mut loss, mut income) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for d in &draws {
            let unemployment = if recession { 0.09 } else { 0.05 };
            let house = if recession {
                -0.15 + 0.05 * d[5]
            } else {
                0.02 + 0.05 * d[5]
            };
            let inc = (11.0 + 0.35 * d[0] - 2.0 * (unemployment - 0.05)).exp();
            let score = 0.6 * d[1] + 0.4 * (inc.ln() - 11.0) / 0.35;
            let limit = 0.25 * inc * (1.0 + 0.2 * score).max(0.2) * if raise { 1.5 } else { 1.0 };
            let util = (0.45 + 0.2 * d[2] - 0.05 * score).clamp(0.02, 1.0);
            let logit = -3.6 - 0.8 * score
                + 2.2 * util
                + 18.0 * (unemployment - 0.05)
                + if raise { 0.12 } else { 0.0 };
            let p = 1.0 / (1.0 + (-logit).exp());
            let def = if d[3] < p { 1.0 } else { 0.0 };
            let lgd = (0.45 - 0.8 * house + 0.1 * d[4]).clamp(0.05, 1.0);
            default.push(def as f32);
            loss.push((def * limit * util * lgd) as f32);
            income.push(inc as f32);
        }
        for (metric, values) in [
            ("default_rate", default),
            ("mean_loss", loss.clone()),
            ("var99_loss", loss.clone()),
            ("es99_loss", loss),
            ("mean_income", income),
        ] {
            let est = estimate(metric, &values);
            if let Some(r) = report.worlds[wi]
                .metrics
                .iter_mut()
                .find(|r| r.name == metric)
            {
                let se = r.std_error.unwrap_or(0.0);
                r.estimate = Some(est);
                r.ci95 = [Some(est - 1.96 * se), Some(est + 1.96 * se)];
            }
            series.push(MetricSamples {
                metric: metric.into(),
                world: w.to_string(),
                values,
            });
        }
    }
    // Keep the effects consistent with the recomputed estimates.
    let est = |r: &Report, w: &str, m: &str| {
        r.worlds
            .iter()
            .find(|x| x.name == w)
            .and_then(|x| x.metrics.iter().find(|y| y.name == m))
            .and_then(|y| y.estimate)
    };
    let snapshot = report.clone();
    for e in &mut report.effects {
        if let (Some(a), Some(b)) = (
            est(&snapshot, &e.world, &e.metric),
            est(&snapshot, &e.vs, &e.metric),
        ) {
            e.difference = Some(a - b);
            e.ratio = (b != 0.0).then(|| a / b);
        }
    }
    let sweep = LineChartData {
        title: "es99_loss across limit_mult".into(),
        x_label: "limit_mult".into(),
        y_label: "es99_loss".into(),
        x_labels: None,
        series: ["baseline", "recession"]
            .iter()
            .enumerate()
            .map(|(k, w)| LineSeries {
                label: w.to_string(),
                world: Some(w.to_string()),
                x: (0..6).map(|i| 1.0 + 0.2 * i as f64).collect(),
                y: (0..6)
                    .map(|i| Some(4000.0 * (1.0 + 0.8 * k as f64) * (1.0 + 0.35 * i as f64)))
                    .collect(),
                std_error: (0..6).map(|i| Some(80.0 + 20.0 * i as f64)).collect(),
                band: vec![],
            })
            .collect(),
    };
    let periods: Vec<String> = (1..=8)
        .map(|q| format!("{}Q{}", 2022 + (q - 1) / 4, (q - 1) % 4 + 1))
        .collect();
    let backtest = LineChartData {
        title: "Default rate per quarter".into(),
        x_label: "period".into(),
        y_label: "default rate".into(),
        x_labels: Some(periods),
        series: vec![
            LineSeries {
                label: "observed".into(),
                world: Some("baseline".into()),
                x: (0..8).map(f64::from).collect(),
                y: [0.031, 0.034, 0.036, 0.041, 0.039, 0.044, 0.047, 0.045]
                    .into_iter()
                    .map(Some)
                    .collect(),
                std_error: vec![],
                band: vec![],
            },
            LineSeries {
                label: "counterfactual: raise_limits".into(),
                world: Some("raise_limits".into()),
                x: (0..8).map(f64::from).collect(),
                y: [0.036, 0.040, 0.041, 0.047, 0.046, 0.051, 0.054, 0.052]
                    .into_iter()
                    .map(Some)
                    .collect(),
                std_error: vec![Some(0.0012); 8],
                band: vec![],
            },
        ],
    };
    let charts = ChartData {
        samples_used: n as u64,
        series,
        sweeps: Some(vec![sweep]),
        backtest: Some(vec![backtest]),
        fans: None,
    };
    (report, charts)
}

/// The estimate of `metric` from samples (same definitions as the engine).
fn estimate(metric: &str, values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mut s: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    s.sort_by(f64::total_cmp);
    match metric {
        "var99_loss" => s[((0.99 * n).ceil() as usize).max(1) - 1],
        "es99_loss" => {
            // Acerbi–Tasche: mean of the worst n(1 − q), boundary weighted.
            let k = n * 0.01;
            let whole = k.floor() as usize;
            let frac = k - whole as f64;
            let top: f64 = s.iter().rev().take(whole).sum();
            let boundary = s.len().checked_sub(whole + 1).map_or(0.0, |i| s[i] * frac);
            (top + boundary) / k
        }
        _ => s.iter().sum::<f64>() / n,
    }
}

/// Every `<svg>…</svg>` element in a document, in order.
pub fn svgs(doc: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("<svg") {
        let j = rest[i..].find("</svg>").expect("every <svg> is closed") + i + "</svg>".len();
        out.push(&rest[i..j]);
        rest = &rest[j..];
    }
    out
}

/// Parse as XML or fail with the parser's message and the context.
pub fn assert_xml(doc: &str, what: &str) {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    if let Err(e) = roxmltree::Document::parse_with_options(doc, opts) {
        let pos = e.pos();
        let line = doc.lines().nth(pos.row as usize - 1).unwrap_or("");
        let start = (pos.col as usize).saturating_sub(80);
        let ctx: String = line.chars().skip(start).take(160).collect();
        panic!("{what} is not well-formed XML: {e}\n…{ctx}…");
    }
}
