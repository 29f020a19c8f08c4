// 2-D convolution for adapters that run a subgroup as one SIMD register (CPU adapters such as
// lavapipe, SwiftShader, WARP): the `_subgroup` variants of conv2d.wgsl's GEMMs. Needs the
// SUBGROUP feature and subgroups of at least 4 invocations (the kernel choice checks both).
//
// Why this shape: on such an adapter every storage load is a loop over the subgroup's lanes
// (about 100 cycles whatever its width), while a vec4 multiply-add is a few instructions. So
// a workgroup is one 8-lane subgroup with no workgroup memory and no barriers, each lane holds
// a 32 x 4 block of outputs in registers (rows x columns), and one vec4 load per lane and
// reduction step fetches 32 rows of the packed weights, which `subgroupBroadcast` with a
// constant lane (an extract and a splat, no memory) hands to every lane: 5 loads per 1024
// multiply-adds. `acc` is only ever indexed by constants (after inlining), so it stays in
// registers; a loop over it would move it to memory.
//
// Lanes: every entry point comes for 8-lane workgroups and, with the suffix `4`, for 4-lane
// ones (adapters whose subgroups may be 4 wide: SwiftShader, Metal as wgpu reports it), where
// a workgroup of 8 could span two subgroups and a broadcast would not reach every invocation.
// The tile keeps its 32 rows: with 4 lanes each lane loads the quads (rows) of lanes l and
// l + 4 and broadcasts lanes 0-3 of each, and owns 4 of 16 columns. `lanes` is a literal at
// every call, so after inlining each entry point holds one path.
//
//   conv2d_gemm_subgroup      out[m, q] = sum_k wp[k, m] * im2col(src)[k, q]: the forward
//                             pass with src = x, and dx's correlation per stride phase over
//                             src = dy with the weights packed flipped and transposed
//                             (src/ops/conv2d/subgroup.rs)
//   conv2d_backward_weight_subgroup
//                             dw_partials[s, co, c] = sum over slice s of positions p of
//                             dy[co, p] * im2col(x)[c, p], c over the tap window only (or,
//                             with one slice, dw's window taps directly). Taps outside the
//                             window get no gradient and are never written: zero in every
//                             buffer the engine allocates, as nothing else writes a weight
//                             gradient. On the paper's 1x1 maps that is 8 of 9 taps.
//   conv2d_backward_weight_rows_subgroup
//                             the same for 3x3 same convs, reading x a row window at a time
//
// Compile time matters as much as run time here: lavapipe compiles each pipeline with LLVM
// at its first dispatch (1-4 s each for kernels this size, most of a cold start), and LLVM's
// time grows faster than the code. So every multiply-add block and every store sequence
// appears once in each entry point: loops whose bounds are uniforms (which the compiler
// cannot unroll) walk the taps and store the accumulators quad by quad, shifting the next
// quad to the front, and dw's two paths are separate entry points (one was 3.9 s to compile,
// the two 0.8 + 0.4 s).
//
// Every kernel writes its outputs (never accumulates), uses no atomics and sums in a fixed
// order, so results are bit-identical run to run.

// One correlation: rows m of `out`, columns q = (n, a, b) on a grid of gh x gw that lands at
// out[n, m, a * out_sh + out_h0, b * out_sw + out_w0]; column q reads
// src[n, c, a * sh + off_h + th, b * sw + off_w + tw] for taps th < taps_h, tw < taps_w.
struct ConvGemmParams {
    batch: u32,
    chans: u32,   // C of src: the reduction is k = (c, th, tw)
    h: u32,       // src height and width
    w: u32,
    rows: u32,    // M: output channels of out
    gh: u32,      // the column grid
    gw: u32,
    sh: u32,
    sw: u32,
    off_h: i32,
    off_w: i32,
    taps_h: u32,
    taps_w: u32,
    out_h: u32,   // out's own height and width
    out_w: u32,
    out_sh: u32,
    out_sw: u32,
    out_h0: u32,
    out_w0: u32,
    ldw: u32,     // packed weights: floats per reduction step (rows rounded up to 32)
    wp_base: u32, // packed weights: first vec4 of this dispatch
    has_bias: u32,
    pairs: u32,   // 1 when M <= 16: see gemm_subgroup
    by_row: u32,  // 1: the row-window path for 3x3 taps (gemm_by_row, `by_row` in subgroup.rs)
}

