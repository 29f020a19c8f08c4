//! The in-memory dataset: raw u8 pixels in NCHW order, converted to f32 per batch so a
//! 50 000-image CIFAR-10 train split costs 150 MB rather than 600 MB.

/// Images and labels of one split. `images` holds `n * channels * height * width` bytes,
/// image-major then channel, row, column (NCHW).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub class_names: Vec<String>,
}

/// Per-channel mean and standard deviation in the pixels/255 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Dataset {
    /// Bytes (and f32 values) per image: channels * height * width.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The raw pixels of image `i`, CHW.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// How many images each class has, indexed by label.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new dataset of the given images, in the given order (e.g. to carve a validation set).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n: indices.len(),
            class_names: self.class_names.clone(),
            ..*self
        }
    }

    /// Mean and std of each channel over every pixel, for normalising with training-set
    /// statistics. Accumulated in f64 because CIFAR-10 sums 51 million values per channel.
    pub fn channel_stats(&self) -> ChannelStats {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut sq = vec![0f64; self.channels];
        for img in self.images.chunks_exact(self.image_len().max(1)) {
            for (c, px) in img.chunks_exact(plane.max(1)).enumerate() {
                for &p in px {
                    let v = p as f64 / 255.0;
                    sum[c] += v;
                    sq[c] += v * v;
                }
            }
        }
        let count = (self.n * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / count - m * m).max(0.0).sqrt() as f32)
            .collect();
        ChannelStats {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }
}
