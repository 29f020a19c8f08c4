//! Whole-model check: the same training graph through the GPU executor and the f64 CPU
//! executor from identical parameters and batch; the loss, every parameter gradient (every
//! `w` included) and the updated BN running statistics are compared.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{Input, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::graph::cpu_exec::CpuExecutor;
use crate::graph::gpu_exec::GpuExecutor;
use crate::graph::{init, Role, TensorId};
use crate::model::{build_training, ModelConfig};
use crate::ops::compare::{max_abs, Tol};

/// Gradients pass through every layer in f32 on the GPU (rounding compounds layer by layer,
/// and BatchNorm divides by small batch deviations), so they are compared relative to the
/// scale of each tensor: 1e-3 of its largest reference value, plus 1e-3 relative. Some
/// gradients are exactly zero in exact arithmetic (a conv bias before BatchNorm) or sums that
/// cancel (a block's `w`): their f32 noise is set by the network's gradients, not their own
/// size, so the floor is 1e-4 of the largest parameter gradient of the model. A wrong sign or
/// index anywhere moves whole tensors by O(1) of their scale, far above either.
fn model_tol(reference: &[f64], network_scale: f64) -> Tol {
    Tol::new(
        1e-3 * max_abs(reference) + 1e-4 * network_scale + 1e-12,
        1e-3,
    )
}

pub fn check_model(gpu: &Gpu, cfg: &ModelConfig, seed: u64) -> Result<Vec<OpCheck>> {
    let graph = build_training(cfg)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let input = graph.input.expect("model has an input");
    let labels = graph.labels.expect("model has labels");
    let images: Vec<f32> = (0..graph.tensor(input).len())
        .map(|_| rng.random_range(0.0f32..1.0))
        .collect();
    let classes: Vec<u32> = (0..cfg.batch)
        .map(|_| rng.random_range(0..cfg.classes as u32))
        .collect();
    let start = init::initial_values(&graph, seed);

    let mut gpu_exec = GpuExecutor::new(gpu, graph.clone(), None)?;
    let mut cpu = CpuExecutor::new(graph.clone());
    for (t, v) in &start {
        gpu_exec.write(*t, v)?;
        cpu.set(*t, v.iter().map(|&x| x as f64).collect());
    }
    gpu_exec.set_batch(&images, &classes)?;
    cpu.set(input, images.iter().map(|&x| x as f64).collect());
    cpu.set(labels, classes.iter().map(|&x| x as f64).collect());
    gpu_exec.train_step()?;
    gpu_exec.finish()?;
    cpu.run()?;

    let attrs = json!({ "model": cfg.preset.to_string(), "residual": cfg.residual.label(), "batch": cfg.batch, "input": cfg.input, "seed": seed });
    let mut head = OpCheck::new(format!("{}:loss", cfg.preset), attrs.clone());
    head.inputs.push(Input {
        name: "images".into(),
        shape: graph.tensor(input).shape.clone(),
        data: images,
    });
    head.inputs.push(Input {
        name: "labels".into(),
        shape: vec![cfg.batch],
        data: classes.iter().map(|&c| c as f32).collect(),
    });
    let metrics = graph.metrics.expect("model has metrics");
    let m = gpu_exec.read(metrics)?;
    // The mean loss is one number at the end of the whole forward pass.
    head.output(
        Pass::Forward,
        "loss",
        &[1],
        vec![m[0]],
        vec![cpu.get(metrics)[0]],
        Tol::new(1e-4, 1e-4),
    );
    let mut checks = vec![head];

    let network_scale = graph
        .grads
        .iter()
        .map(|(_, d)| max_abs(cpu.get(*d)))
        .fold(0.0, f64::max);
    let compare = |t: TensorId, pass: Pass| -> Result<OpCheck> {
        let tensor = graph.tensor(t);
        let mut c = OpCheck::new(tensor.name.clone(), attrs.clone());
        let reference = cpu.get(t).to_vec();
        let tol = model_tol(&reference, network_scale);
        c.output(
            pass,
            &tensor.name,
            &tensor.shape,
            gpu_exec.read(t)?,
            reference,
            tol,
        );
        Ok(c)
    };
    for (_, d) in &graph.grads {
        checks.push(compare(*d, Pass::Backward)?);
    }
    for t in (0..graph.tensors.len())
        .map(TensorId)
        .filter(|&t| graph.tensor(t).role == Role::State)
    {
        checks.push(compare(t, Pass::Forward)?);
    }
    Ok(checks)
}
