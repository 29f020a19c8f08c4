//! 2-D convolution (NCHW, f32) with optional bias, and its gradients with respect to the
//! input, the weight and the bias. The kernels are implicit GEMMs in two styles (the adapter's
//! [`KernelStyle`], chosen in `gpu::choice`): `tiled` (`shaders/conv2d.wgsl`), with square
//! 64x64 tiles for wide layers and `_narrow` tiles (16x256 to 256x16, skipping padding-only
//! taps, dx split by stride phase) for the rest, and `subgroup`
//! (`shaders/conv2d_subgroup.wgsl`, launched from [`subgroup`]) for CPU adapters. The shape
//! rules, the choice of tiling per pass, launch geometry and costs all come from
//! [`Conv2dShape::geometry`].

pub mod probe;
pub mod styles;
pub mod subgroup;
pub mod timing;

pub use styles::ConvStyles;
use subgroup::{ConvGemmParams, ConvPackParams, ConvWeightGradParams, ConvWindowSumParams};

use anyhow::{bail, Result};

use crate::gpu::{groups_1d, Cost, Dispatch, KernelStyle, MAX_GROUPS_PER_DIM};

pub const WORKGROUP: [u32; 3] = [256, 1, 1];
/// Output tile edge of the square GEMM kernels (must match `TILE` in conv2d.wgsl).
pub const TILE: usize = 64;
/// Reduction chunk of the square GEMM kernels (must match `KC` in conv2d.wgsl).
pub const CHUNK: usize = 16;
/// Workgroup of the `_narrow` kernels: 64 threads, each an 8x8 micro-tile.
pub const NARROW_WORKGROUP: [u32; 3] = [64, 1, 1];
const NARROW_THREADS: usize = 64;
const MICRO: usize = 8;
/// Reduction steps per chunk and thread group of the `_narrow` kernels (`NKC` in conv2d.wgsl).
pub const NARROW_CHUNK: usize = 8;
/// Quads (vec4) of workgroup memory the `_narrow` kernels stage a chunk in (`stage`).
const NARROW_STAGE_QUADS: usize = 1024;
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
            pad1
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
];

/// Split-K for the tiled `dw`: aim for this many workgroups so a GPU's cores all have work when the weight is small but the batch large (early layers).
const TILED_DW_TARGET_GROUPS: usize = 128;
/// ...but give each slice at least this many output positions, so the partial sums (re-read
/// by the sum pass) stay small next to the activations the slice reads.
const TILED_DW_MIN_POSITIONS_PER_SPLIT: usize = 512;

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
    /// Pads the struct to a multiple of 16 bytes.
    pub pad1: u32,
}

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
}

/// A tiling per GEMM pass; `None` lets [`Conv2dShape::geometry`] choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tilings {
    pub forward: Option<Tiling>,
    pub backward_input: Option<Tiling>,
    pub backward_weight: Option<Tiling>,
    /// Fold column tiles into z past this many workgroups instead of WebGPU's 65535, so that
    /// tests reach the folded grids with small tensors.
    pub fold_past: Option<usize>,
}

/// How one GEMM pass is tiled, and so which kernel runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiling {
    /// The 64x64 kernels: 256 threads, a 4x4 micro-tile each.
    Square,
    /// The `_narrow` kernels: `rows` x `64 / (rows * ksplit)` threads per group, an 8x8
    /// micro-tile each, so a tile of `8 * rows` rows by `512 / (rows * ksplit)` columns;
    /// `ksplit` groups share each reduction chunk (weight gradient only).
    Narrow { rows: usize, ksplit: usize },
    /// The `_subgroup` kernels: one 8-lane subgroup per workgroup, 32x32 tiles.
    Subgroup,
}

impl Tiling {
    /// (rows, columns) of one workgroup's output tile.
    pub fn tile(self) -> (usize, usize) {
        match self {
            Tiling::Square => (TILE, TILE),
            Tiling::Subgroup => (subgroup::TILE, subgroup::TILE),
            Tiling::Narrow { rows, ksplit } => {
                (MICRO * rows, MICRO * NARROW_THREADS / (rows * ksplit))
            }
        }
    }

