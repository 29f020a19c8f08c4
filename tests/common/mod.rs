//! Shared test helpers: the adapter (a test never skips without one), seeded inputs.
#![allow(dead_code)]

use adaresnet::gpu::Gpu;
use rand::{Rng, SeedableRng};

/// The GPU every test uses. Without an adapter the test fails, saying how to get one.
pub fn gpu() -> Gpu {
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
