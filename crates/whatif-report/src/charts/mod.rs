//! SVG charts for the HTML and Markdown reports, written by hand.
//!
//! Why hand-written SVG and not plotters' SVG backend: the report must be one
//! self-contained, byte-for-byte deterministic file that a browser, GitHub
//! and an XML parser all accept. plotters pulls in font loading and text
//! measurement (`font-kit`/`ttf-parser`, system font discovery) that either
//! differs between machines or bakes glyph outlines into the output, and its
//! layout knobs fight a consistent house style. The charts we need (step
//! histograms, a forest plot, survival curves on a log axis, line charts with
//! bands) are a few hundred lines of coordinates; writing them directly gives
//! us exact control of ids (several SVGs share one HTML document), escaping,
//! number formatting and colours, and no dependency at all.
//!
//! Every chart takes plain data ([`ChartData`] and the [`Report`]) and a
//! [`Palette`] so a world has the same colour in every chart of a report.
//! Text is measured with a fixed per-character estimate (see
//! [`svg::text_width`]): good enough for layout, and deterministic.
//!
//! Extension points: [`ChartData::sweeps`] and [`ChartData::backtest`] carry
//! generic line charts ([`LineChartData`]) that the sweep and backtest issues
//! fill; [`line::render`] draws them with ±1.96 SE bands.
//!
//! [`Report`]: crate::Report

pub mod distribution;
pub mod exceedance;
pub mod forest;
pub mod line;
pub mod svg;

use serde::{Deserialize, Serialize};

/// Per-sample values the engine keeps for drawing: the variable behind each
/// metric, per world, from the first samples of the run (at most 100,000).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChartData {
    /// How many samples each series holds (the first `samples_used` samples of
    /// the run; the same for every series so worlds stay paired).
    pub samples_used: u64,
    /// One entry per (metric, world); order does not matter, the renderers
    /// follow the report's world and metric order.
    pub series: Vec<MetricSamples>,
    /// Sweep results as line charts (the sweeps issue fills this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweeps: Option<Vec<LineChartData>>,
    /// Backtest period series as line charts (the backtest issue fills this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<Vec<LineChartData>>,
    /// Fan charts of a multi-period model: per node, per world, the median
    /// path with a 5–95% band (quantiles over the kept samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fans: Option<Vec<LineChartData>>,
}

/// The per-sample values of one metric's variable in one world.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSamples {
    /// Metric name as in the report.
    pub metric: String,
    /// World name as in the report.
    pub world: String,
    /// Sample values in sample order (non-finite values are skipped when
    /// drawing and counted in the chart's caption).
    pub values: Vec<f32>,
}

impl ChartData {
    /// The samples of `metric` in `world`, if the engine kept them.
    pub fn samples(&self, metric: &str, world: &str) -> Option<&[f32]> {
        self.series
            .iter()
            .find(|s| s.metric == metric && s.world == world)
            .map(|s| s.values.as_slice())
    }
}

/// A generic line chart: x against y with optional standard-error bands.
/// Used for sweeps (x = grid point) and backtests (x = period index, with
/// `x_labels` naming the periods).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineChartData {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Category labels for x = 0, 1, 2, … (periods); `None` for numeric x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_labels: Option<Vec<String>>,
    pub series: Vec<LineSeries>,
}

/// One line of a [`LineChartData`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineSeries {
    /// Legend label.
    pub label: String,
    /// World whose colour the line takes (`None`: the next free colour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    pub x: Vec<f64>,
    /// `None` for points that are missing or non-finite.
    pub y: Vec<Option<f64>>,
    /// Monte Carlo standard error of each y; empty for no band.
    #[serde(default)]
    pub std_error: Vec<Option<f64>>,
    /// An explicit band `[lo, hi]` per point (a fan chart's 5–95% range),
    /// drawn instead of the ±1.96 SE band; empty for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub band: Vec<Option<[f64; 2]>>,
}

/// Colours of the report: the baseline is slate grey-blue, other worlds take
/// the Okabe–Ito palette (distinguishable with the common colour-vision
/// deficiencies) in report order, so a world has one colour everywhere.
#[derive(Debug, Clone)]
pub struct Palette {
    worlds: Vec<String>,
}

