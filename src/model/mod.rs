//! AdaResNet builders: the paper's Keras network and CIFAR/ImageNet-style ResNet presets, each
//! with any residual mode. A builder writes the forward graph; `graph::autodiff` derives the rest.

pub mod residual_mode;

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::graph::op::{BnAttrs, ConvAttrs, PoolAttrs, ResidualAttrs};
use crate::graph::{autodiff, Graph, Init, Op, Role, TensorId};
pub use residual_mode::{ResidualMode, WInit};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The authors' Keras AdaResNet: 7x7/2 stem + 3x3/2 max-pool, four stages (64-512) of one
    /// downsampling and one identity block, Keras defaults (conv bias, BN 0.99/1e-3, Glorot)
    Paper,
    /// CIFAR ResNet-8: 3x3 stem (16), three stages (16/32/64) of one basic block
    Resnet8,
    /// CIFAR ResNet-20: three stages of three basic blocks
    Resnet20,
    /// CIFAR ResNet-56: three stages of nine basic blocks
    Resnet56,
    /// ResNet-18 (basic blocks 64-512, [2,2,2,2]) with a 3x3 stem for 32x32 / 28x28 inputs
    Resnet18,
    /// ResNet-50 (bottleneck blocks, [3,4,6,3]) with a 3x3 stem: the paper's ResNet-50 baseline
    Resnet50,
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

impl FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        <Preset as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            anyhow::anyhow!(
                "unknown model '{s}': use paper, resnet8, resnet20, resnet56, resnet18 or resnet50"
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub preset: Preset,
    pub residual: ResidualMode,
    pub classes: usize,
    /// [channels, height, width] of one image.
    pub input: [usize; 3],
    pub batch: usize,
    /// Build each block's end as one `relu(tfd + w * ipd)` kernel and each BN followed by a
    /// ReLU as one kernel (else residual or BN, then ReLU).
    pub fuse_residual_relu: bool,
    /// BatchNorm running-statistics momentum (our/Keras convention); `None`: the preset's own.
    #[serde(default)]
    pub bn_momentum: Option<f32>,
}

/// The forward graph of `cfg` (evaluation and prediction run this).
pub fn build_forward(cfg: &ModelConfig) -> Result<Graph> {
    if cfg.batch == 0 || cfg.classes < 2 || cfg.input.contains(&0) {
        bail!("model needs batch >= 1, at least 2 classes and a non-empty input (got {cfg:?})");
    }
    let mut b = Builder::new(cfg);
    let x = b.g.add_tensor(
        "input",
        &[cfg.batch, cfg.input[0], cfg.input[1], cfg.input[2]],
        Role::Input,
    );
    b.g.input = Some(x);
    let features = match cfg.preset {
        Preset::Paper => b.paper(x),
        Preset::Resnet8 => b.cifar(x, 1),
        Preset::Resnet20 => b.cifar(x, 3),
        Preset::Resnet56 => b.cifar(x, 9),
        Preset::Resnet18 => b.resnet(x, &[2, 2, 2, 2], false),
        Preset::Resnet50 => b.resnet(x, &[3, 4, 6, 3], true),
    };
    b.head(features);
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.g)
}

/// The training graph: forward plus the derived backward nodes.
pub fn build_training(cfg: &ModelConfig) -> Result<Graph> {
    let mut g = build_forward(cfg)?;
    autodiff::differentiate(&mut g);
    Ok(g)
}

pub use crate::ops::conv2d::same_padding;

fn out_size(input: usize, kernel: usize, stride: usize, before: usize, after: usize) -> usize {
    (input + before + after - kernel) / stride + 1
}

/// Layer conventions that differ between the Keras paper net and the CIFAR presets.
struct Style {
    conv_bias: bool,
    keras_same: bool,
    bn: BnAttrs,
}

