//! The one op enum every executor matches on (as candle's): forward ops, and the backward ops
//! `autodiff` emits for them. Attributes live here; input shapes come from the tensors.

/// Convolution attributes. Padding is per side, as Keras 'same' with stride 2 pads only
/// bottom/right on even inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConvAttrs {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, bottom, left, right
    pub pad: [usize; 4],
    pub bias: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BnAttrs {
    pub eps: f32,
    /// Keras convention: running = momentum * running + (1 - momentum) * batch.
    pub momentum: f32,
    /// `relu(bn(x))` in one node (and one kernel); the backward masks by the output.
    pub relu: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolAttrs {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, bottom, left, right; padded cells never win the max.
    pub pad: [usize; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResidualAttrs {
    /// One `w` per output channel (`ada-channel`) instead of one per block.
    pub per_channel: bool,
    /// `y = relu(tfd + w * ipd)` in one kernel.
    pub fuse_relu: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Op {
    /// [x, weight, bias?] -> [y]
    Conv2d(ConvAttrs),
    /// Training mode: [x, gamma, beta, running_mean, running_var] -> [y, save_mean, save_invstd]
    /// (y = relu(bn(x)) when `relu`);
    /// updates the running statistics in place. Evaluation programs run it from running stats.
    BatchNorm(BnAttrs),
    /// [x] -> [y]
    Relu,
    /// [tfd, ipd, w] -> [y]
    Residual(ResidualAttrs),
    /// [x] -> [y, argmax (u32 on the GPU: each output's winner, a flat index into x)]
    MaxPool(PoolAttrs),
    /// [x: N,C,H,W] -> [y: N,C]
    GlobalAvgPool,
    /// [x: N,IN, weight: OUT,IN, bias: OUT] -> [y: N,OUT]
    Linear,
    /// [logits: N,K, labels: N] -> [metrics: (mean loss, correct count)]
    SoftmaxXent,

    /// [dy, weight] -> [dx]
    Conv2dBackwardInput(ConvAttrs),
    /// [dy, x] -> [dweight, partials]
    Conv2dBackwardWeight(ConvAttrs),
    /// [dy] -> [dbias]
    Conv2dBackwardBias,
    /// [dy, x, gamma, save_mean, save_invstd, y (only with a fused ReLU: the mask)]
    /// -> [dx, dgamma, dbeta, coeffs (scratch the two kernels share)]
    BatchNormBackward(BnAttrs),
    /// [y, dy] -> [dx] (y > 0 exactly where x > 0, so the output serves as the mask)
    ReluBackward,
    /// [dy, w, y (only when fused: the ReLU mask)] -> [dtfd, dipd]
    ResidualBackwardInput(ResidualAttrs),
    /// [g (= dtfd), ipd] -> [dw, partials]
    ResidualBackwardWeight(ResidualAttrs),
    /// [argmax, dy] -> [dx]
    MaxPoolBackward(PoolAttrs),
    /// [dy: N,C] -> [dx: N,C,H,W]
    GlobalAvgPoolBackward,
    /// [dy, weight] -> [dx]
    LinearBackwardInput,
    /// [dy, x] -> [dweight]
    LinearBackwardWeight,
    /// [dy] -> [dbias]
    LinearBackwardBias,
    /// [logits, labels] -> [dlogits] (gradient of the mean loss)
    SoftmaxXentBackward,
    /// [a, b] -> [a + b]: sums the two gradients of a tensor read twice
    Add,
}

impl Op {
    /// The kernel family's short name (for profiles and check tables).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d(_)
            | Op::Conv2dBackwardInput(_)
            | Op::Conv2dBackwardWeight(_)
            | Op::Conv2dBackwardBias => "conv2d",
            Op::BatchNorm(_) | Op::BatchNormBackward(_) => "batchnorm",
            Op::Relu | Op::ReluBackward => "relu",
            Op::Residual(_) | Op::ResidualBackwardInput(_) | Op::ResidualBackwardWeight(_) => {
                "residual"
            }
            Op::MaxPool(_) | Op::MaxPoolBackward(_) => "maxpool",
            Op::GlobalAvgPool | Op::GlobalAvgPoolBackward => "avgpool",
            Op::Linear
            | Op::LinearBackwardInput
            | Op::LinearBackwardWeight
            | Op::LinearBackwardBias => "linear",
            Op::SoftmaxXent | Op::SoftmaxXentBackward => "softmax_xent",
            Op::Add => "add",
        }
    }

    /// The pass within the step, for profiles: forward or backward.
    pub fn pass(&self) -> &'static str {
        match self {
            Op::Conv2d(_)
            | Op::BatchNorm(_)
            | Op::Relu
            | Op::Residual(_)
            | Op::MaxPool(_)
            | Op::GlobalAvgPool
            | Op::Linear
            | Op::SoftmaxXent => "forward",
            _ => "backward",
        }
    }
}
