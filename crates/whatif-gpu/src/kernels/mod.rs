//! CubeCL kernels: device math and Philox ([`math`]), distribution
//! transforms ([`dists`]), the per-Program fused kernel ([`fused`]), the
//! group reductions over its outputs ([`reduce`]) and a
//! raw-Philox kernel for bit-exactness tests.
//!
//! They live inside the crate (not in the workspace's top-level `kernels/`
//! folder) because CubeCL kernels are Rust: the `#[cube]` macro expands them
//! at build time, and keeping them in the crate keeps them type-checked
//! with the code that launches them.

// `#[cube]` code declares a value and assigns it in comptime branches
// (`let mut o = 0.0; if comptime![..] { o = .. }`): rustc sees the first
// assignment as dead, the expansion needs it.
#![allow(unused_assignments)]

pub mod dists;
pub mod fused;
pub mod math;
pub mod reduce;

use cubecl::prelude::*;
use math::block_words;

/// Raw Philox words: thread `t` writes the four words of block `q0 + t` of
/// `(seed, site, substream)` to `out[4t .. 4t + 4]`.
#[cube(launch_unchecked)]
pub fn philox_kernel(
    out: &mut [u32],
    seed: u32,
    site: u32,
    substream: u32,
    q0_lo: u32,
    q0_hi: u32,
    n_blocks: u32,
) {
    let t = u32::cast_from(ABSOLUTE_POS);
    if t < n_blocks {
        let q_lo = q0_lo + t;
        let q_hi = q0_hi + select(q_lo < t, 1u32, 0u32);
        let w = block_words(seed, site, substream, q_lo, q_hi);
        let at = (4 * t) as usize;
        out[at] = w.w0;
        out[at + 1] = w.w1;
        out[at + 2] = w.w2;
        out[at + 3] = w.w3;
    }
}
