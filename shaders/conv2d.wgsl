// 2-D convolution, NCHW f32, and its gradients, as implicit GEMMs (im2col is never built:
// each tile load computes the input coordinates it needs and reads zero in the padding).
//
//   forward          y[co, pos]  = sum_k  w[co, k]   * im2col[k, pos]     k = (ci, kh, kw), pos = (n, oh, ow)
//   backward_input   dx[ci, q]   = sum_r  w[co,ci,kh,kw] * dy[n, co, oh, ow]  r = (co, kh, kw), q = (n, ih, iw),
//                                  where ih = oh * sh - top + kh (only exactly divisible, in-range oh count)
//   backward_weight  dw[co, k]   = sum_pos dy[co, pos] * im2col[k, pos]   over a slice of pos per split
//
// Tiling, shared by the three GEMMs: a 256-thread workgroup computes a 64x64 output tile,
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
    span: u32,     // backward_weight: output positions per slice, a multiple of 16
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
// about (s*s - 1)/(s*s) of the r terms fall between output positions and read zero; the
// stride-2 layers are few, so that waste is accepted for one simple kernel.
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

// db[co] = sum over n, oh, ow of dy. One workgroup per channel (wid.x = co), fixed tree order.
@compute @workgroup_size(256)
fn conv2d_backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let co = wid.x;
    let ohw = p.oh * p.ow;
    let per_channel = p.batch * ohw;
    var acc = 0.0;
    for (var j = t; j < per_channel; j = j + 256u) {
        let n = j / ohw;
        acc = acc + dy[(n * p.cout + co) * ohw + j % ohw];
    }
    tree[t] = acc;
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) { tree[t] = tree[t] + tree[t + stride]; }
    }
    if (t == 0u) { db[co] = tree[0]; }
}
