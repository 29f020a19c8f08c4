//! Everything derived from a shape: output size, GEMM sizes, the tiling of each pass and its
//! workgroup counts, in one place that dispatches, costs and checks all read.

use super::tiling::{SQUARE_BACKWARD_INPUT, SQUARE_BACKWARD_WEIGHT, SQUARE_FORWARD};
use super::{subgroup, Conv2dShape, Tiling, WORKGROUP};
use crate::gpu::{groups_1d, KernelStyle, MAX_GROUPS_PER_DIM};

/// Split-K for the tiled `dw`: aim for this many workgroups so a GPU's cores all have work when the weight is small but the batch large (early layers).
const TILED_DW_TARGET_GROUPS: usize = 128;
/// ...but give each slice at least this many output positions, so the partial sums (re-read
/// by the sum pass) stay small next to the activations the slice reads.
const TILED_DW_MIN_POSITIONS_PER_SPLIT: usize = 512;

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
        // A subgroup workgroup's columns: 4 per lane.
        let tile = |t: Tiling| match t {
            Tiling::Subgroup => (subgroup::TILE, 4 * self.lanes),
            t => t.tile(),
        };
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
            groups: gemm_groups(self.cout, positions, tile(fwd), 1, fold_past),
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
                Tiling::Subgroup => gemm_groups(self.cin, phase_positions, tile(dx), 1, fold_past),
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
        let (bm, bn) = tile(dw);
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
}

/// Threads summing one channel of `db`: a power of two leaving each at most 256 values (a
/// CPU adapter's barriers cost as much as hundreds of loads), at most a workgroup.
pub(super) fn bias_threads_per_channel(positions: usize) -> usize {
    positions.div_ceil(256).next_power_of_two().min(256)
}