/// Baseline colour.
pub const BASELINE: &str = "#5b6b80";
/// Okabe–Ito colours (without black and yellow, which read badly as thin
/// lines on white), ordered for contrast between neighbours.
pub const WORLD_COLOURS: [&str; 6] = [
    "#e69f00", "#0072b2", "#009e73", "#d55e00", "#cc79a7", "#56b4e9",
];
/// Ink for text and axes.
pub const INK: &str = "#1f2933";
/// Secondary text.
pub const MUTED: &str = "#616e7c";
/// Grid lines.
pub const GRID: &str = "#e4e7eb";
/// Pass and fail colours (also used by the HTML badges).
pub const PASS: &str = "#1a7f37";
pub const FAIL: &str = "#c62828";

impl Palette {
    /// A palette for worlds in report order; the first is the baseline.
    pub fn new<S: AsRef<str>>(worlds: &[S]) -> Palette {
        Palette {
            worlds: worlds.iter().map(|w| w.as_ref().to_string()).collect(),
        }
    }

    /// The colour of `world` (unknown worlds get a colour from their
    /// position after the known ones, deterministically).
    pub fn colour(&self, world: &str) -> &'static str {
        match self.worlds.iter().position(|w| w == world) {
            Some(0) => BASELINE,
            Some(i) => WORLD_COLOURS[(i - 1) % WORLD_COLOURS.len()],
            None => WORLD_COLOURS[self.worlds.len().saturating_sub(1) % WORLD_COLOURS.len()],
        }
    }

    /// Whether `world` is the baseline (the first world).
    pub fn is_baseline(&self, world: &str) -> bool {
        self.worlds.first().is_some_and(|w| w == world)
    }

    /// Worlds in report order.
    pub fn worlds(&self) -> &[String] {
        &self.worlds
    }
}

/// "Nice" tick positions covering `[lo, hi]`: steps of 1, 2, 2.5 or 5 times a
/// power of ten, about `target` of them. Returns (ticks, step).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !lo.is_finite() || !hi.is_finite() {
        return (vec![0.0, 1.0], 1.0);
    }
    if hi - lo < f64::EPSILON * hi.abs().max(1.0) * 16.0 {
        // A degenerate range: widen it symmetrically so one value still gets
        // an axis around it.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 2.5 {
            2.5
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    let ticks = (first..=last)
        .map(|k| k as f64 * step)
        .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
        .collect();
    (ticks, step)
}

/// Format a tick value given the tick step: no more decimals than the step
/// needs, and `k`/`M`/`B` suffixes for large magnitudes so labels stay short.
pub fn fmt_tick(v: f64, step: f64) -> String {
    fmt_tick_scaled(v, step, v.abs().max(step.abs()))
}

/// Labels for all ticks of one axis: the unit suffix is chosen from the
/// largest tick, so an axis never mixes `2000` and `10k`.
pub fn fmt_ticks(ticks: &[f64], step: f64) -> Vec<String> {
    let a = ticks.iter().fold(step.abs(), |m, t| m.max(t.abs()));
    ticks.iter().map(|&t| fmt_tick_scaled(t, step, a)).collect()
}

fn fmt_tick_scaled(v: f64, step: f64, a: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let (scale, suffix) = if a >= 1e9 {
        (1e9, "B")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let s = step / scale;
    if s > 0.0 && s < 1e-4 {
        return fmt_sci(v);
    }
    let decimals = if s >= 1.0 {
        0
    } else {
        (-(s.log10()).floor() as usize + usize::from(is_quarter(s))).min(8)
    };
    let text = format!("{:.*}", decimals, v / scale);
    format!("{}{}", minus(&text), suffix)
}

/// Whether a step like 0.25 or 2.5 needs one more decimal than its magnitude.
fn is_quarter(s: f64) -> bool {
    let mag = 10f64.powf(s.log10().floor());
    let norm = s / mag;
    (norm - 2.5).abs() < 1e-9
}

/// Scientific notation with a real minus sign, e.g. `2.5e−4`.
pub fn fmt_sci(v: f64) -> String {
    minus(&format!("{v:.1e}"))
}

/// Replace ASCII hyphen-minus by the typographic minus sign for display.
pub fn minus(s: &str) -> String {
    s.replace('-', "\u{2212}")
}

/// Format a number with `sig` significant digits, without exponent for
/// ordinary magnitudes; `—` for missing values.
pub fn fmt_sig(v: Option<f64>, sig: usize) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "\u{2014}".to_string();
    };
    if v == 0.0 {
        return "0".to_string();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        return minus(&format!("{:.*e}", sig.saturating_sub(1), v));
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let mut t = format!("{v:.decimals$}");
    // Trailing zeros after the point say nothing about an input value.
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    minus(&t)
}

