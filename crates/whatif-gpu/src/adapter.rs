//! Adapter discovery: which wgpu adapters this machine has, without ever
//! panicking, and which one `--backend auto` should take.
//!
//! `burn::Device::wgpu` (and cubecl's wgpu runtime) panic when asked for a
//! device that does not exist, so every entry point of this crate probes
//! here first. The probe asks wgpu's instance for its adapters once per
//! process and caches the answer: on a machine without a Vulkan loader the
//! first probe costs a few milliseconds (measured in the report), later ones
//! nothing.

use cubecl::wgpu::wgpu;
use std::sync::OnceLock;

/// The graphics API an adapter is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuBackendApi {
    Vulkan,
    Metal,
    Dx12,
    Gl,
    BrowserWebGpu,
    /// Anything wgpu reports that this crate does not name.
    Other,
}

impl GpuBackendApi {
    /// Lower-case name, as shown by `whatif devices`.
    pub fn name(self) -> &'static str {
        match self {
            GpuBackendApi::Vulkan => "vulkan",
            GpuBackendApi::Metal => "metal",
            GpuBackendApi::Dx12 => "dx12",
            GpuBackendApi::Gl => "gl",
            GpuBackendApi::BrowserWebGpu => "webgpu",
            GpuBackendApi::Other => "other",
        }
    }
}

/// What kind of device an adapter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuDeviceType {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    /// A software rasteriser (lavapipe, llvmpipe, WARP).
    Cpu,
    Other,
}

impl GpuDeviceType {
    /// Name as shown by `whatif devices`.
    pub fn name(self) -> &'static str {
        match self {
            GpuDeviceType::DiscreteGpu => "discrete-gpu",
            GpuDeviceType::IntegratedGpu => "integrated-gpu",
            GpuDeviceType::VirtualGpu => "virtual-gpu",
            GpuDeviceType::Cpu => "cpu",
            GpuDeviceType::Other => "other",
        }
    }
}

/// One adapter wgpu can see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdapterInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)` or `NVIDIA H100`.
    pub name: String,
    pub backend: GpuBackendApi,
    pub device_type: GpuDeviceType,
    /// Driver name and version as the driver reports them (may be empty).
    pub driver: String,
    /// Index among adapters of the same `device_type` on the same backend,
    /// in enumeration order: how cubecl's wgpu runtime addresses it.
    pub type_index: usize,
}

impl AdapterInfo {
    /// A software rasteriser: `auto` stays on the CPU executor for these
    /// (our own CPU executor is far faster than lavapipe).
    pub fn is_software(&self) -> bool {
        if self.device_type == GpuDeviceType::Cpu {
            return true;
        }
        let n = self.name.to_ascii_lowercase();
        let d = self.driver.to_ascii_lowercase();
        ["llvmpipe", "lavapipe", "swiftshader", "softpipe", "warp"]
            .iter()
            .any(|s| n.contains(s) || d.contains(s))
    }

    /// One line for `whatif devices`.
    pub fn describe(&self) -> String {
        let sw = if self.is_software() { ", software" } else { "" };
        format!(
            "{} ({}, {}{}{})",
            self.name,
            self.backend.name(),
            self.device_type.name(),
            sw,
            if self.driver.is_empty() {
                String::new()
            } else {
                format!(", driver {}", self.driver)
            }
        )
    }

    /// The cubecl (and burn) wgpu device that addresses this adapter.
    pub fn cubecl_device(&self) -> cubecl::wgpu::WgpuDevice {
        self.wgpu_device()
    }

    pub(crate) fn wgpu_device(&self) -> cubecl::wgpu::WgpuDevice {
        use cubecl::wgpu::{WgpuBackend, WgpuDevice, WgpuDeviceKind};
        let kind = match self.device_type {
            GpuDeviceType::DiscreteGpu => WgpuDeviceKind::DiscreteGpu(self.type_index),
            GpuDeviceType::IntegratedGpu => WgpuDeviceKind::IntegratedGpu(self.type_index),
            GpuDeviceType::VirtualGpu => WgpuDeviceKind::VirtualGpu(self.type_index),
            GpuDeviceType::Cpu => WgpuDeviceKind::Cpu,
            GpuDeviceType::Other => WgpuDeviceKind::Other(self.type_index),
        };
        let backend = match self.backend {
            GpuBackendApi::Vulkan => WgpuBackend::Vulkan,
            GpuBackendApi::Metal => WgpuBackend::Metal,
            GpuBackendApi::Dx12 => WgpuBackend::Dx12,
            GpuBackendApi::Gl => WgpuBackend::Gl,
            GpuBackendApi::BrowserWebGpu => WgpuBackend::WebGpu,
            GpuBackendApi::Other => WgpuBackend::Auto,
        };
        WgpuDevice::new(kind).on(backend)
    }
}

