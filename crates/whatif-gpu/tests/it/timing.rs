//! Fused vs tensor path on the test adapter, W1 (20-node chain): prints
//! node-samples/s and checks the bar (fused ≥ 2× tensor). The
//! first launch of each path (kernel compilation) is excluded.

use crate::common::*;
use crate::equiv::chain;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::layout::BlockLayout;

/// Sums output 0 per block (a cheap reducer, so the timing is the device's).
struct Sum;
impl whatif_ir::exec::BlockReducer for Sum {
    type Partial = f64;
    type Output = f64;
    fn begin(&self, _: u64, _: std::ops::Range<u64>) -> f64 {
        0.0
    }
    fn feed(&self, p: &mut f64, _: u64, cols: &[&[f32]]) {
        *p += cols[0].iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    fn end(&self, p: f64) -> f64 {
        p
    }
}

fn time(exec: &whatif_gpu::GpuExecutor, layout: BlockLayout) -> (f64, f64) {
    // Warm up on the whole layout: the first launch compiles the kernel
    // (seconds on lavapipe), and the driver may specialise per dispatch size.
    let mut warm = 0.0;
    exec.run(layout, 0..layout.n_blocks(), &Sum, |r| warm += r.partial);
    let t = std::time::Instant::now();
    let mut total = 0.0;
    exec.run(layout, 0..layout.n_blocks(), &Sum, |r| total += r.partial);
    (t.elapsed().as_secs_f64(), total / layout.n_samples as f64)
}

/// Ignored in the normal run: the other tests share the adapter and
/// compile kernels concurrently, which makes timings meaningless. Run it
/// alone: `cargo test -p whatif-gpu --test it -- --ignored fused_at_least`.
#[test]
#[ignore]
fn fused_at_least_twice_tensor_on_w1() {
    let Some(a) = gpu() else { return };
    let p = chain(20, 2026);
    let v = verified(&p);
    let n = 1u64 << 20;
    let layout = BlockLayout::for_samples(n);
    let fused = gpu_exec(&v, &a, GpuPath::Fused, 0, TensorDevice::Wgpu);
    let tensor = gpu_exec(&v, &a, GpuPath::Tensor, 0, TensorDevice::Wgpu);
    let (tf, mf) = time(&fused, layout);
    let (tt, mt) = time(&tensor, layout);
    let ns = 20.0 * n as f64;
    eprintln!(
        "W1 N={n} on {}: fused {:.3} s = {:.1} M node-samples/s; tensor {:.3} s = {:.1} M node-samples/s; ratio {:.1}x; mean(X19) {mf:.5} / {mt:.5}",
        a.name,
        tf,
        ns / tf / 1e6,
        tt,
        ns / tt / 1e6,
        tt / tf
    );
    assert!((mf - mt).abs() < 1e-4, "both paths estimate the same mean");
    assert!(
        tt / tf >= 2.0,
        "fused must beat tensor by 2x (fused {tf:.3} s, tensor {tt:.3} s)"
    );
}

/// Where the fused path's time goes on this adapter: launch + read of
/// one 2^20-lane chunk of W1, three times (run with `--ignored`).
#[test]
#[ignore]
fn fused_profile() {
    let Some(a) = gpu() else { return };
    let p = chain(20, 2026);
    let k = whatif_gpu::lower::lower(&p);
    let dev = whatif_gpu::GpuDevice::open(&a).expect("device");
    let params = dev.upload_f32(&whatif_gpu::lower::params(&p));
    for n in [1usize << 16, 1 << 20, 1 << 20, 1 << 22] {
        let t = std::time::Instant::now();
        let (o, _f) = dev.launch_fused(&k, &params, 1, None, 1, 0, n, 14);
        let t1 = t.elapsed();
        let v = dev.read_f32(o).expect("read");
        let t2 = t.elapsed();
        eprintln!(
            "n={n}: launch {t1:?}, launch+read {t2:?} = {:.1} M node-samples/s ({})",
            20.0 * n as f64 / t2.as_secs_f64() / 1e6,
            v.len()
        );
    }
}
