//! Initial values of parameters and state. Each tensor draws from its own random stream,
//! keyed by the run seed and the tensor's name, so models that differ only in their residual
//! mode start every shared layer from identical values.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{Graph, Init, TensorId};

/// FNV-1a: a hash that stays the same across Rust versions (std's does not promise that).
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn values(init: Init, len: usize, seed: u64, name: &str) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stable_hash(name));
    match init {
        Init::Zeros => vec![0.0; len],
        Init::Ones => vec![1.0; len],
        Init::Const(k) => vec![k; len],
        Init::Normal(sigma) => normal(&mut rng, len, sigma),
        Init::GlorotUniform { fan_in, fan_out } => {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..len).map(|_| rng.random_range(-limit..limit)).collect()
        }
        Init::HeNormal { fan_in } => normal(&mut rng, len, (2.0 / fan_in as f64).sqrt() as f32),
    }
}

fn normal(rng: &mut ChaCha8Rng, len: usize, sigma: f32) -> Vec<f32> {
    if sigma == 0.0 {
        return vec![0.0; len];
    }
    let d = Normal::new(0.0f32, sigma).expect("sigma is finite and positive");
    (0..len).map(|_| d.sample(rng)).collect()
}

/// Every parameter and state tensor of `g` with its starting value.
pub fn initial_values(g: &Graph, seed: u64) -> Vec<(TensorId, Vec<f32>)> {
    g.tensors
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.init
                .map(|init| (TensorId(i), values(init, t.len(), seed, &t.name)))
        })
        .collect()
}
