// Batch normalisation over the channels of an NCHW tensor x: [N, C, H, W], M = N*H*W values
// per channel. Training launches batchnorm_stats then batchnorm_forward; the backward launches
// batchnorm_backward_weight then batchnorm_backward_input (which reads the dgamma/dbeta just
// written). Inference launches batchnorm_forward_eval alone.
//
// Running statistics follow Keras, not PyTorch: running = momentum * running
// + (1 - momentum) * batch, with momentum near 1 (0.99; PyTorch's m is 1 - momentum here), and
// the running variance is fed the BIASED batch variance (divide by M), the same variance the
// forward normalises with; PyTorch feeds it the unbiased one (divide by M - 1).
//
// The per-channel reductions (batchnorm_stats, batchnorm_backward_weight) give each channel a
// segment of T = 1 << seg_shift threads of a 256-thread workgroup (256 / T channels per
// workgroup; T is chosen at launch from M so each thread sums a few hundred values at most).
// Thread u of a segment sums the channel's values j = u, u + T, u + 2T, ... in that order,
// then the segment's T partial sums combine in a fixed tree in workgroup memory: the order is
// a function of the shape alone, so results are deterministic, with no float atomics. Small
// M gets T = 1: one thread per channel, no barrier ever reached -- barriers and near-empty
// workgroups are what cost most on CPU Vulkan (lavapipe runs a workgroup's SIMD slices as
// coroutines switched at every barrier).
//
// The elementwise kernels launch S = grid_threads threads (at most 65535 workgroups, no
// fold), each looping over i = gid, gid + S, ... < len: consecutive threads touch consecutive
// elements, and each element's channel c = (i / hw) % C is carried along by additions, since
// a division per element by a runtime hw and C is what such a kernel would otherwise spend
// most of its time on where integer division is not native to the vector unit (CPUs).

struct BatchnormParams {
    batch: u32,        // N
    channels: u32,     // C
    hw: u32,           // H*W, one channel plane
    count: u32,        // M = N*H*W, the values one channel's statistics are taken over
    len: u32,          // N*C*H*W, the elements of x, y, dy, dx
    eps: f32,          // added to the variance before the square root (Keras default 1e-3)
    momentum: f32,     // weight of the old running statistic (Keras default 0.99)
    seg_shift: u32,    // reductions: log2 of T, the threads per channel (0..=8)
    seg_step_n: u32,   // reductions: T = seg_step_n * hw + seg_step_k (seg_step_k < hw)
    seg_step_k: u32,
    grid_threads: u32, // elementwise: S, the threads launched
    grid_step_k: u32,  // elementwise: S % hw
    grid_step_c: u32,  // elementwise: (S / hw) % C
    relu: u32,         // 1: y = relu(bn(x)), and the backward masks dy where y = 0
    // `_vec4` kernels (hw % 4 == 0): the reductions walk quads, seg_step_n/k in quads; the
    // elementwise ones give each thread a run of up to RUN quads of one channel plane.
    quads: u32,        // hw / 4
    runs_per_plane: u32,
    runs: u32,         // N * C * runs_per_plane
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: BatchnormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
// Updated in place by batchnorm_stats, read by batchnorm_forward_eval.
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
// The batch statistics the training forward used, kept for the backward.
@group(0) @binding(6) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
// Written by batchnorm_backward_weight, read by batchnorm_backward_input.
@group(0) @binding(10) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(11) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(12) var<storage, read_write> dx: array<f32>;
// The fused forward's output, read by the backward for the ReLU mask (relu == 1).
@group(0) @binding(13) var<storage, read> y_saved: array<f32>;
// Per channel [mean, invstd, dbeta, dgamma], written by the backward_weight kernels and read by
// backward_input: one binding for four, so that backward_input binds 6 storage buffers and
// every kernel fits WebGPU's default of 8 per stage.
@group(0) @binding(14) var<storage, read_write> coeffs: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> coeffs_in: array<vec4<f32>>;
// The same tensors as quads, for the `_vec4` kernels.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> y_saved4: array<vec4<f32>>;

// Quads of a channel plane one `_vec4` elementwise thread handles: its per-channel values are
// loaded once per run, and on a CPU adapter every load is a loop over the SIMD lanes.
const RUN: u32 = 4u;

const WG: u32 = 256u;
var<workgroup> tree_a: array<f32, 256>;
var<workgroup> tree_b: array<f32, 256>;

// Where one reduction thread stands: its channel, its place u in the channel's segment, and
// its walk over the channel's values j = n * hw + k, starting at j = u.
struct Walk {
    c: u32,
    u: u32,
    live: bool, // false past the last channel: the thread only takes part in the barriers
    n0: u32,
    k0: u32,
}

fn walk_start(wid: vec3<u32>, t: u32) -> Walk {
    let u = t & ((1u << p.seg_shift) - 1u);
    let c = wid.x * (WG >> p.seg_shift) + (t >> p.seg_shift);
    return Walk(c, u, c < p.channels, u / p.hw, u % p.hw);
}

// Index into x of value (n, k) of channel c.
fn channel_at(c: u32, n: u32, k: u32) -> u32 {
    return (n * p.channels + c) * p.hw + k;
}

// Advances (n, k) by T values without a division (dividing by a runtime hw per element is
// the slowest integer operation a CPU backend has).
fn walk_next(nk: vec2<u32>) -> vec2<u32> {
    var n = nk.x + p.seg_step_n;
    var k = nk.y + p.seg_step_k;
    if (k >= p.hw) {
        k = k - p.hw;
        n = n + 1u;
    }
    return vec2<u32>(n, k);
}

// Sums each segment of tree_a and tree_b (both, so one tree serves two statistics) into the
// segment's first element. Every invocation must call it; the stride bound comes from a
// uniform, so the barriers are in uniform control flow, and T = 1 reaches none.
fn segment_reduce(t: u32, u: u32) {
    for (var stride = (1u << p.seg_shift) >> 1u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (u < stride) {
            tree_a[t] = tree_a[t] + tree_a[t + stride];
            tree_b[t] = tree_b[t] + tree_b[t + stride];
        }
    }
    // No barrier after the last step: its write to the segment's first slot was made by the
    // segment's first thread, the one thread that reads it unless told otherwise.
}

// Batch mean and biased variance of each channel, by the corrected two-pass algorithm
// (Chan, Golub & LeVeque): pass 1 finds the mean; pass 2 sums d = x - mean and d * d, and
// var = (sum d^2 - (sum d)^2 / M) / M, where the small second term cancels the rounding error
// of the mean. The one-pass E[x^2] - E[x]^2 loses every digit once |mean| >> std, which
// happens to unnormalised activations; the price of two passes is one more read of the
// channel's M values, the cheapest route to full f32 accuracy.
@compute @workgroup_size(256)
fn batchnorm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let w = walk_start(wid, t);
    let m = f32(p.count);
    let base = t - w.u;

