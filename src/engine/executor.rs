//! The one place that knows which executors exist: the CPU executor always,
//! the wgpu executors when the binary is built with the `gpu` feature (the
//! default). Everything above this module (single runs, shards, sweeps)
//! drives an [`Executor`] and never names a backend crate.

use super::{Backend, RunError};
use std::ops::Range;
use whatif_ir::VerifiedProgram;
use whatif_ir::exec::{BlockReducer, BlockResult, ExecOptions};
use whatif_ir::layout::BlockLayout;

/// A constructed executor for one verified program.
#[derive(Debug)]
pub enum Executor {
    Cpu(whatif_cpu::CpuExecutor),
    #[cfg(feature = "gpu")]
    Gpu(Box<whatif_gpu::GpuExecutor>),
}

/// What the manifest records about the executor that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorInfo {
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// CPU model name or GPU adapter name.
    pub device: String,
    /// CPU kernel variant (`avx2-fma`, …) or GPU path (`wgpu-fused`, …).
    pub kernel: String,
    pub threads: u64,
}

impl Executor {
    /// Build the executor `backend` asks for. `Auto` takes a real GPU when
    /// an adapter that is not a software rasteriser is present, else the CPU.
    pub fn new(
        program: &VerifiedProgram,
        backend: Backend,
        opts: ExecOptions,
    ) -> Result<Executor, RunError> {
        let cpu = || -> Result<Executor, RunError> {
            Ok(Executor::Cpu(whatif_cpu::CpuExecutor::new(program, opts)?))
        };
        match backend {
            Backend::Cpu => cpu(),
            #[cfg(feature = "gpu")]
            Backend::Wgpu | Backend::WgpuTensor | Backend::Auto => {
                use whatif_gpu::{GpuExecutor, GpuPath, TensorDevice};
                let boxed = |r: Result<GpuExecutor, whatif_gpu::GpuError>| {
                    r.map(|g| Executor::Gpu(Box::new(g)))
                        .map_err(|e| RunError::Gpu(e.to_string()))
                };
                match backend {
                    Backend::Wgpu => boxed(GpuExecutor::new(program, GpuPath::Fused, opts)),
                    Backend::WgpuTensor => boxed(GpuExecutor::new(program, GpuPath::Tensor, opts)),
                    _ => match whatif_gpu::auto_pick() {
                        Some(info) => boxed(GpuExecutor::on_adapter(
                            program,
                            GpuPath::Fused,
                            opts,
                            &info,
                            TensorDevice::Wgpu,
                        )),
                        None => cpu(),
                    },
                }
            }
            #[cfg(not(feature = "gpu"))]
            Backend::Auto => cpu(),
            #[cfg(not(feature = "gpu"))]
            Backend::Wgpu | Backend::WgpuTensor => Err(RunError::Gpu(
                "this binary was built without the `gpu` feature".into(),
            )),
        }
    }

    /// Run `blocks` of `layout`, calling `on_block` in block order.
    pub fn run<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        blocks: Range<u64>,
        reducer: &R,
        on_block: impl FnMut(BlockResult<R::Output>),
    ) -> Result<(), RunError> {
        match self {
            Executor::Cpu(e) => {
                e.run(layout, blocks, reducer, on_block);
                Ok(())
            }
            #[cfg(feature = "gpu")]
            Executor::Gpu(e) => e
                .try_run(layout, blocks, reducer, on_block)
                .map_err(|e| RunError::Gpu(e.to_string())),
        }
    }

    /// Replace the program's lane inputs between runs (see
    /// `whatif_cpu::CpuExecutor::set_inputs`).
    pub fn set_inputs(&mut self, columns: &[Vec<f64>]) {
        match self {
            Executor::Cpu(e) => e.set_inputs(columns),
            #[cfg(feature = "gpu")]
            Executor::Gpu(e) => e.set_inputs(columns),
        }
    }

    /// Backend, device, kernel and thread count, for the manifest.
    pub fn info(&self) -> ExecutorInfo {
        match self {
            Executor::Cpu(e) => ExecutorInfo {
                backend: "cpu".into(),
                device: super::cpu_name(),
                kernel: whatif_cpu::variant().name().into(),
                threads: e.threads() as u64,
            },
            #[cfg(feature = "gpu")]
            Executor::Gpu(e) => ExecutorInfo {
                backend: "wgpu".into(),
                device: e.device_name(),
                kernel: e.kernel_name(),
                threads: 1,
            },
        }
    }
}

/// Lines for `whatif devices`: every adapter, then what `auto` would pick.
pub fn describe_devices() -> Vec<String> {
    #[cfg(feature = "gpu")]
    {
        let all = whatif_gpu::adapters();
        let mut lines = vec![];
        if all.is_empty() {
            lines.push(
                "no GPU adapters (install a Vulkan driver; Mesa's lavapipe gives a software one)"
                    .to_string(),
            );
        }
        for a in &all {
            let soft = if a.is_software() { "  [software]" } else { "" };
            lines.push(format!("{}{soft}", a.describe()));
        }
        lines.push(match whatif_gpu::auto_pick() {
            Some(a) => format!("--backend auto: wgpu on {}", a.name),
            None => format!(
                "--backend auto: cpu ({}; software adapters are not used automatically)",
                whatif_cpu::variant().name()
            ),
        });
        lines
    }
    #[cfg(not(feature = "gpu"))]
    {
        vec![format!(
            "built without the `gpu` feature; --backend auto: cpu ({})",
            whatif_cpu::variant().name()
        )]
    }
}
