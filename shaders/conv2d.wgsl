// 2-D convolution, NCHW f32, and its gradients, as implicit GEMMs (im2col is never built:
// each tile load computes the input coordinates it needs and reads zero in the padding).
//
//   forward          y[co, pos]  = sum_k  w[co, k]   * im2col[k, pos]     k = (ci, kh, kw), pos = (n, oh, ow)
//   backward_input   dx[ci, q]   = sum_r  w[co,ci,kh,kw] * dy[n, co, oh, ow]  r = (co, kh, kw), q = (n, ih, iw),
//                                  where ih = oh * sh - top + kh (only exactly divisible, in-range oh count)
//   backward_weight  dw[co, k]   = sum_pos dy[co, pos] * im2col[k, pos]   over a slice of pos per split
//
// Two tilings (the geometry in src/ops/conv2d.rs picks one per pass and shape): the square
// kernels just below for wide layers, and the `_narrow` kernels at the end of the file for
// small channel counts, few positions, padding-bound taps and strided dx.
//
// Square tiling, shared by the three GEMMs: a 256-thread workgroup computes a 64x64 tile,
// each thread a 4x4 micro-tile, stepping through the reduction in chunks of 16. Per chunk a
// thread loads 4 A and 4 B values into workgroup memory (2 x 16 x 64 floats = 8 KiB, half the
// WebGPU minimum of 16 KiB) and then does 16 FMAs per 2 vec4 reads of it, instead of one
// global read per FMA. 256 threads is the WebGPU default invocation limit; 64x64 is the
// largest tile that keeps 16 accumulators per thread (registers) at that thread count.
// The micro-tile is strided (rows ty + 16 i, columns tx + 16 j) so that neighbouring threads
// load and store neighbouring columns. Edges are bounds-checked: out-of-range loads read zero,
// out-of-range stores are skipped, so no dimension needs to be a multiple of anything.
//
// Every kernel writes its output (never accumulates), uses no atomics and sums in a fixed
// order, so results are bit-identical run to run. Large launches fold the column-tile index
// into z: tile = wid.z * nwg.x + wid.x.

struct Conv2dParams {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    sh: u32,       // stride along H
    sw: u32,       // stride along W
    pad_top: u32,  // bottom/right padding only shows in oh/ow
    pad_left: u32,
    has_bias: u32, // forward: 1 adds bias[co] (binding 3 is always bound; a stand-in when 0)
    splits: u32,   // backward_weight: slices of the output positions (split-K), wid.z = slice
    span: u32,     // backward_weight: output positions per slice, a multiple of the chunk
    tile_rows: u32,   // `_narrow` kernels: row threads RT of the tile (see Tiling)
    tile_ksplit: u32, // `_narrow` kernels: thread groups KS splitting each reduction chunk
    seg_shift: u32,   // conv2d_backward_bias: log2 of the threads per channel
    pack_ldw: u32,    // conv2d_forward_narrow: the packed weights' layout (see conv2d_pack_weight)
    pack_kpack: u32,
    pad0: u32,        // to a multiple of 16 bytes
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;
@group(0) @binding(9) var<storage, read> dw_partials: array<f32>;

const TILE: u32 = 64u;
const KC: u32 = 16u;

// Row kk of a chunk holds the tile's 64 rows (A) or columns (B) as 16 quads; quad g holds
// indices g, g + 16, g + 32, g + 48 (the strided micro-tile).
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;
var<workgroup> tree: array<f32, 256>;

// acc[i][j] += sum over the chunk of A[ty + 16 i, kk] * B[kk, tx + 16 j].
fn mma_chunk(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < KC; kk = kk + 1u) {
        let a = tile_a[kk * 16u + ty];
        let b = tile_b[kk * 16u + tx];
        (*acc)[0] = fma(vec4<f32>(a.x), b, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a.y), b, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a.z), b, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a.w), b, (*acc)[3]);
    }
}

// Stores one chunk's loads and multiplies them; every invocation must call it (barriers).
fn stage_and_multiply(acc: ptr<function, array<vec4<f32>, 4>>, t: u32, a: vec4<f32>, b: vec4<f32>) {
    // A is loaded with kk = t % 16 (so neighbouring threads read along the reduction, which
    // is contiguous in w and dy), B with kk = t / 16 (neighbouring threads along columns).
    tile_a[(t % 16u) * 16u + t / 16u] = a;
    tile_b[(t / 16u) * 16u + t % 16u] = b;
    workgroupBarrier();
    mma_chunk(acc, t % 16u, t / 16u);
    workgroupBarrier();
}

fn in_image(ih: i32, iw: i32) -> bool {
    return ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w);
}

