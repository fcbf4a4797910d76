//! The reduction-block layout: how the sample index space is cut into the
//! fixed blocks that reductions are made of.
//!
//! Blocks depend on `n_samples` alone, never on chunk size, thread count,
//! shard layout or backend, so reducing each block in sample order and
//! merging blocks in block order gives bit-identical statistics everywhere.
//! The block size is a power of two between 1,024 and 65,536, chosen so that
//! a run has at least 64 blocks when it can (batch-means standard errors need
//! enough blocks) and at most 65,536-sample blocks (per-block partials stay
//! small even at 10⁹ samples: about 15,000 blocks).

/// Smallest and largest reduction block.
pub const MIN_BLOCK: u64 = 1024;
pub const MAX_BLOCK: u64 = 65_536;
/// Blocks a run aims for, for batch means.
pub const TARGET_BLOCKS: u64 = 64;

/// The block structure of a run of `n_samples` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    pub n_samples: u64,
    pub block_size: u64,
}

impl BlockLayout {
    /// The canonical layout for `n_samples`.
    pub fn for_samples(n_samples: u64) -> Self {
        let want = n_samples.div_ceil(TARGET_BLOCKS).max(1);
        let block_size = want.next_power_of_two().clamp(MIN_BLOCK, MAX_BLOCK);
        BlockLayout {
            n_samples,
            block_size,
        }
    }

    /// A layout with an explicit block size (a power of two, multiple of 64).
    pub fn with_block_size(n_samples: u64, block_size: u64) -> Self {
        assert!(
            block_size.is_power_of_two() && block_size >= 64,
            "invariant: block size is a power of two >= 64"
        );
        BlockLayout {
            n_samples,
            block_size,
        }
    }

    pub fn n_blocks(&self) -> u64 {
        self.n_samples.div_ceil(self.block_size)
    }

    /// Sample index range of block `b`.
    pub fn block_range(&self, b: u64) -> std::ops::Range<u64> {
        let start = b * self.block_size;
        start..(start + self.block_size).min(self.n_samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_follow_n() {
        assert_eq!(BlockLayout::for_samples(10).block_size, 1024);
        assert_eq!(BlockLayout::for_samples(100_000).block_size, 2048);
        assert_eq!(BlockLayout::for_samples(1_000_000).block_size, 16_384);
        assert_eq!(BlockLayout::for_samples(1_000_000_000).block_size, 65_536);
        let l = BlockLayout::for_samples(100_000);
        assert_eq!(l.n_blocks(), 49);
        assert_eq!(l.block_range(48), 98_304..100_000);
    }
}