    var acc = 0.0;
    if (w.live) {
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next(nk)) {
            acc = acc + x[channel_at(w.c, nk.x, nk.y)];
        }
    }
    tree_a[t] = acc;
    tree_b[t] = 0.0;
    segment_reduce(t, w.u);
    // Every thread of the segment needs the mean: wait for its sum, and have every thread
    // read it before pass 2 overwrites it. T = 1 needs neither (a thread's own slot).
    if (p.seg_shift > 0u) {
        workgroupBarrier();
    }
    let mean = tree_a[base] / m;
    if (p.seg_shift > 0u) {
        workgroupBarrier();
    }

    var acc_d = 0.0;
    var acc_d2 = 0.0;
    if (w.live) {
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next(nk)) {
            let d = x[channel_at(w.c, nk.x, nk.y)] - mean;
            acc_d = acc_d + d;
            acc_d2 = acc_d2 + d * d;
        }
    }
    tree_a[t] = acc_d;
    tree_b[t] = acc_d2;
    segment_reduce(t, w.u);

    if (w.live && w.u == 0u) {
        let c = w.c;
        let sum_d = tree_a[t];
        // Cauchy-Schwarz makes this non-negative in exact arithmetic; rounding may not.
        let var_biased = max((tree_b[t] - sum_d * sum_d / m) / m, 0.0);
        save_mean[c] = mean;
        save_invstd[c] = 1.0 / sqrt(var_biased + p.eps);
        // Keras: the biased variance goes into the running average too (see the header).
        running_mean[c] = p.momentum * running_mean[c] + (1.0 - p.momentum) * mean;
        running_var[c] = p.momentum * running_var[c] + (1.0 - p.momentum) * var_biased;
    }
}

// An elementwise thread's place: flat index i, k = i % hw, channel c = (i / hw) % C.
fn grid_start(g: u32) -> vec3<u32> {
    return vec3<u32>(g, g % p.hw, (g / p.hw) % p.channels);
}

// Moves on by S elements: k by S % hw, c by (S / hw) % C, each with one carry.
fn grid_next(ikc: vec3<u32>) -> vec3<u32> {
    var k = ikc.y + p.grid_step_k;
    var c = ikc.z + p.grid_step_c;
    if (k >= p.hw) {
        k = k - p.hw;
        c = c + 1u;
    }
    if (c >= p.channels) {
        c = c - p.channels;
    }
    return vec3<u32>(ikc.x + p.grid_threads, k, c);
}

fn relu_if(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu == 1u);
}

// dy, zeroed where the fused ReLU's output is 0 (y = 0 exactly where its input was <= 0).
fn masked_dy(i: u32) -> f32 {
    var g = dy[i];
    if (p.relu == 1u && y_saved[i] <= 0.0) { g = 0.0; }
    return g;
}