// y = conv(x, w) (+ bias). GEMM: rows co (Cout), columns pos (N*OH*OW), reduction k (Cin*KH*KW).
@compute @workgroup_size(256)
fn conv2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) t: u32) {
    let ohw = p.oh * p.ow;
    let cols = p.batch * ohw;
    let khw = p.kh * p.kw;
    let kdim = p.cin * khw;
    let col0 = (wid.z * nwg.x + wid.x) * TILE;
    if (col0 >= cols) { return; } // a folded grid's spare tiles: uniform per workgroup
    let row0 = wid.y * TILE;
    let tx = t % 16u;
    let ty = t / 16u;

    // This thread's 4 columns (the same for its B loads and its stores), decomposed once.
    var col_ok: vec4<bool>;
    var x_base: vec4<u32>; // n * Cin * H * W
    var y_base: vec4<u32>; // n * Cout * OH * OW + oh * OW + ow
    var ih0: vec4<i32>;    // oh * sh - top
    var iw0: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + tx + 16u * j;
        col_ok[j] = col < cols;
        let n = col / ohw;
        let o = col % ohw;
        x_base[j] = n * p.cin * p.h * p.w;
        y_base[j] = n * p.cout * ohw + o;
        ih0[j] = i32((o / p.ow) * p.sh) - i32(p.pad_top);
        iw0[j] = i32((o % p.ow) * p.sw) - i32(p.pad_left);
    }

    var acc: array<vec4<f32>, 4>;
    let chunks = (kdim + KC - 1u) / KC;
    for (var c = 0u; c < chunks; c = c + 1u) {
        var a = vec4<f32>(0.0);
        let ka = c * KC + tx;
        if (ka < kdim) {
            for (var i = 0u; i < 4u; i = i + 1u) {
                let row = row0 + ty + 16u * i;
                if (row < p.cout) { a[i] = wt[row * kdim + ka]; }
            }
        }
        var b = vec4<f32>(0.0);
        let kb = c * KC + ty;
        if (kb < kdim) {
            let ci = kb / khw;
            let kh = i32((kb % khw) / p.kw);
            let kw = i32(kb % p.kw);
            for (var j = 0u; j < 4u; j = j + 1u) {
                let ih = ih0[j] + kh;
                let iw = iw0[j] + kw;
                if (col_ok[j] && in_image(ih, iw)) {
                    b[j] = x[x_base[j] + (ci * p.h + u32(ih)) * p.w + u32(iw)];
                }
            }
        }
        stage_and_multiply(&acc, t, a, b);
    }

    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty + 16u * i;
        if (row >= p.cout) { continue; }
        var bv = 0.0;
        if (p.has_bias == 1u) { bv = bias[row]; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col_ok[j]) { y[y_base[j] + row * ohw] = acc[i][j] + bv; }
        }
    }
}

// dx = conv_transpose(dy, w). GEMM: rows ci (Cin), columns q (N*H*W), reduction r (Cout*KH*KW).
// A gather, not a scatter, so each dx element is written once by one thread. With stride s
// about (s*s - 1)/(s*s) of the r terms fall between output positions and read zero, so
// strided dx runs conv2d_backward_input_narrow instead, which splits it by stride phase.
@compute @workgroup_size(256)
fn conv2d_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) t: u32) {
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
    let cols = p.batch * hw;
    let khw = p.kh * p.kw;
    let rdim = p.cout * khw;
    let col0 = (wid.z * nwg.x + wid.x) * TILE;
    if (col0 >= cols) { return; }
    let row0 = wid.y * TILE;
    let tx = t % 16u;
    let ty = t / 16u;

    var col_ok: vec4<bool>;
    var dy_base: vec4<u32>; // n * Cout * OH * OW
    var dx_base: vec4<u32>; // n * Cin * H * W + ih * W + iw
    var ihp: vec4<i32>;     // ih + top: equals oh * sh + kh for the taps that reach (ih, iw)
    var iwp: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + tx + 16u * j;
        col_ok[j] = col < cols;
        let n = col / hw;
        let i = col % hw;
        dy_base[j] = n * p.cout * ohw;
        dx_base[j] = n * p.cin * hw + i;
        ihp[j] = i32(i / p.w + p.pad_top);
        iwp[j] = i32(i % p.w + p.pad_left);
    }

    var acc: array<vec4<f32>, 4>;
    let chunks = (rdim + KC - 1u) / KC;
    for (var c = 0u; c < chunks; c = c + 1u) {
        var a = vec4<f32>(0.0);
        let ra = c * KC + tx;
        if (ra < rdim) {
            let co = ra / khw;
            let kr = ra % khw;
            for (var i = 0u; i < 4u; i = i + 1u) {
                let row = row0 + ty + 16u * i;
                if (row < p.cin) { a[i] = wt[(co * p.cin + row) * khw + kr]; }
            }
        }
        var b = vec4<f32>(0.0);
        let rb = c * KC + ty;
        if (rb < rdim) {
            let co = rb / khw;
            let kh = i32((rb % khw) / p.kw);
            let kw = i32(rb % p.kw);
            for (var j = 0u; j < 4u; j = j + 1u) {
                let ohs = ihp[j] - kh; // oh * sh, if this tap of some output reaches here
                let ows = iwp[j] - kw;
                if (col_ok[j] && ohs >= 0 && ows >= 0) {
                    let oh = u32(ohs) / p.sh;
                    let ow = u32(ows) / p.sw;
                    if (oh * p.sh == u32(ohs) && ow * p.sw == u32(ows) && oh < p.oh && ow < p.ow) {
                        b[j] = dy[dy_base[j] + (co * p.oh + oh) * p.ow + ow];
                    }
                }
            }
        }
        stage_and_multiply(&acc, t, a, b);
    }

    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty + 16u * i;
        if (row >= p.cin) { continue; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col_ok[j]) { dx[dx_base[j] + row * hw] = acc[i][j]; }
        }
    }
}

