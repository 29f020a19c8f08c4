//! What the tests share: the adapter (a test never skips without one), seeded inputs.
#![allow(dead_code)]

use adaresnet::gpu::Gpu;
use adaresnet::model::{Preset, ResidualMode};
use adaresnet::train::TrainConfig;
use rand::{Rng, SeedableRng};

/// Where every test keeps the measurement cache (kernel choice, matmul ceiling): cargo's own
/// scratch folder for integration tests, inside `target/`, so no test reads or writes the
/// user's `~/.cache/adaresnet`.
pub const CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/adaresnet-cache");

/// A test's scratch path: `name` inside a fresh temporary folder, not yet created (as a run
/// directory a command is about to make). The folder and all in it go when this is dropped,
/// whether the test passed or panicked.
pub struct Scratch {
    _root: tempfile::TempDir,
    path: std::path::PathBuf,
}

pub fn scratch(name: &str) -> Scratch {
    let root = tempfile::Builder::new()
        .prefix("adaresnet-test-")
        .tempdir()
        .expect("a temporary folder can be made");
    let path = root.path().join(name);
    Scratch { _root: root, path }
}

impl Scratch {
    /// The path as a command-line argument.
    pub fn as_str(&self) -> &str {
        self.path.to_str().expect("temporary paths are UTF-8 here")
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.path
    }
}

/// The GPU every test uses. Without an adapter the test fails, saying how to get one.
pub fn gpu() -> Gpu {
    adaresnet::gpu::cache::set_cache_dir(CACHE_DIR);
    match Gpu::from_env() {
        Ok(g) => g,
        Err(e) => panic!(
            "GPU tests need a wgpu adapter and found none ({e:#}). On Linux without a GPU run \
             `apt-get update && apt-get install -y mesa-vulkan-drivers` (lavapipe)."
        ),
    }
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1), rounded to f32 so GPU and reference see identical inputs.
pub fn uniform(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) as f64)
        .collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Runs the `adaresnet` binary with extra environment variables; returns its exit code and
/// stdout followed by stderr. `XDG_RUNTIME_DIR` keeps Mesa from warning about a missing one.
pub fn adaresnet_bin(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adaresnet"))
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("ADARESNET_CACHE_DIR", CACHE_DIR)
        .output()
        .expect("the adaresnet binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Runs the binary, which must refuse: exit code 1, exactly one `error:` line, which
/// mentions `needle`, and no panic. Returns that line.
pub fn refused_with(env: &[(&str, &str)], args: &[&str], needle: &str) -> String {
    let (code, text) = adaresnet_bin(env, args);
    assert_eq!(code, Some(1), "{args:?} exit code:\n{text}");
    assert!(!text.contains("panicked"), "{args:?} panicked:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line:\n{text}");
    assert!(
        errors[0].contains(needle),
        "{args:?}: '{needle}' not in {}",
        errors[0]
    );
    errors[0].to_string()
}

/// resnet8 (Ada2) with Adam on the shipped MNIST subset, batch 32: the small run several
/// tests start from and adjust with struct-update syntax.
pub fn mnist_run(epochs: usize, seed: u64, train_limit: usize, test_limit: usize) -> TrainConfig {
    TrainConfig {
        dataset: "mnist".into(),
        data: adaresnet::data::SHIPPED_MNIST_DIR.into(),
        preset: Preset::Resnet8,
        residual: ResidualMode::Ada2,
        optimizer: "adam".into(),
        lr: 2e-3,
        momentum: 0.9,
        weight_decay: 0.0,
        batch: 32,
        epochs,
        seed,
        augment: false,
        normalize: false,
        train_limit,
        test_limit,
        fuse_residual_relu: true,
        bn_momentum: None,
        test_split: 0.1,
        lr_schedule: Default::default(),
    }
}
