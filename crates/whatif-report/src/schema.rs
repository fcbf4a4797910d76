//! JSON Schemas (draft 2020-12) of the outputs, printed by `whatif schema`.
//! A test validates real reports against them, so they cannot drift from
//! the serde types in [`crate::report`].

use serde_json::{Value, json};

fn num() -> Value {
    json!({ "type": ["number", "null"] })
}

/// The schema of `manifest.target_se` (a target-precision run).
fn target_se() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["max_samples", "reached", "targets"],
        "properties": {
            "max_samples": { "type": "integer", "minimum": 1 },
            "reached": { "type": "boolean" },
            "targets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["target", "value", "std_error"],
                    "properties": {
                        "target": { "type": "string" },
                        "value": { "type": "number", "exclusiveMinimum": 0 },
                        "std_error": num()
                    }
                }
            }
        }
    })
}

/// The schema of [`crate::report::Report`].
pub fn report() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://whatif.invalid/schema/report-1.json",
        "title": "whatif run report",
        "type": "object",
        "additionalProperties": false,
        "required": ["schema", "manifest", "worlds", "effects", "checks", "guardrails", "numeric_faults", "warnings"],
        "properties": {
            "schema": { "const": 1 },
            "manifest": {
                "type": "object",
                "additionalProperties": false,
                "required": ["engine_version", "git_commit", "scenario_name", "scenario_sha256", "fit_lock_sha256", "data_sha256", "seed", "samples",
                             "backend", "device", "kernel", "block_size", "run"],
                "properties": {
                    "engine_version": { "type": "string" },
                    "git_commit": { "type": ["string", "null"] },
                    "scenario_name": { "type": "string" },
                    "scenario_sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                    "fit_lock_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
                    "data_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
                    "seed": { "type": "integer", "minimum": 0 },
                    "samples": { "type": "integer", "minimum": 1 },
                    "backend": { "type": "string" },
                    "device": { "type": "string" },
                    "kernel": { "type": "string" },
                    "block_size": { "type": "integer", "minimum": 1 },
                    "target_se": target_se(),
                    "structure": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["units", "periods", "unit_evaluations_per_world", "units_sha256"],
                        "properties": {
                            "units_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
                            "units": { "type": "integer", "minimum": 1 },
                            "periods": { "type": "integer", "minimum": 1 },
                            "unit_evaluations_per_world": { "type": "integer", "minimum": 1 }
                        }
                    },
                    "run": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["threads", "start_time", "wall_seconds", "host"],
                        "properties": {
                            "threads": { "type": "integer", "minimum": 0 },
                            "start_time": { "type": "string" },
                            "wall_seconds": { "type": "number", "minimum": 0 },
                            "host": { "type": "string" },
                            "unit_evaluations_per_second": { "type": "number", "minimum": 0 }
                        }
                    }
                }
            },
            "worlds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "metrics"],
                    "properties": {
                        "name": { "type": "string" },
                        "metrics": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["name", "estimate", "std_error", "ci95", "se_method"],
                                "properties": {
                                    "name": { "type": "string" },
                                    "estimate": num(),
                                    "std_error": num(),
                                    "ci95": { "type": "array", "items": num(), "minItems": 2, "maxItems": 2 },
                                    "n_exceedances": { "type": "integer", "minimum": 0 },
                                    "se_method": { "enum": ["closed_form", "batch_means", "delta", "order_statistics", "wilson"] }
                                }
                            }
                        }
                    }
                }
            },
            "effects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["world", "vs", "metric", "difference", "difference_std_error", "ratio", "ratio_std_error"],
                    "properties": {
                        "world": { "type": "string" },
                        "vs": { "type": "string" },
                        "metric": { "type": "string" },
                        "difference": num(),
                        "difference_std_error": num(),
                        "ratio": num(),
                        "ratio_std_error": num()
                    }
                }
            },
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "expect", "passed", "lhs", "rhs", "lhs_std_error"],
                    "properties": {
                        "name": { "type": "string" },
                        "expect": { "type": "string" },
                        "passed": { "type": "boolean" },
                        "lhs": num(),
                        "rhs": num(),
                        "lhs_std_error": num()
                    }
                }
            },
            "guardrails": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "world", "min", "max", "violations", "share", "share_upper95", "max_share", "passed"],
                    "properties": {
                        "node": { "type": "string" },
                        "world": { "type": "string" },
                        "min": num(),
                        "max": num(),
                        "violations": { "type": "integer", "minimum": 0 },
                        "share": num(),
                        "share_upper95": num(),
                        "max_share": { "type": "number", "minimum": 0, "maximum": 1 },
                        "passed": { "type": "boolean" }
                    }
                }
            },
            "numeric_faults": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "worlds", "lanes", "first_sample"],
                    "properties": {
                        "node": { "type": "string" },
                        "worlds": { "type": "array", "items": { "type": "string" } },
                        "lanes": { "type": "integer", "minimum": 1 },
                        "first_sample": { "type": "integer", "minimum": 0 }
                    }
                }
            },
            "warnings": { "type": "array", "items": { "type": "string" } }
        }
    })
}

/// Names accepted by `whatif schema NAME`.
pub const NAMES: &[&str] = &["report", "sweep", "part", "plan", "backtest"];

/// The schema called `name`, if any.
pub fn by_name(name: &str) -> Option<Value> {
    match name {
        "report" => Some(report()),
        "sweep" => Some(crate::sweep::schema()),
        "part" => Some(crate::part::part_schema()),
        "plan" => Some(crate::part::plan_schema()),
        "backtest" => Some(crate::backtest::schema()),
        _ => None,
    }
}
