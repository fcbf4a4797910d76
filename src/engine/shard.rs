//! Sharded runs: `whatif run --shard i/n` runs a disjoint, block-aligned
//! slice of the reduction blocks and writes a *part*; `whatif merge` merges
//! parts in block order — the same sequential merge a single run does — into
//! a report bit-identical to the single run's outside `manifest.run`.
//!
//! Exact tails take two phases (the two passes of `engine::tails`, each an
//! array job of a scheduler):
//!
//! 1. every shard runs pass 1 and its part carries, per block, the block
//!    statistics, and per tail metric the shard's radix histogram;
//! 2. `whatif merge` of phase-1 parts that need tails merges the
//!    histograms and writes a resolve [`Plan`] (the buckets to resolve)
//!    instead of a report;
//! 3. every shard runs pass 2 over the same blocks (`--resolve plan.json`)
//!    and its phase-2 part carries the key counts inside the planned buckets;
//! 4. `whatif merge` of all parts gives the report.
//!
//! Histogram and key-count merges are integer sums (order-free); block
//! statistics merge in block order. Parts carry the scenario source, so the
//! merge rebuilds the same model; a hash over everything that defines the
//! numbers (scenario bytes, overrides, fit lock and data hashes, seed,
//! samples, engine version, backend, CPU kernel variant) guards against
//! merging parts of different programs. Parts of one run on machines with
//! different vector units differ only in the kernel variant:
//! `--allow-mixed-kernels` accepts them, and then the report equals a single
//! run's only within rounding.

use super::pipeline::{self, Accum, Compiled, RunFacts};
use super::reduce::{Fin, MergedStat, Reducer, SlotSpec};
use super::{RunError, RunOptions, ScenarioInfo, tails};
use crate::output::sha256_hex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use whatif_ir::exec::FaultCount;
use whatif_lang::CausalModel;
use whatif_report::{Report, RunInfo};
use whatif_stats::comoments::CoMomentsSummary;
use whatif_stats::moments::MomentsSummary;
use whatif_stats::radix::{BucketStat, KeyCounts, SparseHistogram, TailPlan};

/// `format` of a part file.
pub const PART_FORMAT: &str = "whatif-part";
/// `format` of a resolve plan file.
pub const PLAN_FORMAT: &str = "whatif-plan";
/// Version of the part and plan formats.
pub const FORMAT_VERSION: u32 = 1;

/// Errors of sharded runs and merges (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Run(#[from] RunError),
    /// Parts or plans that cannot be merged or used, with the reason.
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ShardError> {
    Err(ShardError::Invalid(msg.into()))
}

/// Where fitted parameters and data came from (the manifest's hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub fit_lock_sha256: Option<String>,
    pub data_sha256: Option<String>,
}

/// Shard `index` of `count` (`i/n` on the command line, 0 ≤ i < n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: write i/n with 0 ≤ i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

impl ShardSpec {
    /// The shard's blocks: the `index`-th of `count` contiguous, near-equal
    /// slices of `0..n_blocks` (empty when there are more shards than
    /// blocks).
    pub fn blocks(&self, n_blocks: u64) -> Range<u64> {
        let at = |i: u64| (u128::from(i) * u128::from(n_blocks) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }
}

/// Everything that defines the numbers of a run, hashed into
/// `program_sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub engine_version: String,
    pub scenario_name: String,
    pub scenario_sha256: String,
    pub fit_lock_sha256: Option<String>,
    pub data_sha256: Option<String>,
    pub seed: u64,
    pub samples: u64,
    /// `--world` selections, as given.
    pub worlds: Vec<String>,
    pub backend: String,
    /// CPU kernel variant or GPU path.
    pub kernel: String,
    pub block_size: u64,
    pub n_blocks: u64,
    /// Hash of the unit table (count, covariate names and values) of a
    /// model with `[units]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_sha256: Option<String>,
}

/// The shape of a model's units, as a part records it: the merge rebuilds
/// the model with these (values are checked through `units_sha256`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUnits {
    pub count: u32,
    pub covariates: Vec<String>,
}

