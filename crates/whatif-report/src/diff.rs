//! `whatif diff`: which metrics and effects moved beyond Monte Carlo noise
//! between two reports (a policy diff for code review).
//!
//! Each quantity present in both reports with finite values and standard
//! errors gets z = (b − a) / √(se_a² + se_b²) and a two-sided normal p-value.
//! Treating the two runs as independent is conservative when they share a
//! seed (common random numbers make their errors positively correlated, so
//! the true SE of the difference is smaller): a flagged move is real, a small
//! move may go unflagged. Holm's step-down procedure then controls the
//! family-wise error rate at `alpha` across everything compared, so with
//! dozens of unchanged metrics nothing is flagged by chance more than
//! `alpha` of the time. Quantities only one report has, and those with
//! missing numbers, are listed separately, never silently dropped.

use std::fmt::Write as _;

use whatif_stats::special::normal_cdf;

use crate::charts::{fmt_est, fmt_sig};
use crate::{Num, Report};

/// What a compared quantity is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffKey {
    /// `metric[world]`
    Metric { world: String, metric: String },
    /// `metric[world] − metric[vs]`
    Effect {
        world: String,
        vs: String,
        metric: String,
    },
}

impl std::fmt::Display for DiffKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffKey::Metric { world, metric } => write!(f, "{metric}[{world}]"),
            DiffKey::Effect { world, vs, metric } => write!(f, "effect {metric}[{world} vs {vs}]"),
        }
    }
}

/// One quantity compared between the reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffItem {
    pub key: DiffKey,
    pub a: f64,
    pub b: f64,
    pub se_a: f64,
    pub se_b: f64,
    /// (b − a) / √(se_a² + se_b²); ±∞ when both SEs are 0 and the values differ.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Rejected by Holm's procedure at the family-wise `alpha`.
    pub moved: bool,
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDiff {
    /// Family-wise error rate used.
    pub alpha: f64,
    /// Compared quantities in report order (metrics by world, then effects).
    pub items: Vec<DiffItem>,
    /// Present in the first report only.
    pub only_in_a: Vec<DiffKey>,
    /// Present in the second report only.
    pub only_in_b: Vec<DiffKey>,
    /// Present in both but with a missing estimate or standard error.
    pub not_comparable: Vec<DiffKey>,
    /// Manifest fields that differ (`field: a → b`), outside `manifest.run`.
    pub manifest_changes: Vec<String>,
}

type Entry = (DiffKey, Num, Num);

fn entries(r: &Report) -> Vec<Entry> {
    let mut v: Vec<Entry> = Vec::new();
    for w in &r.worlds {
        for m in &w.metrics {
            v.push((
                DiffKey::Metric {
                    world: w.name.clone(),
                    metric: m.name.clone(),
                },
                m.estimate,
                m.std_error,
            ));
        }
    }
    for e in &r.effects {
        v.push((
            DiffKey::Effect {
                world: e.world.clone(),
                vs: e.vs.clone(),
                metric: e.metric.clone(),
            },
            e.difference,
            e.difference_std_error,
        ));
    }
    v
}

/// Compare report `a` (before) with `b` (after) at family-wise level `alpha`.
pub fn compare(a: &Report, b: &Report, alpha: f64) -> ReportDiff {
    let ea = entries(a);
    let eb = entries(b);
    let mut items = Vec::new();
    let mut only_in_a = Vec::new();
    let mut not_comparable = Vec::new();
    for (key, va, sa) in &ea {
        let Some((_, vb, sb)) = eb.iter().find(|e| &e.0 == key) else {
            only_in_a.push(key.clone());
            continue;
        };
        match (va, sa, vb, sb) {
            (Some(va), Some(sa), Some(vb), Some(sb)) if sa.is_finite() && sb.is_finite() => {
                let se = (sa * sa + sb * sb).sqrt();
                let d = vb - va;
                let z = if se > 0.0 {
                    d / se
                } else if d == 0.0 {
                    0.0
                } else {
                    d.signum() * f64::INFINITY
                };
                let p = (2.0 * normal_cdf(-z.abs())).min(1.0);
                items.push(DiffItem {
                    key: key.clone(),
                    a: *va,
                    b: *vb,
                    se_a: *sa,
                    se_b: *sb,
                    z,
                    p,
                    moved: false,
                });
            }
            _ => not_comparable.push(key.clone()),
        }
    }
    let only_in_b = eb
        .iter()
        .filter(|e| !ea.iter().any(|x| x.0 == e.0))
        .map(|e| e.0.clone())
        .collect();
    holm(&mut items, alpha);
    let ma = &a.manifest;
    let mb = &b.manifest;
    let mut manifest_changes = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            manifest_changes.push(format!("{name}: {x} → {y}"));
        }
    };
    field(
        "engine_version",
        ma.engine_version.clone(),
        mb.engine_version.clone(),
    );
    field(
        "git_commit",
        ma.git_commit.clone().unwrap_or_default(),
        mb.git_commit.clone().unwrap_or_default(),
    );
    field(
        "scenario_name",
        ma.scenario_name.clone(),
        mb.scenario_name.clone(),
    );
    field(
        "scenario_sha256",
        ma.scenario_sha256.clone(),
        mb.scenario_sha256.clone(),
    );
    field("seed", ma.seed.to_string(), mb.seed.to_string());
    field("samples", ma.samples.to_string(), mb.samples.to_string());
    field("backend", ma.backend.clone(), mb.backend.clone());
    field("device", ma.device.clone(), mb.device.clone());
    field("kernel", ma.kernel.clone(), mb.kernel.clone());
    ReportDiff {
        alpha,
        items,
        only_in_a,
        only_in_b,
        not_comparable,
        manifest_changes,
    }
}