// Training forward: y = gamma * (x - mean) * invstd + beta with this batch's statistics.
@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var w = grid_start(gid.x); w.x < p.len; w = grid_next(w)) {
        let i = w.x;
        let c = w.z;
        y[i] = relu_if(gamma[c] * (x[i] - save_mean[c]) * save_invstd[c] + beta[c]);
    }
}

// Inference forward: the same map with the running statistics in place of the batch's.
@compute @workgroup_size(256)
fn batchnorm_forward_eval(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var w = grid_start(gid.x); w.x < p.len; w = grid_next(w)) {
        let i = w.x;
        let c = w.z;
        let invstd = 1.0 / sqrt(running_var[c] + p.eps);
        y[i] = relu_if(gamma[c] * (x[i] - running_mean[c]) * invstd + beta[c]);
    }
}

// Per channel: dbeta = sum dy, dgamma = sum dy * xhat, xhat = (x - mean) * invstd, both
// over the channel's M values, segmented as batchnorm_stats. Written, never accumulated.
@compute @workgroup_size(256)
fn batchnorm_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let w = walk_start(wid, t);
    var acc_dy = 0.0;
    var acc_dyx = 0.0;
    if (w.live) {
        let mean = save_mean[w.c];
        let invstd = save_invstd[w.c];
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next(nk)) {
            let i = channel_at(w.c, nk.x, nk.y);
            let g = masked_dy(i);
            acc_dy = acc_dy + g;
            acc_dyx = acc_dyx + g * (x[i] - mean) * invstd;
        }
    }
    tree_a[t] = acc_dy;
    tree_b[t] = acc_dyx;
    segment_reduce(t, w.u);
    if (w.live && w.u == 0u) {
        dbeta[w.c] = tree_a[t];
        dgamma[w.c] = tree_b[t];
        coeffs[w.c] = vec4<f32>(save_mean[w.c], save_invstd[w.c], tree_a[t], tree_b[t]);
    }
}

// dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma), written here as
// gamma * invstd * (dy - (dbeta + xhat * dgamma) / M): the same value, with dbeta / M and
// dgamma / M the means of dy and dy * xhat, so no M-fold magnified term is formed.
@compute @workgroup_size(256)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var w = grid_start(gid.x); w.x < p.len; w = grid_next(w)) {
        let i = w.x;
        let c = w.z;
        let k = coeffs_in[c]; // mean, invstd, dbeta, dgamma
        let xhat = (x[i] - k.x) * k.y;
        dx[i] = gamma[c] * k.y * (masked_dy(i) - (k.z + xhat * k.w) / f32(p.count));
    }
}

// ---- the `_vec4` variants: the same arithmetic in the same order, four lanes of one channel
// plane at a time (hw % 4 == 0), so a quarter of the loads.

fn relu_if4(v: vec4<f32>) -> vec4<f32> {
    return select(v, max(v, vec4<f32>(0.0)), p.relu == 1u);
}

fn masked_dy4(q: u32) -> vec4<f32> {
    var g = dy4[q];
    if (p.relu == 1u) { g = select(vec4<f32>(0.0), g, y_saved4[q] > vec4<f32>(0.0)); }
    return g;
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// As walk_start, over quads: value quad (n, k4) of channel c at (n * C + c) * quads + k4.
fn walk_start4(wid: vec3<u32>, t: u32) -> Walk {
    let u = t & ((1u << p.seg_shift) - 1u);
    let c = wid.x * (WG >> p.seg_shift) + (t >> p.seg_shift);
    return Walk(c, u, c < p.channels, u / p.quads, u % p.quads);
}

fn walk_next4(nk: vec2<u32>) -> vec2<u32> {
    var n = nk.x + p.seg_step_n;
    var k = nk.y + p.seg_step_k;
    if (k >= p.quads) {
        k = k - p.quads;
        n = n + 1u;
    }
    return vec2<u32>(n, k);
}

fn quad_at(c: u32, n: u32, k4: u32) -> u32 {
    return (n * p.channels + c) * p.quads + k4;
}

@compute @workgroup_size(256)
fn batchnorm_stats_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let w = walk_start4(wid, t);
    let m = f32(p.count);
    let base = t - w.u;
    var acc = vec4<f32>(0.0);
    if (w.live) {
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next4(nk)) {
            acc = acc + x4[quad_at(w.c, nk.x, nk.y)];
        }
    }
    tree_a[t] = sum4(acc);
    tree_b[t] = 0.0;
    segment_reduce(t, w.u);
    if (p.seg_shift > 0u) {
        workgroupBarrier();
    }
    let mean = tree_a[base] / m;
    if (p.seg_shift > 0u) {
        workgroupBarrier();
    }
    var acc_d = vec4<f32>(0.0);
    var acc_d2 = vec4<f32>(0.0);
    if (w.live) {
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next4(nk)) {
            let d = x4[quad_at(w.c, nk.x, nk.y)] - vec4<f32>(mean);
            acc_d = acc_d + d;
            acc_d2 = acc_d2 + d * d;
        }
    }
    tree_a[t] = sum4(acc_d);
    tree_b[t] = sum4(acc_d2);
    segment_reduce(t, w.u);
    if (w.live && w.u == 0u) {
        let c = w.c;
        let sum_d = tree_a[t];
        let var_biased = max((tree_b[t] - sum_d * sum_d / m) / m, 0.0);
        save_mean[c] = mean;
        save_invstd[c] = 1.0 / sqrt(var_biased + p.eps);
        running_mean[c] = p.momentum * running_mean[c] + (1.0 - p.momentum) * mean;
        running_var[c] = p.momentum * running_var[c] + (1.0 - p.momentum) * var_biased;
    }
}

