//! [`GpuExecutor`]: the same contract as `whatif_cpu::CpuExecutor::run`
//! on a GPU, through either the fused kernel or the burn tensor path.
//!
//! A launch covers whole reduction blocks (as many as fit in the chunk), so
//! the host can cut the read-back columns at block boundaries and feed each
//! block to the reducer as one chunk, in sample order. The next launch is
//! submitted before the current one is read back, so the device computes
//! while the host reduces; results still reach the callback in block order.
//!
//! When the reducer accepts group partials ([`BlockReducer::group_stats`])
//! the fused path reduces on the device: a second kernel
//! ([`crate::kernels::reduce`]) turns each group of 1024 lanes into f32
//! moments, co-moments and counts, and only those cross the bus; the
//! reducer merges them in f64, group after group in sample order. Columns
//! are read back only for reducers that need every lane (tails, charts).

use crate::adapter::AdapterInfo;
use crate::device::GpuDevice;
use crate::error::GpuError;
use crate::kernels::fused::KProgram;
use crate::kernels::reduce::{GROUP, KStat, WORDS};
use crate::lower;
use crate::tensor::TensorPath;
use cubecl::server::Handle;
use std::ops::Range;
use whatif_ir::VerifiedProgram;
use whatif_ir::exec::{BlockReducer, BlockResult, ExecOptions, FaultCount, GroupStat, GroupValue};
use whatif_ir::layout::BlockLayout;

/// Lanes per launch when `ExecOptions::chunk` is 0: 2^20 samples keep a
/// real GPU busy (2^18 threads) and bound device memory to 4 MiB per output.
pub const DEFAULT_GPU_CHUNK: usize = 1 << 20;
/// Lanes per step of the tensor path (it materialises every value).
pub const DEFAULT_TENSOR_CHUNK: usize = 1 << 18;

/// Which GPU implementation runs the Program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuPath {
    /// One CubeCL kernel per Program (`--backend wgpu`).
    Fused,
    /// Each op a burn tensor op (`--backend wgpu-tensor`).
    Tensor,
}

/// Where the tensor path runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorDevice {
    /// burn's wgpu device on the picked adapter.
    Wgpu,
    /// burn's `flex` CPU backend (for tests without an adapter); the draws
    /// still run on the GPU adapter's Philox kernel.
    Flex,
}

/// A GPU executor for one Program.
pub struct GpuExecutor {
    dev: GpuDevice,
    path: GpuPath,
    kprog: KProgram,
    params: Handle,
    n_params: usize,
    seed: u64,
    n_outputs: usize,
    n_probes: usize,
    chunk: usize,
    tensor: Option<TensorPath>,
    /// Unit covariates (`[c · units + u]`) and their length, for the fused
    /// kernel's `inputs`.
    covariates: Option<(Handle, usize)>,
    /// Per-lane inputs (`Program::inputs`) rounded to f32; each launch
    /// uploads its own lanes.
    lane_inputs: Vec<Vec<f32>>,
}

impl std::fmt::Debug for GpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuExecutor")
            .field("device", &self.dev.info.name)
            .field("path", &self.path)
            .field("chunk", &self.chunk)
            .finish()
    }
}

impl GpuExecutor {
    /// An executor on the adapter `--backend wgpu` takes (a real GPU when
    /// there is one, else a software adapter such as lavapipe). Fails with
    /// [`GpuError::NoAdapter`] when there is none: it never panics for that.
    pub fn new(
        program: &VerifiedProgram,
        path: GpuPath,
        opts: ExecOptions,
    ) -> Result<GpuExecutor, GpuError> {
        let info = crate::adapter::explicit_pick().ok_or(GpuError::NoAdapter)?;
        Self::on_adapter(program, path, opts, &info, TensorDevice::Wgpu)
    }

