//! GPU execution of whatif Programs through burn 0.22 / CubeCL 0.11 on wgpu.
//!
//! Two paths, measured against each other (DESIGN.md, "Backends"):
//! - **fused** ([`GpuPath::Fused`], `--backend wgpu`): one CubeCL kernel
//!   per Program, specialised through a `#[comptime]` argument, that
//!   evaluates every op per lane in registers with Philox on the device
//!   ([`kernels::fused`]);
//! - **tensor** ([`GpuPath::Tensor`], `--backend wgpu-tensor`): each op a
//!   burn tensor op on a burn `Device`; draws come from our Philox kernel,
//!   never from burn's random ops.
//!
//! Both implement the RNG and distribution contract of `whatif_ir::rng` /
//! `whatif_ir::dist` with the f32 polynomials of the CPU kernels, and the
//! executor contract of `whatif_cpu::CpuExecutor::run` ([`GpuExecutor::run`]).
//! [`adapters`] / [`auto_pick`] probe for adapters without panicking.
//!
//! Apart from Programs, [`mle`] is `whatif fit`'s maximum likelihood solver
//! (burn's autodiff on the wgpu device or on burn's `flex` CPU backend),
//! implementing `whatif_data::mle::MleSolver`.
//!
//! Precision (checked by the equivalence suite in `tests/it`): the fused
//! path agrees with the CPU executor to a few f32 ULP per lane (same
//! polynomials; WGSL does not promise fused `fma` or exact division), with
//! the f64 reference interpreter to ~1e-5 relative; the tensor path uses the
//! device's own `exp`/`log`/`tanh`, so ~1e-5 relative per op.

pub mod adapter;
pub mod device;
pub mod error;
pub mod exec;
pub mod kernels;
pub mod lower;
pub mod mle;
pub mod reduce;
mod tensor;

pub use adapter::{AdapterInfo, GpuBackendApi, GpuDeviceType, adapters, auto_pick, explicit_pick};
pub use device::GpuDevice;
pub use error::GpuError;
pub use exec::{DEFAULT_GPU_CHUNK, GpuExecutor, GpuPath, TensorDevice};