/// SHA-256 of a unit table: count, names and every value's f64 bits.
pub fn units_sha256(u: &whatif_lang::Units) -> String {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&u.count.to_le_bytes());
    for (name, col) in u.covariates.iter().zip(&u.values) {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        for v in col {
            bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    sha256_hex(&bytes)
}

impl Identity {
    /// SHA-256 of the canonical JSON of the identity, with or without the
    /// kernel variant.
    pub fn hash(&self, with_kernel: bool) -> String {
        let mut v = serde_json::to_value(self).expect("identity serialises");
        if !with_kernel && let Some(o) = v.as_object_mut() {
            o.remove("kernel");
        }
        // serde_json maps keep keys sorted: a canonical form.
        sha256_hex(v.to_string().as_bytes())
    }

    /// The first field in which two identities differ, for error messages.
    fn first_difference(&self, o: &Identity) -> String {
        let (a, b) = (
            serde_json::to_value(self).expect("serialises"),
            serde_json::to_value(o).expect("serialises"),
        );
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            for (k, va) in a {
                if b.get(k) != Some(va) {
                    return format!(
                        "{k}: {va} vs {}",
                        b.get(k).unwrap_or(&serde_json::Value::Null)
                    );
                }
            }
        }
        "unknown field".into()
    }
}

/// An f64 that survives JSON exactly: finite numbers as numbers (serde_json
/// round-trips them bit for bit), non-finite ones as `"nan"`, `"inf"`,
/// `"-inf"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactF64(pub f64);

impl Serialize for ExactF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            s.serialize_f64(x)
        } else if x.is_nan() {
            s.serialize_str("nan")
        } else if x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl<'de> Deserialize<'de> for ExactF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ExactF64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or \"nan\", \"inf\", \"-inf\"")
            }
            fn visit_f64<E>(self, x: f64) -> Result<ExactF64, E> {
                Ok(ExactF64(x))
            }
            fn visit_u64<E>(self, x: u64) -> Result<ExactF64, E> {
                Ok(ExactF64(x as f64))
            }
            fn visit_i64<E>(self, x: i64) -> Result<ExactF64, E> {
                Ok(ExactF64(x as f64))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ExactF64, E> {
                match s {
                    "nan" => Ok(ExactF64(f64::NAN)),
                    "inf" => Ok(ExactF64(f64::INFINITY)),
                    "-inf" => Ok(ExactF64(f64::NEG_INFINITY)),
                    _ => Err(E::custom(format!("`{s}` is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One block's statistics: per slot, moments `[n, mean, m2, m3, m4, min,
/// max]`, co-moments `[n, mean_x, mean_y, m2_x, m2_y, c_xy]`, a tail's
/// per-block value `[value]`, a guardrail count `[violations]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub n: u64,
    pub stats: Vec<Vec<ExactF64>>,
}

/// Non-finite lanes of one probe over the shard's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub lanes: u64,
    pub first_sample: u64,
}

/// A tail slot's radix histogram over the shard: non-empty buckets as
/// `[bucket, count, "Σℓ", "Σℓ²"]` (the sums as decimal strings: they
/// outgrow JSON's exact integers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistRecord {
    pub slot: usize,
    /// Samples equal to −0.0 and +0.0.
    pub zeros: [u64; 2],
    pub buckets: Vec<(u16, u64, String, String)>,
}

/// A tail slot's pass-2 key counts over the shard, `[key, count]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub slot: usize,
    pub keys: Vec<(u32, u64)>,
}

/// A shard's output (`whatif schema part`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Always [`PART_FORMAT`].
    pub format: String,
    pub version: u32,
    /// 1: block statistics and histograms; 2: key counts of a plan.
    pub phase: u32,
    pub shard: u64,
    pub shards: u64,
    /// The block range `[first, end)` this shard ran.
    pub blocks: [u64; 2],
    /// Hash of `identity`.
    pub program_sha256: String,
    /// Hash of `identity` without the kernel variant.
    pub program_sha256_any_kernel: String,
    pub identity: Identity,
    pub device: String,
    /// The scenario file's text, from which the merge rebuilds the model.
    pub scenario: String,
    /// The model's units, when it has `[units]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<PartUnits>,
    /// The period count, when the scenario's `[periods]` takes it from the
    /// data (the merge does not read the data file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<u32>,
    /// Every parameter's value as the shard ran it (fitted parameters
    /// come from a fit lock the merge does not read): `[name, value]`.
    #[serde(default)]
    pub params: Vec<(String, ExactF64)>,
    pub run: RunInfo,
    /// Phase 1: one record per block, in block order.
    #[serde(default)]
    pub block_stats: Vec<BlockRecord>,
    /// Phase 1: one per probe.
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    /// Phase 1: one per tail slot.
    #[serde(default)]
    pub histograms: Vec<HistRecord>,
    /// Phase 2: hash of the plan resolved.
    #[serde(default)]
    pub plan_sha256: Option<String>,
    /// Phase 2: one per planned slot.
    #[serde(default)]
    pub key_counts: Vec<KeyRecord>,
}

/// One tail slot's buckets to resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTail {
    pub slot: usize,
    pub q: f64,
    pub buckets: Vec<u16>,
}

