//! JUnit XML for CI systems: one `<testsuite>`, each check and each
//! guardrail a `<testcase>`, failures carrying the numbers.
//!
//! The manifest goes into `<properties>` so the audit trail travels with the
//! test results. The only time value is the manifest's `wall_seconds` (the
//! suite's `time`), so the file is otherwise identical between identical runs.
//! Numeric faults are reported as an extra failing testcase: averaged NaNs
//! are as much a failure as a breached guardrail.

use std::fmt::Write as _;

use crate::charts::fmt_sig;
use crate::{CheckResult, GuardrailResult, Num, Report};

/// Escape text for XML content and attributes (newlines in attributes become
/// `&#10;` so they survive attribute normalisation; characters XML forbids
/// are dropped).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Full precision for machine readers, `null` for missing values.
fn num(v: Num) -> String {
    match v {
        Some(x) => format!("{x}"),
        None => "null".to_string(),
    }
}

/// The failure message of a check: both sides, the SE and the margin in SEs.
pub fn check_message(c: &CheckResult) -> String {
    let mut m = format!(
        "check `{}` failed: expect {}; lhs = {}, rhs = {}, lhs SE = {}",
        c.name,
        c.expect,
        num(c.lhs),
        num(c.rhs),
        num(c.lhs_std_error)
    );
    if let (Some(l), Some(r), Some(se)) = (c.lhs, c.rhs, c.lhs_std_error)
        && se > 0.0
    {
        let _ = write!(m, " (lhs − rhs = {} SE)", fmt_sig(Some((l - r) / se), 3));
    }
    m
}

/// The failure message of a guardrail: violations, share and its upper bound
/// against the tolerated share.
pub fn guardrail_message(g: &GuardrailResult) -> String {
    format!(
        "guardrail on `{}` in world `{}` failed: bounds [{}, {}]; violations = {}, share = {}, share upper 95% bound = {}, max_share = {}",
        g.node,
        g.world,
        g.min.map_or("-inf".to_string(), |v| v.to_string()),
        g.max.map_or("inf".to_string(), |v| v.to_string()),
        g.violations,
        num(g.share),
        num(g.share_upper95),
        g.max_share
    )
}

/// Render the report's checks and guardrails as JUnit XML.
pub fn render(report: &Report) -> String {
    let m = &report.manifest;
    let failures = report.checks.iter().filter(|c| !c.passed).count()
        + report.guardrails.iter().filter(|g| !g.passed).count()
        + usize::from(!report.numeric_faults.is_empty());
    let tests = report.checks.len()
        + report.guardrails.len()
        + usize::from(!report.numeric_faults.is_empty());
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        r#"<testsuites name="whatif" tests="{tests}" failures="{failures}" errors="0" time="{}">"#,
        m.run.wall_seconds
    );
    let _ = writeln!(
        x,
        r#"  <testsuite name="{}" tests="{tests}" failures="{failures}" errors="0" skipped="0" time="{}">"#,
        xml_escape(&format!("whatif.{}", m.scenario_name)),
        m.run.wall_seconds
    );
    x.push_str("    <properties>\n");
    let props = m.rows();
    for (k, v) in props {
        let _ = writeln!(
            x,
            r#"      <property name="{k}" value="{}"/>"#,
            xml_escape(&v)
        );
    }
    x.push_str("    </properties>\n");
    let class = xml_escape(&format!("whatif.{}", m.scenario_name));
    for c in &report.checks {
        let _ = write!(
            x,
            r#"    <testcase classname="{class}.checks" name="{}" time="0""#,
            xml_escape(&c.name)
        );
        if c.passed {
            x.push_str("/>\n");
        } else {
            let msg = check_message(c);
            let _ = writeln!(
                x,
                ">\n      <failure message=\"{}\" type=\"CheckFailed\">{}</failure>\n    </testcase>",
                xml_escape(&msg),
                xml_escape(&msg)
            );
        }
    }
    for g in &report.guardrails {
        let name = format!("{} in {}", g.node, g.world);
        let _ = write!(
            x,
            r#"    <testcase classname="{class}.guardrails" name="{}" time="0""#,
            xml_escape(&name)
        );
        if g.passed {
            x.push_str("/>\n");
        } else {
            let msg = guardrail_message(g);
            let _ = writeln!(
                x,
                ">\n      <failure message=\"{}\" type=\"GuardrailFailed\">{}</failure>\n    </testcase>",
                xml_escape(&msg),
                xml_escape(&msg)
            );
        }
    }
    if !report.numeric_faults.is_empty() {
        let lines: Vec<String> = report
            .numeric_faults
            .iter()
            .map(|f| {
                format!(
                    "node `{}` produced NaN or ±inf in {} lanes (worlds: {}; first sample {})",
                    f.node,
                    f.lanes,
                    f.worlds.join(", "),
                    f.first_sample
                )
            })
            .collect();
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}.numeric\" name=\"no numeric faults\" time=\"0\">\n      <failure message=\"{}\" type=\"NumericFault\">{}</failure>\n    </testcase>",
            xml_escape(&format!(
                "{} node(s) produced non-finite values",
                report.numeric_faults.len()
            )),
            xml_escape(&lines.join("\n"))
        );
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(
            x,
            "    <system-err>{}</system-err>",
            xml_escape(&report.warnings.join("\n"))
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