struct Builder<'a> {
    g: Graph,
    cfg: &'a ModelConfig,
    style: Style,
    /// The first shape the kernels refuse, returned by `build_forward`.
    error: Option<anyhow::Error>,
}

impl<'a> Builder<'a> {
    fn new(cfg: &'a ModelConfig) -> Self {
        let mut style = if cfg.preset == Preset::Paper {
            // Keras defaults: Conv2D(use_bias=True), BatchNormalization(momentum=0.99, epsilon=1e-3).
            Style {
                conv_bias: true,
                keras_same: true,
                bn: BnAttrs {
                    eps: 1e-3,
                    momentum: 0.99,
                    relu: false,
                },
            }
        } else {
            // PyTorch-style ResNets: bias-free convs before BN, BN(eps=1e-5, momentum 0.1 in
            // PyTorch's convention = 0.9 in ours).
            Style {
                conv_bias: false,
                keras_same: false,
                bn: BnAttrs {
                    eps: 1e-5,
                    momentum: 0.9,
                    relu: false,
                },
            }
        };
        if let Some(m) = cfg.bn_momentum {
            style.bn.momentum = m;
        }
        Self {
            g: Graph::default(),
            cfg,
            style,
            error: None,
        }
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.g.tensor(t).shape.clone()
    }

    fn pads(&self, h: usize, w: usize, k: usize, stride: usize) -> [usize; 4] {
        if self.style.keras_same {
            let (t, b) = same_padding(h, k, stride);
            let (l, r) = same_padding(w, k, stride);
            [t, b, l, r]
        } else {
            [k / 2; 4]
        }
    }

    fn conv(&mut self, name: &str, x: TensorId, cout: usize, k: usize, stride: usize) -> TensorId {
        let [n, cin, h, w] = self.shape(x)[..] else {
            panic!("conv input must be NCHW")
        };
        let pad = self.pads(h, w, k, stride);
        let attrs = ConvAttrs {
            kernel: [k, k],
            stride: [stride, stride],
            pad,
            bias: self.style.conv_bias,
        };
        let init = if self.style.keras_same {
            Init::GlorotUniform {
                fan_in: cin * k * k,
                fan_out: cout * k * k,
            }
        } else {
            Init::HeNormal {
                fan_in: cin * k * k,
            }
        };
        let weight = self
            .g
            .add_param(format!("{name}.weight"), &[cout, cin, k, k], init, true);
        let mut inputs = vec![x, weight];
        if attrs.bias {
            inputs.push(
                self.g
                    .add_param(format!("{name}.bias"), &[cout], Init::Zeros, true),
            );
        }
        let (oh, ow) = (
            out_size(h, k, stride, pad[0], pad[1]),
            out_size(w, k, stride, pad[2], pad[3]),
        );
        // Scratch for the packed weights some kernel styles read (sized for any style). A
        // convolution the kernels cannot index (32-bit) is the first error `build_forward`
        // returns; building goes on so the shapes stay consistent until then.
        let packed = match crate::graph::shapes::try_conv(&self.g, attrs, x, weight) {
            Ok(s) => s.forward_scratch_len(),
            Err(e) => {
                self.error.get_or_insert(anyhow::anyhow!(
                    "{name}: {e}: lower --batch or the input size"
                ));
                1
            }
        };
        self.g.add_node(
            Op::Conv2d(attrs),
            name,
            &inputs,
            &[
                ("y", vec![n, cout, oh, ow], Role::Activation),
                ("packed", vec![packed.max(1)], Role::Scratch),
            ],
        )[0]
    }

