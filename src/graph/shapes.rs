//! From a node's attributes and its tensors' shapes to the op shape structs the kernels and
//! their CPU twins take. Both executors and autodiff go through here.

use super::op::{BnAttrs, ConvAttrs, PoolAttrs, ResidualAttrs};
use super::{Graph, TensorId};
use crate::ops::batchnorm::BatchnormShape;
use crate::ops::conv2d::{self, Conv2dShape};
use crate::ops::linear::LinearShape;
use crate::ops::loss::LossShape;
use crate::ops::pool::{self, AvgPoolShape, MaxPoolShape};
use crate::ops::residual::ResidualShape;

fn nchw(g: &Graph, t: TensorId) -> [usize; 4] {
    let s = &g.tensor(t).shape;
    assert_eq!(
        s.len(),
        4,
        "tensor {} must be NCHW, is {s:?}",
        g.tensor(t).name
    );
    [s[0], s[1], s[2], s[3]]
}

/// x: the conv input, weight: its kernel [Cout, Cin, KH, KW]. For graphs `model` built, which
/// checked every convolution with `try_conv`.
pub fn conv(g: &Graph, a: ConvAttrs, x: TensorId, weight: TensorId) -> Conv2dShape {
    try_conv(g, a, x, weight).expect("model builders produce valid convolutions")
}

/// The shape of every forward convolution of `g`, in node order (their backward passes share
/// them).
pub fn convs(g: &Graph) -> Vec<Conv2dShape> {
    g.nodes
        .iter()
        .filter_map(|n| match n.op {
            super::Op::Conv2d(a) => Some(conv(g, a, n.inputs[0], n.inputs[1])),
            _ => None,
        })
        .collect()
}

/// As `conv`, for a graph still being built: the kernels' own refusal (e.g. tensors past
/// 32-bit indices) as an error.
pub fn try_conv(
    g: &Graph,
    a: ConvAttrs,
    x: TensorId,
    weight: TensorId,
) -> anyhow::Result<Conv2dShape> {
    let pad = conv2d::Padding {
        top: a.pad[0],
        bottom: a.pad[1],
        left: a.pad[2],
        right: a.pad[3],
    };
    let cout = g.tensor(weight).shape[0];
    Conv2dShape::new(
        nchw(g, x),
        cout,
        (a.kernel[0], a.kernel[1]),
        (a.stride[0], a.stride[1]),
        pad,
        a.bias,
    )
}

pub fn batchnorm(g: &Graph, a: BnAttrs, x: TensorId) -> BatchnormShape {
    let [n, c, h, w] = nchw(g, x);
    BatchnormShape {
        eps: a.eps,
        momentum: a.momentum,
        relu: a.relu,
        ..BatchnormShape::new(n, c, h, w)
    }
}

pub fn maxpool(g: &Graph, a: PoolAttrs, x: TensorId) -> MaxPoolShape {
    let [batch, channels, height, width] = nchw(g, x);
    MaxPoolShape {
        batch,
        channels,
        height,
        width,
        kernel: (a.kernel[0], a.kernel[1]),
        stride: (a.stride[0], a.stride[1]),
        padding: pool::Padding {
            top: a.pad[0],
            bottom: a.pad[1],
            left: a.pad[2],
            right: a.pad[3],
        },
    }
}

pub fn avgpool(g: &Graph, x: TensorId) -> AvgPoolShape {
    let [batch, channels, height, width] = nchw(g, x);
    AvgPoolShape {
        batch,
        channels,
        height,
        width,
    }
}

/// weight: [OUT, IN]
pub fn linear(g: &Graph, x: TensorId, weight: TensorId) -> LinearShape {
    let w = &g.tensor(weight).shape;
    LinearShape {
        batch: g.tensor(x).shape[0],
        in_features: w[1],
        out_features: w[0],
    }
}

pub fn loss(g: &Graph, logits: TensorId) -> LossShape {
    let s = &g.tensor(logits).shape;
    LossShape {
        batch: s[0],
        classes: s[1],
    }
}

pub fn residual(g: &Graph, a: ResidualAttrs, tfd: TensorId) -> ResidualShape {
    let [batch, channels, h, w] = nchw(g, tfd);
    ResidualShape {
        batch,
        channels,
        hw: h * w,
        per_channel: a.per_channel,
        fuse_relu: a.fuse_relu,
    }
}
