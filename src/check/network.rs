//! The single-op checks at the shapes a real network runs at: every distinct op and shape of
//! the paper's AdaResNet graph (both residual forms, fused and not, scalar and per-channel),
//! plus both optimizers on its largest parameter tensor.

use anyhow::Result;

use super::{batchnorm, conv2d, elementwise, linear, loss, optim, pool, OpCheck};
use crate::gpu::{choice, Gpu, KernelStyle};
use crate::graph::{shapes, Op};
use crate::model::{build_forward, ModelConfig, Preset, ResidualMode, WInit};
use crate::ops::optim::{Adam, Sgd};

/// Every op of the paper's network at batch `batch` on `input` = [C, H, W] images.
pub fn paper_op_checks(
    gpu: &Gpu,
    batch: usize,
    input: [usize; 3],
    seed: u64,
) -> Result<Vec<OpCheck>> {
    let cfg = ModelConfig {
        preset: Preset::Paper,
        residual: ResidualMode::Ada(WInit::Zeros),
        classes: 10,
        input,
        batch,
        fuse_residual_relu: true,
        bn_momentum: None,
    };
    let g = build_forward(&cfg)?;
    let mut seen = std::collections::HashSet::new();
    let mut checks = Vec::new();
    for node in g.forward_nodes() {
        let i = &node.inputs;
        // One check per distinct op and shape: the network repeats most of them.
        let key = format!(
            "{:?} {:?} {:?}",
            node.op,
            g.tensor(i[0]).shape,
            i.get(1).map(|t| &g.tensor(*t).shape)
        );
        if !seen.insert(key) {
            continue;
        }
        let mut found = match node.op {
            // Every kernel style this adapter can run, not only the one it would pick.
            Op::Conv2d(a) => KernelStyle::ALL
                .into_iter()
                .filter(|&style| choice::supported(gpu, style))
                .map(|style| {
                    let s = shapes::conv(&g, a, i[0], i[1]).on(gpu, style);
                    conv2d::check_conv2d(gpu, &s, seed)
                })
                .collect::<Result<Vec<_>>>()?,
            Op::BatchNorm(a) => vec![batchnorm::check_batchnorm(
                gpu,
                &shapes::batchnorm(&g, a, i[0]),
                seed,
            )?],
            Op::Relu => vec![elementwise::check_relu(gpu, &g.tensor(i[0]).shape, seed)?],
            Op::Residual(_) => {
                let mut out = Vec::new();
                for per_channel in [false, true] {
                    for fuse_relu in [false, true] {
                        let s = shapes::residual(
                            &g,
                            crate::graph::op::ResidualAttrs {
                                per_channel,
                                fuse_relu,
                            },
                            i[0],
                        );
                        out.push(elementwise::check_residual(gpu, s, seed)?);
                    }
                }
                out
            }
            Op::MaxPool(a) => {
                let s = shapes::maxpool(&g, a, i[0]);
                vec![
                    pool::check_maxpool(gpu, &s, seed)?,
                    pool::check_maxpool_ties(gpu, &s, seed)?,
                ]
            }
            Op::GlobalAvgPool => vec![pool::check_avgpool(gpu, &shapes::avgpool(&g, i[0]), seed)?],
            Op::Linear => vec![linear::check_linear(
                gpu,
                &shapes::linear(&g, i[0], i[1]),
                seed,
            )?],
            Op::SoftmaxXent => {
                let s = shapes::loss(&g, i[0]);
                vec![loss::check_softmax_xent(gpu, s.batch, s.classes, seed)?]
            }
            _ => Vec::new(),
        };
        for c in &mut found {
            c.op = format!("{} {}", c.op, node.name);
        }
        checks.extend(found);
    }
    let largest = g.params().map(|p| g.tensor(p).len()).max().unwrap_or(1);
    let sgd = Sgd {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    checks.push(optim::check_sgd(gpu, largest, &sgd, 3, seed)?);
    checks.push(optim::check_adam(gpu, largest, &Adam::keras(), 3, seed)?);
    Ok(checks)
}