// dw = dy * im2col^T. GEMM: rows co (Cout), columns k (Cin*KH*KW), reduction over output
// positions (N*OH*OW). That reduction is long and the output small in early layers, so it is
// split into p.splits slices (wid.z) written to dw[slice][co][k]; with more than one slice
// conv2d_backward_weight_sum adds them in slice order (deterministic split-K).
@compute @workgroup_size(256)
fn conv2d_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let ohw = p.oh * p.ow;
    let positions = p.batch * ohw;
    let khw = p.kh * p.kw;
    let kdim = p.cin * khw;
    let col0 = wid.x * TILE;
    let row0 = wid.y * TILE;
    let start = wid.z * p.span;
    let end = min(start + p.span, positions);
    let tx = t % 16u;
    let ty = t / 16u;

    var col_ok: vec4<bool>;
    var x_off: vec4<u32>; // ci * H * W
    var kh: vec4<i32>;
    var kw: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + tx + 16u * j;
        col_ok[j] = col < kdim;
        x_off[j] = (col / khw) * p.h * p.w;
        kh[j] = i32((col % khw) / p.kw);
        kw[j] = i32(col % p.kw);
    }

    var acc: array<vec4<f32>, 4>;
    let chunks = (end - start + KC - 1u) / KC;
    for (var c = 0u; c < chunks; c = c + 1u) {
        var a = vec4<f32>(0.0);
        let pa = start + c * KC + tx;
        if (pa < end) {
            let n = pa / ohw;
            let o = pa % ohw;
            for (var i = 0u; i < 4u; i = i + 1u) {
                let row = row0 + ty + 16u * i;
                if (row < p.cout) { a[i] = dy[(n * p.cout + row) * ohw + o]; }
            }
        }
        var b = vec4<f32>(0.0);
        let pb = start + c * KC + ty;
        if (pb < end) {
            let n = pb / ohw;
            let o = pb % ohw;
            let x_base = n * p.cin * p.h * p.w;
            let ih0 = i32((o / p.ow) * p.sh) - i32(p.pad_top);
            let iw0 = i32((o % p.ow) * p.sw) - i32(p.pad_left);
            for (var j = 0u; j < 4u; j = j + 1u) {
                let ih = ih0 + kh[j];
                let iw = iw0 + kw[j];
                if (col_ok[j] && in_image(ih, iw)) {
                    b[j] = x[x_base + x_off[j] + u32(ih) * p.w + u32(iw)];
                }
            }
        }
        stage_and_multiply(&acc, t, a, b);
    }

    let out_base = wid.z * p.cout * kdim;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty + 16u * i;
        if (row >= p.cout) { continue; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col_ok[j]) { dw[out_base + row * kdim + col0 + tx + 16u * j] = acc[i][j]; }
        }
    }
}

// dw[i] = sum over slices s (in order) of dw_partials[s][i]. 1-D, folded past 65535 groups.
@compute @workgroup_size(256)
fn conv2d_backward_weight_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) t: u32) {
    let len = p.cout * p.cin * p.kh * p.kw;
    let i = (wid.y * nwg.x + wid.x) * 256u + t;
    if (i >= len) { return; }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
        acc = acc + dw_partials[s * len + i];
    }
    dw[i] = acc;
}

// db[co] = sum over n, oh, ow of dy. Each channel gets a segment of T = 1 << seg_shift
// threads (256 / T channels per workgroup, T from the per-channel count at launch): thread u
// sums values j = u, u + T, ... in order, (n, k) stepped with carries, then the segment's T
// sums combine in a fixed tree. A late layer's 32 values per channel take one thread and no
// barrier: on CPU adapters a barrier costs more than those loads.
@compute @workgroup_size(256)
fn conv2d_backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let shift = p.seg_shift;
    let seg = 1u << shift;
    let u = t & (seg - 1u);
    let co = wid.x * (256u >> shift) + (t >> shift);
    let ohw = p.oh * p.ow;
    var acc = 0.0;
    if (co < p.cout) {
        let step_n = seg / ohw;
        let step_k = seg % ohw;
        var n = u / ohw;
        var k = u % ohw;
        for (; n < p.batch;) {
            acc = acc + dy[(n * p.cout + co) * ohw + k];
            n = n + step_n;
            k = k + step_k;
            if (k >= ohw) { k = k - ohw; n = n + 1u; }
        }
    }
    tree[t] = acc;
    for (var stride = seg >> 1u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (u < stride) { tree[t] = tree[t] + tree[t + stride]; }
    }
    if (co < p.cout && u == 0u) { db[co] = tree[t]; }
}

// ---------------------------------------------------------------------------------------------
// Narrow, strided and padding-bound shapes: the `_narrow` kernels.
//
// The 64x64 tile above wastes 3/4 of its work when Cout (or Cin for dx) is 16 and half when a
// late layer has 32 output positions; a 3x3 kernel on a 1x1 map multiplies 8 padding taps
// out of 9; a stride-2 dx multiplies 3 zeros for every product it needs. These kernels remove
// all three:
// - the tile shape is a run-time choice (p.tile_rows): a 64-thread workgroup of RT x CT
//   threads (RT * CT * KS = 64), each thread an 8x8 micro-tile (two row quads ty, ty + RT,
//   each 4 consecutive rows, and two column quads tx, tx + CT, each 4 columns strided by 2CT
//   so that neighbouring threads load and store neighbouring columns), so tiles run from
//   16x256 to 256x16. The geometry in src/ops/conv2d/geometry.rs picks the one that wastes
//   least. KS > 1 (p.tile_ksplit, weight gradient only) gives each of KS thread groups its own
//   part of every reduction chunk and sums the groups in a fixed order at the end, for weight
//   gradients as small as 16x16;
// - the reduction runs only over the taps that reach the image for some output (tap_window);
// - dx is computed per stride phase: input pixels with ih + top = ph (mod sh) receive exactly
//   the taps kh = ph (mod sh), so each phase is a dense GEMM over those taps (phase_axis).
// Why 8x8 per thread: on a CPU (lavapipe) every storage or workgroup load is a loop over the
// invocations of a SIMD group, so loads per multiply-add decide the speed, and an 8x8
// micro-tile reads half as much workgroup memory per multiply-add as 4x4 (staging and bounds
// checks take back part of that: see the cost model in src/ops/conv2d/tiling.rs). The forward
// reads its weights packed (conv2d_pack_weight, the same layout the `_subgroup` kernels
// read), a quad of consecutive rows per vec4 load with no bounds to check: one load where
// there were four, and on a GPU neighbouring threads read neighbouring 16 bytes. Reduction indices
// are stepped with carries (digits_add), not divided: vector integer division is scalar on
// CPUs and costs more than the multiply-adds it indexes.
// Same guarantees as above: writes only, no atomics, a fixed summation order.

