//! The CPU executor: the same graph run with the f64 reference twins, for whole-model
//! gradient checks. Written for clarity; it is the independent side of every comparison.

use anyhow::{bail, Result};

use super::{shapes, Graph, Op, TensorId};
use crate::ops::{batchnorm, conv2d, linear, loss, pool, reduce, relu, residual};

pub struct CpuExecutor {
    pub graph: Graph,
    /// Every tensor's value (labels as f64 class indices); empty until computed.
    pub values: Vec<Vec<f64>>,
}

impl CpuExecutor {
    pub fn new(graph: Graph) -> Self {
        let values = vec![Vec::new(); graph.tensors.len()];
        Self { graph, values }
    }

    pub fn set(&mut self, t: TensorId, v: Vec<f64>) {
        self.values[t.0] = v;
    }

    pub fn get(&self, t: TensorId) -> &[f64] {
        &self.values[t.0]
    }

    /// Runs every node in order (forward then backward when the graph has it); BatchNorm uses
    /// batch statistics and updates its running statistics, as in training.
    pub fn run(&mut self) -> Result<()> {
        self.run_nodes(0..self.graph.nodes.len())
    }

    /// Runs nodes `range` in order, reading earlier nodes' outputs as they stand: after a
    /// change to one parameter, rerunning from the first node that reads it recomputes
    /// everything the change can reach (finite differences rely on it).
    pub fn run_nodes(&mut self, range: std::ops::Range<usize>) -> Result<()> {
        for k in range {
            self.run_node(k)?;
        }
        Ok(())
    }