/// Format an estimate to the precision its standard error supports: two
/// significant digits of the SE decide the last digit shown (at least 3
/// significant digits of the estimate when the SE is zero or missing).
pub fn fmt_est(v: Option<f64>, se: Option<f64>) -> String {
    let Some(x) = v.filter(|x| x.is_finite()) else {
        return "\u{2014}".to_string();
    };
    match se.filter(|s| s.is_finite() && *s > 0.0) {
        Some(s) => {
            let dec = (1 - s.log10().floor() as i32).clamp(0, 12) as usize;
            if x.abs() >= 1e10 || (x != 0.0 && x.abs() < 1e-4 && dec > 8) {
                fmt_sig(Some(x), 4)
            } else {
                minus(&format!("{x:.dec$}"))
            }
        }
        None => fmt_sig(Some(x), 4),
    }
}

/// Finite values of a series, sorted ascending, and how many were dropped.
pub(crate) fn sorted_finite(values: &[f32]) -> (Vec<f64>, usize) {
    let mut v: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| f64::from(x))
        .collect();
    let dropped = values.len() - v.len();
    v.sort_by(f64::total_cmp);
    (v, dropped)
}

/// The empirical quantile of sorted data (inverted CDF, as the engine uses).
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let n = sorted.len();
    let k = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[k - 1]
}

/// One finished chart: what the HTML embeds and the Markdown writes to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File-name-safe identifier, unique within a report (e.g. `dist-loss`).
    pub name: String,
    /// Heading shown above the chart.
    pub title: String,
    /// One or two sentences on how to read it (what was clipped, sample count).
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// What the charts need to know about a metric from the model: its source
/// text (for titles) and kind (tail metrics get exceedance curves).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    pub name: String,
    /// The metric as written in the scenario, e.g. `expected_shortfall(loss, 0.99)`.
    pub source: String,
    /// `None` when the model has no metric of this name.
    pub kind: Option<whatif_lang::MetricKind>,
}

impl MetricInfo {
    /// Metrics of the report in report order (first world's order, then any
    /// metric only other worlds have), described from the model.
    pub fn from_report(
        report: &crate::Report,
        model: &whatif_lang::CausalModel,
    ) -> Vec<MetricInfo> {
        let mut names: Vec<&str> = Vec::new();
        for w in &report.worlds {
            for m in &w.metrics {
                if !names.contains(&m.name.as_str()) {
                    names.push(&m.name);
                }
            }
        }
        names
            .into_iter()
            .map(|name| {
                let m = model.metrics.iter().find(|m| m.name == name);
                MetricInfo {
                    name: name.to_string(),
                    source: m.map(|m| m.source.clone()).unwrap_or_default(),
                    kind: m.map(|m| m.kind),
                }
            })
            .collect()
    }

    /// The tail level q of `value_at_risk`, `expected_shortfall` and
    /// `quantile` metrics.
    pub fn tail_level(&self) -> Option<f64> {
        use whatif_lang::MetricKind as K;
        match self.kind {
            Some(K::ValueAtRisk(q) | K::ExpectedShortfall(q) | K::Quantile(q)) => Some(q),
            _ => None,
        }
    }
}

/// Per-world samples of one variable, in report world order.
pub(crate) type WorldSeries<'a> = Vec<(&'a str, &'a [f32])>;