const NKC: u32 = 8u; // reduction steps per chunk and thread group
// A tile (KC x 2RT quads) then B tile (KC x 2CT quads), KC = NKC * KS; at most 1024 quads
// (16 KiB, the WebGPU minimum) for every tiling the geometry allows. Reused by `spill`.
var<workgroup> stage: array<vec4<f32>, 1024>;

struct Tiling {
    rt: u32,   // row threads
    ct: u32,   // column threads
    ks: u32,   // thread groups splitting the reduction
    rq: u32,   // row quads per reduction step: 2 RT (the tile has 8 RT rows)
    cq: u32,   // column quads per reduction step: 2 CT (8 CT columns)
    kc: u32,   // reduction steps per chunk: NKC * KS
    boff: u32, // where the B tile starts in `stage`
}

fn tiling() -> Tiling {
    let rt = p.tile_rows;
    let ks = p.tile_ksplit;
    let ct = 64u / (rt * ks);
    let kc = NKC * ks;
    return Tiling(rt, ct, ks, 2u * rt, 2u * ct, kc, kc * 2u * rt);
}

// A reduction index as digits (hi, mid, lo) in radices (-, nm, nl).
struct Digits {
    hi: u32,
    mid: u32,
    lo: u32,
}

fn digits(i: u32, nm: u32, nl: u32) -> Digits {
    let ml = max(nm * nl, 1u);
    let r = i % ml;
    return Digits(i / ml, r / max(nl, 1u), r % max(nl, 1u));
}

// d + s for s = digits(step): each digit carries at most once.
fn digits_add(d: Digits, s: Digits, nm: u32, nl: u32) -> Digits {
    var lo = d.lo + s.lo;
    var mid = d.mid + s.mid;
    var hi = d.hi + s.hi;
    if (lo >= nl) { lo = lo - nl; mid = mid + 1u; }
    if (mid >= nm) { mid = mid - nm; hi = hi + 1u; }
    return Digits(hi, mid, lo);
}

// Along one axis (input n, kernel k, stride s, padding `before`, output m): the taps that read
// the input for at least one output, as (first, count). Output o reads o * s - before + tap.
fn tap_window(n: u32, k: u32, s: u32, before: u32, m: u32) -> vec2<u32> {
    let first = min(before - min(before, (m - 1u) * s), k);
    let end = min(k, n + before);
    return vec2<u32>(first, max(end, first) - first);
}

// dx along one axis, phase ph: the inputs i = s * (a0 + a) + ph - before, a = 0, 1, ..., for
// a0 + a < a_end, receive the taps ph + s * j; those that reach an output o = a0 + a - j in
// [0, m) for some a are j in [j0, j0 + count). Returns (a0, a_end, j0, count).
fn phase_axis(n: u32, k: u32, s: u32, before: u32, m: u32, ph: u32) -> vec4<u32> {
    let a0 = (before + s - 1u - ph) / s;
    let a_end = max((n + before + s - 1u - ph) / s, a0);
    let taps = (k + s - 1u - ph) / s;
    let j0 = a0 + 1u - min(a0 + 1u, m);
    let j_end = min(taps, a_end);
    return vec4<u32>(a0, a_end, j0, j_end - min(j0, j_end));
}

// acc += one chunk's products for thread group g: rows (ty, ty + RT) x columns (tx, tx + CT),
// acc[4 h + i + 8 g2] holding row quad h's component i times column quad g2.
fn mma_narrow(acc: ptr<function, array<vec4<f32>, 16>>, tl: Tiling, tx: u32, ty: u32, g: u32) {
    for (var s = 0u; s < NKC; s = s + 1u) {
        let kk = g * NKC + s;
        let a0 = stage[kk * tl.rq + ty];
        let a1 = stage[kk * tl.rq + ty + tl.rt];
        let b0 = stage[tl.boff + kk * tl.cq + tx];
        let b1 = stage[tl.boff + kk * tl.cq + tx + tl.ct];
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.y), b0, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.z), b0, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.w), b0, (*acc)[3]);
        (*acc)[4] = fma(vec4<f32>(a1.x), b0, (*acc)[4]);
        (*acc)[5] = fma(vec4<f32>(a1.y), b0, (*acc)[5]);
        (*acc)[6] = fma(vec4<f32>(a1.z), b0, (*acc)[6]);
        (*acc)[7] = fma(vec4<f32>(a1.w), b0, (*acc)[7]);
        (*acc)[8] = fma(vec4<f32>(a0.x), b1, (*acc)[8]);
        (*acc)[9] = fma(vec4<f32>(a0.y), b1, (*acc)[9]);
        (*acc)[10] = fma(vec4<f32>(a0.z), b1, (*acc)[10]);
        (*acc)[11] = fma(vec4<f32>(a0.w), b1, (*acc)[11]);
        (*acc)[12] = fma(vec4<f32>(a1.x), b1, (*acc)[12]);
        (*acc)[13] = fma(vec4<f32>(a1.y), b1, (*acc)[13]);
        (*acc)[14] = fma(vec4<f32>(a1.z), b1, (*acc)[14]);
        (*acc)[15] = fma(vec4<f32>(a1.w), b1, (*acc)[15]);
    }
}

