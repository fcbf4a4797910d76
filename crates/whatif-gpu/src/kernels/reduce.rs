//! Device-side reductions: one cube per group of [`GROUP`] consecutive
//! lanes of the fused kernel's output columns computes, for each requested
//! statistic, the group's f32 partial (mean and central moment sums by two
//! passes within the group, extremes, counts). The host converts each
//! group's partial to f64 and merges the groups in sample order with the
//! same pairwise formulas the CPU uses between blocks, so only
//! `groups × statistics × 6` floats leave the device instead of every lane.
//!
//! Two passes inside a group (mean first, then sums of powers of the
//! deviations) keep the f32 partials accurate: the deviations are small
//! relative to the values, and every sum is a tree over [`UNITS`] units.

use cubecl::prelude::*;

/// Lanes per group. Reduction blocks are powers of two of at least 1024
/// lanes, so groups never straddle a block.
pub const GROUP: u32 = 1024;
/// Units (threads) per cube; each reads `GROUP / UNITS` lanes, coalesced.
pub const UNITS: u32 = 256;
/// Floats written per (group, statistic).
pub const WORDS: u32 = 6;
const PER_UNIT: u32 = GROUP / UNITS;

/// One statistic of the group kernel, fixed at kernel compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KStat {
    /// Column `col`: `[mean, m2, m3, m4, min, max]`.
    Moments(u32),
    /// Columns `x`, `y`: `[mean_x, mean_y, m2_x, m2_y, c_xy, 0]`.
    Co(u32, u32),
    /// Column `col`, bounds as f32 bits: `[lanes outside [lo, hi], …]`
    /// (NaN counts as outside).
    Outside(u32, u32, u32),
}

/// Tree-reduce `k` consecutive rows of [`UNITS`] values in `sm` into row
/// heads (`sm[r · UNITS]`): sums for rows below `n_sum`, then min, then max.
#[cube]
fn tree(sm: &mut [f32], u: u32, #[comptime] n_sum: u32, #[comptime] min_max: bool) {
    sync_cube();
    for stride in comptime![vec![128u32, 64, 32, 16, 8, 4, 2, 1]] {
        if u < stride {
            for r in comptime![(0..n_sum).collect::<Vec<u32>>()] {
                let a = (r * UNITS + u) as usize;
                let b = (r * UNITS + u + stride) as usize;
                sm[a] += sm[b];
            }
            if comptime![min_max] {
                let a = (n_sum * UNITS + u) as usize;
                let b = (n_sum * UNITS + u + stride) as usize;
                sm[a] = select(sm[b] < sm[a], sm[b], sm[a]);
                let c = ((n_sum + 1) * UNITS + u) as usize;
                let d = ((n_sum + 1) * UNITS + u + stride) as usize;
                sm[c] = select(sm[d] > sm[c], sm[d], sm[c]);
            }
        }
        sync_cube();
    }
}

