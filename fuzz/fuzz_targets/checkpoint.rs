//! Checkpoint reader: `train::checkpoint::Checkpoint::load(path)` (safetensors header and
//! metadata parsing, the F32-only check, byte-to-f32 conversion) on a file holding the
//! input, then `meta` and `get` on whatever loads, for present and absent names.
#![no_main]

mod common;

use adaresnet::train::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

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
});