// Moves the micro-tile to `stage`, thread t's 16 quads at t * 16, so that the stores can
// loop over it (a loop indexing `acc` would force it into memory for the whole kernel), and
// the weight gradient's thread groups can sum theirs. Every invocation must call it (barriers).
fn spill(acc: ptr<function, array<vec4<f32>, 16>>, t: u32) {
    workgroupBarrier();
    stage[t * 16u + 0u] = (*acc)[0];
    stage[t * 16u + 1u] = (*acc)[1];
    stage[t * 16u + 2u] = (*acc)[2];
    stage[t * 16u + 3u] = (*acc)[3];
    stage[t * 16u + 4u] = (*acc)[4];
    stage[t * 16u + 5u] = (*acc)[5];
    stage[t * 16u + 6u] = (*acc)[6];
    stage[t * 16u + 7u] = (*acc)[7];
    stage[t * 16u + 8u] = (*acc)[8];
    stage[t * 16u + 9u] = (*acc)[9];
    stage[t * 16u + 10u] = (*acc)[10];
    stage[t * 16u + 11u] = (*acc)[11];
    stage[t * 16u + 12u] = (*acc)[12];
    stage[t * 16u + 13u] = (*acc)[13];
    stage[t * 16u + 14u] = (*acc)[14];
    stage[t * 16u + 15u] = (*acc)[15];
    workgroupBarrier();
}

// After `spill`, component j of stage[t * 16 + 8 g + 4 h + i] is this thread's output at row
// (4 ty +) 4 h RT + i and column (tx +) g CT + j 2CT. The stores loop over the 8 columns
// outside (their index arithmetic divides) and the 8 rows inside.
fn tile_row(tl: Tiling, m: u32) -> u32 {
    return 4u * tl.rt * ((m / 4u) % 2u) + m % 4u;
}

// ---- forward ----

@compute @workgroup_size(64)
fn conv2d_forward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) t: u32) {
    let tl = tiling();
    let ohw = p.oh * p.ow;
    let cols = p.batch * ohw;
    let col0 = (wid.z * nwg.x + wid.x) * 4u * tl.cq;
    if (col0 >= cols) { return; }
    let row0 = wid.y * 4u * tl.rq;
    // The reduction: k = (ci, jh, jw) over the window's taps kh = wh.x + jh, kw = ww.x + jw.
    let wh = tap_window(p.h, p.kh, p.sh, p.pad_top, p.oh);
    let ww = tap_window(p.w, p.kw, p.sw, p.pad_left, p.ow);

    // A (packed weights): this thread stages row quad qa at steps t / rq + m * (64 / rq): at
    // step k, rows 4 qa .. 4 qa + 3 of the tile are packed4[a_step(k) + quad], rows past Cout
    // packed as zeros; quads past a packed step's rows (ldw / kpack) read none.
    let qa = t % tl.rq;
    let quad = row0 / 4u + qa;
    let a_ok = 4u * quad < p.pack_ldw / p.pack_kpack;
    let kwin = p.cin * wh.y * ww.y;
    // B (im2col of x): column quad qb at steps t / cq + m * (64 / cq).
    let qb = t % tl.cq;
    var col_ok: vec4<bool>;
    var x_base: vec4<u32>; // n * Cin * H * W
    var ih0: vec4<i32>;    // oh * sh - top + first tap
    var iw0: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + qb + tl.cq * j;
        col_ok[j] = col < cols;
        let n = col / ohw;
        let o = col % ohw;
        x_base[j] = n * p.cin * p.h * p.w;
        ih0[j] = i32((o / p.ow) * p.sh + wh.x) - i32(p.pad_top);
        iw0[j] = i32((o % p.ow) * p.sw + ww.x) - i32(p.pad_left);
    }
    let step_b = digits(64u / tl.cq, wh.y, ww.y);
    let step_c = digits(tl.kc, wh.y, ww.y);
    var chunk_b = digits(t / tl.cq, wh.y, ww.y);

    let tx = t % tl.ct;
    let ty = t / tl.ct;
    var acc: array<vec4<f32>, 16>;
    let chunks = (p.cin * wh.y * ww.y + tl.kc - 1u) / tl.kc;
    for (var c = 0u; c < chunks; c = c + 1u) {
        for (var kk = t / tl.rq; kk < tl.kc; kk = kk + 64u / tl.rq) {
            var a = vec4<f32>(0.0);
            let k = c * tl.kc + kk;
            if (a_ok && k < kwin) {
                // kpack is 1 or 2: step k's rows sit at (k / kpack) * ldw + (k % kpack) * ldw / 2.
                let shift = p.pack_kpack - 1u;
                a = packed4[((k >> shift) * p.pack_ldw + (k & shift) * (p.pack_ldw >> shift)) / 4u + quad];
            }
            stage[kk * tl.rq + qa] = a;
        }
        var d = chunk_b;
        for (var kk = t / tl.cq; kk < tl.kc; kk = kk + 64u / tl.cq) {
            var b = vec4<f32>(0.0);
            if (d.hi < p.cin) {
                let x_ci = d.hi * p.h * p.w;
                for (var j = 0u; j < 4u; j = j + 1u) {
                    let ih = ih0[j] + i32(d.mid);
                    let iw = iw0[j] + i32(d.lo);
                    if (col_ok[j] && in_image(ih, iw)) {
                        b[j] = x[x_base[j] + x_ci + u32(ih) * p.w + u32(iw)];
                    }
                }
            }
            stage[tl.boff + kk * tl.cq + qb] = b;
            d = digits_add(d, step_b, wh.y, ww.y);
        }
        chunk_b = digits_add(chunk_b, step_c, wh.y, ww.y);
        workgroupBarrier();
        mma_narrow(&acc, tl, tx, ty, 0u);
        workgroupBarrier();
    }
    spill(&acc, t);
    for (var q = 0u; q < 8u; q = q + 1u) {
        let col = col0 + tx + tl.ct * (q / 4u) + tl.cq * (q % 4u);
        if (col >= cols) { continue; }
        let base = (col / ohw) * p.cout * ohw + col % ohw; // y[n, 0, oh, ow]
        for (var m = 8u * (q / 4u); m < 8u * (q / 4u) + 8u; m = m + 1u) {
            let co = row0 + 4u * ty + tile_row(tl, m);
            if (co >= p.cout) { continue; }
            var bv = 0.0;
            if (p.has_bias == 1u) { bv = bias[co]; }
            y[base + co * ohw] = stage[t * 16u + m][q % 4u] + bv;
        }
    }
}

