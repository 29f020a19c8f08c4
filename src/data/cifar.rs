//! CIFAR-10, binary version: records of 1 label byte + 3072 pixel bytes (1024 R, then G,
//! then B, each 32x32 row-major), which is already CHW, so records copy straight into NCHW.

use std::path::{Path, PathBuf};

use super::error::{DataError, Result, FIX_CIFAR};
use super::{read_all, Dataset, Split};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const CLASSES: usize = 10;
const NAMES: [&str; CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The files of a split, in the order their records are concatenated.
pub fn split_files(dir: &Path, split: Split) -> Vec<PathBuf> {
    match split {
        Split::Train => (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test => vec![dir.join("test_batch.bin")],
    }
}

/// Loads a split from `dir`, or from `dir/cifar-10-batches-bin` (where the tarball extracts).
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.is_dir() { &nested } else { dir };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in split_files(dir, split) {
        let bytes = read_all(&path, FIX_CIFAR)?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::Truncated {
                detail: format!(
                    "{} bytes is not a positive multiple of the {RECORD}-byte record",
                    bytes.len()
                ),
                path,
                fix: FIX_CIFAR,
            });
        }
        images.reserve(bytes.len() / RECORD * PIXELS);
        for (index, rec) in bytes.chunks_exact(RECORD).enumerate() {
            let label = rec[0] as u32;
            if label as usize >= CLASSES {
                return Err(DataError::LabelOutOfRange {
                    path,
                    index,
                    label,
                    classes: CLASSES,
                    fix: FIX_CIFAR,
                });
            }
            labels.push(label);
            images.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        n: labels.len(),
        images,
        labels,
        channels: 3,
        height: SIDE,
        width: SIDE,
        classes: CLASSES,
        class_names: class_names(dir)?,
    })
}

/// Names from `batches.meta.txt` (one per line) when present, else the published ones.
fn class_names(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("batches.meta.txt");
    if !path.exists() {
        return Ok(NAMES.iter().map(|s| s.to_string()).collect());
    }
    let bytes = read_all(&path, FIX_CIFAR)?;
    let names: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != CLASSES {
        return Err(DataError::Invalid {
            path,
            problem: format!("{} class names, expected {CLASSES}", names.len()),
            fix: FIX_CIFAR,
        });
    }
    Ok(names)
}
