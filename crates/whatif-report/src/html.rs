//! The HTML report: one self-contained page for people (a risk committee,
//! a reviewer) with the verdict first, then the numbers, the model, the
//! charts and the audit trail.
//!
//! Self-contained means no network at all: CSS is inline, charts are inline
//! SVG (see [`crate::charts`] for why hand-written), fonts are the system's,
//! and there is no script. The page is written as well-formed XML (XHTML
//! syntax inside an HTML5 document) so tests can parse the whole file, not
//! just its SVGs. Output is deterministic: the only times shown are the
//! manifest's.

use std::fmt::Write as _;

use whatif_lang::CausalModel;

use crate::charts::distribution::pct;
use crate::charts::svg::esc;
use crate::charts::{ChartData, Figure, Figures, MetricInfo, Palette, fmt_est, fmt_sig};
use crate::dag::DagInput;
use crate::{Report, WorldReport};

/// Render the report as a self-contained HTML page.
pub fn render(report: &Report, model: &CausalModel, charts: &ChartData) -> String {
    let metrics = MetricInfo::from_report(report, model);
    let figures = Figures::build(report, model, charts);
    render_parts(report, &metrics, &figures, model.description.as_deref())
}

/// Render from prepared parts: the metric descriptions and figures (what
/// [`render`] derives from the model). Lets tests and other front ends
/// (backtests) render without a compiled model.
pub fn render_with(
    report: &Report,
    metrics: &[MetricInfo],
    dag: &DagInput,
    charts: &ChartData,
    description: Option<&str>,
) -> String {
    let figures = Figures::build_with_dag(report, metrics, dag, charts);
    render_parts(report, metrics, &figures, description)
}

