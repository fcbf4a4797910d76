//! Exceedance curves P(X > x) on a log axis for the variables behind tail
//! metrics, with the reported VaR, ES and quantile marked.
//!
//! A log y axis is what makes a tail visible: a 1-in-1,000 event sits three
//! decades down instead of on the floor. The curves come from the first
//! samples the engine kept (the charts' sample), while the marked values are
//! the full run's estimates from the report, so the marks can sit slightly off
//! the drawn curve; the caption says so. Metrics that read the same variable
//! share one chart.

use std::fmt::Write as _;

use super::svg::{Frame, Linear, Svg, legend, marker, n, slug, titles, x_axis, y_title};
use super::{
    ChartData, Figure, GRID, MUTED, MetricInfo, Palette, fmt_sig, quantile_sorted, sorted_finite,
};
use crate::Report;
use whatif_lang::MetricKind;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 340.0;

/// One exceedance figure per variable behind a tail metric
/// (`value_at_risk`, `expected_shortfall`, `quantile`).
pub fn figures(
    report: &Report,
    metrics: &[MetricInfo],
    charts: &ChartData,
    palette: &Palette,
) -> Vec<Figure> {
    let tails = metrics.iter().filter(|m| m.tail_level().is_some());
    super::group_by_samples(report, tails, charts)
        .into_iter()
        .map(|(ms, series)| {
            let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
            let title = format!("Tail of {}", names.join(", "));
            let subtitle = "P(X > x) on a log scale, baseline and every world";
            let svg = render(&title, subtitle, report, &ms, &series, palette);
            let n_max = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
            Figure {
                name: format!("tail-{}", slug(&ms[0].name)),
                title,
                caption: format!(
                    "Curves from the first {} samples of each world. Markers sit at the tail level 1 − q (grey dashed line): each world's reported value at risk (circle, on its curve by definition) and expected shortfall (diamond), estimated from all samples, so they can sit slightly off the drawn curve.",
                    crate::html::group_digits(n_max as u64)
                ),
                svg,
            }
        })
        .collect()
}

/// Marker shape and legend name of a tail metric kind.
fn mark(kind: Option<MetricKind>) -> (&'static str, &'static str) {
    match kind {
        Some(MetricKind::ExpectedShortfall(_)) => ("diamond", "ES"),
        Some(MetricKind::Quantile(_)) => ("square", "quantile"),
        _ => ("circle", "VaR"),
    }
}

