//! MNIST IDX reader on raw files: `data::idx::load(dir, Train, false)` reads
//! `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, both taken from the input:
//! a 4-byte little-endian length L, then L bytes of images (clamped), then the labels.
#![no_main]

mod common;

use adaresnet::data::{idx, Split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (images, labels) = common::length_prefixed(data).unwrap_or((data, &[]));
    let d = common::scratch("idx_raw");
    std::fs::write(d.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), labels).unwrap();
    let _ = idx::load(d, Split::Train, false);
});