// dw over a tap window: columns c = (ci, jh, jw) < cin * taps_h * taps_w for the taps
// kh = first_h + jh, kw = first_w + jw; rows co; the positions split into `span`-long slices.
struct ConvWeightGradParams {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    sw: u32,
    pad_top: u32,
    pad_left: u32,
    first_h: u32,
    first_w: u32,
    taps_h: u32,
    taps_w: u32,
    span: u32,    // positions per slice, a multiple of 4
    splits: u32,
    kh: u32,      // the full kernel, for `direct`
    kw: u32,
    direct: u32,  // 1 (one slice): write dw [Cout, Cin, KH, KW] itself, not the partials
    pairs: u32,   // 1 when Cout <= 16: see conv2d_backward_weight_subgroup
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> g: ConvGemmParams;
@group(0) @binding(0) var<uniform> q: ConvWeightGradParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> wp: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read> src4: array<vec4<f32>>; // src again, as quads (x in dw)

const TM: u32 = 32u; // rows per workgroup: 8 quads of packed weights (one or two per lane)
// Columns per workgroup: 4 per lane, 32 with 8 lanes, 16 with 4.

// acc[4 j + i] += a[i] * b for the four rows of broadcast quad j.
fn rows4(acc: ptr<function, array<vec4<f32>, 32>>, j: u32, a: vec4<f32>, b: vec4<f32>) {
    (*acc)[4u * j] = fma(vec4<f32>(a.x), b, (*acc)[4u * j]);
    (*acc)[4u * j + 1u] = fma(vec4<f32>(a.y), b, (*acc)[4u * j + 1u]);
    (*acc)[4u * j + 2u] = fma(vec4<f32>(a.z), b, (*acc)[4u * j + 2u]);
    (*acc)[4u * j + 3u] = fma(vec4<f32>(a.w), b, (*acc)[4u * j + 3u]);
}

// All 32 rows of one step: packed quad j (rows 4 j .. 4 j + 3) is wp[wk] of lane j, or with
// 4 lanes wp[wk] of lane j for j < 4 and wp[wk + 4] of lane j - 4 past that.
fn rows32(acc: ptr<function, array<vec4<f32>, 32>>, wk: u32, b: vec4<f32>, lanes: u32) {
    let a = wp[wk];
    rows4(acc, 0u, subgroupBroadcast(a, 0u), b);
    rows4(acc, 1u, subgroupBroadcast(a, 1u), b);
    rows4(acc, 2u, subgroupBroadcast(a, 2u), b);
    rows4(acc, 3u, subgroupBroadcast(a, 3u), b);
    if (lanes == 8u) {
        rows4(acc, 4u, subgroupBroadcast(a, 4u), b);
        rows4(acc, 5u, subgroupBroadcast(a, 5u), b);
        rows4(acc, 6u, subgroupBroadcast(a, 6u), b);
        rows4(acc, 7u, subgroupBroadcast(a, 7u), b);
    } else {
        let a4 = wp[wk + 4u];
        rows4(acc, 4u, subgroupBroadcast(a4, 0u), b);
        rows4(acc, 5u, subgroupBroadcast(a4, 1u), b);
        rows4(acc, 6u, subgroupBroadcast(a4, 2u), b);
        rows4(acc, 7u, subgroupBroadcast(a4, 3u), b);
    }
}

// With k-pairs (M <= 16): lanes 0-3 hold rows 0-15 at step k, lanes 4-7 at step k + 1, and
// acc rows 16 + m sum the odd steps of row m until `fold_pairs`.
fn rows16_even(acc: ptr<function, array<vec4<f32>, 32>>, a: vec4<f32>, b: vec4<f32>) {
    rows4(acc, 0u, subgroupBroadcast(a, 0u), b);
    rows4(acc, 1u, subgroupBroadcast(a, 1u), b);
    rows4(acc, 2u, subgroupBroadcast(a, 2u), b);
    rows4(acc, 3u, subgroupBroadcast(a, 3u), b);
}

fn rows16_odd(acc: ptr<function, array<vec4<f32>, 32>>, a: vec4<f32>, b: vec4<f32>) {
    rows4(acc, 4u, subgroupBroadcast(a, 4u), b);
    rows4(acc, 5u, subgroupBroadcast(a, 5u), b);
    rows4(acc, 6u, subgroupBroadcast(a, 6u), b);
    rows4(acc, 7u, subgroupBroadcast(a, 7u), b);
}

// One pair of steps (k even into rows 0-15, k + 1 into acc rows 16-31): the packed pair is
// wp[wk] across 8 lanes, or wp[wk] (step k) and wp[wk + 4] (step k + 1) across 4.
fn rows16_pair(acc: ptr<function, array<vec4<f32>, 32>>, wk: u32, even: vec4<f32>, odd: vec4<f32>,
               lanes: u32) {
    let a = wp[wk];
    rows16_even(acc, a, even);
    if (lanes == 8u) {
        rows16_odd(acc, a, odd);
    } else {
        let a4 = wp[wk + 4u];
        rows4(acc, 4u, subgroupBroadcast(a4, 0u), odd);
        rows4(acc, 5u, subgroupBroadcast(a4, 1u), odd);
        rows4(acc, 6u, subgroupBroadcast(a4, 2u), odd);
        rows4(acc, 7u, subgroupBroadcast(a4, 3u), odd);
    }
}

fn fold_quad(acc: ptr<function, array<vec4<f32>, 32>>, j: u32) {
    (*acc)[4u * j] = (*acc)[4u * j] + (*acc)[16u + 4u * j];
    (*acc)[4u * j + 1u] = (*acc)[4u * j + 1u] + (*acc)[17u + 4u * j];
    (*acc)[4u * j + 2u] = (*acc)[4u * j + 2u] + (*acc)[18u + 4u * j];
    (*acc)[4u * j + 3u] = (*acc)[4u * j + 3u] + (*acc)[19u + 4u * j];
}

fn fold_pairs(acc: ptr<function, array<vec4<f32>, 32>>) {
    fold_quad(acc, 0u);
    fold_quad(acc, 1u);
    fold_quad(acc, 2u);
    fold_quad(acc, 3u);
}

// acc[i] = acc[i + 4]: the next quad of rows moves to the front (constant indices only).
fn shift_quad(acc: ptr<function, array<vec4<f32>, 32>>) {
    (*acc)[0] = (*acc)[4]; (*acc)[1] = (*acc)[5]; (*acc)[2] = (*acc)[6]; (*acc)[3] = (*acc)[7];
    (*acc)[4] = (*acc)[8]; (*acc)[5] = (*acc)[9]; (*acc)[6] = (*acc)[10]; (*acc)[7] = (*acc)[11];
    (*acc)[8] = (*acc)[12]; (*acc)[9] = (*acc)[13]; (*acc)[10] = (*acc)[14]; (*acc)[11] = (*acc)[15];
    (*acc)[12] = (*acc)[16]; (*acc)[13] = (*acc)[17]; (*acc)[14] = (*acc)[18]; (*acc)[15] = (*acc)[19];
    (*acc)[16] = (*acc)[20]; (*acc)[17] = (*acc)[21]; (*acc)[18] = (*acc)[22]; (*acc)[19] = (*acc)[23];
    (*acc)[20] = (*acc)[24]; (*acc)[21] = (*acc)[25]; (*acc)[22] = (*acc)[26]; (*acc)[23] = (*acc)[27];
    (*acc)[24] = (*acc)[28]; (*acc)[25] = (*acc)[29]; (*acc)[26] = (*acc)[30]; (*acc)[27] = (*acc)[31];
}

// ---- forward and dx ----

// This lane's four columns, decoded once.
struct Columns {
    ok: vec4<bool>,
    src_base: vec4<u32>, // n * C * H * W
    out_base: vec4<u32>, // n * M * OH * OW + oh * OW + ow in `out`
    ih0: vec4<i32>,      // a * sh + off_h
    iw0: vec4<i32>,
}

fn gemm_columns(q0: u32) -> Columns {
    var c: Columns;
    let cells = g.gh * g.gw;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = q0 + j;
        c.ok[j] = col < g.batch * cells;
        let n = col / cells;
        let r = col % cells;
        let a = r / g.gw;
        let b = r % g.gw;
        c.src_base[j] = n * g.chans * g.h * g.w;
        c.out_base[j] = n * g.rows * g.out_h * g.out_w + (a * g.out_sh + g.out_h0) * g.out_w
            + b * g.out_sw + g.out_w0;
        c.ih0[j] = i32(a * g.sh) + g.off_h;
        c.iw0[j] = i32(b * g.sw) + g.off_w;
    }
    return c;
}

