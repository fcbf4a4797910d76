//! Line charts with ±1.96 SE bands: the extension point for sweeps (metric
//! against a swept parameter) and backtests (observed and counterfactual
//! outcome per period).
//!
//! Data arrives as [`LineChartData`]; a series names its world to take that
//! world's colour, so a sweep of `raise_limits` reads like the other charts.
//! With `x_labels` the x axis is categorical (periods), otherwise numeric.

use std::fmt::Write as _;

use super::svg::{Frame, Linear, Svg, legend, n, slug, titles, x_axis, y_axis};
use super::{Figure, LineChartData, MUTED, Palette, WORLD_COLOURS};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 330.0;
const Z95: f64 = 1.959_963_984_540_054;

/// Draw one line chart; `prefix` keeps figure names unique (`sweep`, `backtest`).
pub fn figure(chart: &LineChartData, prefix: &str, index: usize, palette: &Palette) -> Figure {
    let colour = |i: usize, world: Option<&str>| match world {
        Some(w) => palette.colour(w),
        None => WORLD_COLOURS[i % WORLD_COLOURS.len()],
    };
    let mut svg = Svg::new(WIDTH, HEIGHT, &chart.title);
    let fan = chart.series.iter().any(|s| !s.band.is_empty());
    titles(
        &mut svg,
        14.0,
        &chart.title,
        if fan {
            "Lines: median path; shaded bands: 5–95% of paths"
        } else {
            "Shaded bands: 95% Monte Carlo intervals (± 1.96 SE)"
        },
    );
    // The band of point k of a series: explicit, else ±1.96 SE.
    let band = |s: &super::LineSeries, k: usize, y: f64| -> (f64, f64) {
        match s.band.get(k).copied().flatten() {
            Some([lo, hi]) => (lo, hi),
            None => {
                let h = s.std_error.get(k).copied().flatten().unwrap_or(0.0) * Z95;
                (y - h, y + h)
            }
        }
    };
    let entries: Vec<(String, &str, &str)> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.clone(), colour(i, s.world.as_deref()), "line"))
        .collect();
    let ly = legend(&mut svg, 70.0, 58.0, WIDTH - 10.0, &entries);
    let f = Frame {
        left: 70.0,
        top: ly + 14.0,
        right: WIDTH - 18.0,
        bottom: HEIGHT - 48.0,
    };

    let (mut xlo, mut xhi, mut ylo, mut yhi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for s in &chart.series {
        for (i, (&x, y)) in s.x.iter().zip(&s.y).enumerate() {
            let Some(y) = y.filter(|y| y.is_finite()) else {
                continue;
            };
            let (lo, hi) = band(s, i, y);
            xlo = xlo.min(x);
            xhi = xhi.max(x);
            ylo = ylo.min(lo.min(y));
            yhi = yhi.max(hi.max(y));
        }
    }
    if !xlo.is_finite() {
        (xlo, xhi, ylo, yhi) = (0.0, 1.0, 0.0, 1.0);
    }
    let ys = y_axis(&mut svg, f, ylo, yhi, &chart.y_label);
    let xs = match &chart.x_labels {
        Some(labels) => {
            let xs = Linear {
                d0: -0.5,
                d1: labels.len() as f64 - 0.5,
                p0: f.left,
                p1: f.right,
            };
            // Thin the labels so they never overlap.
            let every = ((labels.len() as f64 * 60.0 / f.width()).ceil() as usize).max(1);
            for (i, l) in labels.iter().enumerate().step_by(every) {
                svg.text(
                    xs.map(i as f64),
                    f.bottom + 16.0,
                    "middle",
                    &format!(r#"fill="{MUTED}" font-size="11""#),
                    l,
                );
            }
            svg.line(f.left, f.bottom, f.right, f.bottom, MUTED, 1.0, "");
            svg.text(
                (f.left + f.right) / 2.0,
                f.bottom + 34.0,
                "middle",
                "",
                &chart.x_label,
            );
            xs
        }
        None => x_axis(&mut svg, f, xlo, xhi, &chart.x_label, false),
    };
    for (i, s) in chart.series.iter().enumerate() {
        let c = colour(i, s.world.as_deref());
        // (x, y, band lo, band hi)
        let pts: Vec<(f64, f64, f64, f64)> =
            s.x.iter()
                .zip(&s.y)
                .enumerate()
                .filter_map(|(k, (&x, y))| {
                    y.filter(|y| y.is_finite()).map(|y| {
                        let (lo, hi) = band(s, k, y);
                        (x, y, lo, hi)
                    })
                })
                .collect();
        if pts.is_empty() {
            continue;
        }
        if pts.iter().any(|p| p.3 > p.2) {
            let mut d = String::new();
            for (k, p) in pts.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{} {} ",
                    if k == 0 { "M" } else { "L" },
                    n(xs.map(p.0)),
                    n(ys.map(p.3))
                );
            }
            for p in pts.iter().rev() {
                let _ = write!(d, "L{} {} ", n(xs.map(p.0)), n(ys.map(p.2)));
            }
            svg.path(
                &(d + "Z"),
                &format!(r#"fill="{c}" fill-opacity="0.15" stroke="none""#),
            );
        }
        let mut d = String::new();
        for (k, p) in pts.iter().enumerate() {
            let _ = write!(
                d,
                "{}{} {} ",
                if k == 0 { "M" } else { "L" },
                n(xs.map(p.0)),
                n(ys.map(p.1))
            );
        }
        svg.path(
            d.trim_end(),
            &format!(r#"fill="none" stroke="{c}" stroke-width="2""#),
        );
        for p in &pts {
            svg.circle(
                xs.map(p.0),
                ys.map(p.1),
                3.0,
                &format!(r##"fill="{c}" stroke="#ffffff" stroke-width="1""##),
            );
        }
    }
    Figure {
        name: format!("{prefix}-{index}-{}", slug(&chart.title)),
        title: chart.title.clone(),
        caption: String::new(),
        svg: svg.finish(),
    }
}
