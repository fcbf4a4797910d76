//! The lavapipe one-shot reduction trap (DESIGN.md): burn 0.22.1's
//! `sum()` over more than ~262k elements was seen to sum only the first
//! 262,132. This test measures burn's one-shot `sum()` against the exact
//! host sum at sizes around and far beyond 2^18, prints what it finds, and
//! asserts that the two-stage reduction this crate would use on the device
//! (`reshape([rows, 1024]).sum_dim(1)`, then the row sums on the host in
//! f64) is exact, on wgpu and on flex.

use crate::common::gpu;
use burn::tensor::{Device, Tensor, TensorData};

fn check(device: &Device, label: &str) {
    for &n in &[
        100_000usize,
        262_132,
        262_144,
        262_145,
        300_000,
        1_048_576,
        3_000_000,
    ] {
        // Small integers: every partial sum is exact in f32 up to 2^24.
        let xs: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
        let exact: f64 = xs.iter().map(|&x| f64::from(x)).sum();
        let t = Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), device);
        let one_shot = f64::from(
            t.clone()
                .sum()
                .into_data()
                .try_to_vec::<f32>()
                .expect("read")[0],
        );
        // The same reduction through the dimension-reduce kernels.
        let by_dim = f64::from(
            t.clone()
                .sum_dim(0)
                .into_data()
                .try_to_vec::<f32>()
                .expect("read")[0],
        );
        let rows = n.div_ceil(1024);
        let mut padded = xs;
        padded.resize(rows * 1024, 0.0);
        let t2 = Tensor::<2>::from_data(TensorData::new(padded, [rows, 1024]), device);
        let row_sums = t2.sum_dim(1).into_data().try_to_vec::<f32>().expect("read");
        let two_stage: f64 = row_sums.iter().map(|&x| f64::from(x)).sum();
        eprintln!(
            "{label} n={n}: exact {exact}, one-shot sum() {one_shot} (rel err {:.2e}), sum_dim(0) {by_dim}, two-stage {two_stage}",
            (one_shot - exact).abs() / exact
        );
        assert_eq!(
            two_stage, exact,
            "{label}: two-stage reduction of {n} elements"
        );
    }
}

#[test]
fn one_shot_sum_vs_two_stage_on_wgpu() {
    let Some(a) = gpu() else { return };
    let dev = whatif_gpu::GpuDevice::open(&a).expect("device");
    let _ = dev;
    let device = Device::new(cubecl_device(&a));
    check(&device, &format!("wgpu[{}]", a.name));
}

#[test]
fn one_shot_sum_vs_two_stage_on_flex() {
    check(&Device::flex(), "flex");
}

fn cubecl_device(a: &whatif_gpu::AdapterInfo) -> cubecl::wgpu::WgpuDevice {
    a.cubecl_device()
}