    /// BatchNorm, with the ReLU after it fused in when `relu`.
    fn bn(&mut self, name: &str, x: TensorId, relu: bool) -> TensorId {
        let shape = self.shape(x);
        let c = shape[1];
        let gamma = self
            .g
            .add_param(format!("{name}.gamma"), &[c], Init::Ones, true);
        let beta = self
            .g
            .add_param(format!("{name}.beta"), &[c], Init::Zeros, true);
        let mean = self
            .g
            .add_state(format!("{name}.running_mean"), &[c], Init::Zeros);
        let var = self
            .g
            .add_state(format!("{name}.running_var"), &[c], Init::Ones);
        let outs = [
            ("y", shape, Role::Activation),
            ("save_mean", vec![c], Role::Activation),
            ("save_invstd", vec![c], Role::Activation),
        ];
        self.g.add_node(
            Op::BatchNorm(BnAttrs {
                relu,
                ..self.style.bn
            }),
            name,
            &[x, gamma, beta, mean, var],
            &outs,
        )[0]
    }

    fn relu(&mut self, name: &str, x: TensorId) -> TensorId {
        let shape = self.shape(x);
        self.g
            .add_node(Op::Relu, name, &[x], &[("y", shape, Role::Activation)])[0]
    }

    fn conv_bn(
        &mut self,
        name: &str,
        x: TensorId,
        cout: usize,
        k: usize,
        stride: usize,
        relu: bool,
    ) -> TensorId {
        let y = self.conv(&format!("{name}.conv"), x, cout, k, stride);
        // Fused, the BN kernel applies the ReLU: the same values, one pass fewer each way.
        let fuse = relu && self.cfg.fuse_residual_relu;
        let y = self.bn(&format!("{name}.bn"), y, fuse);
        if relu && !fuse {
            self.relu(&format!("{name}.relu"), y)
        } else {
            y
        }
    }

    /// `relu(tfd + w * ipd)`, with `w` as the residual mode says.
    fn residual(
        &mut self,
        name: &str,
        tfd: TensorId,
        ipd: TensorId,
        downsampling: bool,
    ) -> TensorId {
        let shape = self.shape(tfd);
        let (per_channel, trainable, init) = self.cfg.residual.weight(downsampling);
        let w_shape = if per_channel { vec![shape[1]] } else { vec![1] };
        let w = self
            .g
            .add_param(format!("{name}.w"), &w_shape, init, trainable);
        self.g.residual_weights.push((name.to_string(), w));
        let fuse = self.cfg.fuse_residual_relu;
        let attrs = ResidualAttrs {
            per_channel,
            fuse_relu: fuse,
        };
        let y = self.g.add_node(
            Op::Residual(attrs),
            &format!("{name}.add"),
            &[tfd, ipd, w],
            &[("y", shape, Role::Activation)],
        )[0];
        if fuse {
            y
        } else {
            self.relu(&format!("{name}.relu"), y)
        }
    }

    /// Two 3x3 convs; a 1x1 conv + BN shortcut when the block changes size or width.
    fn basic_block(
        &mut self,
        name: &str,
        x: TensorId,
        cout: usize,
        stride: usize,
        project: bool,
    ) -> TensorId {
        let t = self.conv_bn(&format!("{name}.branch1"), x, cout, 3, stride, true);
        let t = self.conv_bn(&format!("{name}.branch2"), t, cout, 3, 1, false);
        let ipd = if project {
            self.conv_bn(&format!("{name}.shortcut"), x, cout, 1, stride, false)
        } else {
            x
        };
        self.residual(name, t, ipd, project)
    }

    /// 1x1 reduce, 3x3 (strided), 1x1 expand to 4x width.
    fn bottleneck(
        &mut self,
        name: &str,
        x: TensorId,
        width: usize,
        stride: usize,
        project: bool,
    ) -> TensorId {
        let t = self.conv_bn(&format!("{name}.branch1"), x, width, 1, 1, true);
        let t = self.conv_bn(&format!("{name}.branch2"), t, width, 3, stride, true);
        let t = self.conv_bn(&format!("{name}.branch3"), t, 4 * width, 1, 1, false);
        let ipd = if project {
            self.conv_bn(&format!("{name}.shortcut"), x, 4 * width, 1, stride, false)
        } else {
            x
        };
        self.residual(name, t, ipd, project)
    }

