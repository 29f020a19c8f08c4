//! The data layer: dataset formats read into raw u8 NCHW pixels, and seeded batching that
//! turns them into f32 batches. Knows nothing of the GPU (see docs/architecture.md, rooms).

pub mod augment;
pub mod batch;
pub mod cifar;
mod dataset;
mod error;
pub mod folder;
pub mod idx;
pub mod prefetch;

use std::path::Path;
use std::str::FromStr;

pub use augment::Augment;
pub use batch::{epoch_permutation, Batch, BatchConfig, Batcher, EpochIter};
pub use dataset::{ChannelStats, Dataset};
pub use error::{DataError, Result};
pub use folder::{ColorMode, FolderOptions};
pub use prefetch::Prefetcher;

/// The shipped MNIST subset (6000 train + 1000 test, see assets/README.md), so a default run
/// works offline from a checkout.
pub const SHIPPED_MNIST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn folder_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    pub fn other(self) -> Split {
        match self {
            Split::Train => Split::Test,
            Split::Test => Split::Train,
        }
    }
}

impl FromStr for Split {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" | "t10k" => Ok(Split::Test),
            _ => Err(DataError::Config(format!(
                "unknown split {s:?}; use train or test"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    Cifar10,
    Folder(FolderOptions),
}

impl FromStr for DatasetKind {
    type Err = DataError;
    /// `mnist`, `fashion-mnist`, `cifar10` or `folder` (RGB 32x32; set other options on the
    /// variant).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "folder" => Ok(DatasetKind::Folder(FolderOptions::default())),
            _ => Err(DataError::Config(format!(
                "unknown dataset {s:?}; use mnist, fashion-mnist, cifar10 or folder"
            ))),
        }
    }
}

/// Loads one split of a dataset from `path` (a folder holding the format's files).
pub fn load(kind: DatasetKind, path: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    let path = path.as_ref();
    match kind {
        DatasetKind::Mnist => idx::load(path, split, false),
        DatasetKind::FashionMnist => idx::load(path, split, true),
        DatasetKind::Cifar10 => cifar::load(path, split),
        DatasetKind::Folder(opts) => folder::load(path, split, &opts),
    }
}

/// Reads a whole file; a missing one is reported with the format's fix.
pub(crate) fn read_all(path: &Path, fix: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::read(path, e, fix))
}