fn store_gemm_row(m: u32, v: vec4<f32>, c: Columns) {
    if (m >= g.rows) { return; }
    var bv = 0.0;
    if (g.has_bias == 1u) { bv = bias[m]; }
    let plane = m * g.out_h * g.out_w;
    if (c.ok.x) { out[c.out_base.x + plane] = v.x + bv; }
    if (c.ok.y) { out[c.out_base.y + plane] = v.y + bv; }
    if (c.ok.z) { out[c.out_base.z + plane] = v.z + bv; }
    if (c.ok.w) { out[c.out_base.w + plane] = v.w + bv; }
}

// Quad j of the accumulators (rows m0 + 4 j ..), stored with constant indices.
fn store_gemm_quad(acc: ptr<function, array<vec4<f32>, 32>>, j: u32, m0: u32, c: Columns) {
    store_gemm_row(m0 + 4u * j, (*acc)[4u * j], c);
    store_gemm_row(m0 + 4u * j + 1u, (*acc)[4u * j + 1u], c);
    store_gemm_row(m0 + 4u * j + 2u, (*acc)[4u * j + 2u], c);
    store_gemm_row(m0 + 4u * j + 3u, (*acc)[4u * j + 3u], c);
}

// A reduction step k = (ch, th, tw), stepped with carries: vector division is scalar on CPUs.
struct Tap {
    ch_off: u32, // ch * H * W
    th: u32,
    tw: u32,
}

fn next_tap(t: Tap) -> Tap {
    var r = Tap(t.ch_off, t.th, t.tw + 1u);
    if (r.tw == g.taps_w) {
        r.tw = 0u;
        r.th = r.th + 1u;
        if (r.th == g.taps_h) { r = Tap(r.ch_off + g.h * g.w, 0u, 0u); }
    }
    return r;
}

// im2col(src) at step t for the lane's 4 columns: zero off the source image.
fn gather(c: Columns, t: Tap) -> vec4<f32> {
    let ih = c.ih0 + vec4<i32>(i32(t.th));
    let iw = c.iw0 + vec4<i32>(i32(t.tw));
    let inside = c.ok & (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(g.h)))
        & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(g.w)));
    let at = c.src_base + vec4<u32>(t.ch_off) + vec4<u32>(ih) * g.w + vec4<u32>(iw);
    var b = vec4<f32>(0.0);
    if (inside.x) { b.x = src[at.x]; }
    if (inside.y) { b.y = src[at.y]; }
    if (inside.z) { b.z = src[at.z]; }
    if (inside.w) { b.w = src[at.w]; }
    return b;
}

// The row-window path (by_row == 1): 3 taps per row at off_w = -1 (every 3x3 same conv and
// its stride-1 dx), the lane's 4 columns 4 consecutive cells of one grid row, 4-aligned, read
// at stride 1 from a source whose rows are whole quads. One source row (c, ih) then holds its
// 3 steps' columns in one aligned vec4 and one value either side: 3 loads, not 12. The
// steps' vectors are fixed shuffles of those, picked per step by selects (2 per 128
// multiply-adds; selecting instead of loading each column would cost as much as the loads
// saved), and the multiply-adds sit under no branch (llvmpipe runs both sides of every
// branch with masks).
struct RowWindow {
    l: f32,        // iw = b - 1
    v: vec4<f32>,  // iw = b .. b + 3
    r: f32,        // iw = b + 4
}

