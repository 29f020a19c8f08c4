//! 2-D convolution (NCHW, f32) with optional bias, and its gradients with respect to the
//! input, the weight and the bias. The kernels are implicit GEMMs in two styles (the adapter's
//! [`KernelStyle`], chosen in `gpu::choice`): `tiled` (`shaders/conv2d.wgsl`), with square
//! 64x64 tiles for wide layers and `_narrow` tiles (16x256 to 256x16, skipping padding-only
//! taps, dx split by stride phase) for the rest, and `subgroup`
//! (`shaders/conv2d_subgroup.wgsl`, launched from [`subgroup`]) for CPU adapters. The shape
//! rules, the choice of tiling per pass, launch geometry and costs all come from
//! [`Conv2dShape::geometry`].

mod geometry;
pub mod probe;
mod shape;
pub mod styles;
pub mod subgroup;
mod tiling;
pub mod timing;

use geometry::bias_threads_per_channel;
pub use geometry::{tap_window, Conv2dGeometry, GemmPass};
pub use shape::{same_padding, Conv2dShape, Padding};
pub use styles::ConvStyles;
use subgroup::{ConvGemmParams, ConvPackParams, ConvWeightGradParams, ConvWindowSumParams};
pub use tiling::{Tiling, Tilings, CHUNK, NARROW_CHUNK, NARROW_WORKGROUP, TILE};

use crate::gpu::{Cost, Dispatch, MAX_GROUPS_PER_DIM};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
pub const UNIFORMS: &[crate::ops::Uniform] = &[
    crate::uniform!(
        "conv2d",
        Conv2dParams,
        [
            batch,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            oh,
            ow,
            sh,
            sw,
            pad_top,
            pad_left,
            has_bias,
            splits,
            span,
            tile_rows,
            tile_ksplit,
            seg_shift,
            pack_ldw,
            pack_kpack,
            pad0,
            pad1,
            pad2
        ]
    ),
    crate::uniform!(
        "conv2d",
        ConvPackParams,
        [
            rows, chans, taps_h, taps_w, kw, khw, stride_m, stride_c, base_h, step_h, base_w,
            step_w, ldw, out_base, kpack, pad1
        ]
    ),
    crate::uniform!(
        "conv2d",
        ConvWindowSumParams,
        [cout, cin, kh, kw, first_h, taps_h, first_w, taps_w, splits, pad0, pad1, pad2]
    ),
    crate::uniform!(
        "conv2d_subgroup",
        ConvGemmParams,
        [
            batch, chans, h, w, rows, gh, gw, sh, sw, off_h, off_w, taps_h, taps_w, out_h, out_w,
            out_sh, out_sw, out_h0, out_w0, ldw, wp_base, has_bias, pairs, by_row
        ]
    ),
    crate::uniform!(
        "conv2d_subgroup",
        ConvWeightGradParams,
        [
            batch, cin, h, w, cout, oh, ow, sh, sw, pad_top, pad_left, first_h, first_w, taps_h,
            taps_w, span, splits, kh, kw, direct, pairs, pad0, pad1, pad2
        ]
    ),
];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("conv2d_forward", WORKGROUP),
    ("conv2d_backward_input", WORKGROUP),
    ("conv2d_backward_weight", WORKGROUP),
    ("conv2d_backward_weight_sum", WORKGROUP),
    ("conv2d_backward_bias", WORKGROUP),
    ("conv2d_forward_narrow", NARROW_WORKGROUP),
    ("conv2d_backward_input_narrow", NARROW_WORKGROUP),
    ("conv2d_backward_weight_narrow", NARROW_WORKGROUP),
    ("conv2d_pack_weight", subgroup::PACK_WORKGROUP),
    (
        "conv2d_backward_weight_sum_window",
        subgroup::PACK_WORKGROUP,
    ),
    ("conv2d_gemm_subgroup", subgroup::WORKGROUP),
    ("conv2d_backward_weight_subgroup", subgroup::WORKGROUP),
    ("conv2d_backward_weight_rows_subgroup", subgroup::WORKGROUP),
    ("conv2d_gemm_subgroup4", subgroup::WORKGROUP4),
    ("conv2d_backward_weight_subgroup4", subgroup::WORKGROUP4),
    (
        "conv2d_backward_weight_rows_subgroup4",
        subgroup::WORKGROUP4,
    ),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub batch: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub kh: u32,
    pub kw: u32,
    pub oh: u32,
    pub ow: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub has_bias: u32,
    pub splits: u32,
    pub span: u32,
    /// `_narrow` kernels: row threads of the tile ([`Tiling::Narrow`]'s `rows`).
    pub tile_rows: u32,
    /// `_narrow` kernels: thread groups splitting each reduction chunk (`ksplit`).
    pub tile_ksplit: u32,
    /// `conv2d_backward_bias`: log2 of the threads per channel.
    pub seg_shift: u32,
    /// `conv2d_forward_narrow`: the packed weights' layout (`subgroup::ldw`, `subgroup::kpack`),
    /// which it reads a quad of rows at a time.
    pub pack_ldw: u32,
    pub pack_kpack: u32,
    /// Pad the struct to a multiple of 16 bytes.
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

