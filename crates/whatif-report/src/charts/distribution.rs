//! Distributions of each metric's variable: baseline and every world on
//! shared bins, overlaid.
//!
//! The baseline is a filled grey-blue area, other worlds are step outlines in
//! their colours, so overlaps stay readable. Shared bins matter: with common
//! random numbers the worlds differ only where the edits act, and separate
//! binning would invent differences. The x range is the 0.1%–99.9% quantile
//! range of all worlds pooled (tails are the exceedance chart's job), and an
//! atom holding 10% or more of a world's samples (a loss that is 0 for most
//! borrowers) is taken out and stated in the caption, or it would flatten
//! every other bar. Variables with at most 12 distinct values (booleans,
//! counts) are drawn as grouped bars instead.

use std::fmt::Write as _;

use super::svg::{Frame, Svg, legend, n, slug, titles, x_axis, y_axis, y_title};
use super::{
    ChartData, Figure, INK, MUTED, MetricInfo, Palette, fmt_sig, fmt_tick, nice_ticks,
    quantile_sorted, sorted_finite,
};
use crate::Report;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 330.0;
const BINS: usize = 48;
/// Atoms at or above this share of a world's samples are taken out of the
/// histogram.
const ATOM_SHARE: f64 = 0.10;
/// Distinct values at or below which a variable is drawn as bars.
const MAX_DISCRETE: usize = 12;

/// One distribution figure per distinct variable, in report metric order.
/// Metrics whose samples are identical in every world (e.g. `mean(loss)` and
/// `expected_shortfall(loss, 0.99)`) share one figure.
pub fn figures(
    report: &Report,
    metrics: &[MetricInfo],
    charts: &ChartData,
    palette: &Palette,
) -> Vec<Figure> {
    super::group_by_samples(report, metrics, charts)
        .into_iter()
        .map(|(ms, series)| {
            let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
            let title = format!("Distribution behind {}", names.join(", "));
            let sources: Vec<&str> = ms
                .iter()
                .map(|m| m.source.as_str())
                .filter(|s| !s.is_empty())
                .collect();
            let subtitle = if sources.is_empty() {
                String::new()
            } else {
                sources.join(" · ")
            };
            let (svg, caption) = render(&title, &subtitle, &series, palette);
            Figure {
                name: format!("dist-{}", slug(ms[0].name.as_str())),
                title,
                caption,
                svg,
            }
        })
        .collect()
}

/// Draw one variable's distribution in several worlds; returns (svg, caption).
pub fn render(
    title: &str,
    subtitle: &str,
    series: &[(&str, &[f32])],
    palette: &Palette,
) -> (String, String) {
    let data: Vec<(&str, Vec<f64>, usize)> = series
        .iter()
        .map(|(w, v)| {
            let (s, dropped) = sorted_finite(v);
            (*w, s, dropped)
        })
        .collect();
    let mut caption = format!(
        "Per-sample values from the first {} samples of each world.",
        crate::html::group_digits(data.iter().map(|d| d.1.len() + d.2).max().unwrap_or(0) as u64)
    );
    let dropped: usize = data.iter().map(|d| d.2).sum();
    if dropped > 0 {
        let _ = write!(
            caption,
            " {dropped} non-finite values not drawn (see numeric faults)."
        );
    }
    let mut distinct: Vec<f64> = Vec::new();
    for (_, s, _) in &data {
        for &x in s {
            if distinct.last() != Some(&x) && !distinct.contains(&x) {
                distinct.push(x);
                if distinct.len() > MAX_DISCRETE {
                    break;
                }
            }
        }
        if distinct.len() > MAX_DISCRETE {
            break;
        }
    }
    let svg = if distinct.len() <= MAX_DISCRETE && !distinct.is_empty() {
        distinct.sort_by(f64::total_cmp);
        discrete(title, subtitle, &data, &distinct, palette)
    } else {
        continuous(title, subtitle, &data, palette, &mut caption)
    };
    (svg, caption)
}