    fn run_node(&mut self, k: usize) -> Result<()> {
        let node = self.graph.nodes[k].clone();
        let g = &self.graph;
        let (i, o) = (&node.inputs, &node.outputs);
        for t in i {
            if self.values[t.0].is_empty() && !g.tensor(*t).is_empty() {
                bail!("{}: input {} has no value", node.name, g.tensor(*t).name);
            }
        }
        let v = |k: usize| self.values[i[k].0].as_slice();
        let labels = || -> Vec<u32> { v(1).iter().map(|&l| l as u32).collect() };
        let outs: Vec<Vec<f64>> = match node.op {
            Op::Conv2d(a) => {
                let s = shapes::conv(g, a, i[0], i[1]);
                vec![
                    conv2d::cpu::forward(v(0), v(1), a.bias.then(|| v(2)), &s),
                    vec![0.0; g.tensor(o[1]).len()],
                ]
            }
            Op::BatchNorm(a) => {
                let s = shapes::batchnorm(g, a, i[0]);
                let (mut rm, mut rv) = (v(3).to_vec(), v(4).to_vec());
                let (mean, invstd) = batchnorm::cpu::stats(v(0), &mut rm, &mut rv, s);
                let y = batchnorm::cpu::forward(v(0), v(1), v(2), &mean, &invstd, s);
                self.values[i[3].0] = rm;
                self.values[i[4].0] = rv;
                vec![y, mean, invstd]
            }
            Op::Relu => vec![relu::cpu::forward(v(0))],
            Op::Residual(a) => vec![residual::cpu::forward(
                v(0),
                v(1),
                v(2),
                shapes::residual(g, a, i[0]),
            )],
            Op::MaxPool(a) => {
                let at = pool::cpu::maxpool_argmax(v(0), shapes::maxpool(g, a, i[0]));
                vec![
                    at.iter().map(|&k| v(0)[k]).collect(),
                    at.iter().map(|&k| k as f64).collect(),
                ]
            }
            Op::GlobalAvgPool => vec![pool::cpu::avgpool_forward(v(0), shapes::avgpool(g, i[0]))],
            Op::Linear => vec![linear::cpu::forward(
                v(0),
                v(1),
                v(2),
                shapes::linear(g, i[0], i[1]),
            )],
            Op::SoftmaxXent => {
                let (mean, correct) =
                    loss::cpu::softmax_xent_forward(v(0), &labels(), shapes::loss(g, i[0]));
                vec![vec![mean, correct as f64]]
            }
            Op::Conv2dBackwardInput(a) => vec![
                conv2d::cpu::backward_input(v(0), v(1), &shapes::conv(g, a, o[0], i[1])),
                vec![0.0; g.tensor(o[1]).len()],
            ],
            Op::Conv2dBackwardWeight(a) => {
                let s = shapes::conv(g, a, i[1], o[0]);
                vec![
                    conv2d::cpu::backward_weight(v(0), v(1), &s),
                    vec![0.0; g.tensor(o[1]).len()],
                ]
            }
            Op::Conv2dBackwardBias => {
                let [n, c, h, w] = g.tensor(i[0]).shape[..] else {
                    unreachable!("conv dy is NCHW")
                };
                // Per-channel sum of dy over batch and pixels.
                vec![reduce::cpu::channel_dot(
                    v(0),
                    &vec![1.0; n * c * h * w],
                    n,
                    c,
                    h * w,
                )]
            }
            Op::BatchNormBackward(a) => {
                let s = shapes::batchnorm(g, a, i[1]);
                // The fused ReLU's output, read only when fused.
                let y = if a.relu { v(5) } else { v(0) };
                let (dgamma, dbeta) = batchnorm::cpu::backward_weight(v(1), v(0), y, v(3), v(4), s);
                let dx = batchnorm::cpu::backward_input(
                    v(1),
                    v(0),
                    y,
                    v(2),
                    v(3),
                    v(4),
                    &dgamma,
                    &dbeta,
                    s,
                );
                vec![dx, dgamma, dbeta, vec![0.0; g.tensor(o[3]).len()]]
            }
            Op::ReluBackward => vec![relu::cpu::backward_input(v(0), v(1))],
            Op::ResidualBackwardInput(a) => {
                let s = shapes::residual(g, a, i[0]);
                // The twin returns dw too; the weight node below recomputes it on its own inputs.
                let y = if a.fuse_relu { v(2) } else { v(0) }; // read only when fused
                let (dtfd, dipd, _) =
                    residual::cpu::backward(v(0), y, &vec![0.0; s.len()], v(1), s);
                vec![dtfd, dipd]
            }
            Op::ResidualBackwardWeight(a) => {
                let s = shapes::residual(g, a, i[0]);
                let dw = if s.per_channel {
                    reduce::cpu::channel_dot(v(0), v(1), s.batch, s.channels, s.hw)
                } else {
                    vec![reduce::cpu::dot(v(0), v(1))]
                };
                vec![dw, vec![0.0; g.tensor(o[1]).len()]]
            }
            Op::MaxPoolBackward(a) => {
                let at: Vec<usize> = v(0).iter().map(|&k| k as usize).collect();
                vec![pool::cpu::maxpool_backward_from_argmax(
                    &at,
                    v(1),
                    shapes::maxpool(g, a, o[0]),
                )]
            }
            Op::GlobalAvgPoolBackward => vec![pool::cpu::avgpool_backward_input(
                v(0),
                shapes::avgpool(g, o[0]),
            )],
            Op::LinearBackwardInput => vec![linear::cpu::backward_input(
                v(0),
                v(1),
                shapes::linear(g, o[0], i[1]),
            )],
            Op::LinearBackwardWeight => vec![linear::cpu::backward_weight(
                v(0),
                v(1),
                shapes::linear(g, i[1], o[0]),
            )],
            Op::LinearBackwardBias => {
                let [n, k] = g.tensor(i[0]).shape[..] else {
                    unreachable!("dense dy is [N, OUT]")
                };
                vec![linear::cpu::backward_bias(
                    v(0),
                    linear::LinearShape {
                        batch: n,
                        in_features: 1,
                        out_features: k,
                    },
                )]
            }
            Op::SoftmaxXentBackward => vec![loss::cpu::softmax_xent_backward(
                v(0),
                &labels(),
                shapes::loss(g, i[0]),
            )],
            Op::Add => vec![residual::cpu::add(v(0), v(1))],
        };
        for (t, val) in o.iter().zip(outs) {
            debug_assert_eq!(
                val.len(),
                self.graph.tensor(*t).len(),
                "{}: output size",
                node.name
            );
            self.values[t.0] = val;
        }
        Ok(())
    }
}