impl Conv2dShape {
    /// Multiply-adds of the convolution, each counted as 2 FLOPs; the two GEMM backward passes
    /// do the same useful work (strided `dx` also multiplies skipped zeros, not counted).
    pub(crate) fn macs(&self) -> u64 {
        let g = self.geometry();
        (self.cout * g.positions * g.k) as u64
    }
    pub fn forward_cost(&self) -> Cost {
        let bias = if self.has_bias { self.cout } else { 0 };
        let adds = if self.has_bias { self.output_len() } else { 0 };
        Cost {
            flops: 2 * self.macs() + adds as u64,
            bytes: 4 * (self.input_len() + self.weight_len() + bias + self.output_len()) as u64,
        }
    }
    pub fn backward_input_cost(&self) -> Cost {
        Cost {
            flops: 2 * self.macs(),
            bytes: 4 * (self.output_len() + self.weight_len() + self.input_len()) as u64,
        }
    }
    /// Both `backward_weight` passes together: the GEMM and, when split, the slice sum.
    pub fn backward_weight_cost(&self) -> Cost {
        let [gemm, sum] = self.backward_weight_costs();
        Cost {
            flops: gemm.flops + sum.flops,
            bytes: gemm.bytes + sum.bytes,
        }
    }
    fn backward_weight_costs(&self) -> [Cost; 2] {
        let g = self.geometry();
        let partials = self.dw_partials_len();
        let gemm = Cost {
            flops: 2 * self.macs(),
            bytes: 4
                * (self.output_len() + self.input_len() + partials.max(self.weight_len())) as u64,
        };
        let sum = if g.splits > 1 {
            Cost {
                flops: ((g.splits - 1) * self.weight_len()) as u64,
                bytes: 4 * (partials + self.weight_len()) as u64,
            }
        } else {
            Cost::default()
        };
        [gemm, sum]
    }
    pub fn backward_bias_cost(&self) -> Cost {
        Cost {
            flops: self.output_len() as u64,
            bytes: 4 * (self.output_len() + self.cout) as u64,
        }
    }

    fn params(&self, g: &Conv2dGeometry) -> Conv2dParams {
        Conv2dParams {
            batch: self.batch as u32,
            cin: self.cin as u32,
            h: self.h as u32,
            w: self.w as u32,
            cout: self.cout as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            oh: g.oh as u32,
            ow: g.ow as u32,
            sh: self.sh as u32,
            sw: self.sw as u32,
            pad_top: self.pad.top as u32,
            pad_left: self.pad.left as u32,
            has_bias: self.has_bias as u32,
            splits: g.splits as u32,
            span: g.span as u32,
            tile_rows: 0,
            tile_ksplit: 0,
            seg_shift: bias_threads_per_channel(g.positions).trailing_zeros(),
            pack_ldw: subgroup::ldw(self.cout) as u32,
            pack_kpack: subgroup::kpack(self.cout) as u32,
            ..Default::default()
        }
    }

    /// The parameters of one GEMM pass: the shape's, plus the pass's narrow tiling.
    fn pass_params(&self, g: &Conv2dGeometry, pass: &GemmPass) -> Conv2dParams {
        let (rows, ksplit) = match pass.tiling {
            Tiling::Square | Tiling::Subgroup => (0, 0),
            Tiling::Narrow { rows, ksplit } => (rows, ksplit),
        };
        Conv2dParams {
            tile_rows: rows as u32,
            tile_ksplit: ksplit as u32,
            ..self.params(g)
        }
    }
}

