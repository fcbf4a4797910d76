//! The Markdown report for pull-request comments: GitHub-flavoured tables
//! plus the same SVG charts as the HTML page, written as separate files and
//! referenced by relative name (the caller writes them next to the `.md`).

use std::fmt::Write as _;

use whatif_lang::CausalModel;

use crate::Report;
use crate::charts::distribution::pct;
use crate::charts::{ChartData, Figure, Figures, MetricInfo, fmt_est, fmt_sig};
use crate::dag::DagInput;
use crate::html::group_digits;

/// Markdown text and the SVG files it references.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkdownReport {
    pub markdown: String,
    /// (file name relative to the Markdown file, SVG document), in the order
    /// they appear.
    pub files: Vec<(String, String)>,
}

/// Render with chart files named `report-<chart>.svg`.
pub fn render(report: &Report, model: &CausalModel, charts: &ChartData) -> MarkdownReport {
    render_named(report, model, charts, "report")
}

/// Render with chart files named `<stem>-<chart>.svg` (use the Markdown
/// file's stem so two reports in one folder do not overwrite each other).
pub fn render_named(
    report: &Report,
    model: &CausalModel,
    charts: &ChartData,
    stem: &str,
) -> MarkdownReport {
    let metrics = MetricInfo::from_report(report, model);
    let figures = Figures::build(report, model, charts);
    render_parts(report, &metrics, &figures, stem)
}

/// Render from prepared parts (no compiled model needed).
pub fn render_with(
    report: &Report,
    metrics: &[MetricInfo],
    dag: &DagInput,
    charts: &ChartData,
    stem: &str,
) -> MarkdownReport {
    let figures = Figures::build_with_dag(report, metrics, dag, charts);
    render_parts(report, metrics, &figures, stem)
}

/// Escape text for a GitHub table cell or inline text: pipes would split
/// cells, and `<`/`>`/`&` would be read as HTML.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '*' | '`' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a code span: backticks cannot be escaped there, so a value
/// holding one is shown as plain escaped text instead.
fn code(s: &str) -> String {
    if s.contains('`') || s.contains('\n') {
        md(s)
    } else {
        format!("`{}`", s.replace('|', "\\|"))
    }
}

fn render_parts(
    report: &Report,
    metrics: &[MetricInfo],
    figures: &Figures,
    stem: &str,
) -> MarkdownReport {
    let m = &report.manifest;
    let mut s = String::new();
    let mut files = Vec::new();
    let pass = report.passed();
    let failed = report.checks.iter().filter(|c| !c.passed).count()
        + report.guardrails.iter().filter(|g| !g.passed).count();
    let _ = writeln!(
        s,
        "## whatif: {} — {}\n",
        md(&m.scenario_name),
        if pass { "✅ PASS" } else { "❌ FAIL" }
    );
    let _ = writeln!(
        s,
        "{} of {} checks and guardrails passed · {} samples · seed {} · {} ({}) · whatif {}\n",
        report.checks.len() + report.guardrails.len() - failed,
        report.checks.len() + report.guardrails.len(),
        group_digits(m.samples),
        m.seed,
        md(&m.backend),
        md(&m.kernel),
        md(&m.engine_version)
    );
    if !report.numeric_faults.is_empty() {
        let _ = writeln!(
            s,
            "> [!WARNING]\n> {} node(s) produced NaN or ±∞; see *Numeric faults*.\n",
            report.numeric_faults.len()
        );
    }

    // Metrics by world.
    s.push_str("### Metrics by world\n\nEstimate ± Monte Carlo standard error.\n\n| metric |");
    for w in &report.worlds {
        let _ = write!(s, " {} |", md(&w.name));
    }
    s.push_str("\n|:--|");
    for _ in &report.worlds {
        s.push_str("--:|");
    }
    s.push('\n');
    for mi in metrics {
        let _ = write!(s, "| **{}** |", md(&mi.name));
        for w in &report.worlds {
            match w.metrics.iter().find(|r| r.name == mi.name) {
                Some(r) => {
                    let _ = write!(
                        s,
                        " {} ± {} |",
                        fmt_est(r.estimate, r.std_error),
                        fmt_sig(r.std_error, 2)
                    );
                }
                None => s.push_str(" — |"),
            }
        }
        s.push('\n');
    }
    s.push('\n');

    // Checks and guardrails.
    if !report.checks.is_empty() {
        s.push_str(
            "### Checks\n\n| | check | expect | lhs | rhs | lhs SE |\n|:-:|:--|:--|--:|--:|--:|\n",
        );
        for c in &report.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                if c.passed { "✅" } else { "❌" },
                md(&c.name),
                code(&c.expect),
                fmt_est(c.lhs, c.lhs_std_error),
                fmt_sig(c.rhs, 6),
                fmt_sig(c.lhs_std_error, 2)
            );
        }
        s.push('\n');
    }
    if !report.guardrails.is_empty() {
        s.push_str("### Guardrails\n\n| | node | world | violations | share | upper 95% | tolerated |\n|:-:|:--|:--|--:|--:|--:|--:|\n");
        for g in &report.guardrails {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                if g.passed { "✅" } else { "❌" },
                md(&g.node),
                md(&g.world),
                group_digits(g.violations),
                g.share.map_or("—".to_string(), pct),
                g.share_upper95.map_or("—".to_string(), pct),
                pct(g.max_share)
            );
        }
        s.push('\n');
    }

    // Effects.
    if !report.effects.is_empty() {
        s.push_str("### Effects\n\n| metric | world | vs | difference | SE | ratio |\n|:--|:--|:--|--:|--:|--:|\n");
        for e in &report.effects {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                md(&e.metric),
                md(&e.world),
                md(&e.vs),
                fmt_est(e.difference, e.difference_std_error),
                fmt_sig(e.difference_std_error, 2),
                fmt_est(e.ratio, e.ratio_std_error)
            );
        }
        s.push('\n');
    }

    // Charts.
    let mut add = |s: &mut String, f: &Figure| {
        let file = format!("{stem}-{}.svg", f.name);
        let _ = writeln!(s, "![{}]({})\n", md(&f.title), file);
        if !f.caption.is_empty() {
            let _ = writeln!(s, "<sub>{}</sub>\n", md(&f.caption));
        }
        files.push((file, f.svg.clone()));
    };
    s.push_str("### Charts\n\n");
    for f in figures.all() {
        add(&mut s, f);
    }

    // Faults and warnings.
    if !report.numeric_faults.is_empty() {
        s.push_str(
            "### Numeric faults\n\n| node | worlds | lanes | first sample |\n|:--|:--|--:|--:|\n",
        );
        for f in &report.numeric_faults {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                md(&f.node),
                md(&f.worlds.join(", ")),
                group_digits(f.lanes),
                f.first_sample
            );
        }
        s.push('\n');
    }
    if !report.warnings.is_empty() {
        s.push_str("### Warnings\n\n");
        for w in &report.warnings {
            let _ = writeln!(s, "- {}", md(w));
        }
        s.push('\n');
    }

    // Manifest in a collapsed block: it is for auditors, not for skimming.
    s.push_str(
        "<details><summary>Manifest (audit trail)</summary>\n\n| field | value |\n|:--|:--|\n",
    );
    let rows = m.rows();
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {} |", code(&v));
    }
    s.push_str("\n</details>\n");
    MarkdownReport { markdown: s, files }
}
