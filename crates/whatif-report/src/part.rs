//! JSON Schemas of the files of a sharded run: the *part* a shard writes
//! (`whatif run --shard i/n --out part.json`) and the *plan* of its
//! tail-resolving second phase (`whatif merge --plan-out plan.json`). The
//! serde types live with the engine (`whatif::engine::shard`); a test
//! validates real parts and plans against these schemas.

use serde_json::{Value, json};

/// An f64 carried exactly: a JSON number, or `"nan"`, `"inf"`, `"-inf"`.
fn exact() -> Value {
    json!({ "oneOf": [ { "type": "number" }, { "enum": ["nan", "inf", "-inf"] } ] })
}

fn sha() -> Value {
    json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" })
}

fn uint() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

/// Everything that defines the numbers (hashed into `program_sha256`).
fn identity() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["engine_version", "scenario_name", "scenario_sha256", "fit_lock_sha256", "data_sha256",
                     "seed", "samples", "worlds", "backend", "kernel", "block_size", "n_blocks"],
        "properties": {
            "engine_version": { "type": "string" },
            "scenario_name": { "type": "string" },
            "scenario_sha256": sha(),
            "fit_lock_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
            "data_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
            "seed": uint(),
            "samples": { "type": "integer", "minimum": 1 },
            "worlds": { "type": "array", "items": { "type": "string" } },
            "backend": { "type": "string" },
            "kernel": { "type": "string" },
            "block_size": { "type": "integer", "minimum": 1 },
            "n_blocks": { "type": "integer", "minimum": 1 },
            "units_sha256": sha()
        }
    })
}

/// Facts that may differ between identical runs.
fn run_info() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["threads", "start_time", "wall_seconds", "host"],
        "properties": {
            "threads": uint(),
            "start_time": { "type": "string" },
            "wall_seconds": { "type": "number", "minimum": 0 },
            "host": { "type": "string" },
            "unit_evaluations_per_second": { "type": "number", "minimum": 0 }
        }
    })
}

/// Phase 1: per-block statistics, in block order.
fn block_stats() -> Value {
    json!({
        "description": "One record per block, in block order; per slot: moments [n, mean, m2, m3, m4, min, max], co-moments [n, mean_x, mean_y, m2_x, m2_y, c_xy], tail [block value], guardrail [violations].",
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["n", "stats"],
            "properties": {
                "n": uint(),
                "stats": { "type": "array", "items": { "type": "array", "items": exact(), "minItems": 1, "maxItems": 7 } }
            }
        }
    })
}

/// Phase 1: per tail slot, the shard's radix histogram.
fn histograms() -> Value {
    json!({
        "description": "Per tail slot: non-empty buckets of the top 16 bits of the order-preserving key, as [bucket, count, sum of low 16 bits, sum of their squares] (sums as decimal strings).",
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["slot", "zeros", "buckets"],
            "properties": {
                "slot": uint(),
                "zeros": { "type": "array", "items": uint(), "minItems": 2, "maxItems": 2 },
                "buckets": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "prefixItems": [
                            { "type": "integer", "minimum": 0, "maximum": 65535 },
                            { "type": "integer", "minimum": 1 },
                            { "type": "string", "pattern": "^[0-9]+$" },
                            { "type": "string", "pattern": "^[0-9]+$" }
                        ],
                        "minItems": 4,
                        "maxItems": 4
                    }
                }
            }
        }
    })
}

/// Phase 2: per planned slot, the key counts.
fn key_counts() -> Value {
    json!({
        "description": "Phase 2, per planned slot: [key, count] of every key inside the planned buckets.",
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["slot", "keys"],
            "properties": {
                "slot": uint(),
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "prefixItems": [
                            { "type": "integer", "minimum": 0, "maximum": 4294967295u64 },
                            { "type": "integer", "minimum": 1 }
                        ],
                        "minItems": 2,
                        "maxItems": 2
                    }
                }
            }
        }
    })
}

/// The schema of a shard's part.
pub fn part_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://whatif.invalid/schema/part-1.json",
        "title": "whatif shard part",
        "description": "Phase 1: per-block statistics, fault counts and per-tail radix histograms of shard `shard` of `shards`. Phase 2: key counts inside the buckets of a resolve plan.",
        "type": "object",
        "additionalProperties": false,
        "required": ["format", "version", "phase", "shard", "shards", "blocks", "program_sha256",
                     "program_sha256_any_kernel", "identity", "device", "scenario", "run"],
        "properties": {
            "format": { "const": "whatif-part" },
            "version": { "const": 1 },
            "phase": { "enum": [1, 2] },
            "shard": uint(),
            "shards": { "type": "integer", "minimum": 1 },
            "blocks": { "type": "array", "items": uint(), "minItems": 2, "maxItems": 2 },
            "program_sha256": sha(),
            "program_sha256_any_kernel": sha(),
            "identity": identity(),
            "device": { "type": "string" },
            "scenario": { "type": "string" },
            "units": {
                "description": "Unit count and covariate names of a model with [units] (the values are in identity.units_sha256).",
                "type": "object",
                "additionalProperties": false,
                "required": ["count", "covariates"],
                "properties": {
                    "count": { "type": "integer", "minimum": 1 },
                    "covariates": { "type": "array", "items": { "type": "string" } }
                }
            },
            "periods": {
                "description": "The period count of a model whose [periods] count came from its data's period column (the merge does not read the data).",
                "type": "integer",
                "minimum": 1
            },
            "params": {
                "description": "Every parameter's value as the shard ran it: [name, value].",
                "type": "array",
                "items": { "type": "array", "prefixItems": [{ "type": "string" }, exact()], "minItems": 2, "maxItems": 2 }
            },
            "run": run_info(),
            "block_stats": block_stats(),
            "faults": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["lanes", "first_sample"],
                    "properties": { "lanes": uint(), "first_sample": uint() }
                }
            },
            "histograms": histograms(),
            "plan_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
            "key_counts": key_counts()
        }
    })
}

/// The schema of a phase-2 resolve plan.
pub fn plan_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://whatif.invalid/schema/plan-1.json",
        "title": "whatif resolve plan",
        "description": "The radix buckets each tail metric's phase 2 resolves, from the merged phase-1 histograms.",
        "type": "object",
        "additionalProperties": false,
        "required": ["format", "version", "program_sha256_any_kernel", "plan_sha256", "tails"],
        "properties": {
            "format": { "const": "whatif-plan" },
            "version": { "const": 1 },
            "program_sha256_any_kernel": sha(),
            "plan_sha256": sha(),
            "tails": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["slot", "q", "buckets"],
                    "properties": {
                        "slot": uint(),
                        "q": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                        "buckets": {
                            "type": "array",
                            "items": { "type": "integer", "minimum": 0, "maximum": 65535 },
                            "minItems": 1,
                            "maxItems": 3
                        }
                    }
                }
            }
        }
    })
}