/// What phase 2 resolves (`whatif schema plan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Always [`PLAN_FORMAT`].
    pub format: String,
    pub version: u32,
    /// The program the plan belongs to (kernel variant aside).
    pub program_sha256_any_kernel: String,
    /// Hash of `tails` and the program hash: phase-2 parts quote it.
    pub plan_sha256: String,
    pub tails: Vec<PlanTail>,
}

impl Plan {
    fn new(program: &str, plans: &[(usize, TailPlan)]) -> Plan {
        let tails: Vec<PlanTail> = plans
            .iter()
            .map(|(slot, p)| PlanTail {
                slot: *slot,
                q: p.q,
                buckets: p.buckets.clone(),
            })
            .collect();
        let plan_sha256 = sha256_hex(
            format!(
                "{program}\n{}",
                serde_json::to_string(&tails).expect("plan serialises")
            )
            .as_bytes(),
        );
        Plan {
            format: PLAN_FORMAT.into(),
            version: FORMAT_VERSION,
            program_sha256_any_kernel: program.into(),
            plan_sha256,
            tails,
        }
    }

    fn tail_plans(&self) -> Vec<(usize, TailPlan)> {
        self.tails
            .iter()
            .map(|t| {
                (
                    t.slot,
                    TailPlan {
                        q: t.q,
                        buckets: t.buckets.clone(),
                    },
                )
            })
            .collect()
    }
}