// ---- backward_input, one stride phase per wid.z % (sh * sw) ----

// The phase of this workgroup and its per-axis bookkeeping (see phase_axis).
struct Phase {
    ph: u32,
    pw: u32,
    ah: vec4<u32>, // (a0, a_end, j0, taps) along H
    aw: vec4<u32>, // along W
    ext_h: u32,    // columns per image along H: ceil(H / sh), the same for every phase
    ext_w: u32,
}

fn phase_of(z: u32) -> Phase {
    let phase = z % (p.sh * p.sw);
    let ph = phase / p.sw;
    let pw = phase % p.sw;
    return Phase(ph, pw,
                 phase_axis(p.h, p.kh, p.sh, p.pad_top, p.oh, ph),
                 phase_axis(p.w, p.kw, p.sw, p.pad_left, p.ow, pw),
                 (p.h + p.sh - 1u) / p.sh, (p.w + p.sw - 1u) / p.sw);
}

@compute @workgroup_size(64)
fn conv2d_backward_input_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) t: u32) {
    let tl = tiling();
    let phases = p.sh * p.sw;
    let f = phase_of(wid.z);
    let per_image = f.ext_h * f.ext_w;
    let cols = p.batch * per_image;
    let col0 = ((wid.z / phases) * nwg.x + wid.x) * 4u * tl.cq;
    if (col0 >= cols) { return; }
    let row0 = wid.y * 4u * tl.rq;
    let khw = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    // The reduction: r = (co, jh, jw), tap kh = ph + sh * (j0h + jh), kw likewise.
    let nh = f.ah.w;
    let nw = f.aw.w;

    // A (weights, rows ci): row quad qa.
    let qa = t % tl.rq;
    var w_row: vec4<u32>; // ci * KH * KW
    var row_ok: vec4<bool>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + 4u * qa + i;
        row_ok[i] = row < p.cin;
        w_row[i] = min(row, p.cin - 1u) * khw;
    }
    // B (dy gathered at oh = a0 + a - j0h - jh): column quad qb.
    let qb = t % tl.cq;
    var col_ok: vec4<bool>;
    var dy_base: vec4<u32>; // n * Cout * OH * OW
    var oh0: vec4<i32>;     // a0 + a - j0h
    var ow0: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = col0 + qb + tl.cq * j;
        let a = f.ah.x + (col % per_image) / f.ext_w;
        let b = f.aw.x + col % f.ext_w;
        col_ok[j] = col < cols && a < f.ah.y && b < f.aw.y;
        dy_base[j] = (col / per_image) * p.cout * ohw;
        oh0[j] = i32(a) - i32(f.ah.z);
        ow0[j] = i32(b) - i32(f.aw.z);
    }
    let step_a = digits(64u / tl.rq, nh, nw);
    let step_b = digits(64u / tl.cq, nh, nw);
    let step_c = digits(tl.kc, nh, nw);
    var chunk_a = digits(t / tl.rq, nh, nw);
    var chunk_b = digits(t / tl.cq, nh, nw);

    let tx = t % tl.ct;
    let ty = t / tl.ct;
    var acc: array<vec4<f32>, 16>;
    let chunks = (p.cout * nh * nw + tl.kc - 1u) / tl.kc;
    for (var c = 0u; c < chunks; c = c + 1u) {
        var d = chunk_a;
        for (var kk = t / tl.rq; kk < tl.kc; kk = kk + 64u / tl.rq) {
            var a = vec4<f32>(0.0);
            if (d.hi < p.cout) {
                let kh = f.ph + p.sh * (f.ah.z + d.mid);
                let kw = f.pw + p.sw * (f.aw.z + d.lo);
                let off = d.hi * p.cin * khw + kh * p.kw + kw;
                for (var i = 0u; i < 4u; i = i + 1u) {
                    if (row_ok[i]) { a[i] = wt[w_row[i] + off]; }
                }
            }
            stage[kk * tl.rq + qa] = a;
            d = digits_add(d, step_a, nh, nw);
        }
        chunk_a = digits_add(chunk_a, step_c, nh, nw);
        d = chunk_b;
        for (var kk = t / tl.cq; kk < tl.kc; kk = kk + 64u / tl.cq) {
            var b = vec4<f32>(0.0);
            if (d.hi < p.cout) {
                let dy_co = d.hi * ohw;
                for (var j = 0u; j < 4u; j = j + 1u) {
                    let oh = oh0[j] - i32(d.mid);
                    let ow = ow0[j] - i32(d.lo);
                    if (col_ok[j] && oh >= 0 && oh < i32(p.oh) && ow >= 0 && ow < i32(p.ow)) {
                        b[j] = dy[dy_base[j] + dy_co + u32(oh) * p.ow + u32(ow)];
                    }
                }
            }
            stage[tl.boff + kk * tl.cq + qb] = b;
            d = digits_add(d, step_b, nh, nw);
        }
        chunk_b = digits_add(chunk_b, step_c, nh, nw);
        workgroupBarrier();
        mma_narrow(&acc, tl, tx, ty, 0u);
        workgroupBarrier();
    }
    spill(&acc, t);
    let hw = p.h * p.w;
    for (var q = 0u; q < 8u; q = q + 1u) {
        let col = col0 + tx + tl.ct * (q / 4u) + tl.cq * (q % 4u);
        let a = f.ah.x + (col % per_image) / f.ext_w;
        let b = f.aw.x + col % f.ext_w;
        if (col >= cols || a >= f.ah.y || b >= f.aw.y) { continue; }
        let ih = a * p.sh + f.ph - p.pad_top;
        let iw = b * p.sw + f.pw - p.pad_left;
        let base = (col / per_image) * p.cin * hw + ih * p.w + iw; // dx[n, 0, ih, iw]
        for (var m = 8u * (q / 4u); m < 8u * (q / 4u) + 8u; m = m + 1u) {
            let ci = row0 + 4u * ty + tile_row(tl, m);
            if (ci < p.cin) { dx[base + ci * hw] = stage[t * 16u + m][q % 4u]; }
        }
    }
}

