//! What the targets share: a scratch folder per target and process, and the split of one
//! input into two files by a length prefix. Included with `mod common;` (not a target).

#![allow(dead_code)] // each target uses part of it

use std::path::PathBuf;
use std::sync::OnceLock;

/// `$TMPDIR/adaresnet-fuzz-<target>-<pid>`, created once (each target binary names one).
pub fn scratch(target: &str) -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("adaresnet-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// A 4-byte little-endian length L, then L bytes (clamped to what is there), then the rest;
/// `None` when the input is shorter than the prefix.
pub fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    Some(rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len())))
}