    /// Reduction steps one workgroup takes per chunk (between two barriers).
    pub fn chunk(self) -> usize {
        match self {
            Tiling::Square => CHUNK,
            Tiling::Subgroup => 4,
            Tiling::Narrow { ksplit, .. } => NARROW_CHUNK * ksplit,
        }
    }

    /// Every narrow tiling whose staged chunk fits the kernels' workgroup memory: row and
    /// column threads powers of two from 2, (rows + columns) * 16 * ksplit quads.
    pub fn narrow_options(max_ksplit: usize) -> impl Iterator<Item = Tiling> {
        let ks = (0..5).map(|e| 1 << e).filter(move |&k| k <= max_ksplit);
        ks.flat_map(|ksplit| {
            (1..6).filter_map(move |e| {
                let rows = 1 << e;
                let cols = (NARROW_THREADS / ksplit).checked_div(rows)?;
                let quads = 2 * NARROW_CHUNK * ksplit * (rows + cols);
                (cols >= 2 && rows * cols * ksplit == NARROW_THREADS && quads <= NARROW_STAGE_QUADS)
                    .then_some(Tiling::Narrow { rows, ksplit })
            })
        })
    }

    /// Relative cost of a GEMM of `m` x `n` outputs over a reduction of `r` steps: the padded
    /// work (whole tiles, whole chunks) times what a multiply-add costs in this tiling. On
    /// lavapipe, where loads dominate, a narrow multiply-add costs 1 plus its staging: one
    /// load per element per chunk, shared by the `rows` (B) or `cols` (A) threads that read
    /// it. `square` is the square kernel's cost per multiply-add in the same units. Both were
    /// fitted to lavapipe timings of the model's layers; on GPUs either tiling is reasonable.
    fn cost(self, [m, n, r]: [usize; 3], square: f64) -> f64 {
        let (bm, bn) = self.tile();
        let chunk = self.chunk();
        let padded = (m.div_ceil(bm) * bm * n.div_ceil(bn) * bn * r.div_ceil(chunk) * chunk) as f64;
        let per_mac = match self {
            Tiling::Square => square,
            // Never priced: the adapter's style, not this model, picks the subgroup kernels.
            Tiling::Subgroup => 1.0,
            Tiling::Narrow { rows, ksplit } => {
                let cols = NARROW_THREADS / (rows * ksplit);
                1.0 + 2.0 * (1.0 / rows as f64 + 1.0 / cols as f64)
            }
        };
        padded * per_mac
    }

    /// The cheapest narrow tiling for a GEMM of `narrow` = (rows, columns, reduction) (ties go
    /// to fewer thread groups, then fewer row threads), or `Square` when the square kernels'
    /// GEMM, `square` = ((rows, columns, reduction), cost per multiply-add) (None: not an
    /// option), costs no more.
    fn pick(square: Option<([usize; 3], f64)>, narrow: [usize; 3], max_ksplit: usize) -> Tiling {
        let (best, cost) = Tiling::narrow_options(max_ksplit)
            .map(|t| (t, t.cost(narrow, 0.0)))
            .fold(None, |best: Option<(Tiling, f64)>, (t, c)| match best {
                Some((_, bc)) if bc <= c => best,
                _ => Some((t, c)),
            })
            .expect("there is always a narrow tiling");
        match square {
            Some((gemm, per_mac)) if Tiling::Square.cost(gemm, per_mac) <= cost => Tiling::Square,
            _ => best,
        }
    }

    /// The tiled kernel of a pass (subgroup passes launch from [`subgroup`]).
    fn entry(self, square: &'static str, narrow: &'static str) -> &'static str {
        match self {
            Tiling::Square => square,
            Tiling::Narrow { .. } => narrow,
            Tiling::Subgroup => unreachable!("subgroup passes launch from conv2d::subgroup"),
        }
    }
}

/// Cost per multiply-add of the square kernels, per pass, in the units of [`Tiling::cost`]
/// (where a 64x64 narrow tile costs 1.5): measured on lavapipe, the square forward matches
/// the narrow one and the square gradients are faster (their narrow twins check more bounds).
const SQUARE_FORWARD: f64 = 1.5;
const SQUARE_BACKWARD_INPUT: f64 = 1.25;
const SQUARE_BACKWARD_WEIGHT: f64 = 1.3;

