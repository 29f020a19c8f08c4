//! The `_subgroup` conv kernels (shaders/conv2d_subgroup.wgsl): launch geometry, the packed
//! weight layouts they read, dx's stride phases, and costs. One GEMM kernel serves the forward
//! pass and every stride phase of dx, each described as a correlation (`Correlation`).

use super::{tap_window, Conv2dShape};
use crate::gpu::{groups_1d, Cost, Dispatch, MAX_GROUPS_PER_DIM};

/// Rows and columns of one workgroup's output tile (`TM`, `TQ` in conv2d_subgroup.wgsl).
pub const TILE: usize = 32;
pub const WORKGROUP: [u32; 3] = [8, 1, 1];
/// The 4-lane entry points' workgroup (adapters with 4-wide subgroups).
pub const WORKGROUP4: [u32; 3] = [4, 1, 1];
pub const PACK_WORKGROUP: [u32; 3] = [256, 1, 1];
/// Split-K target for dw: enough workgroups for a CPU adapter's threads to share out
/// (lavapipe runs one per core), few enough that summing the slices stays cheap: each
/// partial is a scalar load there.
/// (The tiled style aims for more: `TILED_DW_TARGET_GROUPS` in mod.rs.)
const SUBGROUP_DW_TARGET_GROUPS: usize = 32;
/// ...and at least this many positions per slice.
const SUBGROUP_DW_MIN_POSITIONS_PER_SPLIT: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvGemmParams {
    pub batch: u32,
    pub chans: u32,
    pub h: u32,
    pub w: u32,
    pub rows: u32,
    pub gh: u32,
    pub gw: u32,
    pub sh: u32,
    pub sw: u32,
    pub off_h: i32,
    pub off_w: i32,
    pub taps_h: u32,
    pub taps_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_sh: u32,
    pub out_sw: u32,
    pub out_h0: u32,
    pub out_w0: u32,
    pub ldw: u32,
    pub wp_base: u32,
    pub has_bias: u32,
    pub pairs: u32,
    pub by_row: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvWeightGradParams {
    pub batch: u32,
    pub cin: u32,
    pub h: u32,
    pub w: u32,
    pub cout: u32,
    pub oh: u32,
    pub ow: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub first_h: u32,
    pub first_w: u32,
    pub taps_h: u32,
    pub taps_w: u32,
    pub span: u32,
    pub splits: u32,
    pub kh: u32,
    pub kw: u32,
    pub direct: u32,
    pub pairs: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvPackParams {
    pub rows: u32,
    pub chans: u32,
    pub taps_h: u32,
    pub taps_w: u32,
    pub kw: u32,
    pub khw: u32,
    pub stride_m: u32,
    pub stride_c: u32,
    pub base_h: i32,
    pub step_h: i32,
    pub base_w: i32,
    pub step_w: i32,
    pub ldw: u32,
    pub out_base: u32,
    pub kpack: u32,
    pub pad1: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvWindowSumParams {
    pub cout: u32,
    pub cin: u32,
    pub kh: u32,
    pub kw: u32,
    pub first_h: u32,
    pub taps_h: u32,
    pub first_w: u32,
    pub taps_w: u32,
    pub splits: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

/// One axis of a correlation: grid cell a reads source index a * stride + off + t for taps
/// t < taps (zero outside the source), and lands at output index a * out_stride + out0.
/// The packed weights hold kernel tap base + step * t.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub grid: usize,
    pub stride: usize,
    pub off: isize,
    pub taps: usize,
    pub out_stride: usize,
    pub out0: usize,
    pub base: isize,
    pub step: isize,
}

/// One GEMM of the `_subgroup` kernel: M rows, reduction over C channels x the taps of `h`, `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Correlation {
    pub rows: usize,
    pub chans: usize,
    pub h: Axis,
    pub w: Axis,
    /// Where its packed weights start in the scratch buffer (floats).
    pub pack_base: usize,
}

/// Packed floats per packed step: M rounded up to the tile, so the GEMM reads no row bounds.
pub fn ldw(rows: usize) -> usize {
    rows.next_multiple_of(TILE)
}

/// Reduction steps per packed step: 2 for M <= 16 (see gemm_subgroup), else 1.
pub fn kpack(rows: usize) -> usize {
    if rows <= TILE / 2 {
        2
    } else {
        1
    }
}

impl Correlation {
    /// Whether its GEMM takes the row-window path (`gemm_by_row` in conv2d_subgroup.wgsl) over
    /// a source `src_w` wide: 3 taps per row from one cell left of the column on (3x3 same
    /// convs and their stride-1 dx), each lane's 4 columns 4 aligned cells of one grid row (the
    /// grid's width a multiple of 4), read at stride 1 from source rows of whole quads.
    pub fn by_row(&self, src_w: usize) -> bool {
        let w = &self.w;
        w.stride == 1
            && src_w.is_multiple_of(4)
            && w.grid.is_multiple_of(4)
            && w.off == -1
            && w.taps == 3
    }

    pub fn reduction(&self) -> usize {
        self.chans * self.h.taps * self.w.taps
    }
    pub fn pack_len(&self) -> usize {
        self.reduction().div_ceil(kpack(self.rows)) * ldw(self.rows)
    }
    pub fn columns(&self, batch: usize) -> usize {
        batch * self.h.grid * self.w.grid
    }
}

/// Along one axis of the forward pass: output o reads input o * s - before + first + t.
fn forward_axis(n: usize, k: usize, s: usize, before: usize, m: usize) -> Axis {
    let (first, taps) = tap_window(n, k, s, before, m);
    Axis {
        grid: m,
        stride: s,
        off: first as isize - before as isize,
        taps,
        out_stride: 1,
        out0: 0,
        base: first as isize,
        step: 1,
    }
}

/// Along one axis of dx, stride phase ph: the inputs i = s * (a0 + a) + ph - before receive
/// the kernel taps ph + s * j for j in [j0, j0 + count), from outputs o = a0 + a - j (mirrors
/// `phase_axis` in conv2d.wgsl). As a correlation over dy the taps run flipped, t = j0 + count
/// - 1 - j, so that o = a + (a0 - j0 - count + 1) + t rises with t.
fn phase_axis(n: usize, k: usize, s: usize, before: usize, m: usize, ph: usize) -> Axis {
    let a0 = (before + s - 1 - ph) / s;
    let a_end = ((n + before + s - 1 - ph) / s).max(a0);
    let taps = (k + s - 1 - ph) / s;
    let j0 = (a0 + 1).saturating_sub(m);
    let j_end = taps.min(a_end);
    let count = j_end.saturating_sub(j0);
    Axis {
        grid: a_end - a0,
        stride: 1,
        off: a0 as isize - j0 as isize - count as isize + 1,
        taps: count,
        out_stride: s,
        out0: s * a0 + ph - before,
        base: (ph + s * (j0 + count)) as isize - s as isize,
        step: -(s as isize),
    }
}

impl Conv2dShape {
    /// The forward pass as one correlation over x: rows Cout, the tap window per axis.
    pub fn subgroup_forward(&self) -> Correlation {
        let g = self.geometry();
        Correlation {
            rows: self.cout,
            chans: self.cin,
            h: forward_axis(self.h, self.kh, self.sh, self.pad.top, g.oh),
            w: forward_axis(self.w, self.kw, self.sw, self.pad.left, g.ow),
            pack_base: 0,
        }
    }

    /// dx as one correlation over dy per stride phase that holds input pixels, their packed
    /// weights one after another.
    pub fn subgroup_backward_input(&self) -> Vec<Correlation> {
        let g = self.geometry();
        let mut out = Vec::new();
        let mut base = 0;
        for ph in 0..self.sh {
            for pw in 0..self.sw {
                let c = Correlation {
                    rows: self.cin,
                    chans: self.cout,
                    h: phase_axis(self.h, self.kh, self.sh, self.pad.top, g.oh, ph),
                    w: phase_axis(self.w, self.kw, self.sw, self.pad.left, g.ow, pw),
                    pack_base: base,
                };
                if c.h.grid > 0 && c.w.grid > 0 {
                    base += c.pack_len();
                    out.push(c);
                }
            }
        }
        out
    }

    /// Whether dw takes the row-window path (`conv2d_backward_weight_rows_subgroup`): 3 taps
    /// along w from one cell left of each position (3x3 same convs), stride 1 there, and
    /// rows of whole quads in x and dy.
    pub fn subgroup_dw_by_row(&self) -> bool {
        let g = self.geometry();
        let (first_w, taps_w) = g.window[1];
        self.sw == 1
            && taps_w == 3
            && first_w as isize - self.pad.left as isize == -1
            && self.w.is_multiple_of(4)
            && g.ow.is_multiple_of(4)
    }

    /// dw's column tiles: 4 window columns per lane each, or on the row-window path one row
    /// (ci, jh) of 3 taps per lane.
    pub fn subgroup_dw_column_tiles(&self) -> usize {
        let g = self.geometry();
        if self.subgroup_dw_by_row() {
            (self.cin * g.window[0].1).div_ceil(self.lanes)
        } else {
            (self.cin * g.window[0].1 * g.window[1].1).div_ceil(4 * self.lanes)
        }
    }

    /// dw's split-K as (slices, positions per slice).
    pub fn subgroup_dw_split(&self) -> (usize, usize) {
        let g = self.geometry();
        dw_split(
            self.subgroup_dw_column_tiles() * self.cout.div_ceil(TILE),
            g.positions,
            4 * kpack(self.cout),
        )
    }

    /// Covers either lane count: graphs size scratch before the adapter is known.
    pub fn subgroup_dw_partials_len(&self) -> usize {
        let g = self.geometry();
        let splits = [4, 8]
            .map(|lanes| self.with_lanes(lanes).subgroup_dw_split().0)
            .into_iter()
            .max()
            .unwrap_or(1);
        splits * self.cout * self.cin * g.window[0].1 * g.window[1].1
    }

    /// Scratch the subgroup forward pass packs its weights into.
    pub fn subgroup_forward_pack_len(&self) -> usize {
        self.subgroup_forward().pack_len()
    }

    /// Scratch the subgroup dx packs every phase's weights into.
    pub fn subgroup_backward_input_pack_len(&self) -> usize {
        self.subgroup_backward_input()
            .iter()
            .map(Correlation::pack_len)
            .sum()
    }

    /// The largest workgroup count any `_subgroup` launch of this shape needs in one
    /// dimension (checked against the limit by `validate`).
    pub fn subgroup_max_groups(&self) -> usize {
        let gemm = |c: &Correlation| {
            let [x, y, z] = gemm_groups(c, self);
            x.max(y).max(z) as usize
        };
        let (splits, _) = self.subgroup_dw_split();
        self.subgroup_backward_input()
            .iter()
            .map(gemm)
            .chain([
                gemm(&self.subgroup_forward()),
                self.subgroup_dw_column_tiles(),
                splits,
            ])
            .max()
            .unwrap_or(0)
    }
}

/// dw's split-K for `tiles` output tiles over `positions`: (slices, positions per slice, a
/// multiple of `step`, the positions the kernel takes per step, so that no step straddles
/// two slices).
pub fn dw_split(tiles: usize, positions: usize, step: usize) -> (usize, usize) {
    let splits = SUBGROUP_DW_TARGET_GROUPS
        .div_ceil(tiles)
        .min(positions / SUBGROUP_DW_MIN_POSITIONS_PER_SPLIT)
        .clamp(1, MAX_GROUPS_PER_DIM);
    let span = positions.div_ceil(splits).next_multiple_of(step);
    (positions.div_ceil(span), span)
}

/// The 8-lane or the 4-lane entry point, by the shape's lanes.
fn lanes_entry(s: &Conv2dShape, eight: &'static str, four: &'static str) -> &'static str {
    if s.lanes == 4 {
        four
    } else {
        eight
    }
}

/// Column tiles in x (folded into z past the per-dimension limit, or `fold_past` in tests),
/// row tiles in y.
fn gemm_groups(c: &Correlation, s: &Conv2dShape) -> [u32; 3] {
    let fold_past = s
        .tilings
        .fold_past
        .unwrap_or(MAX_GROUPS_PER_DIM)
        .clamp(1, MAX_GROUPS_PER_DIM);
    let tiles = c.columns(s.batch).div_ceil(4 * s.lanes).max(1);
    let z = tiles.div_ceil(fold_past);
    [
        tiles.div_ceil(z) as u32,
        c.rows.div_ceil(TILE) as u32,
        z as u32,
    ]
}

/// Packs `w` [Cout, Cin, KH, KW] into `packed` for correlation `c`; `forward` picks the
/// layout (rows co, channels ci) or dx's (rows ci, channels co).
pub(super) fn pack(
    w: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    s: &Conv2dShape,
    c: &Correlation,
    forward: bool,
) -> Dispatch {
    let khw = s.kh * s.kw;
    let (stride_m, stride_c) = if forward {
        (s.cin * khw, khw)
    } else {
        (khw, s.cin * khw)
    };
    let params = ConvPackParams {
        rows: c.rows as u32,
        chans: c.chans as u32,
        taps_h: c.h.taps as u32,
        taps_w: c.w.taps as u32,
        kw: s.kw as u32,
        khw: khw as u32,
        stride_m: stride_m as u32,
        stride_c: stride_c as u32,
        base_h: c.h.base as i32,
        step_h: c.h.step as i32,
        base_w: c.w.base as i32,
        step_w: c.w.step as i32,
        ldw: ldw(c.rows) as u32,
        out_base: c.pack_base as u32,
        kpack: kpack(c.rows) as u32,
        pad1: 0,
    };
    let len = c.pack_len() as u64;
    // One invocation per channel and quad of rows (see conv2d_pack_weight).
    let invocations = (c.chans * ldw(c.rows) / 4 / kpack(c.rows)) as u64;
    Dispatch::new(
        "conv2d_pack_weight",
        &params,
        groups_1d(invocations, PACK_WORKGROUP[0]),
    )
    .bind(2, w)
    .bind(10, packed)
    .cost(0, 4 * (len + (c.rows * c.reduction()) as u64))
}

/// The GEMM of correlation `c` over `src` [N, C, H, W] into `out` [N, M, out_h, out_w], doing
/// `cost` of the pass's work; `name` is the pass's kernel in profiles.
#[allow(clippy::too_many_arguments)]
fn gemm(
    name: &'static str,
    src: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
    s: &Conv2dShape,
    c: &Correlation,
    src_hw: (usize, usize),
    out_hw: (usize, usize),
    cost: Cost,
) -> Dispatch {
    let params = ConvGemmParams {
        batch: s.batch as u32,
        chans: c.chans as u32,
        h: src_hw.0 as u32,
        w: src_hw.1 as u32,
        rows: c.rows as u32,
        gh: c.h.grid as u32,
        gw: c.w.grid as u32,
        sh: c.h.stride as u32,
        sw: c.w.stride as u32,
        off_h: c.h.off as i32,
        off_w: c.w.off as i32,
        taps_h: c.h.taps as u32,
        taps_w: c.w.taps as u32,
        out_h: out_hw.0 as u32,
        out_w: out_hw.1 as u32,
        out_sh: c.h.out_stride as u32,
        out_sw: c.w.out_stride as u32,
        out_h0: c.h.out0 as u32,
        out_w0: c.w.out0 as u32,
        ldw: ldw(c.rows) as u32,
        wp_base: (c.pack_base / 4) as u32,
        has_bias: bias.is_some() as u32,
        pairs: (kpack(c.rows) == 2) as u32,
        by_row: c.by_row(src_hw.1) as u32,
    };
    // The bias binding always exists; without one the packed weights stand in, never read.
    let entry = lanes_entry(s, "conv2d_gemm_subgroup", "conv2d_gemm_subgroup4");
    Dispatch::new(entry, &params, gemm_groups(c, s))
        .named(name)
        .bind(1, src)
        .bind(2, packed)
        .bind(3, bias.unwrap_or(packed))
        .bind(4, out)
        .bind(8, src)
        .cost(cost.flops, cost.bytes)
}

/// `total` shared out in proportion to `weights`, the shares summing to it exactly.
fn share(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut out: Vec<u64> = weights
        .iter()
        .map(|&w| (total as u128 * w as u128 / sum as u128) as u64)
        .collect();
    let given: u64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total - given;
    }
    out
}

