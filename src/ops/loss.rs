//! Softmax cross-entropy with integer labels: the mean loss and the number of correct
//! predictions (argmax, ties to the lowest index), its gradient `(softmax - onehot) / N`, and
//! the softmax alone for prediction.
//!
//! Labels are validated by the data loader; one that is out of range (`>= classes`) anyway is
//! never used as an index: it adds 0 to the loss sum (the mean still divides by N), is not
//! correct, and its gradient row is zero, on the GPU and in the twin alike.

use crate::gpu::{groups_1d, Cost, Dispatch};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] =
    &[crate::uniform!("loss", LossParams, [batch, classes, _pad])];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("softmax_xent_forward", WORKGROUP),
    ("softmax_xent_backward", WORKGROUP),
    ("softmax_forward", WORKGROUP),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossParams {
    pub batch: u32,
    pub classes: u32,
    pub _pad: [u32; 2],
}

/// logits: [batch, classes], labels: [batch].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossShape {
    pub batch: usize,
    pub classes: usize,
}

/// The three kernels of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossPass {
    SoftmaxXentForward,
    SoftmaxXentBackward,
    SoftmaxForward,
}

impl LossShape {
    pub fn len(&self) -> usize {
        self.batch * self.classes
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn params(&self) -> LossParams {
        LossParams {
            batch: self.batch as u32,
            classes: self.classes as u32,
            _pad: [0; 2],
        }
    }

    /// Entry point, workgroup counts and work of one pass (the dispatch and the profiler's
    /// counts both come from here). FLOPs count exp and divide as one each: per logit the loss
    /// does max, subtract, exp, add (4); the softmax adds a divide (5); its gradient also
    /// subtracts the one-hot and divides by N (7).
    pub fn launch(&self, pass: LossPass) -> (&'static str, [u32; 3], Cost) {
        assert!(
            self.batch >= 1 && self.classes >= 1,
            "loss {self:?}: needs at least one sample and one class"
        );
        assert!(
            (self.len() as u64) < u32::MAX as u64,
            "loss {self:?}: logits must have fewer than 2^32 elements (kernels index with u32)"
        );
        let (n, k) = (self.batch as u64, self.classes as u64);
        // One workgroup per row: the 256 threads share a row's max and sum.
        let per_row = groups_1d(n * WORKGROUP[0] as u64, WORKGROUP[0]);
        match pass {
            LossPass::SoftmaxXentForward => (
                "softmax_xent_forward",
                [1, 1, 1],
                Cost {
                    flops: 4 * n * k,
                    bytes: 4 * (n * k + n + 2),
                },
            ),
            LossPass::SoftmaxXentBackward => (
                "softmax_xent_backward",
                per_row,
                Cost {
                    flops: 7 * n * k,
                    bytes: 4 * (2 * n * k + n),
                },
            ),
            LossPass::SoftmaxForward => (
                "softmax_forward",
                per_row,
                Cost {
                    flops: 5 * n * k,
                    bytes: 4 * (2 * n * k),
                },
            ),
        }
    }

    fn dispatch(&self, pass: LossPass) -> Dispatch {
        let (entry, groups, cost) = self.launch(pass);
        Dispatch::new(entry, &self.params(), groups).cost(cost.flops, cost.bytes)
    }
}

/// logits: [N, K], labels: [N] (u32) -> out: [2] = (mean loss, number correct as f32)
pub fn softmax_xent_forward(
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    out: &wgpu::Buffer,
    s: LossShape,
) -> Dispatch {
    s.dispatch(LossPass::SoftmaxXentForward)
        .bind(1, logits)
        .bind(2, labels)
        .bind(3, out)
}

/// logits: [N, K], labels: [N] (u32) -> dlogits: [N, K], the gradient of the mean loss
pub fn softmax_xent_backward(
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    dlogits: &wgpu::Buffer,
    s: LossShape,
) -> Dispatch {
    s.dispatch(LossPass::SoftmaxXentBackward)
        .bind(1, logits)
        .bind(2, labels)
        .bind(4, dlogits)
}

/// logits: [N, K] -> probs: [N, K]
pub fn softmax_forward(logits: &wgpu::Buffer, probs: &wgpu::Buffer, s: LossShape) -> Dispatch {
    s.dispatch(LossPass::SoftmaxForward)
        .bind(1, logits)
        .bind(5, probs)
}

/// The CPU twin, in f64.
pub mod cpu {
    use super::LossShape;

    /// (max, index of the first max) of one row.
    fn max_argmax(row: &[f64]) -> (f64, usize) {
        let mut best = (row[0], 0);
        for (k, &z) in row.iter().enumerate().skip(1) {
            if z > best.0 {
                best = (z, k);
            }
        }
        best
    }

    /// logits: [N, K], labels: [N] -> (mean loss, number of correct predictions)
    pub fn softmax_xent_forward(logits: &[f64], labels: &[u32], s: LossShape) -> (f64, usize) {
        let mut loss = 0.0;
        let mut correct = 0;
        for (row, &label) in logits.chunks_exact(s.classes).zip(labels) {
            let (max, arg) = max_argmax(row);
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            let label = label as usize;
            if label < s.classes {
                loss += sum.ln() - (row[label] - max);
                correct += (arg == label) as usize;
            }
        }
        (loss / s.batch as f64, correct)
    }

    /// logits: [N, K], labels: [N] -> dlogits: [N, K]
    pub fn softmax_xent_backward(logits: &[f64], labels: &[u32], s: LossShape) -> Vec<f64> {
        let mut d = softmax_forward(logits, s);
        for (row, &label) in d.chunks_exact_mut(s.classes).zip(labels) {
            let label = label as usize;
            if label < s.classes {
                row[label] -= 1.0;
                row.iter_mut().for_each(|g| *g /= s.batch as f64);
            } else {
                row.fill(0.0);
            }
        }
        d
    }

    /// logits: [N, K] -> probs: [N, K]
    pub fn softmax_forward(logits: &[f64], s: LossShape) -> Vec<f64> {
        let mut probs = Vec::with_capacity(logits.len());
        for row in logits.chunks_exact(s.classes) {
            let (max, _) = max_argmax(row);
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            probs.extend(row.iter().map(|&z| (z - max).exp() / sum));
        }
        probs
    }
}