/// One GEMM pass: its tiling (and so its kernel) and workgroup counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPass {
    pub tiling: Tiling,
    pub groups: [u32; 3],
}

/// Everything derived from a shape: output size, GEMM sizes, tilings and workgroup counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub oh: usize,
    pub ow: usize,
    /// Cin * KH * KW: the forward's reduction and `dw`'s columns.
    pub k: usize,
    /// The taps along H and W that reach the image for some output, as (first, count): the
    /// narrow kernels skip the rest (a 3x3 kernel on a 1x1 map has one).
    pub window: [(usize, usize); 2],
    /// N * OH * OW: the forward's columns and `dw`'s reduction.
    pub positions: usize,
    /// N * H * W: `dx`'s columns.
    pub input_positions: usize,
    /// Slices of `positions` that `backward_weight` sums separately (split-K).
    pub splits: usize,
    /// Output positions per slice, a multiple of the tiling's chunk.
    pub span: usize,
    pub forward: GemmPass,
    /// Narrow `dx` runs one GEMM per stride phase (z = fold * sh * sw + phase).
    pub backward_input: GemmPass,
    pub backward_weight: GemmPass,
    pub weight_sum_groups: [u32; 3],
    pub bias_groups: [u32; 3],
}

/// Workgroups for `rows` x `cols` outputs in `tile` tiles, the column tiles folded into z past
/// the per-dimension limit (the shaders compute tile = wid.z * nwg.x + wid.x), times `layers`
/// in z (dx's stride phases: z = fold * layers + layer).
fn gemm_groups(
    rows: usize,
    cols: usize,
    tile: (usize, usize),
    layers: usize,
    fold_past: usize,
) -> [u32; 3] {
    let tiles = cols.div_ceil(tile.1).max(1);
    let z = tiles.div_ceil(fold_past);
    [
        tiles.div_ceil(z) as u32,
        rows.div_ceil(tile.0) as u32,
        (z * layers) as u32,
    ]
}

