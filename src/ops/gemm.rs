//! Dense C = A B in f32: the adapter's matmul ceiling in WGSL. `adaresnet bench --peak`
//! measures it in each kernel style the adapter runs (checked against the CPU first), and the
//! profile reads every kernel's GFLOP/s as a share of the best. Not a layer of any model: the
//! convolutions are GEMMs with gathers, and this is what the same adapter does without them.

use anyhow::{bail, Result};

use crate::gpu::{cache, choice, Dispatch, Gpu, KernelStyle, Program};
use crate::ops::compare::{compare, Tol};

pub const UNIFORMS: &[crate::ops::Uniform] = &[
    crate::uniform!("gemm", GemmParams, [m, n, k, pad0]),
    crate::uniform!("gemm_subgroup", GemmParams, [m, n, k, pad0]),
];
pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[
    ("gemm_tiled", [256, 1, 1]),
    ("gemm_subgroup", [8, 1, 1]),
    ("gemm_subgroup4", [4, 1, 1]),
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub pad0: u32,
}

/// A: [m, k], B: [k, n] -> C: [m, n], row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl GemmShape {
    pub fn square(n: usize) -> Self {
        Self { m: n, n, k: n }
    }

    /// (rows, columns) of one workgroup's tile and the reduction step `style` needs whole;
    /// a subgroup workgroup has 4 columns per lane.
    fn tile(style: KernelStyle, lanes: usize) -> (usize, usize, usize) {
        match style {
            KernelStyle::Tiled => (64, 64, 16),
            KernelStyle::Subgroup => (32, 4 * lanes, 4),
        }
    }

    /// The kernels take whole tiles only: this is a benchmark, sized to fit them.
    pub fn check(&self, style: KernelStyle, lanes: usize) -> Result<()> {
        let (tm, tn, tk) = Self::tile(style, lanes);
        let whole =
            self.m.is_multiple_of(tm) && self.n.is_multiple_of(tn) && self.k.is_multiple_of(tk);
        if !whole || self.m * self.k == 0 {
            bail!(
                "gemm {self:?}: the {} kernel needs M and N multiples of {tm}, K of {tk}",
                style.name()
            );
        }
        Ok(())
    }

    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }
}

/// a: [m, k], b: [k, n] -> c: [m, n] with `style`'s kernel (the subgroup one with `lanes`,
/// 4 or 8, per workgroup: `choice::subgroup_lanes`).
pub fn gemm(
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
    s: GemmShape,
    style: KernelStyle,
    lanes: usize,
) -> Result<Dispatch> {
    s.check(style, lanes)?;
    let (tm, tn, _) = GemmShape::tile(style, lanes);
    let entry = match style {
        KernelStyle::Tiled => "gemm_tiled",
        KernelStyle::Subgroup if lanes == 4 => "gemm_subgroup4",
        KernelStyle::Subgroup => "gemm_subgroup",
    };
    let params = GemmParams {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        pad0: 0,
    };
    let groups = [(s.n / tn) as u32, (s.m / tm) as u32, 1];
    Ok(Dispatch::new(entry, &params, groups)
        .bind(1, a)
        .bind(2, b)
        .bind(3, c)
        .cost(s.flops(), 4 * (s.m * s.k + s.k * s.n + s.m * s.n) as u64))
}

/// The CPU twin, in f64.
pub mod cpu {
    use super::GemmShape;

    /// a: [m, k], b: [k, n] -> [m, n]
    pub fn gemm(a: &[f64], b: &[f64], s: GemmShape) -> Vec<f64> {
        let mut c = vec![0.0; s.m * s.n];
        for i in 0..s.m {
            for kk in 0..s.k {
                let av = a[i * s.k + kk];
                for j in 0..s.n {
                    c[i * s.n + j] += av * b[kk * s.n + j];
                }
            }
        }
        c
    }
}