const CSS: &str = r#"
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f5f7fa; --card: #ffffff; --pass: #1a7f37; --fail: #c62828; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 28px 48px; }
header.top { display: flex; justify-content: space-between; align-items: flex-start; gap: 24px; flex-wrap: wrap; margin-bottom: 18px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.sub { color: var(--muted); margin: 0; }
.desc { margin: 8px 0 0; max-width: 70ch; }
.verdict { border-radius: 10px; padding: 12px 18px; color: #fff; min-width: 260px; }
.verdict.pass { background: var(--pass); }
.verdict.fail { background: var(--fail); }
.verdict .big { font-size: 22px; font-weight: 700; letter-spacing: 0.02em; }
.verdict .small { font-size: 13px; opacity: 0.95; }
nav { display: flex; gap: 6px; flex-wrap: wrap; margin: 0 0 18px; }
nav a { color: var(--ink); text-decoration: none; background: var(--card); border: 1px solid var(--line); border-radius: 999px; padding: 3px 12px; font-size: 13px; }
nav a:hover { border-color: #9aa5b1; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 22px; margin: 0 0 18px; box-shadow: 0 1px 2px rgba(31, 41, 51, 0.04); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); font-weight: 600; background: #fafbfc; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:hover { background: #fafbfc; }
.ci { color: var(--muted); font-size: 12px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; vertical-align: baseline; }
.badge { display: inline-block; font-size: 11.5px; font-weight: 700; letter-spacing: 0.05em; padding: 2px 9px; border-radius: 999px; color: #fff; }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; background: #f1f4f8; padding: 1px 5px; border-radius: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 8px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.scroll { overflow-x: auto; }
.alert { border-left: 4px solid var(--warn); background: #fff8eb; padding: 8px 12px; border-radius: 6px; margin: 6px 0; }
.alert.bad { border-left-color: var(--fail); background: #fdecec; }
.none { color: var(--muted); }
.manifest td:first-child { color: var(--muted); width: 200px; }
.manifest td { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"#;

fn render_parts(
    report: &Report,
    metrics: &[MetricInfo],
    figures: &Figures,
    description: Option<&str>,
) -> String {
    let m = &report.manifest;
    let worlds: Vec<&str> = report.worlds.iter().map(|w| w.name.as_str()).collect();
    let palette = Palette::new(&worlds);
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    let _ = writeln!(
        h,
        "<title>{} — whatif report</title>",
        esc(&m.scenario_name)
    );
    let _ = writeln!(h, "<style>{CSS}</style>\n</head>\n<body>\n<main>");

    // Header: name, key facts, verdict.
    let failed_checks = report.checks.iter().filter(|c| !c.passed).count();
    let failed_guards = report.guardrails.iter().filter(|g| !g.passed).count();
    h.push_str("<header class=\"top\"><div>");
    let _ = write!(h, "<h1>{}</h1>", esc(&m.scenario_name));
    let _ = write!(
        h,
        "<p class=\"sub\">whatif {} · {} samples · seed {} · {} backend ({}) · started {}</p>",
        esc(&m.engine_version),
        group_digits(m.samples),
        m.seed,
        esc(&m.backend),
        esc(&m.kernel),
        esc(&m.run.start_time)
    );
    if let Some(d) = description.filter(|d| !d.trim().is_empty()) {
        let _ = write!(h, "<p class=\"desc\">{}</p>", esc(d.trim()));
    }
    h.push_str("</div>");
    let pass = report.passed();
    let _ = write!(
        h,
        "<div class=\"verdict {}\"><div class=\"big\">{}</div><div class=\"small\">{} of {} checks passed · {} of {} guardrails passed{}</div></div>",
        if pass { "pass" } else { "fail" },
        if pass { "PASS" } else { "FAIL" },
        report.checks.len() - failed_checks,
        report.checks.len(),
        report.guardrails.len() - failed_guards,
        report.guardrails.len(),
        if report.numeric_faults.is_empty() {
            String::new()
        } else {
            format!(" · {} numeric fault(s)", report.numeric_faults.len())
        }
    );
    h.push_str("</header>\n");

    // Navigation.
    let mut nav: Vec<(&str, &str)> = vec![
        ("summary", "Summary"),
        ("checks", "Checks"),
        ("model", "Model"),
    ];
    if figures.effects.is_some() {
        nav.push(("effects", "Effects"));
    }
    if !figures.distributions.is_empty() {
        nav.push(("distributions", "Distributions"));
    }
    if !figures.tails.is_empty() {
        nav.push(("tails", "Tails"));
    }
    if !figures.sweeps.is_empty() {
        nav.push(("sweeps", "Sweeps"));
    }
    if !figures.backtest.is_empty() {
        nav.push(("backtest", "Backtest"));
    }
    if !figures.fans.is_empty() {
        nav.push(("paths", "Paths"));
    }
    nav.push(("diagnostics", "Faults and warnings"));
    nav.push(("manifest", "Manifest"));
    h.push_str("<nav>");
    for (id, label) in &nav {
        let _ = write!(h, "<a href=\"#{id}\">{label}</a>");
    }
    h.push_str("</nav>\n");

    // Faults first when there are any: numbers next to them are suspect.
    if !report.numeric_faults.is_empty() {
        h.push_str("<div class=\"alert bad\"><strong>Numeric faults:</strong> some nodes produced NaN or ±∞; metrics that read them are unreliable. See <a href=\"#diagnostics\">faults</a>.</div>\n");
    }

    summary(&mut h, report, metrics, &palette);
    checks(&mut h, report, &palette);

    h.push_str("<section class=\"card\" id=\"model\"><h2>Causal model</h2>");
    match &figures.dag {
        Some(f) => figure(&mut h, f, true),
        None => h.push_str("<p class=\"none\">The model has no nodes.</p>"),
    }
    h.push_str("</section>\n");

    if let Some(f) = &figures.effects {
        h.push_str("<section class=\"card\" id=\"effects\"><h2>Effects</h2>");
        figure(&mut h, f, true);
        effects_table(&mut h, report, &palette);
        h.push_str("</section>\n");
    }
    for (id, title, intro, figs) in [
        (
            "distributions",
            "Distributions",
            "The variable behind each metric, baseline against every world on shared bins.",
            &figures.distributions,
        ),
        (
            "tails",
            "Tails",
            "Exceedance curves for the variables behind tail metrics, with value at risk and expected shortfall marked.",
            &figures.tails,
        ),
        (
            "sweeps",
            "Sweeps",
            "Metrics across the swept parameter, with 95% Monte Carlo bands.",
            &figures.sweeps,
        ),
        (
            "backtest",
            "Backtest",
            "Observed and counterfactual outcomes per period.",
            &figures.backtest,
        ),
        (
            "paths",
            "Paths",
            "Per period: the median path of each node a metric reads, with the 5–95% band of paths, per world.",
            &figures.fans,
        ),
    ] {
        if figs.is_empty() {
            continue;
        }
        let _ = write!(
            h,
            "<section class=\"card\" id=\"{id}\"><h2>{title}</h2><p class=\"sub\">{intro}</p><div class=\"grid\" style=\"margin-top: 12px\">"
        );
        for f in figs {
            figure(&mut h, f, false);
        }
        h.push_str("</div></section>\n");
    }

    diagnostics(&mut h, report);
    manifest(&mut h, report);
    let _ = write!(
        h,
        "<footer>Generated by whatif {} from the run report (schema {}). This page is self-contained: it loads nothing from the network.</footer>\n</main>\n</body>\n</html>\n",
        esc(&m.engine_version),
        report.schema
    );
    h
}

fn figure(h: &mut String, f: &Figure, scroll: bool) {
    let _ = write!(h, "<figure id=\"fig-{}\">", esc(&f.name));
    if scroll {
        h.push_str("<div class=\"scroll\">");
    }
    h.push_str(&f.svg);
    if scroll {
        h.push_str("</div>");
    }
    if !f.caption.is_empty() {
        let _ = write!(h, "<figcaption>{}</figcaption>", esc(&f.caption));
    }
    h.push_str("</figure>");
}

fn dot(palette: &Palette, world: &str) -> String {
    format!(
        "<span class=\"dot\" style=\"background: {}\"></span>",
        palette.colour(world)
    )
}

fn summary(h: &mut String, report: &Report, metrics: &[MetricInfo], palette: &Palette) {
    h.push_str("<section class=\"card\" id=\"summary\"><h2>Metrics by world</h2>");
    h.push_str("<p class=\"sub\">Estimate ± Monte Carlo standard error; 95% interval below.</p><div class=\"scroll\"><table><thead><tr><th>metric</th>");
    for w in &report.worlds {
        let _ = write!(
            h,
            "<th class=\"num\">{}{}</th>",
            dot(palette, &w.name),
            esc(&w.name)
        );
    }
    h.push_str("</tr></thead><tbody>");
    for mi in metrics {
        let _ = write!(h, "<tr><td><strong>{}</strong>", esc(&mi.name));
        if !mi.source.is_empty() {
            let _ = write!(h, "<br/><code>{}</code>", esc(&mi.source));
        }
        h.push_str("</td>");
        for w in &report.worlds {
            h.push_str(&metric_cell(w, &mi.name));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div></section>\n");
}

fn metric_cell(w: &WorldReport, metric: &str) -> String {
    let Some(r) = w.metrics.iter().find(|r| r.name == metric) else {
        return "<td class=\"num none\">—</td>".to_string();
    };
    let mut c = format!(
        "<td class=\"num\">{} <span class=\"ci\">± {}</span>",
        fmt_est(r.estimate, r.std_error),
        fmt_sig(r.std_error, 2)
    );
    if r.ci95[0].is_some() || r.ci95[1].is_some() {
        let _ = write!(
            c,
            "<br/><span class=\"ci\">[{}, {}]</span>",
            fmt_est(r.ci95[0], r.std_error),
            fmt_est(r.ci95[1], r.std_error)
        );
    }
    if let Some(k) = r.n_exceedances {
        let _ = write!(
            c,
            "<br/><span class=\"ci\">{} exceedances</span>",
            group_digits(k)
        );
    }
    c.push_str("</td>");
    c
}

fn badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn checks(h: &mut String, report: &Report, palette: &Palette) {
    h.push_str("<section class=\"card\" id=\"checks\"><h2>Checks</h2>");
    if report.checks.is_empty() {
        h.push_str("<p class=\"none\">No checks in this scenario.</p>");
    } else {
        h.push_str("<div class=\"scroll\"><table><thead><tr><th>result</th><th>check</th><th>expect</th><th class=\"num\">lhs</th><th class=\"num\">rhs</th><th class=\"num\">lhs SE</th><th class=\"num\">margin</th></tr></thead><tbody>");
        for c in &report.checks {
            let margin = match (c.lhs, c.rhs, c.lhs_std_error) {
                (Some(l), Some(r), Some(se)) if se > 0.0 => {
                    format!("{} SE", fmt_sig(Some((l - r) / se), 3))
                }
                _ => "—".to_string(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td><strong>{}</strong></td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                badge(c.passed),
                esc(&c.name),
                esc(&c.expect),
                fmt_est(c.lhs, c.lhs_std_error),
                fmt_sig(c.rhs, 6),
                fmt_sig(c.lhs_std_error, 2),
                margin
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("<h2 style=\"margin-top: 20px\">Guardrails</h2>");
    if report.guardrails.is_empty() {
        h.push_str("<p class=\"none\">No guardrails in this scenario.</p>");
    } else {
        h.push_str("<p class=\"sub\">Share of samples outside the bounds, with a one-sided 95% Clopper–Pearson upper bound; a guardrail fails when the bound exceeds the tolerated share (or on any violation when that share is 0).</p>");
        h.push_str("<div class=\"scroll\"><table><thead><tr><th>result</th><th>node</th><th>world</th><th class=\"num\">bounds</th><th class=\"num\">violations</th><th class=\"num\">share</th><th class=\"num\">upper 95%</th><th class=\"num\">tolerated</th></tr></thead><tbody>");
        for g in &report.guardrails {
            let bounds = format!(
                "[{}, {}]",
                g.min.map_or("−∞".to_string(), |v| fmt_sig(Some(v), 6)),
                g.max.map_or("∞".to_string(), |v| fmt_sig(Some(v), 6))
            );
            let _ = write!(
                h,
                "<tr><td>{}</td><td><strong>{}</strong></td><td>{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                badge(g.passed),
                esc(&g.node),
                dot(palette, &g.world),
                esc(&g.world),
                esc(&bounds),
                group_digits(g.violations),
                g.share.map_or("—".to_string(), pct),
                g.share_upper95.map_or("—".to_string(), pct),
                pct(g.max_share)
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>\n");
}

fn effects_table(h: &mut String, report: &Report, palette: &Palette) {
    h.push_str("<div class=\"scroll\" style=\"margin-top: 14px\"><table><thead><tr><th>metric</th><th>world</th><th>vs</th><th class=\"num\">difference</th><th class=\"num\">SE</th><th class=\"num\">ratio</th><th class=\"num\">SE</th></tr></thead><tbody>");
    for e in &report.effects {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&e.metric),
            dot(palette, &e.world),
            esc(&e.world),
            esc(&e.vs),
            fmt_est(e.difference, e.difference_std_error),
            fmt_sig(e.difference_std_error, 2),
            fmt_est(e.ratio, e.ratio_std_error),
            fmt_sig(e.ratio_std_error, 2)
        );
    }
    h.push_str("</tbody></table></div>");
}

fn diagnostics(h: &mut String, report: &Report) {
    h.push_str("<section class=\"card\" id=\"diagnostics\"><h2>Numeric faults</h2>");
    if report.numeric_faults.is_empty() {
        h.push_str("<p class=\"none\">None: every node produced finite values in every lane.</p>");
    } else {
        h.push_str("<table><thead><tr><th>node</th><th>worlds</th><th class=\"num\">lanes</th><th class=\"num\">first sample</th></tr></thead><tbody>");
        for f in &report.numeric_faults {
            let _ = write!(
                h,
                "<tr><td><strong>{}</strong></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&f.node),
                esc(&f.worlds.join(", ")),
                group_digits(f.lanes),
                f.first_sample
            );
        }
        h.push_str("</tbody></table><p class=\"sub\">Replay a faulty sample with the same seed and its index.</p>");
    }
    h.push_str("<h2 style=\"margin-top: 20px\">Warnings</h2>");
    if report.warnings.is_empty() {
        h.push_str("<p class=\"none\">None.</p>");
    } else {
        for w in &report.warnings {
            let _ = write!(h, "<div class=\"alert\">{}</div>", esc(w));
        }
    }
    h.push_str("</section>\n");
}

fn manifest(h: &mut String, report: &Report) {
    let m = &report.manifest;
    h.push_str("<section class=\"card\" id=\"manifest\"><h2>Manifest (audit trail)</h2><p class=\"sub\">What produced these numbers. Fields under <code>run</code> may differ between identical runs; everything else is reproducible bit for bit.</p><table class=\"manifest\"><tbody>");
    let mut rows: Vec<(&str, String)> = vec![("schema", report.schema.to_string())];
    rows.extend(m.rows());
    for (k, v) in rows {
        let _ = write!(h, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    h.push_str("</tbody></table></section>\n");
}

/// 1234567 → "1,234,567" (thin grouping keeps large counts readable).
pub(crate) fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