// A run of quads [q0, q1) of one plane, and its channel. 1-D grid, folded past 65535 groups.
fn run_of(wid: vec3<u32>, nwg: vec3<u32>, t: u32) -> vec3<u32> {
    let r = (wid.y * nwg.x + wid.x) * WG + t;
    let plane = r / p.runs_per_plane;
    let q0 = plane * p.quads + (r % p.runs_per_plane) * RUN;
    return vec3<u32>(q0, min(q0 + RUN, (plane + 1u) * p.quads), plane % p.channels);
}

@compute @workgroup_size(256)
fn batchnorm_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) t: u32) {
    if ((wid.y * nwg.x + wid.x) * WG + t >= p.runs) { return; }
    let r = run_of(wid, nwg, t);
    let c = r.z;
    let g = vec4<f32>(gamma[c]);
    let mean = vec4<f32>(save_mean[c]);
    let invstd = vec4<f32>(save_invstd[c]);
    let b = vec4<f32>(beta[c]);
    for (var q = r.x; q < r.y; q = q + 1u) {
        y4[q] = relu_if4(g * (x4[q] - mean) * invstd + b);
    }
}

@compute @workgroup_size(256)
fn batchnorm_forward_eval_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) t: u32) {
    if ((wid.y * nwg.x + wid.x) * WG + t >= p.runs) { return; }
    let r = run_of(wid, nwg, t);
    let c = r.z;
    let g = vec4<f32>(gamma[c]);
    let mean = vec4<f32>(running_mean[c]);
    let invstd = vec4<f32>(1.0 / sqrt(running_var[c] + p.eps));
    let b = vec4<f32>(beta[c]);
    for (var q = r.x; q < r.y; q = q + 1u) {
        y4[q] = relu_if4(g * (x4[q] - mean) * invstd + b);
    }
}

@compute @workgroup_size(256)
fn batchnorm_backward_weight_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let w = walk_start4(wid, t);
    var acc_dy = vec4<f32>(0.0);
    var acc_dyx = vec4<f32>(0.0);
    if (w.live) {
        let mean = vec4<f32>(save_mean[w.c]);
        let invstd = vec4<f32>(save_invstd[w.c]);
        for (var nk = vec2<u32>(w.n0, w.k0); nk.x < p.batch; nk = walk_next4(nk)) {
            let q = quad_at(w.c, nk.x, nk.y);
            let g = masked_dy4(q);
            acc_dy = acc_dy + g;
            acc_dyx = acc_dyx + g * (x4[q] - mean) * invstd;
        }
    }
    tree_a[t] = sum4(acc_dy);
    tree_b[t] = sum4(acc_dyx);
    segment_reduce(t, w.u);
    if (w.live && w.u == 0u) {
        dbeta[w.c] = tree_a[t];
        dgamma[w.c] = tree_b[t];
        coeffs[w.c] = vec4<f32>(save_mean[w.c], save_invstd[w.c], tree_a[t], tree_b[t]);
    }
}

@compute @workgroup_size(256)
fn batchnorm_backward_input_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) t: u32) {
    if ((wid.y * nwg.x + wid.x) * WG + t >= p.runs) { return; }
    let r = run_of(wid, nwg, t);
    let c = r.z;
    let k = coeffs_in[c]; // mean, invstd, dbeta, dgamma
    let invstd = vec4<f32>(k.y);
    let mean = vec4<f32>(k.x);
    let scale = vec4<f32>(gamma[c]) * invstd;
    let db = vec4<f32>(k.z);
    let dg = vec4<f32>(k.w);
    let m = vec4<f32>(f32(p.count));
    for (var q = r.x; q < r.y; q = q + 1u) {
        let xhat = (x4[q] - mean) * invstd;
        dx4[q] = scale * (masked_dy4(q) - (db + xhat * dg) / m);
    }
}
