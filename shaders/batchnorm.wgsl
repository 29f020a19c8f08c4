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
// Per-channel kernels run one workgroup per channel and reduce in a fixed tree in workgroup
// memory (as reduce.wgsl): deterministic, no float atomics. Elementwise kernels are 1-D,
// folded into y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * 256 + lid.x.

struct BatchnormParams {
    batch: u32,    // N
    channels: u32, // C
    hw: u32,       // H*W, one channel plane
    count: u32,    // M = N*H*W, the values one channel's statistics are taken over
    len: u32,      // N*C*H*W, the elementwise kernels' thread count
    eps: f32,      // added to the variance before the square root (Keras default 1e-3)
    momentum: f32, // weight of the old running statistic (Keras default 0.99)
    _pad0: u32,
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

var<workgroup> tree_a: array<f32, 256>;
var<workgroup> tree_b: array<f32, 256>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// Index into x of the j-th value (0 <= j < M) of channel c.
fn channel_at(c: u32, j: u32) -> u32 {
    let n = j / p.hw;
    return (n * p.channels + c) * p.hw + (j % p.hw);
}

// Sums tree_a and tree_b (both, so one tree serves two statistics) into element 0;
// every invocation of the workgroup must call it.
fn tree_reduce(t: u32) {
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) {
            tree_a[t] = tree_a[t] + tree_a[t + stride];
            tree_b[t] = tree_b[t] + tree_b[t + stride];
        }
    }
    workgroupBarrier();
}

// Batch mean and biased variance of channel c = wid.x, by the corrected two-pass algorithm
// (Chan, Golub & LeVeque): pass 1 finds the mean; pass 2 sums d = x - mean and d * d, and
// var = (sum d^2 - (sum d)^2 / M) / M, where the small second term cancels the rounding error
// of the mean. The one-pass E[x^2] - E[x]^2 loses every digit once |mean| >> std, which
// happens to unnormalised activations; the price of two passes is one more read of the
// channel's M values, the cheapest route to full f32 accuracy.
@compute @workgroup_size(256)
fn batchnorm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let t = lid.x;
    let m = f32(p.count);

    var acc = 0.0;
    for (var j = t; j < p.count; j = j + 256u) {
        acc = acc + x[channel_at(c, j)];
    }
    tree_a[t] = acc;
    tree_b[t] = 0.0;
    tree_reduce(t);
    let mean = tree_a[0] / m;
    // Every invocation must have read tree_a[0] before pass 2 overwrites it.
    workgroupBarrier();

    var acc_d = 0.0;
    var acc_d2 = 0.0;
    for (var j = t; j < p.count; j = j + 256u) {
        let d = x[channel_at(c, j)] - mean;
        acc_d = acc_d + d;
        acc_d2 = acc_d2 + d * d;
    }
    tree_a[t] = acc_d;
    tree_b[t] = acc_d2;
    tree_reduce(t);

    if (t == 0u) {
        let sum_d = tree_a[0];
        // Cauchy-Schwarz makes this non-negative in exact arithmetic; rounding may not.
        let var_biased = max((tree_b[0] - sum_d * sum_d / m) / m, 0.0);
        save_mean[c] = mean;
        save_invstd[c] = 1.0 / sqrt(var_biased + p.eps);
        // Keras: the biased variance goes into the running average too (see the header).
        running_mean[c] = p.momentum * running_mean[c] + (1.0 - p.momentum) * mean;
        running_var[c] = p.momentum * running_var[c] + (1.0 - p.momentum) * var_biased;
    }
}

// Training forward: y = gamma * (x - mean) * invstd + beta with this batch's statistics.
@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    y[i] = gamma[c] * (x[i] - save_mean[c]) * save_invstd[c] + beta[c];
}

// Inference forward: the same map with the running statistics in place of the batch's.
@compute @workgroup_size(256)
fn batchnorm_forward_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    let invstd = 1.0 / sqrt(running_var[c] + p.eps);
    y[i] = gamma[c] * (x[i] - running_mean[c]) * invstd + beta[c];
}

// Per channel c = wid.x: dbeta = sum dy, dgamma = sum dy * xhat, xhat = (x - mean) * invstd,
// both over the channel's M values. Written, never accumulated.
@compute @workgroup_size(256)
fn batchnorm_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let t = lid.x;
    let mean = save_mean[c];
    let invstd = save_invstd[c];
    var acc_dy = 0.0;
    var acc_dyx = 0.0;
    for (var j = t; j < p.count; j = j + 256u) {
        let i = channel_at(c, j);
        let g = dy[i];
        acc_dy = acc_dy + g;
        acc_dyx = acc_dyx + g * (x[i] - mean) * invstd;
    }
    tree_a[t] = acc_dy;
    tree_b[t] = acc_dyx;
    tree_reduce(t);
    if (t == 0u) {
        dbeta[c] = tree_a[0];
        dgamma[c] = tree_b[0];
    }
}

// dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma), written here as
// gamma * invstd * (dy - (dbeta + xhat * dgamma) / M): the same value, with dbeta / M and
// dgamma / M the means of dy and dy * xhat, so no M-fold magnified term is formed.
@compute @workgroup_size(256)
fn batchnorm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    let invstd = save_invstd[c];
    let xhat = (x[i] - save_mean[c]) * invstd;
    dx[i] = gamma[c] * invstd * (dy[i] - (dbeta[c] + xhat * dgamma[c]) / f32(p.count));
}
