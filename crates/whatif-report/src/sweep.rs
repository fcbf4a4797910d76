//! The sweep document, version 1: a parameter grid's tidy results table
//! (metric × world × grid point, with standard errors), the checks at every
//! grid point, and the result of a reverse stress search.
//!
//! It is its own JSON document (`whatif run --sweep-out sweep.json`,
//! schema printed by `whatif schema sweep`) rather than a section of the
//! run report, so the report keeps one meaning (one run of the scenario as
//! written) and stays bit-identical to a merge of shards. The same rows are
//! written as CSV ([`to_csv`]) and drawn as line charts ([`line_charts`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::charts::{LineChartData, LineSeries};
use crate::report::{Manifest, Num};

/// Current sweep document schema version.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// Results of `whatif run` with `--sweep`/`[sweeps]` and/or
/// `--find-breaking`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Always [`SWEEP_SCHEMA_VERSION`].
    pub schema: u32,
    /// The audit trail of the runs behind every row: one seed, one sample
    /// count, one backend; `run.wall_seconds` covers all grid points.
    pub manifest: Manifest,
    /// The grid's dimensions, the first varying slowest; empty when only a
    /// reverse stress search ran.
    pub params: Vec<SweepParam>,
    /// One row per grid point × world × metric.
    pub metrics: Vec<SweepMetricRow>,
    /// One row per grid point × effect (paired, within the grid point).
    pub effects: Vec<SweepEffectRow>,
    /// One row per grid point × check.
    pub checks: Vec<SweepCheckRow>,
    /// The reverse stress search, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking: Option<BreakingSearch>,
}

/// One sweep dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepParam {
    pub name: String,
    pub lo: f64,
    pub hi: f64,
    /// Grid points, both ends included.
    pub points: u32,
    /// The parameter's value in the scenario as written.
    pub nominal: f64,
}

/// A metric's estimate in one world at one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepMetricRow {
    /// Grid point index (row-major, the first parameter varying slowest).
    pub point: u32,
    /// The swept parameters' values at this point.
    pub params: BTreeMap<String, f64>,
    pub world: String,
    pub metric: String,
    pub estimate: Num,
    pub std_error: Num,
}

/// A paired effect at one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepEffectRow {
    pub point: u32,
    pub params: BTreeMap<String, f64>,
    pub world: String,
    pub vs: String,
    pub metric: String,
    pub difference: Num,
    pub difference_std_error: Num,
}

/// A check's verdict at one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCheckRow {
    pub point: u32,
    pub params: BTreeMap<String, f64>,
    pub name: String,
    pub passed: bool,
    pub lhs: Num,
    pub rhs: Num,
    pub lhs_std_error: Num,
}

/// A reverse stress search: the smallest shock at which a check fails,
/// decided with a Monte Carlo margin of `k` standard errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakingSearch {
    pub param: String,
    /// The mild end of the search (where the checks should pass).
    pub from: f64,
    /// The severe end (where a check should fail); may be below `from`.
    pub to: f64,
    /// The checks searched: the shock breaks when any of them fails.
    pub checks: Vec<String>,
    /// A check counts as failing (passing) at a point only when its margin
    /// is beyond its threshold by at least `k` standard errors.
    pub k: f64,
    /// The search stops when the bracket is this narrow (in `param` units).
    pub tolerance: f64,
    pub samples: u64,
    /// `bracketed`, `passes_throughout` (no failure up to `to`),
    /// `fails_at_start` (already fails at `from`), or `undecided_at_end`
    /// (`from` or `to` is within `k` SE of the threshold: more samples
    /// needed).
    pub outcome: String,
    /// The most severe evaluated shock at which every check clearly passes.
    pub last_pass: Option<f64>,
    /// The mildest evaluated shock at which a check clearly fails.
    pub first_fail: Option<f64>,
    /// Evaluated shocks between them where a check is within `k` SE of its
    /// threshold: [mildest, most severe]; the Monte Carlo error cannot tell
    /// passing from failing there.
    pub undecided: Option<[f64; 2]>,
    /// Where the point estimates of the margin cross zero, by linear
    /// interpolation between evaluated shocks (common random numbers make
    /// the margin smooth in the shock).
    pub estimate: Option<f64>,
    /// Every evaluated shock, in evaluation order.
    pub evaluations: Vec<BreakingEval>,
}

/// One evaluated shock of a reverse stress search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakingEval {
    pub value: f64,
    /// `pass`, `fail` or `undecided`.
    pub verdict: String,
    pub checks: Vec<BreakingCheck>,
}

