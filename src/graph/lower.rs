//! Lowering: each node of a graph to the GPU dispatches that compute it (tinygrad's schedule:
//! a flat list built once). Both the training and the evaluation programs come from here.

use super::{shapes, Graph, Node, Op};
use crate::gpu::Dispatch;
use crate::ops::{batchnorm, conv2d, linear, loss, pool, relu, residual};

/// `buf(t)` gives the buffer a tensor lives in. `eval` lowers BatchNorm to its
/// running-statistics form; `styles` gives each convolution its kernel style.
pub fn lower_node(
    g: &Graph,
    node: &Node,
    buf: &dyn Fn(super::TensorId) -> wgpu::Buffer,
    eval: bool,
    styles: &conv2d::ConvStyles,
) -> Vec<Dispatch> {
    let i = &node.inputs;
    let o = &node.outputs;
    let b = |k: usize| buf(i[k]);
    let out = |k: usize| buf(o[k]);
    let mut ds = match node.op {
        Op::Conv2d(a) => {
            let s = styles.apply(shapes::conv(g, a, i[0], i[1]));
            let bias = a.bias.then(|| b(2));
            conv2d::forward(&b(0), &b(1), bias.as_ref(), &out(0), &out(1), &s)
        }
        Op::BatchNorm(a) => {
            let s = shapes::batchnorm(g, a, i[0]);
            if eval {
                vec![batchnorm::forward_eval(
                    &b(0),
                    &b(1),
                    &b(2),
                    &b(3),
                    &b(4),
                    &out(0),
                    s,
                )]
            } else {
                vec![
                    batchnorm::stats(&b(0), &b(3), &b(4), &out(1), &out(2), s),
                    batchnorm::forward(&b(0), &b(1), &b(2), &out(1), &out(2), &out(0), s),
                ]
            }
        }
        Op::Relu => vec![relu::forward(&b(0), &out(0), g.tensor(i[0]).len())],
        Op::Residual(a) => vec![residual::forward(
            &b(0),
            &b(1),
            &b(2),
            &out(0),
            shapes::residual(g, a, i[0]),
        )],
        Op::MaxPool(a) => vec![pool::maxpool_forward(
            &b(0),
            &out(0),
            &out(1),
            shapes::maxpool(g, a, i[0]),
        )],
        Op::GlobalAvgPool => vec![pool::avgpool_forward(
            &b(0),
            &out(0),
            shapes::avgpool(g, i[0]),
        )],
        Op::Linear => vec![linear::forward(
            &b(0),
            &b(1),
            &b(2),
            &out(0),
            shapes::linear(g, i[0], i[1]),
        )],
        Op::SoftmaxXent => vec![loss::softmax_xent_forward(
            &b(0),
            &b(1),
            &out(0),
            shapes::loss(g, i[0]),
        )],

        // Backward: `i[0]` is the upstream gradient unless the op says otherwise.
        Op::Conv2dBackwardInput(a) => {
            let s = styles.apply(shapes::conv(g, a, o[0], i[1]));
            conv2d::backward_input(&b(0), &b(1), &out(0), &out(1), &s)
        }
        Op::Conv2dBackwardWeight(a) => {
            let s = styles.apply(shapes::conv(g, a, i[1], o[0]));
            conv2d::backward_weight(&b(0), &b(1), &out(1), &out(0), &s)
        }
        Op::Conv2dBackwardBias => {
            // Only the output-gradient shape matters to the bias reduction.
            let [n, c, h, w] = g.tensor(i[0]).shape[..] else {
                unreachable!("conv dy is NCHW")
            };
            let s = conv2d::Conv2dShape::new(
                [n, 1, h, w],
                c,
                (1, 1),
                (1, 1),
                conv2d::Padding::valid(),
                true,
            )
            .expect("a 1x1 view of a valid conv output is valid");
            vec![conv2d::backward_bias(&b(0), &out(0), &s)]
        }
        Op::BatchNormBackward(a) => {
            let s = shapes::batchnorm(g, a, i[1]);
            let y = a.relu.then(|| b(5));
            vec![
                batchnorm::backward_weight(
                    &b(1),
                    &b(0),
                    y.as_ref(),
                    &b(3),
                    &b(4),
                    &out(1),
                    &out(2),
                    &out(3),
                    s,
                ),
                batchnorm::backward_input(&b(1), &b(0), y.as_ref(), &b(2), &out(3), &out(0), s),
            ]
        }
        Op::ReluBackward => vec![relu::backward_input(
            &b(0),
            &b(1),
            &out(0),
            g.tensor(i[0]).len(),
        )],
        Op::ResidualBackwardInput(a) => {
            let s = shapes::residual(g, a, i[0]);
            // Unfused, the kernel reads no `y`; dy stands in for the unused argument.
            let y = if a.fuse_relu { b(2) } else { b(0) };
            vec![residual::backward_input(
                &b(0),
                &y,
                &b(1),
                &out(0),
                &out(1),
                s,
            )]
        }
        Op::ResidualBackwardWeight(a) => {
            let s = shapes::residual(g, a, i[0]);
            residual::backward_weight(&b(0), &b(1), &out(1), &out(0), s)
        }
        Op::MaxPoolBackward(a) => vec![pool::maxpool_backward_input(
            &b(0),
            &b(1),
            &out(0),
            shapes::maxpool(g, a, o[0]),
        )],
        Op::GlobalAvgPoolBackward => vec![pool::avgpool_backward_input(
            &b(0),
            &out(0),
            shapes::avgpool(g, o[0]),
        )],
        Op::LinearBackwardInput => vec![linear::backward_input(
            &b(0),
            &b(1),
            &out(0),
            shapes::linear(g, o[0], i[1]),
        )],
        Op::LinearBackwardWeight => vec![linear::backward_weight(
            &b(0),
            &b(1),
            &out(0),
            shapes::linear(g, i[1], o[0]),
        )],
        Op::LinearBackwardBias => {
            let [n, k] = g.tensor(i[0]).shape[..] else {
                unreachable!("dense dy is [N, OUT]")
            };
            vec![linear::backward_bias(
                &b(0),
                &out(0),
                linear::LinearShape {
                    batch: n,
                    in_features: 1,
                    out_features: k,
                },
            )]
        }
        Op::SoftmaxXentBackward => vec![loss::softmax_xent_backward(
            &b(0),
            &b(1),
            &out(0),
            shapes::loss(g, i[0]),
        )],
        // The plan puts the sum in its first operand's buffer when that operand dies here.
        Op::Add if b(0) == out(0) => {
            vec![residual::add_inplace(&b(0), &b(1), g.tensor(i[0]).len())]
        }
        Op::Add => vec![residual::add(&b(0), &b(1), &out(0), g.tensor(i[0]).len())],
    };
    for d in &mut ds {
        d.label = node.name.clone();
    }
    ds
}
