//! Reports: the JSON report, its manifest and JSON Schemas.