/// The plot area, below a legend whose last row is at `legend_y`.
fn frame(legend_y: f64) -> Frame {
    Frame {
        left: 64.0,
        top: legend_y + 14.0,
        right: WIDTH - 18.0,
        bottom: HEIGHT - 48.0,
    }
}

fn legend_entries(
    data: &[(&str, Vec<f64>, usize)],
    palette: &Palette,
) -> Vec<(String, &'static str, &'static str)> {
    data.iter()
        .map(|(w, _, _)| {
            (
                w.to_string(),
                palette.colour(w),
                if palette.is_baseline(w) {
                    "fill"
                } else {
                    "line"
                },
            )
        })
        .collect()
}

fn continuous(
    title: &str,
    subtitle: &str,
    data: &[(&str, Vec<f64>, usize)],
    palette: &Palette,
    caption: &mut String,
) -> String {
    // The most common value, if it is an atom in some world.
    let atom = data
        .iter()
        .filter_map(|(_, s, _)| {
            mode(s)
                .filter(|(_, c)| *c as f64 >= ATOM_SHARE * s.len() as f64)
                .map(|(v, c)| (v, c as f64 / s.len() as f64))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(v, _)| v);
    let pooled: Vec<f64> = {
        let mut p: Vec<f64> = data
            .iter()
            .flat_map(|(_, s, _)| s.iter().copied())
            .filter(|&x| Some(x) != atom)
            .collect();
        p.sort_by(f64::total_cmp);
        p
    };
    let (mut lo, mut hi) = (
        quantile_sorted(&pooled, 0.001),
        quantile_sorted(&pooled, 0.999),
    );
    if pooled.is_empty() {
        (lo, hi) = (0.0, 1.0);
    } else if hi <= lo {
        (lo, hi) = (pooled[0], pooled[pooled.len() - 1]);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / BINS as f64;
    // Share of all of a world's samples falling in each bin.
    let hist: Vec<Vec<f64>> = data
        .iter()
        .map(|(_, s, _)| {
            let mut c = vec![0.0; BINS];
            for &x in s {
                if Some(x) == atom || x < lo || x > hi {
                    continue;
                }
                let b = (((x - lo) / width) as usize).min(BINS - 1);
                c[b] += 1.0;
            }
            let total = s.len().max(1) as f64;
            c.iter().map(|v| 100.0 * v / total).collect()
        })
        .collect();
    let outside: usize = data
        .iter()
        .map(|(_, s, _)| {
            s.iter()
                .filter(|&&x| Some(x) != atom && (x < lo || x > hi))
                .count()
        })
        .sum();
    let total: usize = data.iter().map(|(_, s, _)| s.len()).sum();
    let _ = write!(
        caption,
        " Shared bins over the 0.1%–99.9% range of all worlds pooled ({} of samples outside).",
        pct(outside as f64 / total.max(1) as f64)
    );
    if let Some(a) = atom {
        let shares: Vec<String> = data
            .iter()
            .map(|(w, s, _)| {
                format!(
                    "{w} {}",
                    pct(s.iter().filter(|&&x| x == a).count() as f64 / s.len().max(1) as f64)
                )
            })
            .collect();
        let _ = write!(
            caption,
            " Atom at {} not drawn: {}.",
            fmt_sig(Some(a), 4),
            shares.join(", ")
        );
    }
    let ymax = hist.iter().flatten().copied().fold(0.0, f64::max).max(1e-9);

    let mut svg = Svg::new(WIDTH, HEIGHT, title);
    titles(&mut svg, 14.0, title, subtitle);
    let f = frame(legend(
        &mut svg,
        64.0,
        58.0,
        WIDTH - 10.0,
        &legend_entries(data, palette),
    ));
    let ys = y_axis(&mut svg, f, 0.0, ymax * 1.05, "");
    y_title(&mut svg, f, "share of samples per bin (%)");
    let xs = x_axis(&mut svg, f, lo, hi, "value", false);
    // Baseline first (filled), then the worlds as outlines on top.
    for (i, (w, _, _)) in data.iter().enumerate() {
        let c = palette.colour(w);
        let mut d = format!("M{} {}", n(xs.map(lo)), n(ys.map(0.0)));
        for (b, &h) in hist[i].iter().enumerate() {
            let x0 = xs.map(lo + b as f64 * width);
            let x1 = xs.map(lo + (b + 1) as f64 * width);
            let y = ys.map(h);
            let _ = write!(d, " L{} {} L{} {}", n(x0), n(y), n(x1), n(y));
        }
        let _ = write!(d, " L{} {}", n(xs.map(hi)), n(ys.map(0.0)));
        if palette.is_baseline(w) {
            svg.path(
                &(d.clone() + " Z"),
                &format!(r#"fill="{c}" fill-opacity="0.28" stroke="none""#),
            );
            svg.path(
                &d,
                &format!(r#"fill="none" stroke="{c}" stroke-width="1.5" stroke-linejoin="round""#),
            );
        } else {
            svg.path(
                &d,
                &format!(r#"fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round""#),
            );
        }
    }
    svg.finish()
}

fn discrete(
    title: &str,
    subtitle: &str,
    data: &[(&str, Vec<f64>, usize)],
    values: &[f64],
    palette: &Palette,
) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT, title);
    titles(&mut svg, 14.0, title, subtitle);
    let f = frame(legend(
        &mut svg,
        64.0,
        58.0,
        WIDTH - 10.0,
        &legend_entries(data, palette),
    ));
    let shares: Vec<Vec<f64>> = data
        .iter()
        .map(|(_, s, _)| {
            values
                .iter()
                .map(|&v| {
                    100.0 * s.iter().filter(|&&x| x == v).count() as f64 / s.len().max(1) as f64
                })
                .collect()
        })
        .collect();
    let ymax = shares
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-9);
    let ys = y_axis(&mut svg, f, 0.0, ymax * 1.08, "");
    y_title(&mut svg, f, "share of samples (%)");
    let slot = f.width() / values.len() as f64;
    let bar = (slot * 0.8 / data.len() as f64).min(36.0);
    let (_, step) = nice_ticks(values[0], values[values.len() - 1], values.len());
    for (k, &v) in values.iter().enumerate() {
        let cx = f.left + slot * (k as f64 + 0.5);
        let x0 = cx - bar * data.len() as f64 / 2.0;
        for (i, (w, _, _)) in data.iter().enumerate() {
            let c = palette.colour(w);
            let h = shares[i][k];
            let y = ys.map(h);
            svg.titled_start(&format!(
                "{w}: {} at {}",
                pct(h / 100.0),
                fmt_sig(Some(v), 4)
            ));
            svg.rect(
                x0 + bar * i as f64,
                y,
                bar - 2.0,
                f.bottom - y,
                &format!(r#"fill="{c}" fill-opacity="0.85""#),
            );
            svg.group_end();
        }
        let label = if values.len() <= 2 && values.iter().all(|&v| v == 0.0 || v == 1.0) {
            if v == 1.0 {
                "true (1)".to_string()
            } else {
                "false (0)".to_string()
            }
        } else {
            fmt_tick(v, step.min(1.0))
        };
        svg.text(
            cx,
            f.bottom + 16.0,
            "middle",
            &format!(r#"fill="{MUTED}" font-size="11""#),
            &label,
        );
    }
    svg.line(f.left, f.bottom, f.right, f.bottom, MUTED, 1.0, "");
    svg.text(
        (f.left + f.right) / 2.0,
        f.bottom + 34.0,
        "middle",
        &format!(r#"fill="{INK}""#),
        "value",
    );
    svg.finish()
}

/// The most frequent value of sorted data and its count.
fn mode(sorted: &[f64]) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        if best.is_none_or(|(_, c)| j - i > c) {
            best = Some((sorted[i], j - i));
        }
        i = j;
    }
    best
}

/// A share as a percentage with sensible precision.
pub(crate) fn pct(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 {
        "0%".to_string()
    } else if p < 0.1 {
        format!("{}%", fmt_sig(Some(p), 2))
    } else if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}