/// A check at one evaluated shock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakingCheck {
    pub name: String,
    pub lhs: Num,
    pub rhs: Num,
    pub lhs_std_error: Num,
    /// How far the check is from failing, in standard errors: positive when
    /// it fails (by the point estimate), negative when it passes.
    pub z: Num,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_num(x: Num) -> String {
    // `{}` on f64 prints the shortest text that parses back exactly.
    x.map(|v| format!("{v}")).unwrap_or_default()
}

/// The tidy metric table as CSV: `point,<param…>,world,metric,estimate,std_error`,
/// one line per grid point × world × metric; missing numbers are empty.
pub fn to_csv(r: &SweepReport) -> String {
    let mut s = String::from("point");
    for p in &r.params {
        s.push(',');
        s.push_str(&csv_field(&p.name));
    }
    s.push_str(",world,metric,estimate,std_error\n");
    for row in &r.metrics {
        s.push_str(&row.point.to_string());
        for p in &r.params {
            s.push(',');
            s.push_str(&csv_num(row.params.get(&p.name).copied()));
        }
        s.push_str(&format!(
            ",{},{},{},{}\n",
            csv_field(&row.world),
            csv_field(&row.metric),
            csv_num(row.estimate),
            csv_num(row.std_error)
        ));
    }
    s
}

/// One line chart per metric: the metric against the first swept
/// parameter, one line per world (and per value of any further swept
/// parameters), with standard-error bands.
pub fn line_charts(r: &SweepReport) -> Vec<LineChartData> {
    let Some(x_param) = r.params.first() else {
        return vec![];
    };
    let mut metric_order: Vec<&str> = vec![];
    for row in &r.metrics {
        if !metric_order.contains(&row.metric.as_str()) {
            metric_order.push(&row.metric);
        }
    }
    metric_order
        .into_iter()
        .map(|metric| {
            // (world, other params' values) → series, in first-seen order.
            let mut series: Vec<(String, String, LineSeries)> = vec![];
            for row in r.metrics.iter().filter(|row| row.metric == metric) {
                let others: Vec<String> = r.params[1..]
                    .iter()
                    .map(|p| {
                        format!(
                            "{}={}",
                            p.name,
                            row.params.get(&p.name).copied().unwrap_or(f64::NAN)
                        )
                    })
                    .collect();
                let key = others.join(", ");
                let idx = match series
                    .iter()
                    .position(|(w, k, _)| *w == row.world && *k == key)
                {
                    Some(i) => i,
                    None => {
                        let label = if key.is_empty() {
                            row.world.clone()
                        } else {
                            format!("{} ({key})", row.world)
                        };
                        series.push((
                            row.world.clone(),
                            key,
                            LineSeries {
                                label,
                                world: Some(row.world.clone()),
                                ..LineSeries::default()
                            },
                        ));
                        series.len() - 1
                    }
                };
                let s = &mut series[idx].2;
                s.x.push(row.params.get(&x_param.name).copied().unwrap_or(f64::NAN));
                s.y.push(row.estimate);
                s.std_error.push(row.std_error);
            }
            LineChartData {
                title: format!("{metric} vs {}", x_param.name),
                x_label: x_param.name.clone(),
                y_label: metric.to_string(),
                x_labels: None,
                series: series.into_iter().map(|(_, _, s)| s).collect(),
            }
        })
        .collect()
}

fn num() -> Value {
    json!({ "type": ["number", "null"] })
}

fn params_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "number" } })
}

/// The JSON Schema (draft 2020-12) of [`SweepReport`].
pub fn schema() -> Value {
    let manifest = crate::schema::report()["properties"]["manifest"].clone();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://whatif.invalid/schema/sweep-1.json",
        "title": "whatif sweep results",
        "type": "object",
        "additionalProperties": false,
        "required": ["schema", "manifest", "params", "metrics", "effects", "checks"],
        "properties": {
            "schema": { "const": 1 },
            "manifest": manifest,
            "params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "lo", "hi", "points", "nominal"],
                    "properties": {
                        "name": { "type": "string" },
                        "lo": { "type": "number" },
                        "hi": { "type": "number" },
                        "points": { "type": "integer", "minimum": 2 },
                        "nominal": { "type": "number" }
                    }
                }
            },
            "metrics": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["point", "params", "world", "metric", "estimate", "std_error"],
                    "properties": {
                        "point": { "type": "integer", "minimum": 0 },
                        "params": params_map(),
                        "world": { "type": "string" },
                        "metric": { "type": "string" },
                        "estimate": num(),
                        "std_error": num()
                    }
                }
            },
            "effects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["point", "params", "world", "vs", "metric", "difference", "difference_std_error"],
                    "properties": {
                        "point": { "type": "integer", "minimum": 0 },
                        "params": params_map(),
                        "world": { "type": "string" },
                        "vs": { "type": "string" },
                        "metric": { "type": "string" },
                        "difference": num(),
                        "difference_std_error": num()
                    }
                }
            },
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["point", "params", "name", "passed", "lhs", "rhs", "lhs_std_error"],
                    "properties": {
                        "point": { "type": "integer", "minimum": 0 },
                        "params": params_map(),
                        "name": { "type": "string" },
                        "passed": { "type": "boolean" },
                        "lhs": num(),
                        "rhs": num(),
                        "lhs_std_error": num()
                    }
                }
            },
            "breaking": breaking_schema()
        }
    })
}

