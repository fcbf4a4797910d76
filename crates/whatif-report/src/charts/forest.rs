//! The effects forest plot: every effect's difference with its 95% interval
//! (± 1.96 paired standard errors) against a zero line.
//!
//! One panel per metric, each with its own x axis: metrics have different
//! units, and one shared axis would squash all but the largest. Rows are
//! coloured by the world, so the plot reads with the other charts; the
//! numbers are printed at the right, because a committee quotes them.

use super::svg::{Frame, Svg, legend, n, text_width, x_axis};
use super::{FAIL, Figure, INK, MUTED, MetricInfo, Palette, fmt_est, fmt_sig};
use crate::{Effect, Report};

const WIDTH: f64 = 1100.0;
const ROW: f64 = 26.0;
const PANEL_HEAD: f64 = 30.0;
const AXIS: f64 = 44.0;
const Z95: f64 = 1.959_963_984_540_054;

/// The forest plot of all effects in the report, or `None` when it has none.
pub fn figure(report: &Report, metrics: &[MetricInfo], palette: &Palette) -> Option<Figure> {
    if report.effects.is_empty() {
        return None;
    }
    // Panels in report metric order, then any metric only effects name.
    let mut order: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    for e in &report.effects {
        if !order.contains(&e.metric.as_str()) {
            order.push(&e.metric);
        }
    }
    let panels: Vec<(&str, Vec<&Effect>)> = order
        .into_iter()
        .map(|m| {
            (
                m,
                report
                    .effects
                    .iter()
                    .filter(|e| e.metric == m)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, es)| !es.is_empty())
        .collect();
    let label = |e: &Effect| {
        if palette.is_baseline(&e.vs) {
            e.world.clone()
        } else {
            format!("{} vs {}", e.world, e.vs)
        }
    };
    let label_w = report
        .effects
        .iter()
        .map(|e| text_width(&label(e), 12.0))
        .fold(80.0, f64::max)
        + 34.0;
    let right_w = 230.0;
    let height = 70.0
        + panels
            .iter()
            .map(|(_, es)| PANEL_HEAD + ROW * es.len() as f64 + AXIS)
            .sum::<f64>()
        + 8.0;
    let title = "Effects vs baseline (difference, 95% interval)";
    let mut svg = Svg::new(WIDTH, height, title);
    super::svg::titles(
        &mut svg,
        14.0,
        title,
        "Paired differences under common random numbers: point ± 1.96 standard errors; dashed line = no effect",
    );
    let entries: Vec<(String, &str, &str)> = palette
        .worlds()
        .iter()
        .skip(1)
        .map(|w| (w.clone(), palette.colour(w), "line"))
        .collect();
    let mut top = legend(&mut svg, 14.0, 58.0, WIDTH - 10.0, &entries) + 8.0;
    for (metric, effects) in panels {
        let info = metrics.iter().find(|m| m.name == metric);
        let head = match info.map(|i| i.source.as_str()).filter(|s| !s.is_empty()) {
            Some(src) => format!("{metric}  ·  {src}"),
            None => metric.to_string(),
        };
        svg.text(
            14.0,
            top + 20.0,
            "start",
            &format!(r#"fill="{INK}" font-size="13" font-weight="600""#),
            &head,
        );
        let f = Frame {
            left: label_w,
            top: top + PANEL_HEAD,
            right: WIDTH - right_w,
            bottom: top + PANEL_HEAD + ROW * effects.len() as f64,
        };
        // Range: every interval end and zero.
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for e in &effects {
            if let Some(d) = e.difference {
                let h = e.difference_std_error.unwrap_or(0.0) * Z95;
                lo = lo.min(d - h);
                hi = hi.max(d + h);
            }
        }
        let pad = (hi - lo).abs() * 0.06;
        svg.rect(f.left, f.top, f.width(), f.height(), r##"fill="#f8fafc""##);
        let xs = x_axis(&mut svg, f, lo - pad, hi + pad, "", true);
        let zero = xs.map(0.0);
        svg.line(
            zero,
            f.top - 4.0,
            zero,
            f.bottom,
            MUTED,
            1.2,
            r#" stroke-dasharray="5 4""#,
        );
        for (i, e) in effects.iter().enumerate() {
            let cy = f.top + ROW * (i as f64 + 0.5);
            let c = palette.colour(&e.world);
            svg.text(
                label_w - 14.0,
                cy + 4.0,
                "end",
                &format!(r#"fill="{INK}""#),
                &label(e),
            );
            let tip = format!(
                "{}: difference {} (SE {}), ratio {} (SE {})",
                label(e),
                fmt_sig(e.difference, 6),
                fmt_sig(e.difference_std_error, 3),
                fmt_sig(e.ratio, 6),
                fmt_sig(e.ratio_std_error, 3)
            );
            svg.titled_start(&tip);
            match e.difference {
                Some(d) => {
                    let h = e.difference_std_error.unwrap_or(0.0) * Z95;
                    let (x0, x1) = (xs.map(d - h), xs.map(d + h));
                    svg.line(x0, cy, x1, cy, c, 2.5, r#" stroke-linecap="round""#);
                    svg.line(x0, cy - 5.0, x0, cy + 5.0, c, 1.5, "");
                    svg.line(x1, cy - 5.0, x1, cy + 5.0, c, 1.5, "");
                    svg.path(
                        &format!(
                            "M{} {} L{} {} L{} {} L{} {} Z",
                            n(xs.map(d)),
                            n(cy - 6.0),
                            n(xs.map(d) + 6.0),
                            n(cy),
                            n(xs.map(d)),
                            n(cy + 6.0),
                            n(xs.map(d) - 6.0),
                            n(cy)
                        ),
                        &format!(r##"fill="{c}" stroke="#ffffff" stroke-width="1""##),
                    );
                }
                None => svg.text(
                    f.left + 8.0,
                    cy + 4.0,
                    "start",
                    &format!(r#"fill="{FAIL}""#),
                    "not finite (see numeric faults)",
                ),
            }
            svg.group_end();
            let txt = format!(
                "{} ± {}",
                fmt_est(e.difference, e.difference_std_error),
                fmt_sig(e.difference_std_error.map(|s| s * Z95), 2)
            );
            svg.text(
                f.right + 14.0,
                cy + 4.0,
                "start",
                &format!(r#"fill="{INK}" font-variant-numeric="tabular-nums""#),
                &txt,
            );
            if let Some(r) = e.ratio {
                let ratio = format!("×{}", fmt_est(Some(r), e.ratio_std_error));
                svg.text(
                    WIDTH - 12.0,
                    cy + 4.0,
                    "end",
                    &format!(r#"fill="{MUTED}" font-size="11""#),
                    &ratio,
                );
            }
        }
        top = f.bottom + AXIS;
    }
    let svg = svg.finish();
    Some(Figure {
        name: "effects".to_string(),
        title: title.to_string(),
        caption: "Each row: one world against the baseline (or the world a check compares with). Intervals that cross the dashed zero line are not distinguishable from no effect at the 5% level. The ratio (world ÷ reference) is shown at the right.".to_string(),
        svg,
    })
}
