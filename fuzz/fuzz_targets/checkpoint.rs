//! Checkpoint reader: `train::checkpoint::Checkpoint::load(path)` (checksums, safetensors
//! header and metadata parsing, the F32-only check, byte-to-f32 conversion) on a file holding
//! the input, then `meta` and `get` on whatever loads, for present and absent names. Then the
//! input's first 5 bytes change one byte of a valid checkpoint (u32 LE position, modulo its
//! length; xor mask, 0 taken as 1), which must be refused naming the header or a tensor.
#![no_main]

mod common;

use std::sync::OnceLock;

use adaresnet::train::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

/// A small valid checkpoint's bytes: two tensors and metadata, as training writes them.
fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut ck = Checkpoint::default();
        ck.insert("a.weight", &[3, 4], (0..12).map(|i| i as f32).collect());
        ck.insert("b", &[5], vec![1.0; 5]);
        ck.meta.insert("step".into(), "7".into());
        ck.to_bytes().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("checkpoint").join("checkpoint.safetensors");
    std::fs::write(&path, data).unwrap();
    if let Ok(ck) = Checkpoint::load(&path) {
        let _ = ck.meta("step");
        let _ = ck.meta("epoch");
        for name in ck.tensors.keys() {
            let _ = ck.get(name);
        }
        let _ = ck.get("head.dense.weight");
        let _ = ck.get("no.such.tensor");
    }
    if let Some((at, [mask, ..])) = data.split_first_chunk::<4>() {
        let mut bad = valid().to_vec();
        let i = u32::from_le_bytes(*at) as usize % bad.len();
        bad[i] ^= (*mask).max(1);
        let err = match Checkpoint::from_bytes(&bad) {
            Ok(_) => panic!("byte {i} ^ {mask:#04x} changed, and the checkpoint was read"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("header") || err.contains("tensor '"),
            "byte {i}: {err}"
        );
    }
});
