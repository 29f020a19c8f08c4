//! The measurement cache: what was measured on an adapter (the kernel style, per-shape conv
//! timings, the matmul ceiling), kept in `measurements.json` under `cache_dir` and keyed by
//! adapter, driver, features and shader hash, so that a new driver or new kernels mean a new
//! measurement and every other run starts at once.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Gpu;

/// What, on which adapter and driver, with which shaders: a new driver or kernel means a new
/// measurement.
pub fn cache_key(gpu: &Gpu, what: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, source) in super::kernels::SHADERS {
        for b in source.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // The device's features too: with subgroups masked the measurement is another one.
    format!(
        "{what} | {:?} | {} | {} {} | features {:?} | shaders {h:016x}",
        gpu.info.backend,
        gpu.info.name,
        gpu.info.driver,
        gpu.info.driver_info,
        gpu.device.features(),
    )
}

static CACHE_DIR_OVERRIDE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Puts this process's measurement cache in `dir`, ahead of `ADARESNET_CACHE_DIR`: for a
/// program embedding the engine (and the tests), without changing the environment, which
/// other threads may be reading. The first call wins.
pub fn set_cache_dir(dir: impl Into<PathBuf>) {
    let _ = CACHE_DIR_OVERRIDE.set(dir.into());
}

/// `set_cache_dir`'s folder, else `ADARESNET_CACHE_DIR`, else `$XDG_CACHE_HOME/adaresnet`,
/// else `~/.cache/adaresnet` (`%LOCALAPPDATA%\adaresnet` on Windows).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = CACHE_DIR_OVERRIDE.get() {
        return Some(dir.clone());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("ADARESNET_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("adaresnet")))
        .or_else(|| env("LOCALAPPDATA").map(|d| d.join("adaresnet")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("adaresnet")))
}

fn cache_file() -> Option<PathBuf> {
    cache_dir().map(|d| d.join("measurements.json"))
}

type CacheMap = std::collections::BTreeMap<String, serde_json::Value>;

fn read_map() -> CacheMap {
    cache_file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// A measurement cached under `key` (see `cache_key`); unreadable files count as empty.
pub fn cache_get(key: &str) -> Option<serde_json::Value> {
    read_map().remove(key)
}

/// Caches a measurement, keeping the others in the file.
pub fn cache_put(key: &str, value: serde_json::Value) -> Result<()> {
    let file = cache_file().context("no cache directory (set ADARESNET_CACHE_DIR)")?;
    let dir = file.parent().expect("the cache file is inside a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut map = read_map();
    map.insert(key.to_string(), value);
    // Another process may write the same file: a rename keeps every reader's view whole.
    let tmp = dir.join(format!("measurements.json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(&map)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}