/// Group metrics whose samples are identical in every world (e.g.
/// `mean(loss)` and `expected_shortfall(loss, 0.99)` read the same variable),
/// in the order given; metrics without samples are left out.
pub(crate) fn group_by_samples<'a>(
    report: &'a crate::Report,
    metrics: impl IntoIterator<Item = &'a MetricInfo>,
    charts: &'a ChartData,
) -> Vec<(Vec<&'a MetricInfo>, WorldSeries<'a>)> {
    let mut groups: Vec<(Vec<&MetricInfo>, WorldSeries<'a>)> = Vec::new();
    for m in metrics {
        let series: WorldSeries<'a> = report
            .worlds
            .iter()
            .filter_map(|w| {
                charts
                    .samples(&m.name, &w.name)
                    .map(|v| (w.name.as_str(), v))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let same = groups.iter_mut().find(|(_, s)| {
            s.len() == series.len()
                && s.iter().zip(&series).all(|(a, b)| {
                    a.0 == b.0
                        && a.1.len() == b.1.len()
                        && a.1
                            .iter()
                            .zip(b.1.iter())
                            .all(|(x, y)| x.to_bits() == y.to_bits())
                })
        });
        match same {
            Some(g) => g.0.push(m),
            None => groups.push((vec![m], series)),
        }
    }
    groups
}

/// Every figure of a report, built once and shared by the HTML and Markdown
/// renderers so both show the same charts.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub dag: Option<Figure>,
    pub effects: Option<Figure>,
    pub distributions: Vec<Figure>,
    pub tails: Vec<Figure>,
    pub sweeps: Vec<Figure>,
    pub backtest: Vec<Figure>,
    pub fans: Vec<Figure>,
}

impl Figures {
    /// Build all figures of a report.
    pub fn build(
        report: &crate::Report,
        model: &whatif_lang::CausalModel,
        charts: &ChartData,
    ) -> Figures {
        let dag = crate::dag::DagInput::from_model(model, None);
        Self::build_with_dag(
            report,
            &MetricInfo::from_report(report, model),
            &dag,
            charts,
        )
    }

    /// Build all figures from plain inputs (what [`Figures::build`] derives
    /// from the model); used by tests that have no compiled model.
    pub fn build_with_dag(
        report: &crate::Report,
        metrics: &[MetricInfo],
        dag: &crate::dag::DagInput,
        charts: &ChartData,
    ) -> Figures {
        let worlds: Vec<&str> = report.worlds.iter().map(|w| w.name.as_str()).collect();
        let palette = Palette::new(&worlds);
        let dag = (!dag.nodes.is_empty()).then(|| Figure {
            name: "dag".to_string(),
            title: "Causal model".to_string(),
            caption: "Arrows point from cause to effect. Highlighted nodes are edited by at least one world (hover for which); \
                      dashed nodes are latent (never observed)."
                .to_string(),
            svg: crate::dag::render(dag, "Causal graph (baseline, edits marked)", "dag"),
        });
        let line_figs = |charts: &Option<Vec<LineChartData>>, prefix: &str| -> Vec<Figure> {
            charts
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| line::figure(c, prefix, i, &palette))
                .collect()
        };
        Figures {
            dag,
            effects: forest::figure(report, metrics, &palette),
            distributions: distribution::figures(report, metrics, charts, &palette),
            tails: exceedance::figures(report, metrics, charts, &palette),
            sweeps: line_figs(&charts.sweeps, "sweep"),
            backtest: line_figs(&charts.backtest, "backtest"),
            fans: line_figs(&charts.fans, "fan"),
        }
    }

    /// Every figure in page order.
    pub fn all(&self) -> impl Iterator<Item = &Figure> {
        self.dag
            .iter()
            .chain(self.effects.iter())
            .chain(&self.distributions)
            .chain(&self.tails)
            .chain(&self.sweeps)
            .chain(&self.backtest)
            .chain(&self.fans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let (t, s) = nice_ticks(0.0, 97.0, 5);
        assert_eq!(s, 20.0);
        assert_eq!(t, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let (t, s) = nice_ticks(-0.013, 0.011, 5);
        assert_eq!(s, 0.005);
        assert_eq!(fmt_tick(t[0], s), "\u{2212}0.015");
        assert_eq!(fmt_tick(0.25, 0.25), "0.25");
        assert_eq!(fmt_tick(250_000.0, 50_000.0), "250k");
        assert_eq!(fmt_tick(1_500_000.0, 500_000.0), "1.5M");
    }

    #[test]
    fn estimates_follow_their_error() {
        assert_eq!(fmt_est(Some(1234.5678), Some(1.3)), "1234.6");
        assert_eq!(fmt_est(Some(0.051234), Some(0.00021)), "0.05123");
        assert_eq!(fmt_est(None, Some(1.0)), "\u{2014}");
        assert_eq!(fmt_sig(Some(-0.000123456), 3), "\u{2212}0.000123");
    }

    #[test]
    fn palette_is_stable() {
        let p = Palette::new(&["baseline", "a", "b"]);
        assert_eq!(p.colour("baseline"), BASELINE);
        assert_eq!(p.colour("a"), WORLD_COLOURS[0]);
        assert_eq!(p.colour("b"), WORLD_COLOURS[1]);
    }
}
