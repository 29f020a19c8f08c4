//! MNIST and Fashion-MNIST in IDX format, raw or gzipped: a big-endian header (magic, count,
//! and for images rows and columns) followed by one unsigned byte per pixel or label.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{one_line, DataError, Result, FIX_IDX};
use super::{read_all, Dataset, Split};

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;
const CLASSES: usize = 10;

/// Fashion-MNIST's label names; MNIST's are the digits.
const FASHION: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Loads a split from `dir`; `fashion` only changes the class names, the files are alike.
pub fn load(dir: &Path, split: Split, fashion: bool) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (n, rows, cols, images) = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            path: images_path,
            labels: labels.len(),
            labels_path,
            images: n,
            fix: FIX_IDX,
        });
    }
    let class_names = if fashion {
        FASHION.iter().map(|s| s.to_string()).collect()
    } else {
        (0..CLASSES).map(|d| d.to_string()).collect()
    };
    Ok(Dataset {
        images,
        labels,
        n,
        channels: 1,
        height: rows,
        width: cols,
        classes: CLASSES,
        class_names,
    })
}

/// `dir/name` if it exists, else `dir/name.gz`; neither is a `Missing` naming both.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(DataError::Missing {
            path: dir.join(format!("{name}[.gz]")),
            fix: FIX_IDX,
        })
    }
}

/// The file's bytes, gunzipped when its name ends in `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_all(path, FIX_IDX)?;
    if path.extension().is_none_or(|e| e != "gz") {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!("not valid gzip ({})", one_line(e)),
            fix: FIX_IDX,
        })?;
    Ok(out)
}

fn be_u32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Checks the magic and that the file is exactly the header plus the `body` bytes that the
/// header promises, so a short download is caught before any pixel is read.
fn check(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    what: &'static str,
    header_words: usize,
    body: impl Fn(&[u8]) -> usize,
) -> Result<()> {
    let header = 4 * header_words;
    let truncated = |detail: String| DataError::Truncated {
        path: path.to_path_buf(),
        detail,
        fix: FIX_IDX,
    };
    let short_header = || {
        truncated(format!(
            "{} bytes is shorter than the {header}-byte header",
            bytes.len()
        ))
    };
    if bytes.len() < 4 {
        return Err(short_header());
    }
    if be_u32(bytes, 0) != magic {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            found: be_u32(bytes, 0),
            expected: magic,
            what,
            fix: FIX_IDX,
        });
    }
    if bytes.len() < header {
        return Err(short_header());
    }
    let want = header.saturating_add(body(bytes));
    let detail = format!("{} bytes, but the header promises {want}", bytes.len());
    if bytes.len() < want {
        return Err(truncated(detail));
    }
    if bytes.len() > want {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!("too long: {detail}"),
            fix: FIX_IDX,
        });
    }
    Ok(())
}

/// (count, rows, cols, pixels) of an images file.
fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let mut bytes = read_maybe_gz(path)?;
    let dims = |b: &[u8]| [1, 2, 3].map(|i| be_u32(b, i) as usize);
    // Saturating: a corrupt header must read as "truncated", not overflow.
    check(path, &bytes, IMAGES_MAGIC, "IDX images", 4, |b| {
        dims(b).iter().fold(1usize, |a, &d| a.saturating_mul(d))
    })?;
    let [n, rows, cols] = dims(&bytes);
    bytes.drain(..16);
    Ok((n, rows, cols, bytes))
}

fn read_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_maybe_gz(path)?;
    check(path, &bytes, LABELS_MAGIC, "IDX labels", 2, |b| {
        be_u32(b, 1) as usize
    })?;
    let mut labels = Vec::with_capacity(bytes.len() - 8);
    for (index, &l) in bytes[8..].iter().enumerate() {
        if l as usize >= CLASSES {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: l as u32,
                classes: CLASSES,
                fix: FIX_IDX,
            });
        }
        labels.push(l as u32);
    }
    Ok(labels)
}
