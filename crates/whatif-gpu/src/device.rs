//! Opening a cubecl wgpu client on a probed adapter, and the launches the
//! executors share: the fused kernel over a chunk, and raw Philox words.

use crate::adapter::AdapterInfo;
use crate::error::GpuError;
use crate::kernels::fused::{KProgram, fused_kernel};
use crate::kernels::philox_kernel;
use crate::kernels::reduce::{GROUP, KStat, UNITS, WORDS, group_kernel};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Threads per cube (workgroup). 64 suits lavapipe and real GPUs alike for
/// this register-heavy kernel (one thread = four samples).
pub const CUBE_DIM: u32 = 64;
/// The largest number of cubes along one dimension of a dispatch.
const MAX_CUBES_X: u32 = 65_535;
/// Canonical quiet NaN, passed as a runtime value (see `kernels::math`).
pub const NAN_BITS: u32 = 0x7fc0_0000;

/// A cubecl client on one adapter.
#[derive(Clone)]
pub struct GpuDevice {
    pub(crate) client: Client,
    pub(crate) info: AdapterInfo,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("adapter", &self.info.name)
            .finish()
    }
}

impl GpuDevice {
    /// Open `info`. The runtime panics on a device it cannot create; that
    /// becomes an error here.
    pub fn open(info: &AdapterInfo) -> Result<GpuDevice, GpuError> {
        let dev = info.wgpu_device();
        let client = std::panic::catch_unwind(|| cubecl::Device::Wgpu(dev).client())
            .map_err(|e| GpuError::DeviceInit(panic_text(&e)))?;
        Ok(GpuDevice {
            client,
            info: info.clone(),
        })
    }

    /// Open the adapter `--backend wgpu` would take (a real GPU, else a
    /// software one), or fail with [`GpuError::NoAdapter`].
    pub fn open_default() -> Result<GpuDevice, GpuError> {
        let info = crate::adapter::explicit_pick().ok_or(GpuError::NoAdapter)?;
        Self::open(&info)
    }

    /// Upload f32 values.
    pub fn upload_f32(&self, xs: &[f32]) -> Handle {
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.client.create_from_slice(&bytes)
    }

    /// Upload u32 values.
    pub fn upload_u32(&self, xs: &[u32]) -> Handle {
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.client.create_from_slice(&bytes)
    }

    /// Read f32 values back.
    pub fn read_f32(&self, h: Handle) -> Result<Vec<f32>, GpuError> {
        let b = self
            .client
            .read_one(h)
            .map_err(|e| GpuError::Device(format!("{e:?}")))?;
        let mut v = vec![0.0f32; b.len() / 4];
        copy_words(&b, &mut v);
        Ok(v)
    }

    /// Read u32 values back.
    pub fn read_u32(&self, h: Handle) -> Result<Vec<u32>, GpuError> {
        let b = self
            .client
            .read_one(h)
            .map_err(|e| GpuError::Device(format!("{e:?}")))?;
        let mut v = vec![0u32; b.len() / 4];
        copy_words(&b, &mut v);
        Ok(v)
    }

    /// The raw Philox words of blocks `q0 .. q0 + n_blocks` of
    /// `(seed, site, substream)` (unit and period 0), computed on the device.
    pub fn philox_words(
        &self,
        seed: u64,
        site: u32,
        substream: u32,
        q0: u64,
        n_blocks: u32,
    ) -> Result<Vec<[u32; 4]>, GpuError> {
        let out = self.client.empty(n_blocks.max(1) as usize * 16);
        let (cc, cd) = grid(n_blocks);
        // SAFETY: the kernel writes out[4t..4t+4] only for t < n_blocks, and
        // `out` holds 4 · n_blocks u32.
        unsafe {
            philox_kernel::launch_unchecked(
                &self.client,
                cc,
                cd,
                BufferArg::from_raw_parts(out.clone(), 4 * n_blocks.max(1) as usize),
                seed as u32,
                site,
                substream,
                q0 as u32,
                (q0 >> 32) as u32,
                n_blocks,
            )
        };
        let w = self.read_u32(out)?;
        Ok(w.chunks_exact(4)
            .take(n_blocks as usize)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect())
    }