fn render(
    title: &str,
    subtitle: &str,
    report: &Report,
    metrics: &[&MetricInfo],
    series: &[(&str, &[f32])],
    palette: &Palette,
) -> String {
    let data: Vec<(&str, Vec<f64>)> = series
        .iter()
        .map(|(w, v)| (*w, sorted_finite(v).0))
        .collect();
    let mut pooled: Vec<f64> = data.iter().flat_map(|d| d.1.iter().copied()).collect();
    pooled.sort_by(f64::total_cmp);
    let levels: Vec<f64> = metrics.iter().filter_map(|m| m.tail_level()).collect();
    let q_upper = levels
        .iter()
        .copied()
        .filter(|&q| q >= 0.5)
        .fold(f64::NAN, f64::min);
    // Start the x axis where the interesting part begins: well below the
    // lowest upper-tail level, or at the minimum for lower-tail quantiles.
    let p_lo = if q_upper.is_nan() || levels.iter().any(|&q| q < 0.5) {
        0.0
    } else {
        (1.0 - 20.0 * (1.0 - q_upper)).clamp(0.0, 0.9)
    };
    let mut lo = if p_lo == 0.0 {
        pooled.first().copied().unwrap_or(0.0)
    } else {
        quantile_sorted(&pooled, p_lo)
    };
    let mut hi = pooled.last().copied().unwrap_or(1.0);
    // Keep every reported mark on the chart.
    for m in metrics {
        for w in &report.worlds {
            if let Some(e) = w
                .metrics
                .iter()
                .find(|r| r.name == m.name)
                .and_then(|r| r.estimate)
            {
                lo = lo.min(e);
                hi = hi.max(e);
            }
        }
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let n_max = data.iter().map(|d| d.1.len()).max().unwrap_or(1).max(1);
    let decades = (n_max as f64).log10().ceil().max(1.0) as i32;

    let mut svg = Svg::new(WIDTH, HEIGHT, title);
    titles(&mut svg, 14.0, title, subtitle);
    let mut entries: Vec<(String, &str, &str)> = data
        .iter()
        .map(|(w, _)| (w.to_string(), palette.colour(w), "line"))
        .collect();
    for m in metrics {
        let (shape, name) = mark(m.kind);
        let q = m.tail_level().unwrap_or(0.0);
        entries.push((format!("{name} {}", level(q)), MUTED, shape));
    }
    let ly = legend(&mut svg, 64.0, 58.0, WIDTH - 10.0, &entries);
    let f = Frame {
        left: 64.0,
        top: ly + 16.0,
        right: WIDTH - 18.0,
        bottom: HEIGHT - 48.0,
    };

    // Log y axis: decades from 1 down to 10^-decades.
    let ys = Linear {
        d0: -(decades as f64),
        d1: 0.0,
        p0: f.bottom,
        p1: f.top,
    };
    for k in 0..=decades {
        let y = ys.map(-(k as f64));
        svg.line(f.left, y, f.right, y, GRID, 1.0, "");
        let label = match k {
            0 => "1".to_string(),
            1 => "0.1".to_string(),
            2 => "0.01".to_string(),
            _ => String::new(),
        };
        if label.is_empty() {
            svg.raw(&format!(
                r#"<text x="{}" y="{}" text-anchor="end" fill="{MUTED}" font-size="11">10<tspan dy="-5" font-size="8">−{k}</tspan></text>"#,
                n(f.left - 6.0),
                n(y + 4.0)
            ));
        } else {
            svg.text(
                f.left - 6.0,
                y + 4.0,
                "end",
                &format!(r#"fill="{MUTED}" font-size="11""#),
                &label,
            );
        }
    }
    y_title(&mut svg, f, "P(X > x)");
    let xs = x_axis(&mut svg, f, lo, hi, "x", true);
    let clip = format!("clip-{}", slug(title));
    svg.raw(&format!(
        r#"<clipPath id="{clip}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
        n(f.left),
        n(f.top - 2.0),
        n(f.width()),
        n(f.height() + 2.0)
    ));
    // Tail level guides.
    for &q in &levels {
        if q >= 0.5 {
            let y = ys.map((1.0 - q).log10());
            svg.line(
                f.left,
                y,
                f.right,
                y,
                "#9aa5b1",
                1.0,
                r#" stroke-dasharray="3 3""#,
            );
            svg.text(
                f.right - 4.0,
                y - 4.0,
                "end",
                &format!(r#"fill="{MUTED}" font-size="10.5""#),
                &format!("1 − q = {}", level(1.0 - q)),
            );
        }
    }
    for (w, s) in &data {
        if s.is_empty() {
            continue;
        }
        let c = palette.colour(w);
        let len = s.len();
        // (value, P(X > value⁻)) at ranks 1, 2, … from the top: every rank
        // in the far tail, then geometrically spaced ranks.
        let mut d = String::new();
        let mut k = 1usize;
        let mut first = true;
        while k <= len {
            let v = s[len - k];
            let p = k as f64 / len as f64;
            let (x, y) = (xs.map(v.max(xs.d0)), ys.map(p.log10()));
            let _ = write!(d, "{}{} {} ", if first { "M" } else { "L" }, n(x), n(y));
            first = false;
            if v < lo {
                break;
            }
            k = if k < 200 {
                k + 1
            } else {
                (k as f64 * 1.02).ceil() as usize
            };
        }
        svg.path(d.trim_end(), &format!(r#"fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round" clip-path="url(#{clip})""#));
    }
    // Marks: each reported value at its tail level 1 − q, where the VaR sits
    // on the world's curve by definition and the ES to its right; a thin
    // drop line ties the mark to the x axis.
    for m in metrics {
        let (shape, name) = mark(m.kind);
        let q = m.tail_level().unwrap_or(0.5);
        let p = 1.0 - q;
        let y = ys.map(p.max(10f64.powi(-decades)).log10());
        for w in &report.worlds {
            let Some(r) = w.metrics.iter().find(|r| r.name == m.name) else {
                continue;
            };
            let Some(e) = r.estimate else { continue };
            let c = palette.colour(&w.name);
            let x = xs.map(e);
            svg.titled_start(&format!(
                "{name} {} in {}: {} (SE {})",
                level(q),
                w.name,
                fmt_sig(Some(e), 6),
                fmt_sig(r.std_error, 2)
            ));
            svg.line(
                x,
                y,
                x,
                f.bottom,
                c,
                1.2,
                r#" stroke-dasharray="3 3" stroke-opacity="0.8""#,
            );
            marker(&mut svg, shape, x, y, 5.0, c);
            svg.group_end();
        }
    }
    svg.finish()
}

/// A probability level as a short percentage (0.99 → 99%, 0.995 → 99.5%).
fn level(q: f64) -> String {
    let p = q * 100.0;
    let s = format!("{p:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}