/// Run shard `spec` of `model` (with `source`, the scenario text): phase 1,
/// or phase 2 when `resolve` holds a plan. `progress(done, total)` after
/// each block of the shard.
#[allow(clippy::too_many_arguments)]
pub fn run_shard(
    model: &CausalModel,
    source: &str,
    info: &ScenarioInfo,
    provenance: &Provenance,
    opts: &RunOptions,
    spec: ShardSpec,
    resolve: Option<&Plan>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Part, ShardError> {
    let started = std::time::Instant::now();
    let start_time = super::now_rfc3339();
    let c = Compiled::new(model, opts)?;
    let exec = c.executor(opts)?;
    let xi = exec.info();
    let identity = Identity {
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_name: model.name.clone(),
        scenario_sha256: info.sha256.clone(),
        fit_lock_sha256: provenance.fit_lock_sha256.clone(),
        data_sha256: provenance.data_sha256.clone(),
        seed: model.seed,
        samples: model.n_samples,
        worlds: opts.worlds.clone(),
        backend: xi.backend.clone(),
        kernel: xi.kernel.clone(),
        block_size: c.layout.block_size,
        n_blocks: c.layout.n_blocks(),
        units_sha256: model.units.as_ref().map(units_sha256),
    };
    let blocks = spec.blocks(c.layout.n_blocks());
    let (first, len) = (blocks.start, blocks.end - blocks.start);
    let mut part = Part {
        format: PART_FORMAT.into(),
        version: FORMAT_VERSION,
        phase: 1,
        shard: spec.index,
        shards: spec.count,
        blocks: [blocks.start, blocks.end],
        program_sha256: identity.hash(true),
        program_sha256_any_kernel: identity.hash(false),
        identity,
        device: xi.device.clone(),
        scenario: source.to_string(),
        units: model.units.as_ref().map(|u| PartUnits {
            count: u.count,
            covariates: u.covariates.clone(),
        }),
        periods: whatif_lang::periods_from_data(source).map(|_| model.periods),
        params: model
            .params
            .iter()
            .map(|p| (p.name.clone(), ExactF64(p.value)))
            .collect(),
        run: RunInfo {
            threads: xi.threads,
            start_time,
            wall_seconds: 0.0,
            host: super::hostname(),
            unit_evaluations_per_second: None,
        },
        block_stats: vec![],
        faults: vec![],
        histograms: vec![],
        plan_sha256: None,
        key_counts: vec![],
    };
    match resolve {
        None => {
            let mut acc = Accum::new(&c);
            let reducer = Reducer {
                slots: &c.slots,
                kinds: &c.kinds,
            };
            let mut records = Vec::with_capacity(len as usize);
            exec.run(c.layout, blocks, &reducer, |r| {
                let (n, fins, _) = r.partial;
                records.push(BlockRecord {
                    n,
                    stats: fins.iter().map(encode_fin).collect(),
                });
                acc.merged.push(n, fins);
                for (f, b) in acc.faults.iter_mut().zip(r.faults) {
                    f.merge(b);
                }
                progress(r.block + 1 - first, len);
            })?;
            part.block_stats = records;
            part.faults = acc
                .faults
                .iter()
                .map(|f| FaultRecord {
                    lanes: f.lanes,
                    first_sample: f.first_sample,
                })
                .collect();
            part.histograms = acc
                .merged
                .stats
                .iter()
                .enumerate()
                .filter_map(|(slot, s)| match s {
                    MergedStat::Tail(t) => Some(encode_hist(slot, &t.hist.to_sparse())),
                    _ => None,
                })
                .collect();
        }
        Some(plan) => {
            if plan.format != PLAN_FORMAT || plan.version != FORMAT_VERSION {
                return invalid(format!(
                    "not a whatif plan (format `{}` version {})",
                    plan.format, plan.version
                ));
            }
            if plan.program_sha256_any_kernel != part.program_sha256_any_kernel {
                return invalid(
                    "the plan was made for another program (scenario, overrides, seed, samples, engine or backend differ)",
                );
            }
            let plans = plan.tail_plans();
            for (slot, _) in &plans {
                if !matches!(c.slots.specs.get(*slot), Some(SlotSpec::Tail { .. })) {
                    return invalid(format!("the plan names slot {slot}, which is not a tail"));
                }
            }
            let counts = tails::pass2(&exec, c.layout, blocks, &c.slots, &plans, &mut |b| {
                progress(b + 1 - first, len)
            })?;
            part.phase = 2;
            part.plan_sha256 = Some(plan.plan_sha256.clone());
            part.key_counts = plans
                .iter()
                .zip(&counts)
                .map(|((slot, _), kc)| KeyRecord {
                    slot: *slot,
                    keys: kc.to_runs(),
                })
                .collect();
        }
    }
    part.run.wall_seconds = started.elapsed().as_secs_f64();
    Ok(part)
}

fn encode_fin(f: &Fin) -> Vec<ExactF64> {
    let v: Vec<f64> = match f {
        Fin::Moments(m) => vec![m.n as f64, m.mean, m.m2, m.m3, m.m4, m.min, m.max],
        Fin::Co(c) => vec![c.n as f64, c.mean_x, c.mean_y, c.m2_x, c.m2_y, c.c_xy],
        Fin::Tail { block_value, .. } => vec![*block_value],
        Fin::Guard(k) => vec![*k as f64],
    };
    v.into_iter().map(ExactF64).collect()
}

fn decode_fin(spec: &SlotSpec, v: &[ExactF64]) -> Option<Fin> {
    let x: Vec<f64> = v.iter().map(|e| e.0).collect();
    let count = |x: f64| (x >= 0.0 && x.fract() == 0.0).then_some(x as u64);
    Some(match (spec, x.as_slice()) {
        (SlotSpec::Moments { .. }, &[n, mean, m2, m3, m4, min, max]) => {
            Fin::Moments(MomentsSummary {
                n: count(n)?,
                mean,
                m2,
                m3,
                m4,
                min,
                max,
            })
        }
        (SlotSpec::Co { .. }, &[n, mean_x, mean_y, m2_x, m2_y, c_xy]) => {
            Fin::Co(CoMomentsSummary {
                n: count(n)?,
                mean_x,
                mean_y,
                m2_x,
                m2_y,
                c_xy,
            })
        }
        (SlotSpec::Tail { .. }, &[block_value]) => Fin::Tail {
            hist: None,
            block_value,
        },
        (SlotSpec::Guard { .. }, &[k]) => Fin::Guard(count(k)?),
        _ => return None,
    })
}

fn encode_hist(slot: usize, h: &SparseHistogram) -> HistRecord {
    HistRecord {
        slot,
        zeros: h.zeros,
        buckets: h
            .buckets
            .iter()
            .map(|(b, s)| (*b, s.count, s.sum_low.to_string(), s.sum_low_sq.to_string()))
            .collect(),
    }
}

fn decode_hist(r: &HistRecord) -> Option<SparseHistogram> {
    let mut buckets = Vec::with_capacity(r.buckets.len());
    for (b, count, sl, sl2) in &r.buckets {
        let s = BucketStat {
            count: *count,
            sum_low: sl.parse().ok()?,
            sum_low_sq: sl2.parse().ok()?,
        };
        buckets.push((*b, s));
    }
    Some(SparseHistogram {
        buckets,
        zeros: r.zeros,
    })
}

/// What a merge produced: the report, or (phase-1 parts of a run with tail
/// metrics) the plan of phase 2.
#[derive(Debug)]
pub enum MergeOutcome {
    Report(Box<Report>),
    Plan(Plan),
}

/// A part and where it came from (for messages).
#[derive(Debug)]
pub struct NamedPart {
    pub name: String,
    pub part: Part,
}

/// Check that one phase's parts form a complete set of shards and return
/// them ordered by shard index.
fn complete<'a>(phase: u32, parts: &[&'a NamedPart]) -> Result<Vec<&'a NamedPart>, ShardError> {
    let n = parts[0].part.shards;
    if let Some(p) = parts.iter().find(|p| p.part.shards != n) {
        return invalid(format!(
            "phase-{phase} parts disagree on the shard count: {} has n = {}, {} has n = {n}",
            p.name, p.part.shards, parts[0].name
        ));
    }
    let mut by_index: BTreeMap<u64, &NamedPart> = BTreeMap::new();
    for p in parts {
        if let Some(prev) = by_index.insert(p.part.shard, p) {
            return invalid(format!(
                "duplicate shard {}/{n} in phase {phase}: {} and {}",
                p.part.shard, prev.name, p.name
            ));
        }
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return invalid(format!(
            "missing phase-{phase} shard{} {} of {n}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ));
    }
    let n_blocks = parts[0].part.identity.n_blocks;
    for p in by_index.values() {
        let want = ShardSpec {
            index: p.part.shard,
            count: n,
        }
        .blocks(n_blocks);
        if p.part.blocks != [want.start, want.end] {
            return invalid(format!(
                "{}: blocks {:?} are not those of shard {}/{n} ({want:?})",
                p.name, p.part.blocks, p.part.shard
            ));
        }
        if phase == 1 && p.part.block_stats.len() as u64 != want.end - want.start {
            return invalid(format!(
                "{}: {} block records for {} blocks",
                p.name,
                p.part.block_stats.len(),
                want.end - want.start
            ));
        }
    }
    Ok(by_index.into_values().collect())
}

/// Merge parts into a report (or a phase-2 plan; see the module docs).
pub fn merge(parts: &[NamedPart], allow_mixed_kernels: bool) -> Result<MergeOutcome, ShardError> {
    let Some(first) = parts.first() else {
        return invalid("no parts to merge");
    };
    for p in parts {
        if p.part.format != PART_FORMAT || p.part.version != FORMAT_VERSION {
            return invalid(format!(
                "{}: not a whatif part (format `{}` version {}; `whatif schema part`)",
                p.name, p.part.format, p.part.version
            ));
        }
        if p.part.program_sha256_any_kernel != first.part.program_sha256_any_kernel
            || p.part.identity.hash(false) != p.part.program_sha256_any_kernel
            || p.part.identity.hash(true) != p.part.program_sha256
        {
            return invalid(format!(
                "{} and {} come from different programs ({})",
                first.name,
                p.name,
                first.part.identity.first_difference(&p.part.identity)
            ));
        }
    }
    let param_bits = |p: &Part| -> Vec<(String, u64)> {
        p.params
            .iter()
            .map(|(n, v)| (n.clone(), v.0.to_bits()))
            .collect()
    };
    if let Some(p) = parts
        .iter()
        .find(|p| param_bits(&p.part) != param_bits(&first.part))
    {
        return invalid(format!(
            "{} and {} ran with different parameter values (different fit locks?)",
            first.name, p.name
        ));
    }
    let mut kernels: Vec<&str> = parts
        .iter()
        .map(|p| p.part.identity.kernel.as_str())
        .collect();
    kernels.sort_unstable();
    kernels.dedup();
    if kernels.len() > 1 && !allow_mixed_kernels {
        return invalid(format!(
            "parts ran with different kernel variants ({}): their last bits may differ; pass --allow-mixed-kernels to merge them anyway (the report then equals a single run's only within rounding)",
            kernels.join(", ")
        ));
    }
    let phase1: Vec<&NamedPart> = parts.iter().filter(|p| p.part.phase == 1).collect();
    let phase2: Vec<&NamedPart> = parts.iter().filter(|p| p.part.phase == 2).collect();
    if let Some(p) = parts
        .iter()
        .find(|p| p.part.phase != 1 && p.part.phase != 2)
    {
        return invalid(format!("{}: unknown phase {}", p.name, p.part.phase));
    }
    if phase1.is_empty() {
        return invalid("no phase-1 parts: merge needs every shard's phase-1 part");
    }
    let phase1 = complete(1, &phase1)?;

    // Rebuild the model the parts ran.
    let id = &first.part.identity;
    let source = &first.part.scenario;
    if sha256_hex(source.as_bytes()) != id.scenario_sha256 {
        return invalid(format!(
            "{}: the embedded scenario does not match its scenario_sha256",
            first.name
        ));
    }
    // The unit table's values do not enter the merge (its statistics are
    // the parts'); a zero table of the recorded shape stands in for the
    // unit file, which the merging machine need not have.
    let units = first.part.units.as_ref().map(|u| whatif_lang::Units {
        count: u.count,
        path: None,
        covariates: u.covariates.clone(),
        values: vec![vec![0.0; u.count as usize]; u.covariates.len()],
        span: whatif_lang::Span::default(),
    });
    let mut model =
        whatif_lang::compile_full(source, None, units, first.part.periods).map_err(|_| {
            ShardError::Invalid(format!(
                "{}: the embedded scenario does not compile with this engine",
                first.name
            ))
        })?;
    model.n_samples = id.samples;
    model.seed = id.seed;
    // Parameter values as the shards ran them (fitted ones from their lock).
    for (name, v) in &first.part.params {
        match model.params.iter_mut().find(|p| &p.name == name) {
            Some(p) => p.value = v.0,
            None => {
                return invalid(format!(
                    "{}: parameter `{name}` is not in the embedded scenario",
                    first.name
                ));
            }
        }
    }
    let opts = RunOptions {
        worlds: id.worlds.clone(),
        ..RunOptions::default()
    };
    let c = Compiled::new(&model, &opts)?;
    if c.layout.n_blocks() != id.n_blocks || c.layout.block_size != id.block_size {
        return invalid("the parts' block layout differs from this engine's");
    }

    let mut acc = Accum::new(&c);
    let n_slots = c.slots.specs.len();
    let mut faults = vec![FaultCount::default(); c.program.probes.len()];
    for p in &phase1 {
        for (bi, rec) in p.part.block_stats.iter().enumerate() {
            if rec.stats.len() != n_slots {
                return invalid(format!(
                    "{}: block {bi} has {} statistics, expected {n_slots}",
                    p.name,
                    rec.stats.len()
                ));
            }
            let fins: Option<Vec<Fin>> = rec
                .stats
                .iter()
                .zip(&c.slots.specs)
                .map(|(v, spec)| decode_fin(spec, v))
                .collect();
            let Some(fins) = fins else {
                return invalid(format!("{}: block {bi} has malformed statistics", p.name));
            };
            acc.merged.push(rec.n, fins);
        }
        if p.part.faults.len() != faults.len() {
            return invalid(format!("{}: fault counts do not match the program", p.name));
        }
        for (f, r) in faults.iter_mut().zip(&p.part.faults) {
            f.merge(FaultCount {
                lanes: r.lanes,
                first_sample: r.first_sample,
            });
        }
        for h in &p.part.histograms {
            let (Some(MergedStat::Tail(t)), Some(sparse)) =
                (acc.merged.stats.get_mut(h.slot), decode_hist(h))
            else {
                return invalid(format!(
                    "{}: malformed histogram of slot {}",
                    p.name, h.slot
                ));
            };
            t.hist.merge_sparse(&sparse);
        }
    }
    let mut warnings = vec![];
    if kernels.len() > 1 {
        warnings.push(format!(
            "shards ran with different kernel variants ({}): the numbers equal a single run's only within rounding",
            kernels.join(", ")
        ));
    }

    if c.has_tails() {
        let plans = tails::plans(&acc.merged);
        let plan = Plan::new(&first.part.program_sha256_any_kernel, &plans);
        if phase2.is_empty() {
            return Ok(MergeOutcome::Plan(plan));
        }
        let phase2 = complete(2, &phase2)?;
        let mut counts: Vec<KeyCounts> = plans
            .iter()
            .map(|(_, p)| KeyCounts::new(p.clone()))
            .collect();
        for p in &phase2 {
            if p.part.plan_sha256.as_deref() != Some(plan.plan_sha256.as_str()) {
                return invalid(format!(
                    "{}: resolved another plan than the phase-1 parts give (rerun phase 2 with the plan of these parts)",
                    p.name
                ));
            }
            for r in &p.part.key_counts {
                match plans.iter().position(|(s, _)| *s == r.slot) {
                    Some(i) => counts[i].merge_runs(&r.keys),
                    None => {
                        return invalid(format!(
                            "{}: key counts for unplanned slot {}",
                            p.name, r.slot
                        ));
                    }
                }
            }
        }
        tails::install(&mut acc.merged, &plans, counts);
        for (slot, _) in &plans {
            if let MergedStat::Tail(t) = &acc.merged.stats[*slot]
                && t.estimate().is_none()
            {
                return invalid(format!(
                    "phase-2 key counts of slot {slot} do not match the phase-1 histograms"
                ));
            }
        }
    } else if let Some(p) = phase2.first() {
        return invalid(format!(
            "{}: a phase-2 part, but this run has no tail metrics",
            p.name
        ));
    }

    let info = ScenarioInfo {
        sha256: id.scenario_sha256.clone(),
    };
    let mut hosts: Vec<&str> = parts.iter().map(|p| p.part.run.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let start_time = parts
        .iter()
        .map(|p| p.part.run.start_time.clone())
        .min()
        .unwrap_or_default();
    let facts = RunFacts {
        exec: super::executor::ExecutorInfo {
            backend: id.backend.clone(),
            device: first.part.device.clone(),
            kernel: id.kernel.clone(),
            threads: first.part.run.threads,
        },
        samples: id.samples,
        start_time,
        // Compute time over all shards and phases.
        wall_seconds: parts.iter().map(|p| p.part.run.wall_seconds).sum(),
        host: hosts.join(","),
    };
    let mut report = pipeline::build_report(&model, &info, &c, &acc.merged, &faults, facts);
    // The merge's stand-in unit table is not the shards' (see above).
    if let Some(st) = report.manifest.structure.as_mut() {
        st.units_sha256.clone_from(&id.units_sha256);
    }
    report.manifest.fit_lock_sha256 = id.fit_lock_sha256.clone();
    report.manifest.data_sha256 = id.data_sha256.clone();
    report.warnings.extend(warnings);
    Ok(MergeOutcome::Report(Box::new(report)))
}