/// Along one axis (input `n`, kernel `k`, stride `s`, padding `before`, output `m`): the taps
/// that read the input for at least one output, as (first, count). Output o reads input
/// o * s - before + tap. Mirrors `tap_window` in conv2d.wgsl.
pub fn tap_window(n: usize, k: usize, s: usize, before: usize, m: usize) -> (usize, usize) {
    let first = before.saturating_sub((m - 1) * s).min(k);
    let end = k.min(n + before);
    (first, end.max(first) - first)
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

    fn validate(&self) -> Result<()> {
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

    /// The one place that computes output size and launch geometry (dispatches and costs use it).
    pub fn geometry(&self) -> Conv2dGeometry {
        let oh = (self.h + self.pad.top + self.pad.bottom - self.kh) / self.sh + 1;
        let ow = (self.w + self.pad.left + self.pad.right - self.kw) / self.sw + 1;
        let k = self.cin * self.kh * self.kw;
        let window = [
            tap_window(self.h, self.kh, self.sh, self.pad.top, oh),
            tap_window(self.w, self.kw, self.sw, self.pad.left, ow),
        ];
        let k_window = self.cin * window[0].1 * window[1].1;
        let positions = self.batch * oh * ow;
        let input_positions = self.batch * self.h * self.w;
        let fold_past = self
            .tilings
            .fold_past
            .unwrap_or(MAX_GROUPS_PER_DIM)
            .clamp(1, MAX_GROUPS_PER_DIM);

        let subgroup = self.style == KernelStyle::Subgroup;
        let fwd = self.tilings.forward.unwrap_or_else(|| {
            if subgroup {
                return Tiling::Subgroup;
            }
            Tiling::pick(
                Some(([self.cout, positions, k], SQUARE_FORWARD)),
                [self.cout, positions, k_window],
                1,
            )
        });
        let forward = GemmPass {
            tiling: fwd,
            groups: gemm_groups(self.cout, positions, fwd.tile(), 1, fold_past),
        };

        // dx: the square kernel gathers every tap and, strided, multiplies the zeros between
        // outputs; the narrow one runs each stride phase over only its taps (about K / s each),
        // so strided dx always takes it.
        let phases = self.sh * self.sw;
        let phase_positions = self.batch * self.h.div_ceil(self.sh) * self.w.div_ceil(self.sw);
        let taps = |window: (usize, usize), s: usize| window.1.div_ceil(s);
        let dx_reduction = self.cout * taps(window[0], self.sh) * taps(window[1], self.sw);
        let dx = self.tilings.backward_input.unwrap_or_else(|| {
            if subgroup {
                return Tiling::Subgroup;
            }
            Tiling::pick(
                (phases == 1).then_some((
                    [self.cin, input_positions, self.cout * self.kh * self.kw],
                    SQUARE_BACKWARD_INPUT,
                )),
                [self.cin, phase_positions, dx_reduction],
                1,
            )
        });
        let backward_input = GemmPass {
            tiling: dx,
            groups: match dx {
                Tiling::Square => gemm_groups(self.cin, input_positions, dx.tile(), 1, fold_past),
                Tiling::Narrow { .. } => {
                    gemm_groups(self.cin, phase_positions, dx.tile(), phases, fold_past)
                }
                // One launch per phase; the largest phase has at most `phase_positions`.
                Tiling::Subgroup => gemm_groups(self.cin, phase_positions, dx.tile(), 1, fold_past),
            },
        };

        // dw: rows Cout, columns the taps (only the window's, narrow), reduced over the
        // positions in split-K slices.
        let dw = self.tilings.backward_weight.unwrap_or_else(|| {
            if subgroup {
                return Tiling::Subgroup;
            }
            Tiling::pick(
                Some(([self.cout, k, positions], SQUARE_BACKWARD_WEIGHT)),
                [self.cout, k_window, positions],
                16,
            )
        });
        let dw_cols = if dw == Tiling::Square { k } else { k_window };
        let (bm, bn) = dw.tile();
        let tiles = self.cout.div_ceil(bm) * dw_cols.div_ceil(bn);
        let chunk = dw.chunk();
        let chunks = positions.div_ceil(chunk);
        let (splits, span) = if dw == Tiling::Subgroup {
            subgroup::dw_split(tiles, positions, 4 * subgroup::kpack(self.cout))
        } else {
            let wanted = TILED_DW_TARGET_GROUPS.div_ceil(tiles);
            let splits = wanted
                .min(positions / TILED_DW_MIN_POSITIONS_PER_SPLIT)
                .clamp(1, MAX_GROUPS_PER_DIM);
            let span = chunks.div_ceil(splits) * chunk;
            (positions.div_ceil(span), span)
        };
        let backward_weight = GemmPass {
            tiling: dw,
            groups: [
                dw_cols.div_ceil(bn) as u32,
                self.cout.div_ceil(bm) as u32,
                splits as u32,
            ],
        };
        Conv2dGeometry {
            oh,
            ow,
            k,
            window,
            positions,
            input_positions,
            splits,
            span,
            forward,
            backward_input,
            backward_weight,
            weight_sum_groups: groups_1d((self.cout * k) as u64, WORKGROUP[0]),
            bias_groups: [
                (self.cout * bias_threads_per_channel(positions)).div_ceil(256) as u32,
                1,
                1,
            ],
        }
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
            pad1: 0,
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
    // The entry point always declares the bias binding; without a bias, `w` stands in (two
    // read-only bindings of one buffer are allowed) and the kernel never reads it.
    let entry = g
        .forward
        .tiling
        .entry("conv2d_forward", "conv2d_forward_narrow");
    vec![
        Dispatch::new(entry, &s.pass_params(&g, &g.forward), g.forward.groups)
            .bind(1, x)
            .bind(2, w)
            .bind(3, bias.unwrap_or(w))
            .bind(4, y)
            .cost(c.flops, c.bytes),
    ]
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

/// Threads summing one channel of `db`: a power of two leaving each at most 256 values (a
/// CPU adapter's barriers cost as much as hundreds of loads), at most a workgroup.
fn bias_threads_per_channel(positions: usize) -> usize {
    positions.div_ceil(256).next_power_of_two().min(256)
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