    /// An executor on a given adapter; `tensor_device` picks where the
    /// tensor path's arithmetic runs (ignored by the fused path).
    pub fn on_adapter(
        program: &VerifiedProgram,
        path: GpuPath,
        opts: ExecOptions,
        info: &AdapterInfo,
        tensor_device: TensorDevice,
    ) -> Result<GpuExecutor, GpuError> {
        // The fused kernel runs unit loops; the tensor path (a comparison
        // path) runs periods but not units.
        if path == GpuPath::Tensor && program.units.is_some() {
            return Err(GpuError::Structured);
        }
        let default = match path {
            GpuPath::Fused => DEFAULT_GPU_CHUNK,
            GpuPath::Tensor => DEFAULT_TENSOR_CHUNK,
        };
        let chunk = if opts.chunk == 0 { default } else { opts.chunk };
        if chunk % 64 != 0 || chunk == 0 {
            return Err(GpuError::Chunk(chunk));
        }
        let dev = GpuDevice::open(info)?;
        let p = program.program();
        let kprog = lower::lower(p);
        let params_v = lower::params(p);
        let params = dev.upload_f32(&params_v);
        let covariates = lower::covariates(p).map(|c| (dev.upload_f32(&c), c.len()));
        let tensor = match path {
            GpuPath::Fused => None,
            GpuPath::Tensor => Some(TensorPath::new(p, &dev, tensor_device)?),
        };
        Ok(GpuExecutor {
            dev,
            path,
            kprog,
            n_params: params_v.len(),
            params,
            seed: p.seed,
            n_outputs: p.outputs.len(),
            n_probes: p.probes.len(),
            chunk,
            tensor,
            covariates,
            lane_inputs: p.inputs.as_ref().map_or_else(Vec::new, |t| {
                t.columns
                    .iter()
                    .map(|c| c.iter().map(|&x| x as f32).collect())
                    .collect()
            }),
        })
    }

    /// Replace the lane inputs (`Program::inputs`) between runs, on the
    /// same device and compiled kernel. A run then covers at most
    /// `columns[0].len()` lanes.
    ///
    /// # Panics
    /// When the number of columns differs from the program's.
    pub fn set_inputs(&mut self, columns: &[Vec<f64>]) {
        assert_eq!(
            columns.len(),
            self.lane_inputs.len(),
            "lane input columns of another program"
        );
        for (dst, src) in self.lane_inputs.iter_mut().zip(columns) {
            dst.clear();
            dst.extend(src.iter().map(|&x| x as f32));
        }
        if let Some(t) = self.tensor.as_mut() {
            t.set_inputs(columns);
        }
    }

    /// The adapter's name, for the report manifest.
    pub fn device_name(&self) -> String {
        self.dev.info.name.clone()
    }

    /// The adapter this executor runs on.
    pub fn adapter(&self) -> &AdapterInfo {
        &self.dev.info
    }

    /// `"wgpu-fused"` or `"wgpu-tensor"` (`"flex-tensor"` when the tensor
    /// path's arithmetic runs on burn's CPU backend).
    pub fn kernel_name(&self) -> String {
        match (&self.path, &self.tensor) {
            (GpuPath::Fused, _) => "wgpu-fused".into(),
            (GpuPath::Tensor, Some(t)) if t.is_flex() => "flex-tensor".into(),
            (GpuPath::Tensor, _) => "wgpu-tensor".into(),
        }
    }

