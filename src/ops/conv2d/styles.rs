//! Which kernel style runs each convolution of a network: the device's style (`gpu::choice`,
//! decided on the probe layer), refined per shape where the choice was measured.

use anyhow::Result;

use super::{probe, timing, Conv2dShape};
use crate::gpu::{Gpu, KernelStyle, ShapeChoice};

/// Timed repetitions per pass and style when choosing for a shape (the best counts).
const CHOICE_REPS: usize = 3;

/// The style per convolution shape, for lowering a graph.
#[derive(Clone, Debug)]
pub struct ConvStyles {
    /// The device's style: shapes not listed take it.
    pub default: KernelStyle,
    /// Per shape (its `describe`), with the timings it was chosen by.
    pub shapes: Vec<ShapeChoice>,
    /// The subgroup kernels' lanes on the device (`choice::subgroup_lanes`).
    pub lanes: usize,
}

/// `shapes` without repeats (a network repeats its block shapes), in first-seen order.
pub fn distinct(shapes: &[Conv2dShape]) -> Vec<Conv2dShape> {
    let mut out: Vec<Conv2dShape> = Vec::new();
    for s in shapes {
        if !out.iter().any(|d| d.describe() == s.describe()) {
            out.push(*s);
        }
    }
    out
}

impl ConvStyles {
    /// The styles of `shapes` on `gpu` (each timed in every candidate style where the device's
    /// choice was measured; see `choice::choose_per_shape`).
    pub fn choose(gpu: &Gpu, shapes: &[Conv2dShape]) -> Result<Self> {
        let base = gpu.kernel_choice(probe::measure)?;
        let distinct = distinct(shapes);
        let names: Vec<String> = distinct.iter().map(Conv2dShape::describe).collect();
        let chosen = gpu.shape_choices(&base, &names, |i, style| {
            timing::time_passes(gpu, &distinct[i].on(gpu, style), CHOICE_REPS)
        })?;
        Ok(Self {
            default: base.style,
            lanes: crate::gpu::choice::subgroup_lanes(gpu),
            shapes: chosen,
        })
    }

    /// `s` in the style chosen for it.
    pub fn apply(&self, s: Conv2dShape) -> Conv2dShape {
        let name = s.describe();
        let style = self
            .shapes
            .iter()
            .find(|c| c.shape == name)
            .map(|c| c.style);
        s.with_style(style.unwrap_or(self.default))
            .with_lanes(self.lanes)
    }

    /// One line per shape whose style was timed (nothing when none was).
    pub fn describe_timed(&self) -> Vec<String> {
        self.shapes
            .iter()
            .filter(|c| !c.times.is_empty())
            .map(ShapeChoice::describe)
            .collect()
    }
}
