//! The command-line side of sharded runs (`whatif run --shard`, `whatif
//! merge`): reading and writing parts and plans, messages and exit codes.
//! The logic lives in `whatif::engine::shard`.

use std::path::{Path, PathBuf};
use whatif::engine::shard::{self, MergeOutcome, NamedPart, Part, Plan, ShardSpec};
use whatif::engine::{RunOptions, ScenarioInfo};
use whatif::output;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{}:{}:{}: not a whatif {what}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), String> {
    let json = serde_json::to_string(v).expect("parts and plans serialise");
    output::write_atomic(path, json.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `whatif run --shard i/n [--resolve plan.json] --out part.json`.
#[allow(clippy::too_many_arguments)]
pub fn run_shard(
    model: &whatif_lang::CausalModel,
    source: &str,
    info: &ScenarioInfo,
    provenance: &shard::Provenance,
    opts: &RunOptions,
    spec: ShardSpec,
    resolve: Option<&Path>,
    out: Option<&Path>,
    bar: &output::Progress,
) -> u8 {
    let Some(out) = out else {
        eprintln!("error: --shard needs --out PART.json (the part `whatif merge` reads)");
        return 2;
    };
    let plan: Option<Plan> = match resolve.map(|p| read_json(p, "plan")) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let part = shard::run_shard(
        model,
        source,
        info,
        provenance,
        opts,
        spec,
        plan.as_ref(),
        &mut |d, t| bar.update(d, t),
    );
    bar.finish();
    let part = match part {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(e) = write_json(out, &part) {
        eprintln!("error: {e}");
        return 2;
    }
    eprintln!(
        "wrote phase-{} part of shard {}/{} (blocks {}..{}) to {}",
        part.phase,
        part.shard,
        part.shards,
        part.blocks[0],
        part.blocks[1],
        out.display()
    );
    0
}

/// `whatif merge PARTS… [--out report.json] [--plan-out plan.json]`:
/// returns the report to print, or an exit code.
pub fn merge(
    paths: &[PathBuf],
    plan_out: Option<&Path>,
    allow_mixed_kernels: bool,
) -> Result<whatif_report::Report, u8> {
    let mut parts = vec![];
    for p in paths {
        match read_json::<Part>(p, "part") {
            Ok(part) => parts.push(NamedPart {
                name: p.display().to_string(),
                part,
            }),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(2);
            }
        }
    }
    match shard::merge(&parts, allow_mixed_kernels) {
        Ok(MergeOutcome::Report(r)) => Ok(*r),
        Ok(MergeOutcome::Plan(plan)) => {
            let Some(path) = plan_out else {
                eprintln!(
                    "error: these phase-1 parts need a second phase for exact tail metrics: pass --plan-out PLAN.json, run every shard again with --resolve PLAN.json, then merge all parts"
                );
                return Err(2);
            };
            if let Err(e) = write_json(path, &plan) {
                eprintln!("error: {e}");
                return Err(2);
            }
            eprintln!(
                "wrote the phase-2 plan to {}: run `whatif run … --shard i/n --resolve {} --out PART2.json` for every shard, then merge all phase-1 and phase-2 parts",
                path.display(),
                path.display()
            );
            Err(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(2)
        }
    }
}