// Source row r = (c, th) of the reduction at the lane's columns; zero past the last row.
fn load_row(c: Columns, r: u32) -> RowWindow {
    var win = RowWindow(0.0, vec4<f32>(0.0), 0.0);
    let ih = c.ih0.x + i32(r % g.taps_h);
    let b = c.iw0.x + 1; // the lane's first grid cell, a multiple of 4
    let live = c.ok.x && r < g.chans * g.taps_h && ih >= 0 && ih < i32(g.h);
    let start = c.src_base.x + (r / g.taps_h) * g.h * g.w + u32(ih) * g.w + u32(b);
    let inside = vec4<bool>(live) & (vec4<i32>(b) + vec4<i32>(0, 1, 2, 3) < vec4<i32>(i32(g.w)));
    if (live) { win.v = select(vec4<f32>(0.0), src4[start / 4u], inside); }
    if (live && b > 0) { win.l = src[start - 1u]; }
    if (live && b + 4 < i32(g.w)) { win.r = src[start + 4u]; }
    return win;
}

fn tap_left(w: RowWindow) -> vec4<f32> { return vec4<f32>(w.l, w.v.xyz); }
fn tap_right(w: RowWindow) -> vec4<f32> { return vec4<f32>(w.v.yzw, w.r); }

// M > 16: row by row, its 3 taps in turn (a loop to taps_w, not 3 unrolled copies of the
// 128 multiply-adds: the selects cost 2 blends per 128 of them).
fn gemm_by_row(acc: ptr<function, array<vec4<f32>, 32>>, c: Columns, wk0: u32, lanes: u32) {
    let ldw4 = g.ldw / 4u;
    var wk = wk0;
    for (var r = 0u; r < g.chans * g.taps_h; r = r + 1u) {
        let win = load_row(c, r);
        let left = tap_left(win);
        let right = tap_right(win);
        for (var t = 0u; t < g.taps_w; t = t + 1u) {
            let b = select(select(right, win.v, t == 1u), left, t == 0u);
            rows32(acc, wk, b, lanes);
            wk = wk + ldw4;
        }
    }
}

// M <= 16 (k-pairs): two rows at a time, their 6 steps as 3 pairs, so no pair straddles an
// iteration; an odd last row's 3 steps make 2 pairs, the last with a zero partner (a row
// past the end loads as zeros).
fn gemm_by_row_pairs(acc: ptr<function, array<vec4<f32>, 32>>, c: Columns, wk0: u32, lanes: u32) {
    let ldw4 = g.ldw / 4u;
    let rows = g.chans * g.taps_h;
    var wk = wk0;
    for (var r = 0u; r < rows; r = r + 2u) {
        let w0 = load_row(c, r);
        let w1 = load_row(c, r + 1u);
        // Steps L0 V0 R0 L1 V1 R1 as pairs (L0, V0), (R0, L1), (V1, R1); an odd last row
        // stops after its 3 steps' 2 pairs.
        let steps = select(3u, 2u, r + 1u == rows);
        for (var j = 0u; j < steps; j = j + 1u) {
            let even = select(select(w1.v, tap_right(w0), j == 1u), tap_left(w0), j == 0u);
            let odd = select(select(tap_right(w1), tap_left(w1), j == 1u), w0.v, j == 0u);
            rows16_pair(acc, wk, even, odd, lanes);
            wk = wk + ldw4;
        }
    }
}

// Workgroup (x: column tile, folded into z past 65535; y: row tile); one subgroup. A layer
// with M <= 16 would leave half of each 32-row vec4 of packed weights idle, so there the
// weights are packed in k-pairs (rows 0-15 of step k, then of step k + 1) and each load
// feeds two steps: half the weight loads and no idle multiply-adds.
fn gemm_subgroup(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, lanes: u32) {
    let q0 = (wid.z * nwg.x + wid.x) * 4u * lanes;
    if (q0 >= g.batch * g.gh * g.gw) { return; } // a folded grid's spare tiles
    let c = gemm_columns(q0 + 4u * lane);
    let m0 = wid.y * TM;
    let ldw4 = g.ldw / 4u;
    var acc: array<vec4<f32>, 32>;
    var t = Tap(0u, 0u, 0u);
    var wk = g.wp_base + m0 / 4u + lane;
    let kdim = g.chans * g.taps_h * g.taps_w;
    if (g.by_row == 1u && g.pairs == 1u) {
        gemm_by_row_pairs(&acc, c, wk, lanes);
        fold_pairs(&acc);
    } else if (g.by_row == 1u) {
        gemm_by_row(&acc, c, wk, lanes);
    } else if (g.pairs == 1u) {
        for (var k = 0u; k < kdim; k = k + 2u) {
            let b0 = gather(c, t);
            let t1 = next_tap(t);
            var b1 = vec4<f32>(0.0);
            if (k + 1u < kdim) { b1 = gather(c, t1); }
            rows16_pair(&acc, wk, b0, b1, lanes);
            wk = wk + ldw4;
            t = next_tap(t1);
        }
        fold_pairs(&acc);
    } else {
        for (var k = 0u; k < kdim; k = k + 1u) {
            rows32(&acc, wk, gather(c, t), lanes);
            wk = wk + ldw4;
            t = next_tap(t);
        }
    }
    // Quad by quad, shifting the next one into acc[0..3]: one copy of the stores, not eight.
    for (var m = m0; m < min(m0 + TM, g.rows); m = m + 4u) {
        store_gemm_quad(&acc, 0u, m, c);
        shift_quad(&acc);
    }
}

