//! CIFAR-10 binary reader: `data::cifar::load(dir, Test)` on `test_batch.bin` (1-byte label
//! + 3072 pixels per record) and the optional `batches.meta.txt` class names.
//! Input: a flags byte (bit 0: write batches.meta.txt, bit 1: put the files in the nested
//! `cifar-10-batches-bin/` folder), a 4-byte little-endian length L, L bytes of
//! test_batch.bin (clamped), then batches.meta.txt.
#![no_main]

mod common;

use adaresnet::data::{cifar, Split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((batch, meta)) = common::length_prefixed(rest) else { return };
    let base = common::scratch("cifar");
    let nested = base.join("cifar-10-batches-bin");
    let files = if flags & 2 != 0 {
        std::fs::create_dir_all(&nested).unwrap();
        nested
    } else {
        let _ = std::fs::remove_dir_all(&nested);
        base.clone()
    };
    std::fs::write(files.join("test_batch.bin"), batch).unwrap();
    let meta_path = files.join("batches.meta.txt");
    if flags & 1 != 0 {
        std::fs::write(&meta_path, meta).unwrap();
    } else {
        let _ = std::fs::remove_file(&meta_path);
    }
    let _ = cifar::load(base, Split::Test);
});