/// One measured kernel: GFLOP/s of the best of several timed runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeakRow {
    pub style: KernelStyle,
    pub size: usize,
    pub gflops: f64,
    /// The largest |GPU - CPU| over C (checked at every size against the f64 twin).
    pub max_abs_err: f64,
}

/// Inputs in [-1, 1) from a fixed xorshift, identical on every run.
fn inputs(len: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f64 / (1u64 << 23) as f64 - 1.0
        })
        .collect()
}

/// Times `style`'s GEMM at n x n x n: `reps` dispatches per run, best of `runs` after one run
/// that compiles; refuses a result the CPU twin disagrees with.
pub fn measure(
    gpu: &Gpu,
    style: KernelStyle,
    n: usize,
    reps: usize,
    runs: usize,
) -> Result<PeakRow> {
    let s = GemmShape::square(n);
    let lanes = choice::subgroup_lanes(gpu);
    s.check(style, lanes)?;
    let (a, b) = (inputs(n * n, 1), inputs(n * n, 2));
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (ab, bb) = (
        gpu.upload("gemm a", &f32s(&a)),
        gpu.upload("gemm b", &f32s(&b)),
    );
    let cb = gpu.zeros("gemm c", n * n);
    let one = gemm(&ab, &bb, &cb, s, style, lanes)?;
    let program = Program::new(gpu, vec![one; reps.max(1)]);
    gpu.run(&program)?;
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        gpu.run(&program)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    // Products of f32-rounded values in [-1, 1), summed over n: Tol::sum_of's model.
    let a32: Vec<f64> = a.iter().map(|&x| x as f32 as f64).collect();
    let b32: Vec<f64> = b.iter().map(|&x| x as f32 as f64).collect();
    let reference = cpu::gemm(&a32, &b32, s);
    let got: Vec<f32> = gpu.download(&cb, n * n)?;
    let cmp = compare(&got, &reference, Tol::sum_of(n, 1.0));
    if !cmp.ok {
        bail!(
            "the {} gemm at {n} disagrees with the CPU (max |error| {:.3e}): its timing is \
             not a ceiling",
            style.name(),
            cmp.max_abs
        );
    }
    Ok(PeakRow {
        style,
        size: n,
        gflops: s.flops() as f64 * reps.max(1) as f64 / best / 1e9,
        max_abs_err: cmp.max_abs,
    })
}

/// Every style this adapter runs at each size.
pub fn measure_all(gpu: &Gpu, sizes: &[usize]) -> Result<Vec<PeakRow>> {
    let mut rows = Vec::new();
    for style in KernelStyle::ALL {
        if !choice::supported(gpu, style) {
            continue;
        }
        for &n in sizes {
            // About 4 GFLOP per run at 1024, 0.5 at 512: a second or so on a CPU adapter.
            let reps = (4_000_000_000 / GemmShape::square(n).flops()).clamp(1, 16) as usize;
            rows.push(measure(gpu, style, n, reps, 3)?);
        }
    }
    Ok(rows)
}

/// The best GFLOP/s of `rows`.
pub fn best(rows: &[PeakRow]) -> Option<&PeakRow> {
    rows.iter().max_by(|a, b| a.gflops.total_cmp(&b.gflops))
}

/// The ceiling for the profile's share-of-peak column: cached per adapter, driver and
/// shaders, else measured at 512 (a second or two) and cached.
pub fn cached_peak(gpu: &Gpu) -> Result<PeakRow> {
    let key = cache::cache_key(gpu, "gemm peak");
    if let Some(row) = cache::cache_get(&key).and_then(|v| serde_json::from_value(v).ok()) {
        return Ok(row);
    }
    let rows = measure_all(gpu, &[512])?;
    let row = best(&rows).cloned().expect("the tiled style always runs");
    if let Err(e) = cache::cache_put(&key, serde_json::to_value(&row)?) {
        log::warn!("could not cache the matmul ceiling: {e:#}");
    }
    Ok(row)
}
