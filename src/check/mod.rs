//! GPU-against-reference checks shared by the test suite and `adaresnet check-grads`.
//!
//! A check runs one op's GPU forward and backward on seeded inputs, runs the f64 CPU twin on
//! the same (f32-rounded) inputs, and keeps every tensor so the comparison can be printed as a
//! table, asserted in a test, or dumped as `.npy` files for NumPy/PyTorch/JAX.

pub mod batchnorm;
pub mod conv2d;
pub mod dump;
pub mod elementwise;
pub mod finite_diff;
pub mod linear;
pub mod loss;
pub mod model;
pub mod network;
pub mod npy;
pub mod optim;
pub mod pool;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::gpu::{Dispatch, Gpu};
use crate::ops::compare::{compare, Comparison, Tol};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Forward,
    Backward,
}

/// A tensor fed to both sides (an input, a parameter or the upstream gradient).
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One compared output: the GPU result, the reference and their comparison.
#[derive(Clone, Debug)]
pub struct Output {
    pub pass: Pass,
    pub name: String,
    pub shape: Vec<usize>,
    pub gpu: Vec<f32>,
    pub reference: Vec<f64>,
    pub cmp: Comparison,
}

/// Everything one op check produced.
#[derive(Clone, Debug)]
pub struct OpCheck {
    /// Op name with the case, e.g. `conv2d[3x3/2]` or a layer name for whole-model checks.
    pub op: String,
    pub attrs: Value,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
}

impl OpCheck {
    pub fn new(op: impl Into<String>, attrs: Value) -> Self {
        Self {
            op: op.into(),
            attrs,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.outputs.iter().all(|o| o.cmp.ok)
    }

    /// Records a compared output.
    pub fn output(
        &mut self,
        pass: Pass,
        name: &str,
        shape: &[usize],
        gpu: Vec<f32>,
        reference: Vec<f64>,
        tol: Tol,
    ) {
        let cmp = compare(&gpu, &reference, tol);
        self.outputs.push(Output {
            pass,
            name: name.into(),
            shape: shape.to_vec(),
            gpu,
            reference,
            cmp,
        });
    }

    /// Panics naming every failing tensor and its worst element (for tests).
    #[track_caller]
    pub fn assert_ok(&self) {
        let failures: Vec<String> = self
            .outputs
            .iter()
            .filter(|o| !o.cmp.ok)
            .map(|o| format!("  {} {:?} {}: {}", self.op, o.pass, o.name, o.cmp))
            .collect();
        assert!(
            failures.is_empty(),
            "{} attrs {}:\n{}",
            self.op,
            self.attrs,
            failures.join("\n")
        );
    }
}

/// Seeded input generation and upload shared by the checks.
pub struct Inputs<'g> {
    pub gpu: &'g Gpu,
    rng: rand_chacha::ChaCha8Rng,
}

impl<'g> Inputs<'g> {
    pub fn new(gpu: &'g Gpu, seed: u64) -> Self {
        Self {
            gpu,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Uniform values in [lo, hi), f32-rounded; recorded in `check` for the dump and returned
    /// as (f64 for the reference, GPU buffer).
    pub fn uniform(
        &mut self,
        check: &mut OpCheck,
        name: &str,
        shape: &[usize],
        lo: f32,
        hi: f32,
    ) -> (Vec<f64>, wgpu::Buffer) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        self.given(check, name, shape, data)
    }

    /// A given tensor (e.g. a constructed one), recorded and uploaded like `uniform`'s.
    pub fn given(
        &mut self,
        check: &mut OpCheck,
        name: &str,
        shape: &[usize],
        data: Vec<f32>,
    ) -> (Vec<f64>, wgpu::Buffer) {
        let buf = self.gpu.upload(name, &data);
        let f64s = data.iter().map(|&v| v as f64).collect();
        check.inputs.push(Input {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        });
        (f64s, buf)
    }

    pub fn rng(&mut self) -> &mut rand_chacha::ChaCha8Rng {
        &mut self.rng
    }
}

/// Runs `dispatches` and downloads each of `outputs` (buffer, element count).
pub fn run_and_read(
    gpu: &Gpu,
    dispatches: Vec<Dispatch>,
    outputs: &[(&wgpu::Buffer, usize)],
) -> Result<Vec<Vec<f32>>> {
    gpu.run_dispatches(dispatches)?;
    outputs.iter().map(|(b, n)| gpu.download(b, *n)).collect()
}
