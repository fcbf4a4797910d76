//! whatif: a counterfactual simulation engine.
//!
//! The library facade over the pipeline crates: [`whatif_lang`] (scenario
//! files → validated causal model), [`whatif_ir`] (Program IR, passes, RNG
//! contract, reference interpreter), [`whatif_cpu`] (CPU executor),
//! [`whatif_stats`] (streaming statistics) and [`whatif_report`] (reports and
//! schemas). [`engine`] runs a model end to end; [`output`] renders tables
//! and writes files atomically for the CLI.

pub mod engine;
pub mod output;

pub use whatif_ir as ir;
pub use whatif_lang as lang;
pub use whatif_report as report;
pub use whatif_stats as stats;
