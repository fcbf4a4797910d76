//! End-to-end tests of whatif: the engine against closed forms, the CLI's
//! exit codes and outputs, determinism, the report schema, and golden IR
//! dumps. One test binary (see ARCHITECTURE.md "Tests").

mod backtest;
mod cli;
mod common;
mod deploy;
mod engine;
mod golden;
#[cfg(feature = "gpu")]
mod gpu;
mod replay;
mod shard;
mod structured;
mod sweep;
mod tails;
