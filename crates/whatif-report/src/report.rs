//! The JSON report of `whatif run`, version 1.
//!
//! Field names are part of the public contract (CI pipelines read them);
//! the JSON Schema in [`crate::schema`] describes exactly these types and a
//! test validates real reports against it. Everything that may differ
//! between two runs of the same scenario, seed and backend lives under
//! `manifest.run`; everything else is bit-identical.
//!
//! Non-finite numbers are written as `null` (JSON has no NaN), and the run
//! lists the node that produced them under `numeric_faults`.

use serde::{Deserialize, Serialize};

/// Current report schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// A finite number, or `null` in JSON.
pub type Num = Option<f64>;

/// Map a float to [`Num`]: non-finite becomes `None`.
pub fn num(x: f64) -> Num {
    x.is_finite().then_some(x)
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    pub manifest: Manifest,
    /// Worlds in evaluation order (baseline first).
    pub worlds: Vec<WorldReport>,
    pub effects: Vec<Effect>,
    pub checks: Vec<CheckResult>,
    pub guardrails: Vec<GuardrailResult>,
    pub numeric_faults: Vec<NumericFault>,
    /// Human-readable warnings (e.g. a tail metric resting on few exceedances).
    pub warnings: Vec<String>,
}

/// The audit trail: what produced these numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub engine_version: String,
    /// Commit the engine was built from, when built from a git checkout.
    pub git_commit: Option<String>,
    pub scenario_name: String,
    /// SHA-256 of the scenario file's bytes, hex.
    pub scenario_sha256: String,
    /// SHA-256 of the fit lock the run used (null: none; fitting comes
    /// with the backtest issue).
    pub fit_lock_sha256: Option<String>,
    /// SHA-256 of the observed data the run read (null: none).
    pub data_sha256: Option<String>,
    pub seed: u64,
    pub samples: u64,
    /// `cpu`, `wgpu`, …
    pub backend: String,
    /// Human-readable device (CPU model or GPU adapter).
    pub device: String,
    /// Kernel variant (CPU instruction set, e.g. `avx512-fma`).
    pub kernel: String,
    /// Reduction block size (samples); fixed by `samples`.
    pub block_size: u64,
    /// What may differ between identical runs.
    pub run: RunInfo,
    /// Present when the run was stopped at a target precision
    /// (`--target-se`); `samples` is then the number of samples reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_se: Option<TargetSe>,
    /// Present for a structured model (`[units]` and/or `[periods]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure: Option<StructureInfo>,
}

/// The dimensions of a structured model's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureInfo {
    /// Units per sample (1 without `[units]`).
    pub units: u64,
    /// Periods per sample (1 without `[periods]`).
    pub periods: u64,
    /// samples × units × periods: unit evaluations of each world.
    pub unit_evaluations_per_world: u64,
    /// SHA-256 of the unit table (count, covariate names, values); null
    /// without `[units]`.
    pub units_sha256: Option<String>,
}

/// How a target-precision run (`--target-se`) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSe {
    /// The sample cap (`--max-samples`, else the scenario's samples).
    pub max_samples: u64,
    /// Whether every target was met (else the cap stopped the run).
    pub reached: bool,
    pub targets: Vec<TargetSeResult>,
}

/// One `--target-se` and the standard error the report reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSeResult {
    /// As written: `METRIC[WORLD]=SE` or `effect(METRIC, WORLD)=SE`.
    pub target: String,
    pub value: f64,
    pub std_error: Num,
}

/// Per-run facts that legitimately vary between identical runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub threads: u64,
    /// RFC 3339 UTC.
    pub start_time: String,
    pub wall_seconds: f64,
    pub host: String,
    /// Structured models: unit evaluations per second of wall time, per
    /// world (`unit_evaluations_per_world / wall_seconds`; worlds run side
    /// by side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_evaluations_per_second: Option<f64>,
}

/// One world's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldReport {
    pub name: String,
    /// Metrics in scenario order.
    pub metrics: Vec<MetricResult>,
}

/// A metric's estimate with its Monte Carlo error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    pub estimate: Num,
    pub std_error: Num,
    pub ci95: [Num; 2],
    /// Samples strictly above the value at risk (tail metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_exceedances: Option<u64>,
    /// How the standard error was obtained (`closed_form`, `batch_means`,
    /// `delta`, `order_statistics`, `wilson`).
    pub se_method: String,
}

/// A paired comparison of one metric between two worlds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub world: String,
    pub vs: String,
    pub metric: String,
    /// metric[world] − metric[vs]
    pub difference: Num,
    pub difference_std_error: Num,
    /// metric[world] / metric[vs]
    pub ratio: Num,
    pub ratio_std_error: Num,
}

/// A check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub expect: String,
    pub passed: bool,
    /// Left and right side of the top-level comparison (null otherwise).
    pub lhs: Num,
    pub rhs: Num,
    pub lhs_std_error: Num,
}

/// A guardrail's verdict in one world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailResult {
    pub node: String,
    pub world: String,
    pub min: Num,
    pub max: Num,
    pub violations: u64,
    pub share: Num,
    /// One-sided 95% Clopper–Pearson upper bound of the violating share.
    pub share_upper95: Num,
    pub max_share: f64,
    pub passed: bool,
}

/// A node that produced NaN or ±∞ in some lanes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericFault {
    pub node: String,
    pub worlds: Vec<String>,
    pub lanes: u64,
    /// Smallest affected sample index (replay it with the same seed).
    pub first_sample: u64,
}

impl Manifest {
    /// The manifest as (field, text) rows, in one fixed order, for the
    /// human-readable renderers (HTML, Markdown, JUnit properties).
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_string());
        let mut rows = vec![
            ("engine_version", self.engine_version.clone()),
            ("git_commit", or(&self.git_commit, "—")),
            ("scenario_name", self.scenario_name.clone()),
            ("scenario_sha256", self.scenario_sha256.clone()),
            ("fit_lock_sha256", or(&self.fit_lock_sha256, "none")),
            ("data_sha256", or(&self.data_sha256, "none")),
            ("seed", self.seed.to_string()),
            ("samples", self.samples.to_string()),
            ("block_size", self.block_size.to_string()),
            ("backend", self.backend.clone()),
            ("device", self.device.clone()),
            ("kernel", self.kernel.clone()),
            ("run.threads", self.run.threads.to_string()),
            ("run.start_time", self.run.start_time.clone()),
            ("run.wall_seconds", format!("{:.3}", self.run.wall_seconds)),
            ("run.host", self.run.host.clone()),
        ];
        if let Some(s) = &self.structure {
            rows.push(("units", s.units.to_string()));
            rows.push(("periods", s.periods.to_string()));
            rows.push((
                "unit_evaluations_per_world",
                s.unit_evaluations_per_world.to_string(),
            ));
            rows.push((
                "units_sha256",
                s.units_sha256.clone().unwrap_or_else(|| "none".into()),
            ));
        }
        if let Some(r) = self.run.unit_evaluations_per_second {
            rows.push(("run.unit_evaluations_per_second", format!("{r:.4e}")));
        }
        rows
    }
}

impl Report {
    /// Whether every check and guardrail passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.guardrails.iter().all(|g| g.passed)
    }

    /// The report with `manifest.run` blanked: what must be bit-identical
    /// between identical runs.
    pub fn without_run_info(&self) -> Report {
        let mut r = self.clone();
        r.manifest.run = RunInfo {
            threads: 0,
            start_time: String::new(),
            wall_seconds: 0.0,
            host: String::new(),
            unit_evaluations_per_second: None,
        };
        r
    }
}
