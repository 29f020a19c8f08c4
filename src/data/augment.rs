//! Training-time augmentation on raw u8 pixels: random crop with zero padding and horizontal
//! flip. Each image's draw comes from its own generator keyed by (seed, epoch, dataset
//! index), so it does not depend on batch size, batch position or which thread builds it.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keeps the permutation and augmentation streams apart for the same (seed, epoch).
pub(crate) const TAG_PERMUTATION: u64 = 0x7065_726d; // "perm"
pub(crate) const TAG_AUGMENT: u64 = 0x6175_676d; // "augm"

/// A generator whose whole stream is fixed by its four keys. ChaCha's output for a given
/// key is stable across rand_chacha versions, unlike rand's distribution helpers.
pub(crate) fn keyed_rng(tag: u64, seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, word) in [tag, seed, epoch, index].iter().enumerate() {
        key[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..bound` by multiply-high; its bias, bound / 2^64, is negligible.
pub(crate) fn below(rng: &mut ChaCha8Rng, bound: usize) -> usize {
    ((rng.next_u64() as u128 * bound as u128) >> 64) as usize
}

/// The standard CIFAR recipe: pad by `pad` zero pixels, crop back to size at a random
/// offset, and mirror left-right with probability 1/2 when `flip` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    pub pad: usize,
    pub flip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Self { pad: 4, flip: true }
    }
}

impl Augment {
    /// Writes the augmented `src` (CHW, `channels` planes of `height` x `width`) into `dst`.
    pub fn apply(
        &self,
        src: &[u8],
        dst: &mut [u8],
        (height, width): (usize, usize),
        (seed, epoch, index): (u64, u64, u64),
    ) {
        let mut rng = keyed_rng(TAG_AUGMENT, seed, epoch, index);
        // Offsets in 0..=2*pad, shifted by -pad: a crop window of the padded image.
        let dy = below(&mut rng, 2 * self.pad + 1) as isize - self.pad as isize;
        let dx = below(&mut rng, 2 * self.pad + 1) as isize - self.pad as isize;
        let flip = self.flip && rng.next_u32() & 1 == 1;
        let plane = height * width;
        for (s, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
            for y in 0..height {
                for x in 0..width {
                    let xo = if flip { width - 1 - x } else { x };
                    let (sy, sx) = (y as isize + dy, xo as isize + dx);
                    let inside =
                        (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx);
                    d[y * width + x] = if inside {
                        s[sy as usize * width + sx as usize]
                    } else {
                        0 // the zero padding: black in pixel space, before normalising
                    };
                }
            }
        }
    }
}
