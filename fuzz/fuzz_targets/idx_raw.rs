//! MNIST IDX reader on raw files: `data::idx::load(dir, Train, false)` reads
//! `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, both taken from the input:
//! a 4-byte little-endian length L, then L bytes of images (clamped), then the labels.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use adaresnet::data::{idx, Split};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("adaresnet-fuzz-idx_raw-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return (data, &[]);
    };
    rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len()))
}

fuzz_target!(|data: &[u8]| {
    let (images, labels) = split(data);
    let d = dir();
    std::fs::write(d.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), labels).unwrap();
    let _ = idx::load(d, Split::Train, false);
});