// ---- backward_weight: rows co, columns k = (ci, jh, jw) over the tap window, reduction over
// the output positions of slice wid.z ----

@compute @workgroup_size(64)
fn conv2d_backward_weight_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let tl = tiling();
    let ohw = p.oh * p.ow;
    let start = wid.z * p.span;
    let end = min(start + p.span, p.batch * ohw);
    let wh = tap_window(p.h, p.kh, p.sh, p.pad_top, p.oh);
    let ww = tap_window(p.w, p.kw, p.sw, p.pad_left, p.ow);
    let kdim = p.cin * wh.y * ww.y;
    let col0 = wid.x * 4u * tl.cq;
    let row0 = wid.y * 4u * tl.rq;

    // A (dy, rows co): row quad qa, positions start + t / rq + m * (64 / rq).
    let qa = t % tl.rq;
    var dy_row: vec4<u32>; // co * OH * OW
    var row_ok: vec4<bool>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + 4u * qa + i;
        row_ok[i] = row < p.cout;
        dy_row[i] = min(row, p.cout - 1u) * ohw;
    }
    // B (x at the taps of columns k): column quad qb.
    let qb = t % tl.cq;
    var col_ok: vec4<bool>;
    var x_ci: vec4<u32>; // ci * H * W
    var kh: vec4<i32>;   // tap - top
    var kw: vec4<i32>;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let k = digits(col0 + qb + tl.cq * j, wh.y, ww.y);
        col_ok[j] = k.hi < p.cin;
        x_ci[j] = k.hi * p.h * p.w;
        kh[j] = i32(wh.x + k.mid) - i32(p.pad_top);
        kw[j] = i32(ww.x + k.lo) - i32(p.pad_left);
    }
    // Positions as digits (n, oh, ow).
    let step_a = digits(64u / tl.rq, p.oh, p.ow);
    let step_b = digits(64u / tl.cq, p.oh, p.ow);
    let step_c = digits(tl.kc, p.oh, p.ow);
    var chunk_a = digits(start + t / tl.rq, p.oh, p.ow);
    var chunk_b = digits(start + t / tl.cq, p.oh, p.ow);

    let g = t / (tl.rt * tl.ct);
    let tx = t % tl.ct;
    let ty = (t / tl.ct) % tl.rt;
    var acc: array<vec4<f32>, 16>;
    let chunks = (end - start + tl.kc - 1u) / tl.kc;
    for (var c = 0u; c < chunks; c = c + 1u) {
        var d = chunk_a;
        for (var kk = t / tl.rq; kk < tl.kc; kk = kk + 64u / tl.rq) {
            var a = vec4<f32>(0.0);
            if (start + c * tl.kc + kk < end) {
                let pos = d.hi * p.cout * ohw + d.mid * p.ow + d.lo;
                for (var i = 0u; i < 4u; i = i + 1u) {
                    if (row_ok[i]) { a[i] = dy[pos + dy_row[i]]; }
                }
            }
            stage[kk * tl.rq + qa] = a;
            d = digits_add(d, step_a, p.oh, p.ow);
        }
        chunk_a = digits_add(chunk_a, step_c, p.oh, p.ow);
        d = chunk_b;
        for (var kk = t / tl.cq; kk < tl.kc; kk = kk + 64u / tl.cq) {
            var b = vec4<f32>(0.0);
            if (start + c * tl.kc + kk < end) {
                let x_n = d.hi * p.cin * p.h * p.w;
                let ih0 = i32(d.mid * p.sh);
                let iw0 = i32(d.lo * p.sw);
                for (var j = 0u; j < 4u; j = j + 1u) {
                    let ih = ih0 + kh[j];
                    let iw = iw0 + kw[j];
                    if (col_ok[j] && in_image(ih, iw)) {
                        b[j] = x[x_n + x_ci[j] + u32(ih) * p.w + u32(iw)];
                    }
                }
            }
            stage[tl.boff + kk * tl.cq + qb] = b;
            d = digits_add(d, step_b, p.oh, p.ow);
        }
        chunk_b = digits_add(chunk_b, step_c, p.oh, p.ow);
        workgroupBarrier();
        mma_narrow(&acc, tl, tx, ty, g);
        workgroupBarrier();
    }
    // Group 0 stores the sum of the groups' micro-tiles, added in group order (its own slots
    // are the only ones it overwrites).
    spill(&acc, t);
    if (g > 0u) { return; }
    let per_group = tl.rt * tl.ct;
    for (var m = 0u; m < 16u; m = m + 1u) {
        var v = stage[t * 16u + m];
        for (var h = 1u; h < tl.ks; h = h + 1u) { v = v + stage[(h * per_group + t) * 16u + m]; }
        stage[t * 16u + m] = v;
    }
    // dw (or slice wid.z of the partials) [co, ci, kh, kw]; the first window tap of each
    // (co, ci) also writes the zeros of the taps outside the window.
    let khw = p.kh * p.kw;
    let kfull = p.cin * khw;
    let partial = wid.z * p.cout * kfull;
    let outside = wh.y * ww.y < khw;
    for (var q = 0u; q < 8u; q = q + 1u) {
        let k = digits(col0 + tx + tl.ct * (q / 4u) + tl.cq * (q % 4u), wh.y, ww.y);
        if (k.hi >= p.cin) { continue; }
        let first = outside && k.mid == 0u && k.lo == 0u;
        let base = partial + k.hi * khw; // dw[0, ci, 0, 0]
        let tap = (wh.x + k.mid) * p.kw + ww.x + k.lo;
        for (var m = 8u * (q / 4u); m < 8u * (q / 4u) + 8u; m = m + 1u) {
            let co = row0 + 4u * ty + tile_row(tl, m);
            if (co >= p.cout) { continue; }
            dw[base + co * kfull + tap] = stage[t * 16u + m][q % 4u];
            if (first) {
                for (var kh = 0u; kh < p.kh; kh = kh + 1u) {
                    for (var kw = 0u; kw < p.kw; kw = kw + 1u) {
                        // Outside the window (below its first tap the subtraction wraps).
                        if (kh - wh.x >= wh.y || kw - ww.x >= ww.y) {
                            dw[base + co * kfull + kh * p.kw + kw] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Weight layouts for the `_subgroup` GEMMs (conv2d_subgroup.wgsl), which read one vec4 of rows
// per reduction step: packed[base + k * ldw + m] for k = (c, th, tw) and m < ldw (rows past M
// read zero, so the GEMM needs no row bounds), or for M <= 16 in step pairs,
// packed[base + (k / 2) * ldw + (k % 2) * ldw / 2 + m] (an odd last step's partner is zero). The forward packs w[m, c, first + t] (m = co);
// dx packs each stride phase's taps flipped, w[c, m, base + step * t] (c = co, m = ci).

struct ConvPackParams {
    rows: u32,     // M
    chans: u32,    // C
    taps_h: u32,
    taps_w: u32,
    kw: u32,       // the weight's KW and KH * KW
    khw: u32,
    stride_m: u32, // weight index = m * stride_m + c * stride_c + kh * KW + kw
    stride_c: u32,
    base_h: i32,   // kh = base_h + step_h * th
    step_h: i32,
    base_w: i32,
    step_w: i32,
    ldw: u32,
    out_base: u32, // first float of this layout in `packed`
    kpack: u32,    // 2: M <= 16, steps packed in pairs (rows of k, then of k + 1, per ldw)
    pad1: u32,
}

@group(0) @binding(0) var<uniform> pk: ConvPackParams;
@group(0) @binding(10) var<storage, read_write> packed4: array<vec4<f32>>;

// One invocation per channel c and quad of rows m: it walks the taps (no division per value:
// vector integer division is scalar on CPUs) and stores one quad per tap. 1-D, folded past
// 65535 groups; invocation i = c * (ldw / 4) + m / 4.
@compute @workgroup_size(256)
fn conv2d_pack_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) t: u32) {
    let quads = pk.ldw / 4u;             // per packed step (a pair of steps with kpack 2)
    let row_quads = quads / pk.kpack;    // per reduction step
    let i = (wid.y * nwg.x + wid.x) * 256u + t;
    if (i >= pk.chans * row_quads) { return; }
    let c = i / row_quads;
    let m0 = (i % row_quads) * 4u;
    let taps = pk.taps_h * pk.taps_w;
    // Rows past M read row 0 and are zeroed below, so no load leaves the weights.
    let ok = vec4<u32>(m0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(pk.rows);
    let at = select(vec4<u32>(0u), (vec4<u32>(m0) + vec4<u32>(0u, 1u, 2u, 3u)) * pk.stride_m, ok)
        + vec4<u32>(c * pk.stride_c);
    let base = pk.out_base / 4u + m0 / 4u;
    var k = c * taps;
    for (var th = 0u; th < pk.taps_h; th = th + 1u) {
        let kh = u32(pk.base_h + pk.step_h * i32(th));
        for (var tw = 0u; tw < pk.taps_w; tw = tw + 1u) {
            let tap = kh * pk.kw + u32(pk.base_w + pk.step_w * i32(tw));
            let v = vec4<f32>(wt[at.x + tap], wt[at.y + tap], wt[at.z + tap], wt[at.w + tap]);
            packed4[base + (k / pk.kpack) * quads + (k % pk.kpack) * row_quads] =
                select(vec4<f32>(0.0), v, ok);
            k = k + 1u;
        }
    }
    // An odd count of steps in pairs: the last step's partner multiplies zeros.
    if (c + 1u == pk.chans && k % pk.kpack != 0u) {
        packed4[base + (k / pk.kpack) * quads + row_quads] = vec4<f32>(0.0);
    }
}

// dw[co, ci, first_h + jh, first_w + jw] = sum over slices s (in order) of
// dw_partials[s, co, c], c = (ci, jh, jw) over the tap window: the `_subgroup` weight
// gradient's split-K sum. Taps outside the window are left as they are (see
// conv2d_backward_weight_subgroup). One invocation per window element; 1-D, folded past
// 65535 groups.
struct ConvWindowSumParams {
    cout: u32,
    cin: u32,
    kh: u32,
    kw: u32,
    first_h: u32,
    taps_h: u32,
    first_w: u32,
    taps_w: u32,
    splits: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> ws: ConvWindowSumParams;

@compute @workgroup_size(256)
fn conv2d_backward_weight_sum_window(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                     @builtin(local_invocation_index) t: u32) {
    let taps = ws.taps_h * ws.taps_w;
    let kc = ws.cin * taps;
    let i = (wid.y * nwg.x + wid.x) * 256u + t;
    if (i >= ws.cout * kc) { return; }
    let co = i / kc;
    let c = i % kc;
    let ci = c / taps;
    let kh = ws.first_h + (c % taps) / ws.taps_w;
    let kw = ws.first_w + c % ws.taps_w;
    var acc = 0.0;
    for (var s = 0u; s < ws.splits; s = s + 1u) {
        acc = acc + dw_partials[(s * ws.cout + co) * kc + c];
    }
    dw[((co * ws.cin + ci) * ws.kh + kh) * ws.kw + kw] = acc;
}