    /// The authors' Keras network.
    fn paper(&mut self, x: TensorId) -> TensorId {
        let mut x = self.conv_bn("stem", x, 64, 7, 2, true);
        let [_, _, h, w] = self.shape(x)[..] else {
            unreachable!()
        };
        let pad = self.pads(h, w, 3, 2);
        let pool = PoolAttrs {
            kernel: [3, 3],
            stride: [2, 2],
            pad,
        };
        let shape = self.shape(x);
        let (oh, ow) = (
            out_size(h, 3, 2, pad[0], pad[1]),
            out_size(w, 3, 2, pad[2], pad[3]),
        );
        let out = vec![shape[0], shape[1], oh, ow];
        x = self.g.add_node(
            Op::MaxPool(pool),
            "stem.pool",
            &[x],
            &[
                ("y", out.clone(), Role::Activation),
                ("argmax", out, Role::Activation),
            ],
        )[0];
        for (s, width) in [64, 128, 256, 512].into_iter().enumerate() {
            x = self.basic_block(&format!("stage{}.block1", s + 1), x, width, 2, true);
            x = self.basic_block(&format!("stage{}.block2", s + 1), x, width, 1, false);
        }
        x
    }

    /// CIFAR ResNet-(6n+2): widths 16/32/64, projection shortcuts where the size changes.
    fn cifar(&mut self, x: TensorId, blocks: usize) -> TensorId {
        let mut x = self.conv_bn("stem", x, 16, 3, 1, true);
        for (s, width) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..blocks {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let project = stride != 1;
                x = self.basic_block(
                    &format!("stage{}.block{}", s + 1, b + 1),
                    x,
                    width,
                    stride,
                    project,
                );
            }
        }
        x
    }

    /// ResNet-18/50 adapted to small images: 3x3 stride-1 stem, no max-pool.
    fn resnet(&mut self, x: TensorId, blocks: &[usize], bottleneck: bool) -> TensorId {
        let mut x = self.conv_bn("stem", x, 64, 3, 1, true);
        let mut channels = 64;
        for (s, (&n, width)) in blocks.iter().zip([64, 128, 256, 512]).enumerate() {
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let name = format!("stage{}.block{}", s + 1, b + 1);
                let out = if bottleneck { 4 * width } else { width };
                let project = stride != 1 || channels != out;
                x = if bottleneck {
                    self.bottleneck(&name, x, width, stride, project)
                } else {
                    self.basic_block(&name, x, width, stride, project)
                };
                channels = out;
            }
        }
        x
    }

    /// Global average pool, dense to the classes, softmax cross-entropy.
    fn head(&mut self, x: TensorId) {
        let [n, c, _, _] = self.shape(x)[..] else {
            unreachable!()
        };
        let pooled = self.g.add_node(
            Op::GlobalAvgPool,
            "head.pool",
            &[x],
            &[("y", vec![n, c], Role::Activation)],
        )[0];
        let k = self.cfg.classes;
        let weight = self.g.add_param(
            "head.dense.weight",
            &[k, c],
            Init::GlorotUniform {
                fan_in: c,
                fan_out: k,
            },
            true,
        );
        let bias = self.g.add_param("head.dense.bias", &[k], Init::Zeros, true);
        let logits = self.g.add_node(
            Op::Linear,
            "head.dense",
            &[pooled, weight, bias],
            &[("y", vec![n, k], Role::Activation)],
        )[0];
        let labels = self.g.add_tensor("labels", &[n], Role::Label);
        let metrics = self.g.add_node(
            Op::SoftmaxXent,
            "head.loss",
            &[logits, labels],
            &[("metrics", vec![2], Role::Metric)],
        )[0];
        (self.g.logits, self.g.labels, self.g.metrics) =
            (Some(logits), Some(labels), Some(metrics));
    }
}
