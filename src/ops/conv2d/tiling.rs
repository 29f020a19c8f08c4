//! How the tiled kernels cut a GEMM pass into workgroup tiles, and the cost model that picks
//! a tiling per pass and shape.

use super::subgroup;

/// Output tile edge of the square GEMM kernels (must match `TILE` in conv2d.wgsl).
pub const TILE: usize = 64;
/// Reduction chunk of the square GEMM kernels (must match `KC` in conv2d.wgsl).
pub const CHUNK: usize = 16;
/// Workgroup of the `_narrow` kernels: 64 threads, each an 8x8 micro-tile.
pub const NARROW_WORKGROUP: [u32; 3] = [64, 1, 1];
pub(super) const NARROW_THREADS: usize = 64;
pub(super) const MICRO: usize = 8;
/// Reduction steps per chunk and thread group of the `_narrow` kernels (`NKC` in conv2d.wgsl).
pub const NARROW_CHUNK: usize = 8;
/// Quads (vec4) of workgroup memory the `_narrow` kernels stage a chunk in (`stage`).
pub(super) const NARROW_STAGE_QUADS: usize = 1024;

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
    pub(super) fn cost(self, [m, n, r]: [usize; 3], square: f64) -> f64 {
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
    pub(super) fn pick(
        square: Option<([usize; 3], f64)>,
        narrow: [usize; 3],
        max_ksplit: usize,
    ) -> Tiling {
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
    pub(super) fn entry(self, square: &'static str, narrow: &'static str) -> &'static str {
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
pub(super) const SQUARE_FORWARD: f64 = 1.5;
pub(super) const SQUARE_BACKWARD_INPUT: f64 = 1.25;
pub(super) const SQUARE_BACKWARD_WEIGHT: f64 = 1.3;
