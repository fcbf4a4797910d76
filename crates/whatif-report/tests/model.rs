//! The model-facing entry points on a real compiled scenario: the DAG adapter
//! marks edits, and `html::render` / `markdown::render` run end to end.

mod common;

use whatif_lang::WorldId;
use whatif_report::charts::{ChartData, MetricInfo, MetricSamples};
use whatif_report::dag::DagInput;
use whatif_report::{MetricResult, Report, WorldReport, html, markdown};

fn model() -> whatif_lang::CausalModel {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/credit_risk.toml"
    );
    let src = std::fs::read_to_string(path).expect("shipped scenario");
    whatif_lang::compile(&src).expect("shipped scenario compiles")
}

#[test]
fn dag_marks_edited_nodes() {
    let m = model();
    let all = DagInput::from_model(&m, None);
    let idx = |name: &str| all.nodes.iter().position(|n| n.name == name).unwrap();
    assert!(all.nodes[idx("credit_limit")].edited && !all.nodes[idx("credit_limit")].hard);
    assert!(all.nodes[idx("unemployment")].edited);
    assert!(!all.nodes[idx("loss")].edited);
    assert!(all.edges.contains(&(idx("income"), idx("credit_limit"))));
    // In the recession world only unemployment is edited, and its redraw
    // reads no parent.
    let w = m.world_id("recession").unwrap();
    let rec = DagInput::from_model(&m, Some(w));
    assert!(rec.nodes[idx("unemployment")].edited && !rec.nodes[idx("credit_limit")].edited);
    let base = DagInput::from_model(&m, Some(WorldId(0)));
    assert!(base.nodes.iter().all(|n| !n.edited));
    let svg = whatif_report::dag::render(&all, "t", "x");
    common::assert_xml(&svg, "DAG of credit_risk");
}

#[test]
fn render_from_a_compiled_model() {
    let m = model();
    // A report shaped like the model's (numbers are placeholders).
    let mut report: Report = common::report();
    report.worlds = m
        .worlds
        .iter()
        .enumerate()
        .map(|(i, w)| WorldReport {
            name: w.name.clone(),
            metrics: m
                .metrics
                .iter()
                .map(|mt| MetricResult {
                    name: mt.name.clone(),
                    estimate: Some(100.0 + i as f64),
                    std_error: Some(1.0),
                    ci95: [Some(98.0 + i as f64), Some(102.0 + i as f64)],
                    n_exceedances: None,
                    se_method: "closed_form".into(),
                })
                .collect(),
        })
        .collect();
    report.effects.clear();
    let infos = MetricInfo::from_report(&report, &m);
    assert!(infos.iter().any(|i| i.tail_level() == Some(0.99)));
    let mut charts = ChartData {
        samples_used: 1000,
        ..Default::default()
    };
    for w in &m.worlds {
        for mt in &m.metrics {
            let values = (0..1000).map(|k| ((k * 37) % 1000) as f32 / 10.0).collect();
            charts.series.push(MetricSamples {
                metric: mt.name.clone(),
                world: w.name.clone(),
                values,
            });
        }
    }
    let page = html::render(&report, &m, &charts);
    common::assert_xml(&page, "HTML from a compiled model");
    assert!(page.contains("credit_limit"));
    let md = markdown::render(&report, &m, &charts);
    assert!(md.files.iter().any(|(n, _)| n == "report-dag.svg"));
}