// y = conv(x, w) (+ bias): src = x, rows = Cout, the tap window of each axis; and dx for one
// stride phase: src = dy, rows = Cin, the phase's taps flipped (a correlation). One entry
// point for both, so the driver compiles the code once.
@compute @workgroup_size(8)
fn conv2d_gemm_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(subgroup_invocation_id) lane: u32) {
    gemm_subgroup(wid, nwg, lane, 8u);
}

@compute @workgroup_size(4)
fn conv2d_gemm_subgroup4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(subgroup_invocation_id) lane: u32) {
    gemm_subgroup(wid, nwg, lane, 4u);
}

// ---- weight gradient ----

// dw_partials[s, co, c] for this lane's 4 window columns c and the workgroup's 32 rows co.
// Per 4 positions each lane loads its 4 rows' dy (one vec4 each when 4 consecutive positions
// lie in one image and are vec4-aligned, which OH * OW % 4 == 0 guarantees) and gathers its 4
// columns' x; the broadcast hands every lane all 32 rows' dy.
struct WindowColumns {
    ok: vec4<bool>,
    src_off: vec4<u32>, // ci * H * W
    dh: vec4<i32>,      // first_h + jh - pad_top: ih = oh * sh + dh
    dw: vec4<i32>,
}

fn window_columns(c0: u32) -> WindowColumns {
    var c: WindowColumns;
    let taps = q.taps_h * q.taps_w;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = c0 + j;
        c.ok[j] = col < q.cin * taps;
        let ci = col / taps;
        let t = col % taps;
        c.src_off[j] = ci * q.h * q.w;
        c.dh[j] = i32(q.first_h + t / q.taps_w) - i32(q.pad_top);
        c.dw[j] = i32(q.first_w + t % q.taps_w) - i32(q.pad_left);
    }
    return c;
}

// im2col(x)[c, p] for the lane's 4 columns at one position (n, oh, ow); zero off the image
// and for positions past the slice (`live`).
fn gather_x(c: WindowColumns, x_base: u32, oh: u32, ow: u32, live: bool) -> vec4<f32> {
    let ih = vec4<i32>(i32(oh * q.sh)) + c.dh;
    let iw = vec4<i32>(i32(ow * q.sw)) + c.dw;
    let inside = c.ok & vec4<bool>(live) & (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(q.h)))
        & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(q.w)));
    let at = vec4<u32>(x_base) + c.src_off + vec4<u32>(ih) * q.w + vec4<u32>(iw);
    var b = vec4<f32>(0.0);
    if (inside.x) { b.x = src[at.x]; }
    if (inside.y) { b.y = src[at.y]; }
    if (inside.z) { b.z = src[at.z]; }
    if (inside.w) { b.w = src[at.w]; }
    return b;
}

// Row r of the accumulators += its dy at the step's 4 positions (s) times the lane's x there.
fn dw_row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, s: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>,
          b2: vec4<f32>, b3: vec4<f32>) {
    (*acc)[r] = fma(vec4<f32>(s.w), b3, fma(vec4<f32>(s.z), b2,
                fma(vec4<f32>(s.y), b1, fma(vec4<f32>(s.x), b0, (*acc)[r]))));
}

// Rows 8 i .. 8 i + 7, row 8 i + l broadcast from lane l's d (its row's dy at the 4
// positions); with 4 lanes rows 8 i + 4 + l from lane l's d4.
fn dw_rows8(acc: ptr<function, array<vec4<f32>, 32>>, i: u32, d: vec4<f32>, d4: vec4<f32>,
            b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>, lanes: u32) {
    let r = 8u * i;
    dw_row(acc, r, subgroupBroadcast(d, 0u), b0, b1, b2, b3);
    dw_row(acc, r + 1u, subgroupBroadcast(d, 1u), b0, b1, b2, b3);
    dw_row(acc, r + 2u, subgroupBroadcast(d, 2u), b0, b1, b2, b3);
    dw_row(acc, r + 3u, subgroupBroadcast(d, 3u), b0, b1, b2, b3);
    if (lanes == 8u) {
        dw_row(acc, r + 4u, subgroupBroadcast(d, 4u), b0, b1, b2, b3);
        dw_row(acc, r + 5u, subgroupBroadcast(d, 5u), b0, b1, b2, b3);
        dw_row(acc, r + 6u, subgroupBroadcast(d, 6u), b0, b1, b2, b3);
        dw_row(acc, r + 7u, subgroupBroadcast(d, 7u), b0, b1, b2, b3);
    } else {
        dw_row(acc, r + 4u, subgroupBroadcast(d4, 0u), b0, b1, b2, b3);
        dw_row(acc, r + 5u, subgroupBroadcast(d4, 1u), b0, b1, b2, b3);
        dw_row(acc, r + 6u, subgroupBroadcast(d4, 2u), b0, b1, b2, b3);
        dw_row(acc, r + 7u, subgroupBroadcast(d4, 3u), b0, b1, b2, b3);
    }
}

