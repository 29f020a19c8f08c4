//! MNIST IDX reader on gzipped files: `data::idx::load(dir, Train, true)` finds
//! `train-images-idx3-ubyte.gz` and `train-labels-idx1-ubyte.gz` (no raw files exist) and
//! gunzips them, so the input bytes go through flate2's decoder before the IDX checks.
//! Input: a 4-byte little-endian length L, L bytes of the images .gz, then the labels .gz.
#![no_main]

mod common;

use adaresnet::data::{idx, Split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (images, labels) = common::length_prefixed(data).unwrap_or((data, &[]));
    let d = common::scratch("idx_gz");
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), images).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte.gz"), labels).unwrap();
    let _ = idx::load(d, Split::Train, true);
});