/// x -> y: pack, then one GEMM.
pub fn forward(
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    y: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    let c = s.subgroup_forward();
    let g = s.geometry();
    let mut out = Vec::new();
    if c.reduction() > 0 {
        out.push(pack(w, packed, s, &c, true));
    }
    out.push(gemm(
        "conv2d_forward_subgroup",
        x,
        packed,
        bias,
        y,
        s,
        &c,
        (s.h, s.w),
        (g.oh, g.ow),
        s.forward_cost(),
    ));
    out
}

/// dy -> dx: per stride phase a pack and a GEMM (a phase without taps writes its zeros).
pub fn backward_input(
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    packed: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    let g = s.geometry();
    let phases = s.subgroup_backward_input();
    // The pass's work shared over the phases by their GEMM sizes.
    let work: Vec<u64> = phases
        .iter()
        .map(|c| (c.rows * c.columns(s.batch) * c.reduction().max(1)) as u64)
        .collect();
    let total = s.backward_input_cost();
    let (flops, bytes) = (share(total.flops, &work), share(total.bytes, &work));
    let mut out = Vec::new();
    for (i, c) in phases.iter().enumerate() {
        let c = *c;
        if c.reduction() > 0 {
            out.push(pack(w, packed, s, &c, false));
        }
        out.push(gemm(
            "conv2d_backward_input_subgroup",
            dy,
            packed,
            None,
            dx,
            s,
            &c,
            (g.oh, g.ow),
            (s.h, s.w),
            Cost {
                flops: flops[i],
                bytes: bytes[i],
            },
        ));
    }
    out
}

