//! A convolution's shape: input, kernel, stride and padding, checked once at construction, and
//! the sizes of the tensors and scratch buffers it needs.

use anyhow::{bail, Result};

use super::{Tiling, Tilings, MAX_GROUPS_PER_DIM};
use crate::gpu::KernelStyle;

/// Zero padding added on each side of the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding {
    /// Keras/TF 'valid': no padding.
    pub const fn valid() -> Self {
        Self {
            top: 0,
            bottom: 0,
            left: 0,
            right: 0,
        }
    }

    /// Keras/TF 'same' for an `h` x `w` input: the output is ceil(input / stride) per axis.
    pub fn same(hw: (usize, usize), kernel: (usize, usize), stride: (usize, usize)) -> Self {
        let (top, bottom) = same_padding(hw.0, kernel.0, stride.0);
        let (left, right) = same_padding(hw.1, kernel.1, stride.1);
        Self {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// Keras/TF 'same' padding along one axis as (before, after): out = ceil(in / s), total =
/// max((out - 1) * s + k - in, 0), and the odd pixel goes after (bottom/right), as TF does.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// A convolution: input x [batch, cin, h, w], weight [cout, cin, kh, kw], optional bias [cout].
/// Build it with [`Conv2dShape::new`] (or [`Conv2dShape::same`]), which checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad: Padding,
    pub has_bias: bool,
    /// Tilings that override the geometry's choice (tests use it to run every kernel path);
    /// all `None` from [`Conv2dShape::new`].
    pub tilings: Tilings,
    /// The adapter's kernel style: passes not forced by `tilings` take its kernels.
    pub style: KernelStyle,
    /// The subgroup kernels' workgroup: 8 lanes, or 4 where the adapter's subgroups may be 4
    /// wide (`choice::subgroup_lanes`).
    pub lanes: usize,
}

impl Conv2dShape {
    /// x: [N, Cin, H, W] given as `x`, `kernel` = (KH, KW), `stride` = (sh, sw).
    pub fn new(
        x: [usize; 4],
        cout: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: Padding,
        has_bias: bool,
    ) -> Result<Self> {
        let [batch, cin, h, w] = x;
        let s = Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh: kernel.0,
            kw: kernel.1,
            sh: stride.0,
            sw: stride.1,
            pad,
            has_bias,
            tilings: Tilings::default(),
            style: KernelStyle::Tiled,
            lanes: 8,
        };
        s.validate()?;
        Ok(s)
    }

    /// This shape with the given passes' tilings forced. Errors on a tiling the kernels do not
    /// support (split reductions are for the weight gradient only).
    pub fn with_tilings(self, tilings: Tilings) -> Result<Self> {
        let ok = |t: Option<Tiling>, max_ksplit| match t {
            None | Some(Tiling::Square) | Some(Tiling::Subgroup) => true,
            Some(t) => Tiling::narrow_options(max_ksplit).any(|o| o == t),
        };
        if !ok(tilings.forward, 1)
            || !ok(tilings.backward_input, 1)
            || !ok(tilings.backward_weight, 16)
        {
            bail!("conv2d: unsupported tiling in {tilings:?}");
        }
        let s = Self { tilings, ..self };
        s.validate()?;
        Ok(s)
    }

    /// Keras/TF 'same' padding for this input, kernel and stride.
    pub fn same(
        x: [usize; 4],
        cout: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        has_bias: bool,
    ) -> Result<Self> {
        if stride.0 == 0 || stride.1 == 0 {
            bail!("conv2d: stride {stride:?} must be at least 1");
        }
        let pad = Padding::same((x[2], x[3]), kernel, stride);
        Self::new(x, cout, kernel, stride, pad, has_bias)
    }

    pub(super) fn validate(&self) -> Result<()> {
        let dims = [
            self.batch, self.cin, self.h, self.w, self.cout, self.kh, self.kw, self.sh, self.sw,
        ];
        if dims.contains(&0) {
            bail!("conv2d {self:?}: every size and stride must be at least 1");
        }
        let (ph, pw) = (
            self.h + self.pad.top + self.pad.bottom,
            self.w + self.pad.left + self.pad.right,
        );
        if self.kh > ph || self.kw > pw {
            bail!(
                "conv2d: a {}x{} kernel does not fit a padded {ph}x{pw} input: use a larger \
                 input or 'same' padding",
                self.kh,
                self.kw
            );
        }
        // Shaders index with u32, and tile counts must fit a workgroup dimension.
        let g = self.geometry();
        let largest = [
            self.batch * self.cin * self.h * self.w,
            self.batch * self.cout * g.oh * g.ow,
            g.splits * self.cout * g.k,
        ];
        let groups = [
            g.forward.groups,
            g.backward_input.groups,
            g.backward_weight.groups,
        ];
        if largest.iter().any(|&n| n > u32::MAX as usize)
            || self.cin.max(self.cout) > MAX_GROUPS_PER_DIM
            || groups
                .iter()
                .flatten()
                .any(|&n| n as usize > MAX_GROUPS_PER_DIM)
        {
            bail!(
                "conv2d {}x{}x{}x{} -> {} channels: tensors too large for one dispatch (32-bit indices)",
                self.batch,
                self.cin,
                self.h,
                self.w,
                self.cout
            );
        }
        Ok(())
    }

    /// y: [N, Cout, OH, OW].
    pub fn output_shape(&self) -> [usize; 4] {
        let g = self.geometry();
        [self.batch, self.cout, g.oh, g.ow]
    }
    pub fn input_len(&self) -> usize {
        self.batch * self.cin * self.h * self.w
    }
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }
    /// Scratch `backward_weight` needs for its split-K slices (0: it writes `dw` directly).
    /// Covers whichever style runs the pass: graphs size scratch before an adapter's style is
    /// known.
    pub fn dw_partials_len(&self) -> usize {
        let tiled = |s: &Self| {
            let g = s.geometry();
            if g.backward_weight.tiling != Tiling::Subgroup && g.splits > 1 {
                g.splits * s.weight_len()
            } else {
                0
            }
        };
        let default_style = Self {
            style: KernelStyle::Tiled,
            ..*self
        };
        tiled(self)
            .max(tiled(&default_style))
            .max(self.subgroup_dw_partials_len())
    }

    /// Scratch `forward` needs (the subgroup kernels' packed weights), in any style.
    pub fn forward_scratch_len(&self) -> usize {
        self.subgroup_forward_pack_len()
    }

    /// Scratch `backward_input` needs (every stride phase's packed weights), in any style.
    pub fn backward_input_scratch_len(&self) -> usize {
        self.subgroup_backward_input_pack_len()
    }

    /// The shape in one line, for kernel-choice keys and reports: "NxCxHxW -> Cout KHxKW/SHxSW
    /// pad T,B,L,R" (and " bias"); tilings and style are not part of it.
    pub fn describe(&self) -> String {
        let p = self.pad;
        format!(
            "{}x{}x{}x{} -> {} {}x{}/{}x{} pad {},{},{},{}{}",
            self.batch,
            self.cin,
            self.h,
            self.w,
            self.cout,
            self.kh,
            self.kw,
            self.sh,
            self.sw,
            p.top,
            p.bottom,
            p.left,
            p.right,
            if self.has_bias { " bias" } else { "" }
        )
    }

    /// This shape run by `style`'s kernels (passes forced by `tilings` keep theirs).
    pub fn with_style(self, style: KernelStyle) -> Self {
        Self { style, ..self }
    }

    /// This shape's subgroup kernels with `lanes` (4 or 8) lanes per workgroup.
    pub fn with_lanes(self, lanes: usize) -> Self {
        assert!(
            lanes == 4 || lanes == 8,
            "the subgroup kernels come for 4 or 8 lanes"
        );
        Self { lanes, ..self }
    }

    /// This shape in `style` as `gpu` runs it (its subgroup lanes).
    pub fn on(self, gpu: &crate::gpu::Gpu, style: KernelStyle) -> Self {
        self.with_style(style)
            .with_lanes(crate::gpu::choice::subgroup_lanes(gpu))
    }
}