/// Every adapter wgpu sees on this machine (Vulkan, Metal, DX12; GL is left
/// out: compute on GL is not supported by cubecl). Never panics: a missing
/// loader, a driver that crashes during enumeration or no adapter at all
/// give an empty list. Cached for the life of the process.
pub fn adapters() -> Vec<AdapterInfo> {
    static CACHE: OnceLock<Vec<AdapterInfo>> = OnceLock::new();
    CACHE
        .get_or_init(|| std::panic::catch_unwind(probe).unwrap_or_default())
        .clone()
}

/// The adapter `--backend auto` takes: the first real (non-software) GPU,
/// discrete before integrated; `None` when there is none (including when
/// the only adapters are software rasterisers such as lavapipe).
pub fn auto_pick() -> Option<AdapterInfo> {
    // Fast path: a Linux machine without a GPU device node has no real GPU,
    // whatever Vulkan drivers are installed. Initialising lavapipe just to
    // learn that costs 200-450 ms (measured on the CI machine); looking at
    // /dev costs microseconds, which keeps `--backend auto` within its
    // 20 ms startup budget.
    if !might_have_real_gpu() {
        return None;
    }
    let all = adapters();
    let rank = |a: &AdapterInfo| match a.device_type {
        GpuDeviceType::DiscreteGpu => 0,
        GpuDeviceType::IntegratedGpu => 1,
        GpuDeviceType::VirtualGpu => 2,
        _ => 3,
    };
    all.into_iter()
        .filter(|a| !a.is_software())
        .min_by_key(rank)
}

/// The adapter the explicit `--backend wgpu` / `wgpu-tensor` take: like
/// [`auto_pick`], but a software adapter is acceptable when nothing better
/// exists (this is how CI runs the GPU code on lavapipe).
pub fn explicit_pick() -> Option<AdapterInfo> {
    auto_pick().or_else(|| adapters().into_iter().next())
}

/// Whether this machine may have a hardware GPU: on Linux, a DRM render
/// node, an NVIDIA device node or WSL's `/dev/dxg`; elsewhere always true.
pub fn might_have_real_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let nodes = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .unwrap_or(false)
    };
    nodes("/dev/dri", "renderD")
        || nodes("/dev", "nvidia")
        || std::path::Path::new("/dev/dxg").exists()
}

fn probe() -> Vec<AdapterInfo> {
    let backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let infos: Vec<wgpu::AdapterInfo> = block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(wgpu::Adapter::get_info)
        .collect();
    let mut seen: Vec<(wgpu::Backend, wgpu::DeviceType)> = vec![];
    infos
        .into_iter()
        .map(|i| {
            let type_index = seen
                .iter()
                .filter(|k| **k == (i.backend, i.device_type))
                .count();
            seen.push((i.backend, i.device_type));
            AdapterInfo {
                name: i.name,
                backend: match i.backend {
                    wgpu::Backend::Vulkan => GpuBackendApi::Vulkan,
                    wgpu::Backend::Metal => GpuBackendApi::Metal,
                    wgpu::Backend::Dx12 => GpuBackendApi::Dx12,
                    wgpu::Backend::Gl => GpuBackendApi::Gl,
                    wgpu::Backend::BrowserWebGpu => GpuBackendApi::BrowserWebGpu,
                    _ => GpuBackendApi::Other,
                },
                device_type: match i.device_type {
                    wgpu::DeviceType::DiscreteGpu => GpuDeviceType::DiscreteGpu,
                    wgpu::DeviceType::IntegratedGpu => GpuDeviceType::IntegratedGpu,
                    wgpu::DeviceType::VirtualGpu => GpuDeviceType::VirtualGpu,
                    wgpu::DeviceType::Cpu => GpuDeviceType::Cpu,
                    wgpu::DeviceType::Other => GpuDeviceType::Other,
                },
                driver: [i.driver, i.driver_info]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
                type_index,
            }
        })
        .collect()
}

/// Drive a future that native wgpu resolves without waiting (adapter
/// enumeration is synchronous underneath): poll with a no-op waker, and
/// yield between polls in case a backend ever does defer.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