    /// Run blocks `blocks` of `layout`, calling `on_block` for each block's
    /// result in increasing block order — the contract of
    /// `whatif_cpu::CpuExecutor::run`.
    ///
    /// # Panics
    /// When the device fails mid-run (device lost, out of memory); use
    /// [`GpuExecutor::try_run`] to get that as an error instead.
    pub fn run<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        blocks: Range<u64>,
        reducer: &R,
        on_block: impl FnMut(BlockResult<R::Output>),
    ) {
        if let Err(e) = self.try_run(layout, blocks, reducer, on_block) {
            panic!("GPU run failed: {e}");
        }
    }

    /// [`GpuExecutor::run`], reporting device failures as errors. Blocks
    /// already handed to `on_block` stay valid; the run stops at the error.
    pub fn try_run<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        blocks: Range<u64>,
        reducer: &R,
        mut on_block: impl FnMut(BlockResult<R::Output>),
    ) -> Result<(), GpuError> {
        let bs = layout.block_size;
        let per = (self.chunk as u64 / bs).max(1);
        let launches: Vec<Range<u64>> = {
            let mut v = vec![];
            let mut b = blocks.start;
            while b < blocks.end {
                let e = (b + per).min(blocks.end);
                v.push(b..e);
                b = e;
            }
            v
        };
        match self.path {
            GpuPath::Fused => {
                let grouped = self.group_plan(layout, reducer);
                let mut pending: Option<(Range<u64>, Handle, Handle)> = None;
                for bl in &launches {
                    let (mut out, faults) = self.launch(layout, bl.clone());
                    if let Some((stats, _)) = &grouped {
                        out = self.launch_groups(layout, bl.clone(), out, stats);
                    }
                    if let Some((pb, po, pf)) = pending.take() {
                        self.finish(layout, pb, po, pf, grouped.as_ref(), reducer, &mut on_block)?;
                    }
                    pending = Some((bl.clone(), out, faults));
                }
                if let Some((pb, po, pf)) = pending.take() {
                    self.finish(layout, pb, po, pf, grouped.as_ref(), reducer, &mut on_block)?;
                }
            }
            GpuPath::Tensor => {
                let t = self
                    .tensor
                    .as_ref()
                    .expect("invariant: tensor path state exists for GpuPath::Tensor");
                for bl in launches {
                    let start = layout.block_range(bl.start).start;
                    let end = layout.block_range(bl.end - 1).end;
                    let (cols, probes) = t.eval_chunk(&self.dev, start, (end - start) as usize)?;
                    self.hand_out(
                        layout,
                        bl,
                        start,
                        &cols,
                        |b, p| probe_faults(&probes[p], layout.block_range(b), start),
                        reducer,
                        &mut on_block,
                    );
                }
            }
        }
        Ok(())
    }

    fn launch(&self, layout: BlockLayout, bl: Range<u64>) -> (Handle, Handle) {
        let start = layout.block_range(bl.start).start;
        let end = layout.block_range(bl.end - 1).end;
        // A program has lane inputs or covariates, never both (verified).
        let lanes = (!self.lane_inputs.is_empty()).then(|| {
            let (s, n) = (start as usize, (end - start) as usize);
            let n_pad = n.div_ceil(4) * 4;
            let mut buf = vec![0.0f32; self.lane_inputs.len() * n_pad];
            for (c, col) in self.lane_inputs.iter().enumerate() {
                buf[c * n_pad..c * n_pad + n].copy_from_slice(&col[s..s + n]);
            }
            let len = buf.len();
            (self.dev.upload_f32(&buf), len)
        });
        self.dev.launch_fused(
            &self.kprog,
            &self.params,
            self.n_params,
            lanes
                .as_ref()
                .map(|(h, n)| (h, *n))
                .or(self.covariates.as_ref().map(|(h, n)| (h, *n))),
            self.seed,
            start,
            (end - start) as usize,
            layout.block_size.trailing_zeros(),
        )
    }

    /// The device statistics of `reducer` as kernel statistics, when the
    /// reducer takes group partials and groups tile the blocks.
    fn group_plan<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        reducer: &R,
    ) -> Option<(Vec<KStat>, Vec<GroupStat>)> {
        if !layout.block_size.is_multiple_of(u64::from(GROUP)) {
            return None;
        }
        let stats = reducer.group_stats()?;
        let k = stats
            .iter()
            .map(|s| match *s {
                GroupStat::Moments { col } => KStat::Moments(col as u32),
                GroupStat::Co { x, y } => KStat::Co(x as u32, y as u32),
                GroupStat::Outside { col, lo, hi } => {
                    KStat::Outside(col as u32, lo.to_bits(), hi.to_bits())
                }
            })
            .collect();
        Some((k, stats))
    }

    /// Reduce the columns of launch `bl` into group partials on the device.
    fn launch_groups(
        &self,
        layout: BlockLayout,
        bl: Range<u64>,
        cols: Handle,
        stats: &[KStat],
    ) -> Handle {
        let start = layout.block_range(bl.start).start;
        let n = (layout.block_range(bl.end - 1).end - start) as usize;
        self.dev.launch_groups(&cols, self.n_outputs, n, stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish<R: BlockReducer>(
        &self,
        layout: BlockLayout,
        bl: Range<u64>,
        out: Handle,
        faults: Handle,
        grouped: Option<&(Vec<KStat>, Vec<GroupStat>)>,
        reducer: &R,
        on_block: &mut impl FnMut(BlockResult<R::Output>),
    ) -> Result<(), GpuError> {
        let start = layout.block_range(bl.start).start;
        let n = (layout.block_range(bl.end - 1).end - start) as usize;
        let n_pad = n.div_ceil(4) * 4;
        let data = self.dev.read_f32(out)?;
        let f = if self.n_probes > 0 {
            self.dev.read_u32(faults)?
        } else {
            vec![]
        };
        let np = self.n_probes;
        let fault = |b: u64, p: usize| {
            let at = 2 * ((b - bl.start) as usize * np + p);
            let lanes = u64::from(f[at]);
            if lanes == 0 {
                FaultCount::default()
            } else {
                FaultCount {
                    lanes,
                    first_sample: layout.block_range(b).start + u64::from(f[at + 1]),
                }
            }
        };
        if let Some((stats, _)) = grouped {
            // `data` holds WORDS floats per (group, statistic), groups
            // numbered from the launch's first lane.
            let s_n = stats.len();
            for b in bl.clone() {
                let range = layout.block_range(b);
                let g0 = ((range.start - start) / u64::from(GROUP)) as usize;
                let g1 = ((range.end - start) as usize).div_ceil(GROUP as usize);
                let mut values = Vec::with_capacity((g1 - g0) * s_n);
                for g in g0..g1 {
                    let lanes = (n - g * GROUP as usize).min(GROUP as usize) as u64;
                    for s in 0..s_n {
                        let at = (g * s_n + s) * WORDS as usize;
                        let mut v = [0.0f64; 6];
                        for (d, &x) in v.iter_mut().zip(&data[at..at + WORDS as usize]) {
                            *d = f64::from(x);
                        }
                        values.push(GroupValue { n: lanes, v });
                    }
                }
                let mut partial = reducer.begin(b, range.clone());
                reducer.feed_groups(&mut partial, &values);
                on_block(BlockResult {
                    block: b,
                    partial: reducer.end(partial),
                    faults: (0..np).map(|p| fault(b, p)).collect(),
                });
            }
            return Ok(());
        }
        let cols: Vec<&[f32]> = (0..self.n_outputs)
            .map(|o| &data[o * n_pad..o * n_pad + n])
            .collect();
        self.hand_out(layout, bl.clone(), start, &cols, fault, reducer, on_block);
        Ok(())
    }

    /// Feed each block of `bl` (whose samples start at `start` in `cols`) to
    /// the reducer and the callback, in order.
    #[allow(clippy::too_many_arguments)]
    fn hand_out<R: BlockReducer, C: AsRef<[f32]>>(
        &self,
        layout: BlockLayout,
        bl: Range<u64>,
        start: u64,
        cols: &[C],
        fault: impl Fn(u64, usize) -> FaultCount,
        reducer: &R,
        on_block: &mut impl FnMut(BlockResult<R::Output>),
    ) {
        for b in bl {
            let range = layout.block_range(b);
            let off = (range.start - start) as usize;
            let len = (range.end - range.start) as usize;
            let mut partial = reducer.begin(b, range.clone());
            let slices: Vec<&[f32]> = cols.iter().map(|c| &c.as_ref()[off..off + len]).collect();
            reducer.feed(&mut partial, range.start, &slices);
            let faults = (0..self.n_probes).map(|p| fault(b, p)).collect();
            on_block(BlockResult {
                block: b,
                partial: reducer.end(partial),
                faults,
            });
        }
    }

    /// The raw Philox words of blocks `q0 .. q0 + n_blocks` of
    /// `(seed, site, substream)` computed on this executor's device: the
    /// test entry that checks bit-identity with `whatif_ir::rng`.
    pub fn philox_words(
        &self,
        seed: u64,
        site: u32,
        substream: u32,
        q0: u64,
        n_blocks: u32,
    ) -> Result<Vec<[u32; 4]>, GpuError> {
        self.dev.philox_words(seed, site, substream, q0, n_blocks)
    }
}

/// Faults of one probe column over one block (the tensor path counts on
/// the host).
fn probe_faults(col: &[f32], range: Range<u64>, start: u64) -> FaultCount {
    let off = (range.start - start) as usize;
    let xs = &col[off..off + (range.end - range.start) as usize];
    let bad = xs.iter().filter(|x| !x.is_finite()).count();
    if bad == 0 {
        return FaultCount::default();
    }
    let first = xs.iter().position(|x| !x.is_finite()).unwrap_or(0);
    FaultCount {
        lanes: bad as u64,
        first_sample: range.start + first as u64,
    }
}
