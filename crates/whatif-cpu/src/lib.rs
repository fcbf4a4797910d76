//! Fused, chunked, multi-threaded CPU executor for verified Programs.
//!
//! A [`whatif_ir::VerifiedProgram`] is compiled into a [`plan::Plan`]
//! (instructions over reusable chunk registers); [`exec::CpuExecutor`] runs
//! the reduction blocks of a run in parallel and hands each block's output
//! columns to a [`whatif_ir::exec::BlockReducer`], in block order.

pub mod dispatch;
mod eval;
pub mod exec;
pub mod math;
pub mod plan;

pub use dispatch::{Variant, variant};
pub use exec::{CpuExecutor, DEFAULT_CHUNK, ExecError, MAX_THREADS};
pub mod kernels;
