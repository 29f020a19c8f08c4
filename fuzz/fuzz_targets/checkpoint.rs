//! Checkpoint reader: `train::checkpoint::Checkpoint::load(path)` (safetensors header and
//! metadata parsing, the F32-only check, byte-to-f32 conversion) on a file holding the
//! input, then `meta` and `get` on whatever loads, for present and absent names.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use adaresnet::train::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("adaresnet-fuzz-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("checkpoint.safetensors")
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).unwrap();
    if let Ok(ck) = Checkpoint::load(path()) {
        let _ = ck.meta("step");
        let _ = ck.meta("epoch");
        for name in ck.tensors.keys() {
            let _ = ck.get(name);
        }
        let _ = ck.get("head.dense.weight");
        let _ = ck.get("no.such.tensor");
    }
});