// A position (n, o = oh * OW + ow), stepped with carries.
struct Cursor {
    n: u32,
    o: u32,
    oh: u32,
    ow: u32,
}

fn advance(c: Cursor) -> Cursor {
    var r = Cursor(c.n, c.o + 1u, c.oh, c.ow + 1u);
    if (r.ow == q.ow) {
        r.ow = 0u;
        r.oh = r.oh + 1u;
        if (r.oh == q.oh) { r = Cursor(r.n + 1u, 0u, 0u, 0u); }
    }
    return r;
}

// Four consecutive positions of a slice (the last step's may run past it: not `live`).
struct Group {
    c0: Cursor,
    c1: Cursor,
    c2: Cursor,
    c3: Cursor,
    live: vec4<bool>,
}

fn group_at(c: Cursor, p: u32, p_end: u32) -> Group {
    let c1 = advance(c);
    let c2 = advance(c1);
    let c3 = advance(c2);
    return Group(c, c1, c2, c3, vec4<u32>(p) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p_end));
}

// Two rows' dy at a group's 4 positions.
struct Rows2 {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn dy_rows(g: Group, ra: u32, rb: u32, aligned: bool) -> Rows2 {
    if (aligned) {
        // OH * OW % 4 == 0 and slices start at multiples of 4: the group lies in one image,
        // vec4-aligned, one vec4 per row instead of four values.
        let at = g.c0.n * q.cout * q.oh * q.ow + g.c0.o;
        return Rows2(dy4[(at + ra) / 4u], dy4[(at + rb) / 4u]);
    }
    let e0 = dy_at(g.c0, ra, rb, g.live.x);
    let e1 = dy_at(g.c1, ra, rb, g.live.y);
    let e2 = dy_at(g.c2, ra, rb, g.live.z);
    let e3 = dy_at(g.c3, ra, rb, g.live.w);
    return Rows2(vec4<f32>(e0.x, e1.x, e2.x, e3.x), vec4<f32>(e0.y, e1.y, e2.y, e3.y));
}

// Two rows' dy at one position (unaligned path), zero past the slice.
fn dy_at(c: Cursor, ra: u32, rb: u32, live: bool) -> vec2<f32> {
    var d = vec2<f32>(0.0);
    if (live) {
        let at = c.n * q.cout * q.oh * q.ow + c.o;
        d = vec2<f32>(dy[at + ra], dy[at + rb]);
    }
    return d;
}

// The lane's 4 columns of im2col(x) at a group's 4 positions.
struct Cols4 {
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
    b3: vec4<f32>,
}

fn gathers(cols: WindowColumns, g: Group, chw: u32) -> Cols4 {
    return Cols4(gather_x(cols, g.c0.n * chw, g.c0.oh, g.c0.ow, g.live.x),
                 gather_x(cols, g.c1.n * chw, g.c1.oh, g.c1.ow, g.live.y),
                 gather_x(cols, g.c2.n * chw, g.c2.oh, g.c2.ow, g.live.z),
                 gather_x(cols, g.c3.n * chw, g.c3.oh, g.c3.ow, g.live.w));
}

// Where window column c of row co lands: the slice's partials [s, co, c] or, direct, dw.
fn dw_index(row_base: u32, co: u32, c: u32, kc: u32) -> u32 {
    if (q.direct == 1u) {
        let taps = q.taps_h * q.taps_w;
        let kh = q.first_h + (c % taps) / q.taps_w;
        let kw = q.first_w + c % q.taps_w;
        return ((co * q.cin + c / taps) * q.kh + kh) * q.kw + kw;
    }
    return row_base + co * kc + c;
}

fn store_dw_row(row: u32, v: vec4<f32>, out_row0: u32, c0: u32, kc: u32) {
    if (row >= q.cout) { return; }
    if (c0 < kc) { partials[dw_index(out_row0, row, c0, kc)] = v.x; }
    if (c0 + 1u < kc) { partials[dw_index(out_row0, row, c0 + 1u, kc)] = v.y; }
    if (c0 + 2u < kc) { partials[dw_index(out_row0, row, c0 + 2u, kc)] = v.z; }
    if (c0 + 3u < kc) { partials[dw_index(out_row0, row, c0 + 3u, kc)] = v.w; }
}

fn store_dw_quad(acc: ptr<function, array<vec4<f32>, 32>>, j: u32, m0: u32, out_row0: u32, c0: u32, kc: u32) {
    store_dw_row(m0 + 4u * j, (*acc)[4u * j], out_row0, c0, kc);
    store_dw_row(m0 + 4u * j + 1u, (*acc)[4u * j + 1u], out_row0, c0, kc);
    store_dw_row(m0 + 4u * j + 2u, (*acc)[4u * j + 2u], out_row0, c0, kc);
    store_dw_row(m0 + 4u * j + 3u, (*acc)[4u * j + 3u], out_row0, c0, kc);
}

// dw's row-window path (`subgroup_dw_by_row` in subgroup.rs: 3 taps along w from one cell
// left, stride 1 there, x and dy rows of whole quads): lane l's column quad is row rq = 8 wid.x + l of (ci, jh), its
// columns the 3 taps jw (window column 3 rq + jw) and an idle fourth. 4 aligned positions
// ow .. ow + 3 of one output row then read x[ci, ih, ow - 1 .. ow + 4]: a vec4 and a value
// either side, 3 loads instead of 16, for a quarter of the multiply-adds idle.
fn x_window(rq: u32, c: Cursor, live: bool, chw: u32) -> Cols4 {
    let ih = i32(c.oh * q.sh + q.first_h + rq % q.taps_h) - i32(q.pad_top);
    let ok = live && rq < q.cin * q.taps_h && ih >= 0 && ih < i32(q.h);
    let start = c.n * chw + (rq / q.taps_h) * q.h * q.w + u32(ih) * q.w + c.ow;
    let inside = vec4<bool>(ok) & (vec4<u32>(c.ow) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(q.w));
    var v = vec4<f32>(0.0);
    var l = 0.0;
    var r = 0.0;
    if (ok) { v = select(vec4<f32>(0.0), src4[start / 4u], inside); }
    if (ok && c.ow > 0u) { l = src[start - 1u]; }
    if (ok && c.ow + 4u < q.w) { r = src[start + 4u]; }
    return Cols4(vec4<f32>(l, v.x, v.y, 0.0), vec4<f32>(v.xyz, 0.0), vec4<f32>(v.yzw, 0.0),
                 vec4<f32>(v.zw, r, 0.0));
}

fn store_dw3_row(row: u32, v: vec4<f32>, out_row0: u32, rq: u32, kc: u32) {
    if (row >= q.cout || rq >= q.cin * q.taps_h) { return; }
    partials[dw_index(out_row0, row, 3u * rq, kc)] = v.x;
    partials[dw_index(out_row0, row, 3u * rq + 1u, kc)] = v.y;
    partials[dw_index(out_row0, row, 3u * rq + 2u, kc)] = v.z;
}

fn store_dw3_quad(acc: ptr<function, array<vec4<f32>, 32>>, j: u32, m0: u32, out_row0: u32, rq: u32, kc: u32) {
    store_dw3_row(m0 + 4u * j, (*acc)[4u * j], out_row0, rq, kc);
    store_dw3_row(m0 + 4u * j + 1u, (*acc)[4u * j + 1u], out_row0, rq, kc);
    store_dw3_row(m0 + 4u * j + 2u, (*acc)[4u * j + 2u], out_row0, rq, kc);
    store_dw3_row(m0 + 4u * j + 3u, (*acc)[4u * j + 3u], out_row0, rq, kc);
}

// The loop of conv2d_backward_weight_subgroup with x_window for `gathers` (a copy: a branch
// between the two inside the loop would run both on llvmpipe, and one entry point holding
// both compiles slower than two). Every group of 4 positions is
// live or not as a whole: OH * OW and the slices' spans are multiples of 4.
fn dw_rows_subgroup(wid: vec3<u32>, lane: u32, lanes: u32) {
    let kc = q.cin * q.taps_h * q.taps_w;
    let rq = wid.x * lanes + lane;
    let m0 = wid.y * TM;
    let ohw = q.oh * q.ow;
    let chw = q.cin * q.h * q.w;
    let p_begin = wid.z * q.span;
    let p_end = min(p_begin + q.span, q.batch * ohw);
    var rows: vec4<u32>;
    rows.x = min(m0 + lane, q.cout - 1u) * ohw;
    rows.y = min(m0 + 8u + lane, q.cout - 1u) * ohw;
    rows.z = min(m0 + 16u + lane, q.cout - 1u) * ohw;
    rows.w = min(m0 + 24u + lane, q.cout - 1u) * ohw;
    // With 4 lanes, rows 8 i + 4 + lane too (read only then).
    let rows4 = vec4<u32>(min(vec4<u32>(m0 + 4u + lane) + vec4<u32>(0u, 8u, 16u, 24u),
                              vec4<u32>(q.cout - 1u)) * ohw);
    let o0 = p_begin % ohw;
    var c = Cursor(p_begin / ohw, o0, o0 / q.ow, o0 % q.ow);
    var acc: array<vec4<f32>, 32>;
    let pairs = q.pairs == 1u;
    let step = select(4u, 8u, pairs);
    for (var p = p_begin; p < p_end; p = p + step) {
        let ga = group_at(c, p, p_end);
        var gb = ga;
        if (pairs) { gb = group_at(advance(ga.c3), p + 4u, p_end); }
        let lo = dy_rows(ga, rows.x, rows.y, true);
        var hi: Rows2;
        if (pairs) {
            hi = dy_rows(gb, rows.x, rows.y, true);
        } else {
            hi = dy_rows(ga, rows.z, rows.w, true);
        }
        var lo4 = Rows2(vec4<f32>(0.0), vec4<f32>(0.0));
        var hi4 = lo4;
        if (lanes == 4u) {
            lo4 = dy_rows(ga, rows4.x, rows4.y, true);
            if (pairs) {
                hi4 = dy_rows(gb, rows4.x, rows4.y, true);
            } else {
                hi4 = dy_rows(ga, rows4.z, rows4.w, true);
            }
        }
        let ba = x_window(rq, ga.c0, ga.live.x, chw);
        var bb = ba;
        if (pairs) { bb = x_window(rq, gb.c0, gb.live.x, chw); }
        dw_rows8(&acc, 0u, lo.a, lo4.a, ba.b0, ba.b1, ba.b2, ba.b3, lanes);
        dw_rows8(&acc, 1u, lo.b, lo4.b, ba.b0, ba.b1, ba.b2, ba.b3, lanes);
        dw_rows8(&acc, 2u, hi.a, hi4.a, bb.b0, bb.b1, bb.b2, bb.b3, lanes);
        dw_rows8(&acc, 3u, hi.b, hi4.b, bb.b0, bb.b1, bb.b2, bb.b3, lanes);
        c = advance(gb.c3);
    }
    if (pairs) { fold_pairs(&acc); }
    let out_row0 = wid.z * q.cout * kc;
    for (var m = m0; m < min(m0 + TM, q.cout); m = m + 4u) {
        store_dw3_quad(&acc, 0u, m, out_row0, rq, kc);
        shift_quad(&acc);
    }
}

@compute @workgroup_size(8)
fn conv2d_backward_weight_rows_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                                        @builtin(subgroup_invocation_id) lane: u32) {
    dw_rows_subgroup(wid, lane, 8u);
}

