//! HTML and Markdown rendering: well-formed XML everywhere, deterministic
//! output, escaping of hostile names, and graceful handling of missing data.

mod common;

use whatif_report::charts::{ChartData, Figures};
use whatif_report::{html, markdown};

#[test]
fn html_is_wellformed_and_every_svg_parses() {
    let (report, charts) = common::report_and_charts(20_000);
    let page = html::render_with(
        &report,
        &common::metrics(),
        &common::dag(),
        &charts,
        Some("A credit stress test."),
    );
    common::assert_xml(&page, "the HTML page");
    let svgs = common::svgs(&page);
    // DAG, forest, 4 distributions (default, loss, income… loss metrics share
    // one), 1 tail chart, 1 sweep, 1 backtest.
    assert!(svgs.len() >= 7, "only {} SVGs", svgs.len());
    for (i, s) in svgs.iter().enumerate() {
        common::assert_xml(s, &format!("SVG #{i}"));
    }
    // Self-contained: nothing is fetched.
    for needle in ["http://", "https://", "<script", "@import", "url(http"] {
        let hits: Vec<_> = page
            .match_indices(needle)
            .filter(|(i, _)| !page[..*i].ends_with("xmlns=\""))
            .collect();
        assert!(hits.is_empty(), "page references {needle}");
    }
    for section in [
        "id=\"summary\"",
        "id=\"checks\"",
        "id=\"model\"",
        "id=\"effects\"",
        "id=\"tails\"",
        "id=\"manifest\"",
        "id=\"sweeps\"",
        "id=\"backtest\"",
    ] {
        assert!(page.contains(section), "missing {section}");
    }
    assert!(page.contains("FAIL"), "a failed check shows as FAIL");
}

#[test]
fn output_is_deterministic() {
    let (report, charts) = common::report_and_charts(5_000);
    let a = html::render_with(&report, &common::metrics(), &common::dag(), &charts, None);
    let b = html::render_with(&report, &common::metrics(), &common::dag(), &charts, None);
    assert_eq!(a, b);
    let ma = markdown::render_with(&report, &common::metrics(), &common::dag(), &charts, "r");
    let mb = markdown::render_with(&report, &common::metrics(), &common::dag(), &charts, "r");
    assert_eq!(ma, mb);
}

#[test]
fn loss_metrics_share_one_distribution_and_tail_chart() {
    let (report, charts) = common::report_and_charts(5_000);
    let f = Figures::build_with_dag(&report, &common::metrics(), &common::dag(), &charts);
    let names: Vec<&str> = f.distributions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["dist-default_rate", "dist-mean_loss", "dist-mean_income"]
    );
    assert_eq!(f.tails.len(), 1);
    assert!(f.tails[0].title.contains("var99_loss") && f.tails[0].title.contains("es99_loss"));
    // The loss is 0 for most borrowers: the atom is reported, not drawn.
    assert!(
        f.distributions[1].caption.contains("Atom at 0"),
        "{}",
        f.distributions[1].caption
    );
}

#[test]
fn markdown_references_every_file() {
    let (report, charts) = common::report_and_charts(5_000);
    let md = markdown::render_with(&report, &common::metrics(), &common::dag(), &charts, "pr");
    assert!(md.markdown.contains("| **mean_loss** |"));
    assert!(md.markdown.contains("❌"));
    assert!(!md.files.is_empty());
    for (name, svg) in &md.files {
        assert!(name.starts_with("pr-") && name.ends_with(".svg"), "{name}");
        assert!(
            md.markdown.contains(&format!("]({name})")),
            "{name} not referenced"
        );
        common::assert_xml(svg, name);
    }
    let mut names: Vec<&String> = md.files.iter().map(|f| &f.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), md.files.len(), "file names are unique");
}

#[test]
fn hostile_names_are_escaped() {
    let (mut report, mut charts) = common::report_and_charts(2_000);
    let evil = "w<script>&\"'|`x";
    let old = report.worlds[1].name.clone();
    report.worlds[1].name = evil.into();
    for e in &mut report.effects {
        if e.world == old {
            e.world = evil.into();
        }
    }
    for s in &mut charts.series {
        if s.world == old {
            s.world = evil.into();
        }
    }
    report.checks[0].expect = "a < b && c > \"d\"".into();
    report.warnings.push("\u{1}control <chars>".into());
    report.manifest.scenario_name = "</title><b>".into();
    let mut dag = common::dag();
    dag.nodes[3].name = "in<come>&".into();
    let page = html::render_with(
        &report,
        &common::metrics(),
        &dag,
        &charts,
        Some("<b>desc</b>"),
    );
    common::assert_xml(&page, "HTML with hostile names");
    assert!(!page.contains("<script>"));
    for s in common::svgs(&page) {
        common::assert_xml(s, "SVG with hostile names");
    }
    let md = markdown::render_with(&report, &common::metrics(), &dag, &charts, "x");
    assert!(!md.markdown.contains("<script>"));
    for (name, svg) in &md.files {
        common::assert_xml(svg, name);
    }
}

#[test]
fn missing_data_renders() {
    // No samples, no effects, null numbers, a numeric fault.
    let mut report = common::report();
    report.effects.clear();
    report.worlds[0].metrics[0].estimate = None;
    report.worlds[0].metrics[0].std_error = None;
    report.worlds[0].metrics[0].ci95 = [None, None];
    report.numeric_faults.push(whatif_report::NumericFault {
        node: "lgd".into(),
        worlds: vec!["recession".into()],
        lanes: 3,
        first_sample: 1234,
    });
    let page = html::render_with(
        &report,
        &common::metrics(),
        &Default::default(),
        &ChartData::default(),
        None,
    );
    common::assert_xml(&page, "HTML without charts");
    assert!(page.contains("Numeric faults"));
    assert!(!page.contains("id=\"effects\""));
    // Constant samples and a single world still draw.
    let mut charts = ChartData::default();
    charts.series.push(whatif_report::charts::MetricSamples {
        metric: "mean_income".into(),
        world: "baseline".into(),
        values: vec![5.0; 100],
    });
    charts.series.push(whatif_report::charts::MetricSamples {
        metric: "var99_loss".into(),
        world: "baseline".into(),
        values: vec![f32::NAN, 1.0, 2.0],
    });
    let page = html::render_with(&report, &common::metrics(), &common::dag(), &charts, None);
    for s in common::svgs(&page) {
        common::assert_xml(s, "SVG from degenerate data");
    }
}
