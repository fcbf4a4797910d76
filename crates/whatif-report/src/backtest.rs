//! The JSON Schema of `whatif backtest --format json` (the serde types live
//! in `whatif-data::backtest`; a root test validates a real backtest report
//! against this schema, so the two cannot drift apart).

use serde_json::{Value, json};

fn num() -> Value {
    json!({ "type": "number" })
}

fn opt_num() -> Value {
    json!({ "type": ["number", "null"] })
}

fn comparison() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["node", "observed", "counterfactual", "difference", "counterfactual_lo",
                     "counterfactual_hi", "difference_lo", "difference_hi", "mc_se"],
        "properties": {
            "node": { "type": "string" },
            "observed": num(), "counterfactual": num(), "difference": num(),
            "counterfactual_lo": num(), "counterfactual_hi": num(),
            "difference_lo": num(), "difference_hi": num(),
            "mc_se": { "type": "number", "minimum": 0 }
        }
    })
}

fn period() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["period", "rows", "nodes"],
        "properties": {
            "period": { "type": "string" },
            "rows": { "type": "integer", "minimum": 0 },
            "nodes": { "type": "array", "items": comparison() }
        }
    })
}

/// The schema of a backtest report (schema version 1).
pub fn schema() -> Value {
    let sha = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://whatif.invalid/schema/backtest-1.json",
        "title": "whatif backtest report",
        "type": "object",
        "additionalProperties": false,
        "required": ["schema", "manifest", "policy", "interval_level", "nodes", "abduction", "periods",
                     "overall", "metrics", "checks", "guardrails", "noise", "holdout", "warnings"],
        "properties": {
            "schema": { "const": 1 },
            "manifest": {
                "type": "object",
                "additionalProperties": false,
                "required": ["engine_version", "scenario_name", "scenario_sha256", "data_path", "data_sha256",
                             "fit_lock_sha256", "rows", "seed", "draws", "backend", "start_time", "wall_seconds"],
                "properties": {
                    "engine_version": { "type": "string" },
                    "scenario_name": { "type": "string" },
                    "scenario_sha256": sha,
                    "data_path": { "type": "string" },
                    "data_sha256": sha,
                    "fit_lock_sha256": { "type": ["string", "null"], "pattern": "^[0-9a-f]{64}$" },
                    "rows": { "type": "integer", "minimum": 1 },
                    "seed": { "type": "integer", "minimum": 0 },
                    "draws": { "type": "integer", "minimum": 1 },
                    "backend": { "type": "string" },
                    "start_time": { "type": "string" },
                    "wall_seconds": { "type": "number", "minimum": 0 }
                }
            },
            "policy": { "type": "string" },
            "interval_level": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
            "nodes": { "type": "array", "items": { "type": "string" } },
            "abduction": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "noise", "point_rows", "interval_rows"],
                    "properties": {
                        "node": { "type": "string" },
                        "noise": { "type": "string" },
                        "point_rows": { "type": "integer", "minimum": 0 },
                        "interval_rows": { "type": "integer", "minimum": 0 }
                    }
                }
            },
            "periods": { "type": "array", "items": period() },
            "overall": period(),
            "metrics": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "observed", "counterfactual", "difference", "counterfactual_lo",
                                 "counterfactual_hi", "mc_se", "note"],
                    "properties": {
                        "name": { "type": "string" },
                        "observed": opt_num(), "counterfactual": opt_num(), "difference": opt_num(),
                        "counterfactual_lo": opt_num(), "counterfactual_hi": opt_num(), "mc_se": opt_num(),
                        "note": { "type": ["string", "null"] }
                    }
                }
            },
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "expect", "status", "reason"],
                    "properties": {
                        "name": { "type": "string" },
                        "expect": { "type": "string" },
                        "status": { "enum": ["pass", "fail", "skipped"] },
                        "reason": { "type": ["string", "null"] }
                    }
                }
            },
            "guardrails": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "min", "max", "max_share", "share", "passed"],
                    "properties": {
                        "node": { "type": "string" },
                        "min": opt_num(), "max": opt_num(),
                        "max_share": num(), "share": num(),
                        "passed": { "type": "boolean" }
                    }
                }
            },
            "noise": noise(),
            "holdout": holdout(),
            "warnings": { "type": "array", "items": { "type": "string" } }
        }
    })
}

fn noise() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["residuals", "correlations"],
        "properties": {
            "residuals": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["node", "dist", "n", "ks_statistic", "ks_pvalue", "flagged"],
                    "properties": {
                        "node": { "type": "string" }, "dist": { "type": "string" },
                        "n": { "type": "integer", "minimum": 0 },
                        "ks_statistic": opt_num(), "ks_pvalue": opt_num(),
                        "flagged": { "type": "boolean" }
                    }
                }
            },
            "correlations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["a", "b", "n", "r", "flagged"],
                    "properties": {
                        "a": { "type": "string" }, "b": { "type": "string" },
                        "n": { "type": "integer", "minimum": 0 },
                        "r": num(), "flagged": { "type": "boolean" }
                    }
                }
            }
        }
    })
}

fn holdout() -> Value {
    json!({
        "oneOf": [
            { "type": "null" },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["periods", "fit_rows", "rows", "nodes"],
                "properties": {
                    "periods": { "type": "array", "items": { "type": "string" } },
                    "fit_rows": { "type": "integer", "minimum": 0 },
                    "rows": { "type": "integer", "minimum": 1 },
                    "nodes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["node", "rows", "mean_error", "coverage90", "calibration"],
                            "properties": {
                                "node": { "type": "string" },
                                "rows": { "type": "integer", "minimum": 1 },
                                "mean_error": num(),
                                "coverage90": { "type": ["number", "null"], "minimum": 0, "maximum": 1 },
                                "calibration": {
                                    "oneOf": [
                                        { "type": "null" },
                                        {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "additionalProperties": false,
                                                "required": ["lo", "hi", "n", "mean_predicted", "observed_rate"],
                                                "properties": {
                                                    "lo": num(), "hi": num(),
                                                    "n": { "type": "integer", "minimum": 1 },
                                                    "mean_predicted": num(), "observed_rate": num()
                                                }
                                            }
                                        }
                                    ]
                                }
                            }
                        }
                    }
                }
            }
        ]
    })
}
