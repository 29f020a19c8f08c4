//! Image folders: `DIR/<class>/*.png|jpg|jpeg`, one folder per class, classes in sorted
//! order. With `DIR/train/` or `DIR/test/` the split picks one; without them the whole
//! folder is the only split, and the caller gets it for either `Split` (see `has_splits`).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::error::{one_line, DataError, Result, FIX_FOLDER};
use super::{Dataset, Split};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    Rgb,
    Gray,
}

/// How decoded images become tensors: every image is converted and resized to one shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FolderOptions {
    pub color: ColorMode,
    pub height: usize,
    pub width: usize,
    /// The `image` crate's resampling filter; Triangle (bilinear) by default, a fair
    /// trade between aliasing and speed when shrinking photos to 32x32.
    pub filter: FilterType,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            color: ColorMode::Rgb,
            height: 32,
            width: 32,
            filter: FilterType::Triangle,
        }
    }
}

/// Whether `dir` has `train/` or `test/` subfolders (else it is one split).
pub fn has_splits(dir: &Path) -> bool {
    dir.join("train").is_dir() || dir.join("test").is_dir()
}

pub fn load(dir: &Path, split: Split, opts: &FolderOptions) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            fix: FIX_FOLDER,
        });
    }
    if opts.height == 0 || opts.width == 0 {
        return Err(DataError::Config(format!(
            "image size {}x{} is empty; give a height and width of at least 1",
            opts.height, opts.width
        )));
    }
    if !has_splits(dir) {
        return load_classes(dir, opts);
    }
    let this = dir.join(split.folder_name());
    if !this.is_dir() {
        return Err(DataError::Missing {
            path: this,
            fix: "add it with the same class folders as its sibling split",
        });
    }
    let data = load_classes(&this, opts)?;
    // Labels are positions in the sorted class list, so both splits must list the same
    // classes or label 3 would mean different things in train and test.
    let other = dir.join(split.other().folder_name());
    if !other.is_dir() {
        return Ok(data);
    }
    let other_names = class_dirs(&other)?;
    let other_names: Vec<_> = other_names.iter().map(|(n, _)| n).collect();
    if other_names != data.class_names.iter().collect::<Vec<_>>() {
        return Err(DataError::Invalid {
            path: this,
            problem: format!(
                "class folders {:?} differ from {}'s {:?}",
                data.class_names,
                other.display(),
                other_names
            ),
            fix: "give train/ and test/ the same class folders",
        });
    }
    Ok(data)
}

/// Sorted (name, path) of the non-hidden subfolders of `dir`.
fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::read(dir, e, FIX_FOLDER))? {
        let path = entry
            .map_err(|e| DataError::read(dir, e, FIX_FOLDER))?
            .path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path.is_dir() && !name.starts_with('.') {
            out.push((name, path));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(DataError::NoClasses {
            path: dir.to_path_buf(),
        });
    }
    Ok(out)
}

/// Sorted image files of one class folder, so the dataset order is the same on every OS.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::read(dir, e, FIX_FOLDER))? {
        let path = entry
            .map_err(|e| DataError::read(dir, e, FIX_FOLDER))?
            .path();
        let ext = path.extension().map(|e| e.to_ascii_lowercase());
        let is_image = ext.is_some_and(|e| e == "png" || e == "jpg" || e == "jpeg");
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::EmptyClass {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

fn load_classes(dir: &Path, opts: &FolderOptions) -> Result<Dataset> {
    let classes = class_dirs(dir)?;
    let channels = match opts.color {
        ColorMode::Rgb => 3,
        ColorMode::Gray => 1,
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (label, (_, class_dir)) in classes.iter().enumerate() {
        for file in image_files(class_dir)? {
            images.extend(decode(&file, opts)?);
            labels.push(label as u32);
        }
    }
    Ok(Dataset {
        images,
        n: labels.len(),
        labels,
        channels,
        height: opts.height,
        width: opts.width,
        classes: classes.len(),
        class_names: classes.into_iter().map(|(n, _)| n).collect(),
    })
}

/// One image file as CHW bytes of the requested color mode and size (also what `predict` reads).
pub fn decode(path: &Path, opts: &FolderOptions) -> Result<Vec<u8>> {
    let bad = |reason: String| DataError::Decode {
        path: path.to_path_buf(),
        reason: one_line(reason),
    };
    // Guessing from the content, not the extension, reads a PNG saved as .jpg too.
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::read(path, e, FIX_FOLDER))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .decode()
        .map_err(|e| bad(e.to_string()))?;
    let (w, h) = (opts.width as u32, opts.height as u32);
    let hwc = match opts.color {
        ColorMode::Rgb => {
            let rgb = img.to_rgb8();
            let rgb = if rgb.dimensions() == (w, h) {
                rgb
            } else {
                image::imageops::resize(&rgb, w, h, opts.filter)
            };
            rgb.into_raw()
        }
        ColorMode::Gray => {
            let gray = img.to_luma8();
            let gray = if gray.dimensions() == (w, h) {
                gray
            } else {
                image::imageops::resize(&gray, w, h, opts.filter)
            };
            gray.into_raw()
        }
    };
    Ok(hwc_to_chw(&hwc, opts.height * opts.width))
}

fn hwc_to_chw(hwc: &[u8], plane: usize) -> Vec<u8> {
    let channels = hwc.len() / plane.max(1);
    let mut chw = vec![0u8; hwc.len()];
    for (p, px) in hwc.chunks_exact(channels.max(1)).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            chw[c * plane + p] = v;
        }
    }
    chw
}