/// Group statistics over `cols` (columns of `n_pad` lanes, `n` valid):
/// cube `g` writes `res[(g · S + s) · WORDS ..]` for each statistic `s`.
// The statistic index is a runtime counter: `#[cube]` expands the loop
// over the comptime list, where an enumerate would need a comptime tuple.
#[allow(clippy::explicit_counter_loop)]
#[cube(launch_unchecked)]
pub fn group_kernel(
    cols: &[f32],
    res: &mut [f32],
    n: u32,
    n_pad: u32,
    n_groups: u32,
    #[comptime] stats: Vec<KStat>,
) {
    let g = u32::cast_from(CUBE_POS);
    let u = u32::cast_from(UNIT_POS);
    let mut sm = Shared::<[f32]>::new_slice(comptime![(5 * UNITS) as usize]);
    let base = g * GROUP;
    let n_stats = comptime![stats.len() as u32];
    // Every unit of a cube reaches every `sync_cube` (the group test is
    // uniform per cube), so out-of-range cubes only skip their writes.
    let live = g < n_groups;
    let mut si = 0u32;
    for st in comptime![stats.clone()] {
        let out_at = ((g * n_stats + si) * WORDS) as usize;
        match st {
            KStat::Moments(c) => {
                let mut s = 0.0f32;
                let mut k = 0.0f32;
                for j in 0..PER_UNIT {
                    let l = base + u + j * UNITS;
                    if l < n {
                        s += cols[(c * n_pad + l) as usize];
                        k += 1.0f32;
                    }
                }
                sm[u as usize] = s;
                sm[(UNITS + u) as usize] = k;
                tree(&mut sm, u, 2u32, false);
                let mean = sm[0] / f32::max(sm[UNITS as usize], 1.0f32);
                sync_cube();
                let mut d2 = 0.0f32;
                let mut d3 = 0.0f32;
                let mut d4 = 0.0f32;
                let mut lo = f32::reinterpret(0x7f80_0000u32);
                let mut hi = f32::reinterpret(0xff80_0000u32);
                for j in 0..PER_UNIT {
                    let l = base + u + j * UNITS;
                    if l < n {
                        let x = cols[(c * n_pad + l) as usize];
                        let d = x - mean;
                        let dd = d * d;
                        d2 += dd;
                        d3 += dd * d;
                        d4 += dd * dd;
                        lo = select(x < lo, x, lo);
                        hi = select(x > hi, x, hi);
                    }
                }
                sm[u as usize] = d2;
                sm[(UNITS + u) as usize] = d3;
                sm[(2 * UNITS + u) as usize] = d4;
                sm[(3 * UNITS + u) as usize] = lo;
                sm[(4 * UNITS + u) as usize] = hi;
                tree(&mut sm, u, 3u32, true);
                if u == 0 && live {
                    res[out_at] = mean;
                    res[out_at + 1] = sm[0];
                    res[out_at + 2] = sm[UNITS as usize];
                    res[out_at + 3] = sm[(2 * UNITS) as usize];
                    res[out_at + 4] = sm[(3 * UNITS) as usize];
                    res[out_at + 5] = sm[(4 * UNITS) as usize];
                }
            }
            KStat::Co(cx, cy) => {
                let mut sx = 0.0f32;
                let mut sy = 0.0f32;
                let mut k = 0.0f32;
                for j in 0..PER_UNIT {
                    let l = base + u + j * UNITS;
                    if l < n {
                        sx += cols[(cx * n_pad + l) as usize];
                        sy += cols[(cy * n_pad + l) as usize];
                        k += 1.0f32;
                    }
                }
                sm[u as usize] = sx;
                sm[(UNITS + u) as usize] = sy;
                sm[(2 * UNITS + u) as usize] = k;
                tree(&mut sm, u, 3u32, false);
                let kk = f32::max(sm[(2 * UNITS) as usize], 1.0f32);
                let mx = sm[0] / kk;
                let my = sm[UNITS as usize] / kk;
                sync_cube();
                let mut xx = 0.0f32;
                let mut yy = 0.0f32;
                let mut xy = 0.0f32;
                for j in 0..PER_UNIT {
                    let l = base + u + j * UNITS;
                    if l < n {
                        let dx = cols[(cx * n_pad + l) as usize] - mx;
                        let dy = cols[(cy * n_pad + l) as usize] - my;
                        xx += dx * dx;
                        yy += dy * dy;
                        xy += dx * dy;
                    }
                }
                sm[u as usize] = xx;
                sm[(UNITS + u) as usize] = yy;
                sm[(2 * UNITS + u) as usize] = xy;
                tree(&mut sm, u, 3u32, false);
                if u == 0 && live {
                    res[out_at] = mx;
                    res[out_at + 1] = my;
                    res[out_at + 2] = sm[0];
                    res[out_at + 3] = sm[UNITS as usize];
                    res[out_at + 4] = sm[(2 * UNITS) as usize];
                    res[out_at + 5] = 0.0f32;
                }
            }
            KStat::Outside(c, lo_bits, hi_bits) => {
                let lo = f32::reinterpret(lo_bits);
                let hi = f32::reinterpret(hi_bits);
                let mut k = 0.0f32;
                for j in 0..PER_UNIT {
                    let l = base + u + j * UNITS;
                    if l < n {
                        let x = cols[(c * n_pad + l) as usize];
                        // `!(lo <= x && x <= hi)`: NaN is a violation.
                        k += select(lo <= x && x <= hi, 0.0f32, 1.0f32);
                    }
                }
                sm[u as usize] = k;
                tree(&mut sm, u, 1u32, false);
                if u == 0 && live {
                    res[out_at] = sm[0];
                    res[out_at + 1] = 0.0f32;
                    res[out_at + 2] = 0.0f32;
                    res[out_at + 3] = 0.0f32;
                    res[out_at + 4] = 0.0f32;
                    res[out_at + 5] = 0.0f32;
                }
            }
        }
        sync_cube();
        si += 1;
    }
}