/// x: [N, Cin, H, W], w: [Cout, Cin, KH, KW], bias: [Cout] exactly when `s.has_bias`
/// -> y: [N, Cout, OH, OW]. `packed` is scratch of `s.forward_scratch_len()` elements.
pub fn forward(
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    y: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    assert_eq!(
        bias.is_some(),
        s.has_bias,
        "conv2d::forward: a bias buffer must be given exactly when the shape has a bias"
    );
    let g = s.geometry();
    if g.forward.tiling == Tiling::Subgroup {
        return subgroup::forward(x, w, bias, y, packed, s);
    }
    let c = s.forward_cost();
    let params = s.pass_params(&g, &g.forward);
    // The entry points always declare the bias binding; without a bias, an input stands in
    // (two read-only bindings of one buffer are allowed) and the kernel never reads it.
    if g.forward.tiling == Tiling::Square {
        return vec![Dispatch::new("conv2d_forward", &params, g.forward.groups)
            .bind(1, x)
            .bind(2, w)
            .bind(3, bias.unwrap_or(w))
            .bind(4, y)
            .cost(c.flops, c.bytes)];
    }
    // Narrow: the weights packed first (the subgroup forward's layout, over the tap window),
    // then read a quad of rows per load.
    let corr = s.subgroup_forward();
    let mut ds = Vec::new();
    if corr.reduction() > 0 {
        ds.push(subgroup::pack(w, packed, s, &corr, true));
    }
    ds.push(
        Dispatch::new("conv2d_forward_narrow", &params, g.forward.groups)
            .bind(1, x)
            .bind(3, bias.unwrap_or(x))
            .bind(4, y)
            .bind(10, packed)
            .cost(c.flops, c.bytes),
    );
    ds
}

/// dy: [N, Cout, OH, OW], w: [Cout, Cin, KH, KW] -> dx: [N, Cin, H, W]. `packed` is scratch
/// of `s.backward_input_scratch_len()` elements.
pub fn backward_input(
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    let g = s.geometry();
    if g.backward_input.tiling == Tiling::Subgroup {
        return subgroup::backward_input(dy, w, dx, packed, s);
    }
    let c = s.backward_input_cost();
    let pass = &g.backward_input;
    let entry = pass
        .tiling
        .entry("conv2d_backward_input", "conv2d_backward_input_narrow");
    vec![Dispatch::new(entry, &s.pass_params(&g, pass), pass.groups)
        .bind(2, w)
        .bind(5, dy)
        .bind(6, dx)
        .cost(c.flops, c.bytes)]
}

/// dy: [N, Cout, OH, OW], x: [N, Cin, H, W] -> dw: [Cout, Cin, KH, KW]. `partials` is scratch
/// of `s.dw_partials_len()` elements (unused, any buffer, when that is 0).
pub fn backward_weight(
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    partials: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    let g = s.geometry();
    let pass = &g.backward_weight;
    if pass.tiling == Tiling::Subgroup {
        return subgroup::backward_weight(dy, x, partials, dw, s);
    }
    let params = s.pass_params(&g, pass);
    let [gemm, sum] = s.backward_weight_costs();
    let target = if g.splits > 1 { partials } else { dw };
    let entry = pass
        .tiling
        .entry("conv2d_backward_weight", "conv2d_backward_weight_narrow");
    let mut out = vec![Dispatch::new(entry, &params, pass.groups)
        .bind(1, x)
        .bind(5, dy)
        .bind(7, target)
        .cost(gemm.flops, gemm.bytes)];
    if g.splits > 1 {
        out.push(
            Dispatch::new("conv2d_backward_weight_sum", &params, g.weight_sum_groups)
                .bind(7, dw)
                .bind(9, partials)
                .cost(sum.flops, sum.bytes),
        );
    }
    out
}

/// dy: [N, Cout, OH, OW] -> db: [Cout].
pub fn backward_bias(dy: &wgpu::Buffer, db: &wgpu::Buffer, s: &Conv2dShape) -> Dispatch {
    let g = s.geometry();
    let c = s.backward_bias_cost();
    Dispatch::new("conv2d_backward_bias", &s.params(&g), g.bias_groups)
        .bind(5, dy)
        .bind(8, db)
        .cost(c.flops, c.bytes)
}

/// The CPU twin, in f64: plain loops over the definition, for clarity.
pub mod cpu;