@compute @workgroup_size(4)
fn conv2d_backward_weight_rows_subgroup4(@builtin(workgroup_id) wid: vec3<u32>,
                                         @builtin(subgroup_invocation_id) lane: u32) {
    dw_rows_subgroup(wid, lane, 4u);
}

// Workgroup (x: column tile, y: row tile, z: slice of positions); one subgroup.
fn dw_subgroup(wid: vec3<u32>, lane: u32, lanes: u32) {
    let kc = q.cin * q.taps_h * q.taps_w;
    let c0 = wid.x * 4u * lanes + 4u * lane;
    let m0 = wid.y * TM;
    let cols = window_columns(c0);
    let ohw = q.oh * q.ow;
    let chw = q.cin * q.h * q.w;
    let p_begin = wid.z * q.span;
    let p_end = min(p_begin + q.span, q.batch * ohw);
    // Row 8 i + lane's offset in an image's dy; rows past Cout read row Cout - 1, never stored.
    var rows: vec4<u32>;
    rows.x = min(m0 + lane, q.cout - 1u) * ohw;
    rows.y = min(m0 + 8u + lane, q.cout - 1u) * ohw;
    rows.z = min(m0 + 16u + lane, q.cout - 1u) * ohw;
    rows.w = min(m0 + 24u + lane, q.cout - 1u) * ohw;
    // With 4 lanes, rows 8 i + 4 + lane too (read only then).
    let rows4 = vec4<u32>(min(vec4<u32>(m0 + 4u + lane) + vec4<u32>(0u, 8u, 16u, 24u),
                              vec4<u32>(q.cout - 1u)) * ohw);
    let aligned = ohw % 4u == 0u;
    let o0 = p_begin % ohw;
    var c = Cursor(p_begin / ohw, o0, o0 / q.ow, o0 % q.ow);
    var acc: array<vec4<f32>, 32>;
    // Rows 8 i + lane, i < 4, at a group of 4 positions per step. With Cout <= 16 rows 16-31
    // would idle, so there they take the next 4 positions of rows 0-15 instead (8 positions
    // a step, the slices' spans multiples of 8) and fold into them at the end.
    let pairs = q.pairs == 1u;
    let step = select(4u, 8u, pairs);
    for (var p = p_begin; p < p_end; p = p + step) {
        let ga = group_at(c, p, p_end);
        var gb = ga;
        if (pairs) { gb = group_at(advance(ga.c3), p + 4u, p_end); }
        let lo = dy_rows(ga, rows.x, rows.y, aligned);
        var hi: Rows2;
        if (pairs) {
            hi = dy_rows(gb, rows.x, rows.y, aligned);
        } else {
            hi = dy_rows(ga, rows.z, rows.w, aligned);
        }
        var lo4 = Rows2(vec4<f32>(0.0), vec4<f32>(0.0));
        var hi4 = lo4;
        if (lanes == 4u) {
            lo4 = dy_rows(ga, rows4.x, rows4.y, aligned);
            if (pairs) {
                hi4 = dy_rows(gb, rows4.x, rows4.y, aligned);
            } else {
                hi4 = dy_rows(ga, rows4.z, rows4.w, aligned);
            }
        }
        let ba = gathers(cols, ga, chw);
        var bb = ba;
        if (pairs) { bb = gathers(cols, gb, chw); }
        dw_rows8(&acc, 0u, lo.a, lo4.a, ba.b0, ba.b1, ba.b2, ba.b3, lanes);
        dw_rows8(&acc, 1u, lo.b, lo4.b, ba.b0, ba.b1, ba.b2, ba.b3, lanes);
        dw_rows8(&acc, 2u, hi.a, hi4.a, bb.b0, bb.b1, bb.b2, bb.b3, lanes);
        dw_rows8(&acc, 3u, hi.b, hi4.b, bb.b0, bb.b1, bb.b2, bb.b3, lanes);
        c = advance(gb.c3);
    }
    if (pairs) { fold_pairs(&acc); }
    let out_row0 = wid.z * q.cout * kc;
    for (var m = m0; m < min(m0 + TM, q.cout); m = m + 4u) {
        store_dw_quad(&acc, 0u, m, out_row0, c0, kc);
        shift_quad(&acc);
    }
}

@compute @workgroup_size(8)
fn conv2d_backward_weight_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                                   @builtin(subgroup_invocation_id) lane: u32) {
    dw_subgroup(wid, lane, 8u);
}

@compute @workgroup_size(4)
fn conv2d_backward_weight_subgroup4(@builtin(workgroup_id) wid: vec3<u32>,
                                    @builtin(subgroup_invocation_id) lane: u32) {
    dw_subgroup(wid, lane, 4u);
}