/// dy, x -> dw: the window's taps, in split-K slices and their sum, or directly with one
/// slice. dw's taps outside the window must be zero already (see conv2d_subgroup.wgsl): they
/// are never written.
pub fn backward_weight(
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    partials: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    s: &Conv2dShape,
) -> Vec<Dispatch> {
    let g = s.geometry();
    let [(first_h, taps_h), (first_w, taps_w)] = g.window;
    let kc = s.cin * taps_h * taps_w;
    let (splits, span) = s.subgroup_dw_split();
    let params = ConvWeightGradParams {
        batch: s.batch as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        oh: g.oh as u32,
        ow: g.ow as u32,
        sh: s.sh as u32,
        sw: s.sw as u32,
        pad_top: s.pad.top as u32,
        pad_left: s.pad.left as u32,
        first_h: first_h as u32,
        first_w: first_w as u32,
        taps_h: taps_h as u32,
        taps_w: taps_w as u32,
        span: span as u32,
        splits: splits as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        direct: (splits == 1) as u32,
        pairs: (kpack(s.cout) == 2) as u32,
        pad0: 0,
        pad1: 0,
        pad2: 0,
    };
    let partials_len = (splits * s.cout * kc) as u64;
    let target = if splits == 1 { dw } else { partials };
    let by_row = s.subgroup_dw_by_row();
    let entry = if by_row {
        lanes_entry(
            s,
            "conv2d_backward_weight_rows_subgroup",
            "conv2d_backward_weight_rows_subgroup4",
        )
    } else {
        lanes_entry(
            s,
            "conv2d_backward_weight_subgroup",
            "conv2d_backward_weight_subgroup4",
        )
    };
    let mut gemm = Dispatch::new(
        entry,
        &params,
        [
            s.subgroup_dw_column_tiles().max(1) as u32,
            s.cout.div_ceil(TILE) as u32,
            splits as u32,
        ],
    )
    .bind(1, x)
    .bind(5, dy)
    .bind(6, dy)
    .bind(7, target)
    .cost(
        2 * s.macs(),
        4 * (s.input_len() as u64 + s.output_len() as u64 + partials_len),
    );
    if by_row {
        gemm = gemm.bind(8, x); // x again, as quads (x_window)
    }
    if splits == 1 {
        return vec![gemm];
    }
    let sum_params = ConvWindowSumParams {
        cout: s.cout as u32,
        cin: s.cin as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        first_h: first_h as u32,
        taps_h: taps_h as u32,
        first_w: first_w as u32,
        taps_w: taps_w as u32,
        splits: splits as u32,
        pad0: 0,
        pad1: 0,
        pad2: 0,
    };
    let len = (s.cout * kc) as u64;
    let sum = Dispatch::new(
        "conv2d_backward_weight_sum_window",
        &sum_params,
        groups_1d(len, PACK_WORKGROUP[0]),
    )
    .bind(7, dw)
    .bind(9, partials)
    .cost((splits - 1) as u64 * len, 4 * (partials_len + len));
    vec![gemm, sum]
}
