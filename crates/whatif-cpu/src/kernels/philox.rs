//! Philox4x32-10 over a *group* of consecutive blocks, structure-of-arrays,
//! so LLVM vectorises it (one SIMD lane per Philox block), plus the
//! group-level standard variates built on it (words in sample order,
//! standard normals).
//!
//! The layout is the contract of [`whatif_ir::rng`]: block `q` of a stream
//! holds samples `4q .. 4q+3`. A group is [`GROUP_BLOCKS`] consecutive blocks,
//! i.e. [`GROUP`] consecutive samples. The 32×32→64 multiplies are written
//! as `u64` products (`vpmuludq` on x86), which LLVM vectorises; the high
//! halves are shifts, no intrinsics needed.

use super::math::{ln_uniform, sincos_turn};
use whatif_ir::rng::{PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, RngStream, key_for};

/// Philox blocks per group: 16 keeps four 16-lane u32 vectors (AVX-512) or
/// eight 8-lane ones (AVX2) in registers across the ten rounds.
pub const GROUP_BLOCKS: usize = 16;
/// Samples per group (`4 · GROUP_BLOCKS`).
pub const GROUP: usize = 4 * GROUP_BLOCKS;

/// The four output words of blocks `q0 .. q0 + GROUP_BLOCKS`, as four arrays
/// (`out[r][l]` is word `r` of block `q0 + l`).
#[inline(always)]
pub fn philox_group(key: [u32; 2], site: u32, unit: u32, q0: u64) -> [[u32; GROUP_BLOCKS]; 4] {
    let mut c0 = [0u32; GROUP_BLOCKS];
    let mut c1 = [0u32; GROUP_BLOCKS];
    let mut c2 = [site; GROUP_BLOCKS];
    let mut c3 = [unit; GROUP_BLOCKS];
    for l in 0..GROUP_BLOCKS {
        // q may cross a 2^32 boundary inside a group: compute per lane.
        let q = q0.wrapping_add(l as u64);
        c0[l] = q as u32;
        c1[l] = (q >> 32) as u32;
    }
    let (mut k0, mut k1) = (key[0], key[1]);
    for r in 0..10 {
        if r > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        for l in 0..GROUP_BLOCKS {
            // High halves via u64 products (LLVM's mulhi pattern:
            // vpmuludq on even/odd lanes + blend), low halves as plain
            // wrapping u32 multiplies: this avoids packing 64-bit lanes
            // back to 32 bits with permutes.
            let h0 = ((u64::from(PHILOX_M0) * u64::from(c0[l])) >> 32) as u32;
            let h1 = ((u64::from(PHILOX_M1) * u64::from(c2[l])) >> 32) as u32;
            let l0 = c0[l].wrapping_mul(PHILOX_M0);
            let l1 = c2[l].wrapping_mul(PHILOX_M1);
            c0[l] = h1 ^ c1[l] ^ k0;
            c1[l] = l1;
            c2[l] = h0 ^ c3[l] ^ k1;
            c3[l] = l0;
        }
    }
    [c0, c1, c2, c3]
}

/// The words of samples `4·q0 .. 4·q0 + GROUP` of `substream`, in sample
/// order.
#[inline(always)]
pub fn words_group(stream: &RngStream, substream: u32, q0: u64) -> [u32; GROUP] {
    let w = philox_group(
        key_for(stream.seed, stream.period, substream),
        stream.site,
        stream.unit,
        q0,
    );
    let mut out = [0u32; GROUP];
    for l in 0..GROUP_BLOCKS {
        out[4 * l] = w[0][l];
        out[4 * l + 1] = w[1][l];
        out[4 * l + 2] = w[2][l];
        out[4 * l + 3] = w[3][l];
    }
    out
}

/// Box–Muller radius `sqrt(−2 ln u(k))` (all 32 bits of `k`).
#[inline(always)]
pub fn bm_radius(k: u32) -> f32 {
    (-2.0 * ln_uniform(k)).sqrt()
}

/// Standard normals of samples `4·q0 .. 4·q0 + GROUP` of `substream`, in
/// sample order: Box–Muller on words (w0, w1) for samples 4q, 4q+1 and
/// (w2, w3) for 4q+2, 4q+3 (the contract of [`whatif_ir::dist`]).
#[inline(always)]
pub fn normal_group(stream: &RngStream, substream: u32, q0: u64) -> [f32; GROUP] {
    let w = philox_group(
        key_for(stream.seed, stream.period, substream),
        stream.site,
        stream.unit,
        q0,
    );
    // Compute the two Box–Muller pairs of each block as plain lane-wise
    // arrays first (fully vectorised), then interleave into sample order.
    let mut ac = [0f32; GROUP_BLOCKS];
    let mut as_ = [0f32; GROUP_BLOCKS];
    let mut bc = [0f32; GROUP_BLOCKS];
    let mut bs = [0f32; GROUP_BLOCKS];
    for l in 0..GROUP_BLOCKS {
        let ra = bm_radius(w[0][l]);
        let (sa, ca) = sincos_turn(w[1][l]);
        let rb = bm_radius(w[2][l]);
        let (sb, cb) = sincos_turn(w[3][l]);
        ac[l] = ra * ca;
        as_[l] = ra * sa;
        bc[l] = rb * cb;
        bs[l] = rb * sb;
    }
    let mut out = [0f32; GROUP];
    for l in 0..GROUP_BLOCKS {
        out[4 * l] = ac[l];
        out[4 * l + 1] = as_[l];
        out[4 * l + 2] = bc[l];
        out[4 * l + 3] = bs[l];
    }
    out
}
