//! The device's Philox4x32-10 words are bit-identical to `whatif_ir::rng`.

use crate::common::{empty, gpu, gpu_exec, out, verified};
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::rng::block_words;
use whatif_ir::{Dist, Op};

#[test]
fn philox_words_match_ir() {
    let Some(a) = gpu() else { return };
    let mut p = empty(1);
    let z = p.push(Op::Const(0.0), None);
    let o = p.push(Op::Const(1.0), None);
    let d = p.push(
        Op::Draw {
            dist: Dist::Normal,
            site: 1,
            args: vec![z, o],
            period: 0,
            unit: false,
        },
        None,
    );
    out(&mut p, d);
    let exec = gpu_exec(&verified(&p), &a, GpuPath::Fused, 0, TensorDevice::Wgpu);
    // Seeds with high bits set, q crossing 2^32, several sites/substreams.
    for &(seed, site, sub, q0) in &[
        (0u64, 0u32, 0u32, 0u64),
        (2026, 0xDEAD_BEEF, 0, 1_000_000),
        (0xFFFF_FFFF_0000_0007, 42, 17, (1u64 << 32) - 100),
        (7, 9, 0xFFFF, u64::MAX - 300),
    ] {
        let dev = exec
            .philox_words(seed, site, sub, q0, 257)
            .expect("device words");
        for (i, w) in dev.iter().enumerate() {
            let q = q0.wrapping_add(i as u64);
            assert_eq!(
                *w,
                block_words(seed, site, 0, 0, sub, q),
                "seed {seed} site {site} sub {sub} q {q}"
            );
        }
    }
}