    /// Launch the fused kernel of `prog` over samples `start .. start + n`
    /// (`start` a multiple of 4). Returns the output handle (`n_out`
    /// columns of `pad4(n)` f32) and the fault handle (`n_blocks · probes ·
    /// 2` u32) without waiting for the device.
    #[allow(clippy::too_many_arguments)]
    pub fn launch_fused(
        &self,
        prog: &KProgram,
        params: &Handle,
        n_params: usize,
        inputs: Option<(&Handle, usize)>,
        seed: u64,
        start: u64,
        n: usize,
        block_shift: u32,
    ) -> (Handle, Handle) {
        debug_assert!(start.is_multiple_of(4));
        let n_pad = n.div_ceil(4) * 4;
        let n_out = prog.outputs.len().max(1);
        let out = self.client.empty(n_out * n_pad * 4);
        let n_blocks = n.div_ceil(1usize << block_shift).max(1);
        let n_probes = prog.probes.len();
        let init: Vec<u32> = (0..(n_blocks * n_probes).max(1))
            .flat_map(|_| [0u32, u32::MAX])
            .collect();
        let faults = self.upload_u32(&init);
        let empty_in;
        let (in_h, in_len) = match inputs {
            Some((h, len)) => (h.clone(), len),
            None => {
                empty_in = self.client.empty(4);
                (empty_in.clone(), 1)
            }
        };
        let threads = (n_pad / 4) as u32;
        let (cc, cd) = grid(threads);
        // SAFETY: every index the kernel forms is below the sizes given here:
        // outputs/inputs at col · n_pad + lane with lane < n_pad, params at
        // comptime indices < n_params, faults at blocks of this chunk.
        unsafe {
            fused_kernel::launch_unchecked(
                &self.client,
                cc,
                cd,
                BufferArg::from_raw_parts(params.clone(), n_params),
                BufferArg::from_raw_parts(in_h, in_len),
                BufferArg::from_raw_parts(out.clone(), n_out * n_pad),
                BufferArg::from_raw_parts(faults.clone(), init.len()),
                seed as u32,
                (start / 4) as u32,
                ((start / 4) >> 32) as u32,
                n as u32,
                n_pad as u32,
                block_shift,
                NAN_BITS,
                prog.clone(),
            )
        };
        (out, faults)
    }
}

impl GpuDevice {
    /// Launch the group reduction over `cols` (`n_out` columns of `pad4(n)`
    /// lanes, `n` valid): returns `groups × stats × WORDS` f32 partials.
    pub fn launch_groups(&self, cols: &Handle, n_out: usize, n: usize, stats: &[KStat]) -> Handle {
        let n_pad = n.div_ceil(4) * 4;
        let n_groups = n.div_ceil(GROUP as usize).max(1);
        let len = n_groups * stats.len().max(1) * WORDS as usize;
        let res = self.client.empty(len * 4);
        let groups = n_groups as u32;
        let cc = if groups <= MAX_CUBES_X {
            CubeCount::Static(groups, 1, 1)
        } else {
            CubeCount::Static(MAX_CUBES_X, groups.div_ceil(MAX_CUBES_X), 1)
        };
        // SAFETY: cube g reads lanes below n of the given columns and writes
        // res[(g · S + s) · WORDS ..+ WORDS] only for g < n_groups.
        unsafe {
            group_kernel::launch_unchecked(
                &self.client,
                cc,
                CubeDim::new_1d(UNITS),
                BufferArg::from_raw_parts(cols.clone(), n_out.max(1) * n_pad),
                BufferArg::from_raw_parts(res.clone(), len),
                n as u32,
                n_pad as u32,
                groups,
                stats.to_vec(),
            )
        };
        res
    }
}

/// A 1-D dispatch of `threads` threads, folded into 2-D when it exceeds
/// the per-dimension cube limit (the kernels use `ABSOLUTE_POS`, which
/// linearises the grid).
pub fn grid(threads: u32) -> (CubeCount, CubeDim) {
    let cubes = threads.div_ceil(CUBE_DIM).max(1);
    let cc = if cubes <= MAX_CUBES_X {
        CubeCount::Static(cubes, 1, 1)
    } else {
        CubeCount::Static(MAX_CUBES_X, cubes.div_ceil(MAX_CUBES_X), 1)
    };
    (cc, CubeDim::new_1d(CUBE_DIM))
}

/// The message of a caught panic.
/// Copy little-endian device words into `out` (`4 · out.len()` bytes of
/// `bytes`) in one `memcpy`. A per-element `from_le_bytes` loop was the
/// largest host cost of a fused run that reads columns back (tail
/// metrics) in the dev profile, where this crate is not optimised.
fn copy_words<T: Word>(bytes: &[u8], out: &mut [T]) {
    let n = 4 * out.len();
    assert!(bytes.len() >= n, "read-back shorter than its words");
    // SAFETY: `out` is `n` initialised bytes of plain 4-byte words (f32 or
    // u32: every bit pattern is valid), `bytes` holds at least `n` bytes,
    // and the two cannot overlap (`out` is borrowed mutably). Device
    // buffers are little-endian, as is every host this builds for (checked
    // at compile time below).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n);
    }
}

/// A 4-byte word type with no invalid bit patterns.
trait Word: Copy {}
impl Word for f32 {}
impl Word for u32 {}

#[cfg(not(target_endian = "little"))]
compile_error!("whatif-gpu reads device buffers as little-endian words");

pub(crate) fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
