//! Seeded batching: the order of an epoch depends only on (seed, epoch), pixels become f32
//! per batch (/255, then optional per-channel normalisation), augmentation is opt-in.

use std::sync::Arc;

use super::augment::{below, keyed_rng, Augment, TAG_PERMUTATION};
use super::{ChannelStats, DataError, Dataset, Prefetcher, Result};

/// The shuffled order of `0..n` for one epoch: a Fisher-Yates shuffle driven by a ChaCha8
/// stream keyed by (seed, epoch). Our own shuffle rather than rand's, whose algorithm may
/// change between versions, so two runs (or two builds) can be checked to see the same data.
pub fn epoch_permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut rng = keyed_rng(TAG_PERMUTATION, seed, epoch, 0);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, below(&mut rng, i + 1));
    }
    order
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    pub batch_size: usize,
    pub seed: u64,
    /// Off for evaluation: dataset order, every epoch.
    pub shuffle: bool,
    /// Per-channel (x/255 - mean) / std; `None` leaves pixels at x/255.
    pub normalize: Option<ChannelStats>,
    /// `None` by default: augmentation is a training choice, never a surprise.
    pub augment: Option<Augment>,
}

impl BatchConfig {
    pub fn new(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            seed,
            shuffle: true,
            normalize: None,
            augment: None,
        }
    }
}

/// One batch: `images` is `len * channels * height * width` f32 in NCHW order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub len: usize,
    /// Which dataset images these are, so callers can check data order across runs.
    pub indices: Vec<usize>,
}

/// Builds the batches of any epoch of a dataset; cheap to clone (the data is shared).
#[derive(Debug, Clone)]
pub struct Batcher {
    data: Arc<Dataset>,
    cfg: BatchConfig,
    /// value[c][p]: the f32 for pixel byte p in channel c, so conversion is a table look-up.
    table: Arc<Vec<[f32; 256]>>,
}

impl Batcher {
    pub fn new(data: Arc<Dataset>, cfg: BatchConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(DataError::Config("batch size 0; use at least 1".into()));
        }
        let mut table = vec![[0f32; 256]; data.channels];
        for (row, (mean, std)) in table.iter_mut().zip(affine(&cfg, data.channels)?) {
            for (p, v) in row.iter_mut().enumerate() {
                *v = (p as f32 / 255.0 - mean) / std;
            }
        }
        Ok(Self {
            data,
            cfg,
            table: Arc::new(table),
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    pub fn config(&self) -> &BatchConfig {
        &self.cfg
    }

    pub fn batches_per_epoch(&self) -> usize {
        // The last partial batch is kept, so every image is seen once an epoch.
        self.data.n.div_ceil(self.cfg.batch_size)
    }

    /// The image order of `epoch`: the seeded permutation, or `0..n` without shuffling.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.cfg.shuffle {
            epoch_permutation(self.cfg.seed, epoch, self.data.n)
        } else {
            (0..self.data.n).collect()
        }
    }

    /// Batch number `b` of an epoch whose order is `order` (from `self.order(epoch)`).
    pub fn batch(&self, epoch: u64, order: &[usize], b: usize) -> Batch {
        let bs = self.cfg.batch_size;
        let indices = order[b * bs..((b + 1) * bs).min(order.len())].to_vec();
        let d = &*self.data;
        let (len, plane) = (d.image_len(), d.height * d.width);
        let mut images = Vec::with_capacity(indices.len() * len);
        let mut scratch = vec![0u8; len];
        for &i in &indices {
            let px = match &self.cfg.augment {
                None => d.image(i),
                Some(a) => {
                    a.apply(
                        d.image(i),
                        &mut scratch,
                        (d.height, d.width),
                        (self.cfg.seed, epoch, i as u64),
                    );
                    &scratch
                }
            };
            for (c, chan) in px.chunks_exact(plane.max(1)).enumerate() {
                let t = &self.table[c];
                images.extend(chan.iter().map(|&p| t[p as usize]));
            }
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| d.labels[i]).collect(),
            len: indices.len(),
            indices,
        }
    }

    /// The batches of `epoch`, built on the calling thread.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        EpochIter {
            order: self.order(epoch),
            batcher: self.clone(),
            epoch,
            next: 0,
        }
    }

    /// The batches of `epoch`, each built on a background thread while the previous one is
    /// in use; yields exactly what `epoch` yields.
    pub fn prefetch(&self, epoch: u64) -> Prefetcher {
        Prefetcher::new(self.epoch(epoch))
    }
}

/// (mean, std) per channel: the normalisation's, or (0, 1) for plain pixels/255.
fn affine(cfg: &BatchConfig, channels: usize) -> Result<Vec<(f32, f32)>> {
    let Some(s) = &cfg.normalize else {
        return Ok(vec![(0.0, 1.0); channels]);
    };
    let ok = s.mean.len() == channels
        && s.std.len() == channels
        && s.mean.iter().all(|m| m.is_finite())
        && s.std.iter().all(|d| d.is_finite() && *d > 0.0);
    if !ok {
        return Err(DataError::Config(format!(
            "normalisation needs a finite mean and positive std for each of the {channels} \
             channels; got mean {:?} std {:?}",
            s.mean, s.std
        )));
    }
    Ok(s.mean.iter().copied().zip(s.std.iter().copied()).collect())
}

/// Synchronous iterator over one epoch's batches.
pub struct EpochIter {
    batcher: Batcher,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
}

impl Iterator for EpochIter {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.batcher.batches_per_epoch() {
            return None;
        }
        let b = self.batcher.batch(self.epoch, &self.order, self.next);
        self.next += 1;
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batcher.batches_per_epoch() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter {}