/// The schema of [`BreakingSearch`] (a function of its own: one `json!` of
/// the whole document exceeds the macro recursion limit).
fn breaking_schema() -> Value {
    let check = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "lhs", "rhs", "lhs_std_error", "z"],
        "properties": {
            "name": { "type": "string" },
            "lhs": num(),
            "rhs": num(),
            "lhs_std_error": num(),
            "z": num()
        }
    });
    let evaluation = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["value", "verdict", "checks"],
        "properties": {
            "value": { "type": "number" },
            "verdict": { "enum": ["pass", "fail", "undecided"] },
            "checks": { "type": "array", "items": check }
        }
    });
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["param", "from", "to", "checks", "k", "tolerance", "samples", "outcome",
                     "last_pass", "first_fail", "undecided", "estimate", "evaluations"],
        "properties": {
            "param": { "type": "string" },
            "from": { "type": "number" },
            "to": { "type": "number" },
            "checks": { "type": "array", "items": { "type": "string" } },
            "k": { "type": "number", "minimum": 0 },
            "tolerance": { "type": "number", "exclusiveMinimum": 0 },
            "samples": { "type": "integer", "minimum": 1 },
            "outcome": { "enum": ["bracketed", "passes_throughout", "fails_at_start", "undecided_at_end"] },
            "last_pass": num(),
            "first_fail": num(),
            "undecided": {
                "type": ["array", "null"],
                "items": { "type": "number" },
                "minItems": 2,
                "maxItems": 2
            },
            "estimate": num(),
            "evaluations": { "type": "array", "items": evaluation }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(point: u32, a: f64, b: f64, world: &str, estimate: f64) -> SweepMetricRow {
        SweepMetricRow {
            point,
            params: [("a".to_string(), a), ("b".to_string(), b)]
                .into_iter()
                .collect(),
            world: world.into(),
            metric: "m,1".into(),
            estimate: Some(estimate),
            std_error: None,
        }
    }

    fn doc() -> SweepReport {
        let param = |name: &str| SweepParam {
            name: name.into(),
            lo: 0.0,
            hi: 1.0,
            points: 2,
            nominal: 0.5,
        };
        let manifest: Manifest = serde_json::from_value(json!({
            "engine_version": "0", "git_commit": null, "scenario_name": "s",
            "scenario_sha256": "0", "fit_lock_sha256": null, "data_sha256": null,
            "seed": 1, "samples": 10, "backend": "cpu", "device": "d", "kernel": "k",
            "block_size": 10,
            "run": { "threads": 1, "start_time": "", "wall_seconds": 0.0, "host": "" }
        }))
        .expect("manifest");
        SweepReport {
            schema: SWEEP_SCHEMA_VERSION,
            manifest,
            params: vec![param("a"), param("b")],
            metrics: vec![
                row(0, 0.0, 0.0, "baseline", 1.0),
                row(1, 0.0, 1.0, "baseline", 2.0),
                row(2, 1.0, 0.0, "baseline", 3.0),
                row(3, 1.0, 1.0, "baseline", 4.5),
            ],
            effects: vec![],
            checks: vec![],
            breaking: None,
        }
    }

    #[test]
    fn csv_has_one_column_per_param_and_quotes_fields() {
        let csv = to_csv(&doc());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "point,a,b,world,metric,estimate,std_error");
        assert_eq!(lines[1], "0,0,0,baseline,\"m,1\",1,");
        assert_eq!(lines[4], "3,1,1,baseline,\"m,1\",4.5,");
    }

    #[test]
    fn charts_put_the_first_param_on_x_and_split_lines_by_the_others() {
        let charts = line_charts(&doc());
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!(c.x_label, "a");
        assert_eq!(c.series.len(), 2, "one line per value of b");
        assert_eq!(c.series[0].label, "baseline (b=0)");
        assert_eq!(c.series[0].x, vec![0.0, 1.0]);
        assert_eq!(c.series[0].y, vec![Some(1.0), Some(3.0)]);
        assert_eq!(c.series[1].y, vec![Some(2.0), Some(4.5)]);
    }
}
