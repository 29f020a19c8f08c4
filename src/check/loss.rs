//! Check of softmax cross-entropy: mean loss, correct count, its gradient and the softmax.

use anyhow::Result;
use rand::Rng;
use serde_json::json;

use super::{run_and_read, Input, Inputs, OpCheck, Pass};
use crate::gpu::Gpu;
use crate::ops::compare::Tol;
use crate::ops::loss::{self, LossShape};

/// Logits are uniform in [-SPREAD/2, SPREAD/2): wide enough that the softmax is far from
/// uniform, so a wrong max, sum or label shows.
const SPREAD: f32 = 8.0;

/// `batch` samples over `classes` classes, with random in-range labels.
pub fn check_softmax_xent(gpu: &Gpu, batch: usize, classes: usize, seed: u64) -> Result<OpCheck> {
    let mut inp = Inputs::new(gpu, seed);
    let labels: Vec<u32> = (0..batch)
        .map(|_| inp.rng().random_range(0..classes as u32))
        .collect();
    check_softmax_xent_labels(gpu, classes, &labels, seed.wrapping_add(1))
}

/// As `check_softmax_xent` with the labels given (one per sample), e.g. out-of-range ones.
pub fn check_softmax_xent_labels(
    gpu: &Gpu,
    classes: usize,
    labels: &[u32],
    seed: u64,
) -> Result<OpCheck> {
    let s = LossShape {
        batch: labels.len(),
        classes,
    };
    let (n, k) = (s.batch, s.classes);
    let mut c = OpCheck::new(
        format!("softmax_xent[{n}x{k}]"),
        json!({ "batch": n, "classes": k, "logit_range": [-SPREAD / 2.0, SPREAD / 2.0] }),
    );
    let mut inp = Inputs::new(gpu, seed);
    let (z, zb) = inp.uniform(&mut c, "logits", &[n, k], -SPREAD / 2.0, SPREAD / 2.0);
    // Recorded as f32 for the dump (exact: class indices are far below 2^24).
    c.inputs.push(Input {
        name: "labels".into(),
        shape: vec![n],
        data: labels.iter().map(|&l| l as f32).collect(),
    });
    let lb = gpu.upload("labels", labels);
    // NaN-filled outputs: an element the kernels fail to write fails the comparison.
    let ob = gpu.upload("out", &[f32::NAN; 2]);
    let db = gpu.upload("dlogits", &vec![f32::NAN; s.len()]);
    let pb = gpu.upload("probs", &vec![f32::NAN; s.len()]);
    let ds = vec![
        loss::softmax_xent_forward(&zb, &lb, &ob, s),
        loss::softmax_xent_backward(&zb, &lb, &db, s),
        loss::softmax_forward(&zb, &pb, s),
    ];
    let [out, dz, probs]: [Vec<f32>; 3] =
        run_and_read(gpu, ds, &[(&ob, 2), (&db, s.len()), (&pb, s.len())])?
            .try_into()
            .expect("three outputs requested");

    let (loss_ref, correct_ref) = loss::cpu::softmax_xent_forward(&z, labels, s);
    // A row's loss is log(sum of K exps in (0, 1]) minus a logit difference: f32 exp and the
    // K-term sum err by a few eps per term, and the sum is >= 1, so log errs by ~4 K eps
    // absolute (Vulkan's log is also only 2^-21 absolute near 1). The mean of those errors is
    // no larger; summing N rows of size at most L = ln K + SPREAD errs by 4 N L eps, which the
    // division by N brings back to 4 L eps. Together: sum_of(K + L, 1).
    let row_bound = (k as f64).ln() + SPREAD as f64;
    c.output(
        Pass::Forward,
        "loss",
        &[1],
        vec![out[0]],
        vec![loss_ref],
        Tol::sum_of(k + row_bound.ceil() as usize, 1.0),
    );
    // Both sides compare the same f32 logits, ties to the lowest index: exact.
    c.output(
        Pass::Forward,
        "correct",
        &[1],
        vec![out[1]],
        vec![correct_ref as f64],
        Tol::new(0.0, 0.0),
    );
    // p = exp(z - max) / sum: the sum's relative error (K terms, sum >= 1) plus exp's and the
    // divide's few ulps, on values <= 1; the gradient scales that by 1 / N.
    c.output(
        Pass::Forward,
        "probs",
        &[n, k],
        probs,
        loss::cpu::softmax_forward(&z, s),
        Tol::sum_of(k + 2, 1.0),
    );
    c.output(
        Pass::Backward,
        "dlogits",
        &[n, k],
        dz,
        loss::cpu::softmax_xent_backward(&z, labels, s),
        Tol::sum_of(k + 3, 1.0 / n as f64),
    );
    Ok(c)
}
