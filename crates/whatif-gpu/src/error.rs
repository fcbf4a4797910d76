//! Errors of the GPU backend. Nothing in this crate panics on a missing or
//! broken adapter: it reports one of these.

/// What can go wrong when opening or running the GPU backend.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// wgpu sees no adapter at all (no Vulkan/Metal/DX12 driver).
    #[error(
        "no GPU adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers for lavapipe)"
    )]
    NoAdapter,
    /// The adapter exists but the device could not be created.
    #[error("cannot open the GPU device: {0}")]
    DeviceInit(String),
    /// A launch or a read-back failed on the device.
    #[error("GPU device error: {0}")]
    Device(String),
    /// Chunk size not usable.
    #[error("chunk size {0} must be a positive multiple of 64")]
    Chunk(usize),
    /// The burn tensor path failed.
    #[error("burn tensor path: {0}")]
    Tensor(String),
    /// A program with units on the tensor path (which has no unit loop;
    /// the fused path runs them).
    #[error(
        "the wgpu tensor path does not run programs with units; use the fused path (--backend wgpu) or the CPU"
    )]
    Structured,
}