/// Holm–Bonferroni: sort p ascending, reject p₍ᵢ₎ ≤ α / (m − i) until the
/// first acceptance. Ties keep report order (a stable sort), so the result is
/// deterministic.
fn holm(items: &mut [DiffItem], alpha: f64) {
    let m = items.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&i, &j| items[i].p.total_cmp(&items[j].p));
    for (rank, &i) in idx.iter().enumerate() {
        if items[i].p <= alpha / (m - rank) as f64 {
            items[i].moved = true;
        } else {
            break;
        }
    }
}

impl ReportDiff {
    /// Whether anything moved beyond Monte Carlo noise.
    pub fn moved(&self) -> bool {
        self.items.iter().any(|i| i.moved)
    }

    /// A plain-text summary for terminals and review comments.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let moved: Vec<&DiffItem> = self.items.iter().filter(|i| i.moved).collect();
        let _ = writeln!(
            s,
            "compared {} quantities; {} moved beyond Monte Carlo noise (Holm, family-wise alpha = {})",
            self.items.len(),
            moved.len(),
            self.alpha
        );
        if !self.manifest_changes.is_empty() {
            s.push_str("\nmanifest changes:\n");
            for c in &self.manifest_changes {
                let _ = writeln!(s, "  {c}");
            }
        }
        let table = |s: &mut String, rows: &[&DiffItem]| {
            let w = rows
                .iter()
                .map(|i| i.key.to_string().chars().count())
                .max()
                .unwrap_or(0);
            for i in rows {
                let _ = writeln!(
                    s,
                    "  {:<w$}  {} ± {}  →  {} ± {}   Δ = {}   z = {}   p = {}",
                    i.key.to_string(),
                    fmt_est(Some(i.a), Some(i.se_a)),
                    fmt_sig(Some(i.se_a), 2),
                    fmt_est(Some(i.b), Some(i.se_b)),
                    fmt_sig(Some(i.se_b), 2),
                    fmt_sig(Some(i.b - i.a), 4),
                    if i.z.is_finite() {
                        format!("{:.2}", i.z)
                    } else {
                        "inf".to_string()
                    },
                    fmt_p(i.p),
                );
            }
        };
        if !moved.is_empty() {
            s.push_str("\nmoved:\n");
            table(&mut s, &moved);
        }
        let unchanged: Vec<&DiffItem> = self.items.iter().filter(|i| !i.moved).collect();
        if !unchanged.is_empty() {
            s.push_str("\nwithin noise:\n");
            table(&mut s, &unchanged);
        }
        for (title, keys) in [
            ("only in the first report", &self.only_in_a),
            ("only in the second report", &self.only_in_b),
            (
                "not comparable (missing estimate or standard error)",
                &self.not_comparable,
            ),
        ] {
            if !keys.is_empty() {
                let _ = writeln!(s, "\n{title}:");
                for k in keys {
                    let _ = writeln!(s, "  {k}");
                }
            }
        }
        s
    }
}

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(p: f64) -> DiffItem {
        DiffItem {
            key: DiffKey::Metric {
                world: "w".into(),
                metric: format!("{p}"),
            },
            a: 0.0,
            b: 0.0,
            se_a: 1.0,
            se_b: 1.0,
            z: 0.0,
            p,
            moved: false,
        }
    }

    #[test]
    fn holm_steps_down() {
        // m = 4, alpha = 0.05: thresholds 0.0125, 0.0167, 0.025, 0.05.
        let mut v = vec![item(0.04), item(0.001), item(0.016), item(0.03)];
        holm(&mut v, 0.05);
        let moved: Vec<bool> = v.iter().map(|i| i.moved).collect();
        // 0.001 ≤ 0.0125 yes; 0.016 ≤ 0.0167 yes; 0.03 ≤ 0.025 no → stop.
        assert_eq!(moved, vec![false, true, true, false]);
    }
}
