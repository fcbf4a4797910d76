//! Scenario language front end: TOML scenario files in, a validated
//! [`CausalModel`] (or a sorted list of diagnostics) out.

pub mod model;

pub use model::*;
