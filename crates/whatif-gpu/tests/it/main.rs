//! Integration tests of whatif-gpu: one binary (a debug binary linking burn
//! is large), one module per concern.
//!
//! GPU tests skip with a printed reason when no wgpu adapter exists, and
//! fail instead when `WHATIF_REQUIRE_GPU=1` (CI sets it after installing
//! lavapipe, so CI can never go green with the GPU path silently skipped).

mod common;
mod equiv;
mod faults;
mod groups;
mod mle;
mod nan;
mod philox;
mod probe;
mod props;
mod reduce_bug;
mod scenarios;
mod timing;
