//! The RNG contract: counter-based Philox4x32-10 and the layout of its
//! counter and key.
//!
//! Every random number whatif draws is a pure function of
//! `(seed, site, unit, period, substream, sample_idx)`. Nothing depends on chunk
//! size, thread count, shard layout or backend, which is what makes common
//! random numbers across worlds and bit-identical reports possible.
//!
//! # Generator
//!
//! Philox4x32-10 (Salmon, Moraes, Dror, Shaw, *Parallel random numbers: as
//! easy as 1, 2, 3*, SC 2011; the Random123 library): a 128-bit counter and a
//! 64-bit key map to 128 output bits, ten rounds, multipliers `0xD2511F53`,
//! `0xCD9E8D57`, Weyl key increments `0x9E3779B9`, `0xBB67AE85`. Checked
//! against the published Random123 `kat_vectors` in the tests.
//!
//! # Layout
//!
//! For sample index `i`, let `q = i / 4` (the Philox *block*) and `r = i % 4`.
//!
//! | Philox input | value                                   |
//! |--------------|-----------------------------------------|
//! | `ctr[0]`     | `q mod 2^32`                            |
//! | `ctr[1]`     | `q div 2^32`                            |
//! | `ctr[2]`     | `site` (the 32-bit site hash)           |
//! | `ctr[3]`     | `unit` (0 outside portfolio models)     |
//! | `key[0]`     | `seed as u32` (the low 32 bits)         |
//! | `key[1]`     | `period * 2^16 + substream`             |
//!
//! One Philox call yields the four 32-bit words of samples `4q .. 4q+3` of one
//! `(site, unit, period, substream)`; the word of sample `i` is `out[i % 4]`.
//! All four outputs are used, so one call serves four samples.
//!
//! Distributions that need more than one uniform per sample read further
//! *substreams* (same counter, different `key[1]`); see [`crate::dist`] for
//! which distribution reads which substream.
//!
//! # Limits
//!
//! - **Seeds**: 2^32 distinct seeds. The user-facing seed is a `u64`, but only
//!   its low 32 bits enter the key: seeds that differ only in the high 32 bits
//!   give identical results.
//! - **Periods and substreams**: 65,536 each (`period < 2^16`,
//!   `substream < 2^16`); larger values would alias another (period,
//!   substream) pair, so they are rejected by a debug assertion and must be
//!   rejected by callers (the compiler) up front.
//! - **Samples**: `q` is 64 bits, so 2^64 blocks = 2^66 samples per stream
//!   (sample indices are `u64`, so in practice 2^64).
//! - **Sites and units**: 2^32 each (the site id is a 32-bit hash; distinct
//!   sites whose hashes collide would share noise — the compiler checks).
//!
//! # Uniforms
//!
//! A word `k` maps to `u(k) = (k + 1) * 2^-32`, in `(0, 1]`: never 0, so
//! `ln u` is always finite, and the smallest value is `2^-32`, so tails built
//! from `ln u` (the Box–Muller radius, exponential, …) reach as far as 32
//! bits allow (|z| ≈ 6.66 for normals). Complements `1 - u` are never formed
//! in floating point (that rounds to 0 or caps the tail); where a formula
//! needs one it uses the bitwise complement `!k` in integer space, since
//! `u(!k) = 1 - u(k) + 2^-32`.

/// First Philox4x32 round multiplier (applied to `ctr[0]`).
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Second Philox4x32 round multiplier (applied to `ctr[2]`).
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of `key[0]` between rounds (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of `key[1]` between rounds (sqrt(3) − 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// Number of distinct substreams (and of periods) the key layout allows.
pub const MAX_SUBSTREAMS: u32 = 1 << 16;
/// Number of distinct periods the key layout allows.
pub const MAX_PERIODS: u32 = 1 << 16;

/// One Philox4x32 round: two 32×32→64 multiplies, the high halves XORed
/// with the other words and the key, then a fixed permutation.
#[inline(always)]
fn round(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let p0 = u64::from(PHILOX_M0) * u64::from(ctr[0]);
    let p1 = u64::from(PHILOX_M1) * u64::from(ctr[2]);
    [
        ((p1 >> 32) as u32) ^ ctr[1] ^ key[0],
        p1 as u32,
        ((p0 >> 32) as u32) ^ ctr[3] ^ key[1],
        p0 as u32,
    ]
}

/// Philox4x32 with 10 rounds, exactly as Random123's `philox4x32_R(10, ctr,
/// key)`: round, then bump the key, nine times, and a final round.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    c = round(c, k);
    for _ in 1..10 {
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        c = round(c, k);
    }
    c
}

/// The Philox key of `(seed, period, substream)`: `[seed as u32, period ·
/// 2^16 + substream]`. The seed's high 32 bits are dropped (see Limits).
#[inline(always)]
pub fn key_for(seed: u64, period: u32, substream: u32) -> [u32; 2] {
    debug_assert!(period < MAX_PERIODS, "period {period} out of range");
    debug_assert!(
        substream < MAX_SUBSTREAMS,
        "substream {substream} out of range"
    );
    [seed as u32, (period << 16) | (substream & 0xFFFF)]
}

/// The Philox counter of block `q` of `(site, unit)`.
#[inline(always)]
pub fn counter_for(site: u32, unit: u32, q: u64) -> [u32; 4] {
    [q as u32, (q >> 32) as u32, site, unit]
}

/// The four words of block `q` (samples `4q .. 4q+3`) of one stream.
#[inline]
pub fn block_words(
    seed: u64,
    site: u32,
    unit: u32,
    period: u32,
    substream: u32,
    q: u64,
) -> [u32; 4] {
    philox4x32_10(counter_for(site, unit, q), key_for(seed, period, substream))
}

/// The 32-bit word of sample `sample_idx` of one stream: `out[i % 4]` of
/// block `i / 4`.
#[inline]
pub fn word(seed: u64, site: u32, unit: u32, period: u32, substream: u32, sample_idx: u64) -> u32 {
    block_words(seed, site, unit, period, substream, sample_idx / 4)[(sample_idx % 4) as usize]
}

/// `u(k) = (k + 1) · 2^-32`, in `(0, 1]`, exact in f64.
#[inline(always)]
pub fn uniform_f64(k: u32) -> f64 {
    (f64::from(k) + 1.0) * (1.0 / 4_294_967_296.0)
}

/// A stream with `seed`, `site`, `unit` and `period` fixed; substream and
/// sample index vary per call. A convenience over [`block_words`] / [`word`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RngStream {
    /// The run seed (only the low 32 bits are used).
    pub seed: u64,
    /// The 32-bit noise-site hash.
    pub site: u32,
    /// Portfolio unit (0 outside portfolio models).
    pub unit: u32,
    /// Period (0 outside multi-period models), `< 2^16`.
    pub period: u32,
}

impl RngStream {
    /// A stream for `(seed, site)` with unit and period 0.
    pub fn new(seed: u64, site: u32) -> Self {
        RngStream {
            seed,
            site,
            unit: 0,
            period: 0,
        }
    }

    /// The four words of block `q` of `substream`.
    #[inline]
    pub fn block(&self, substream: u32, q: u64) -> [u32; 4] {
        block_words(self.seed, self.site, self.unit, self.period, substream, q)
    }

    /// The word of sample `sample_idx` of `substream`.
    #[inline]
    pub fn word(&self, substream: u32, sample_idx: u64) -> u32 {
        self.block(substream, sample_idx / 4)[(sample_idx % 4) as usize]
    }
}
