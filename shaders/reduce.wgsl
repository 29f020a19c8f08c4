// Deterministic reductions of a dot product sum(a * b): every element goes to a fixed thread
// and the partial sums combine in a fixed tree, so the result is bit-identical run to run
// (no float atomics). Used for the residual gradient dw = sum(g * ipd).

struct ReduceParams {
    n: u32,        // elements (dot), or partials to sum (final)
    chunk: u32,    // dot_partial: elements per workgroup, a multiple of 256
    channels: u32, // channel_dot: C of an NCHW tensor
    hw: u32,       // channel_dot: H*W
    batch: u32,    // channel_dot: N
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> tree: array<f32, 256>;

// Sums tree[0..256] into tree[0]; every invocation of the workgroup must call it.
fn tree_reduce(t: u32) {
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) { tree[t] = tree[t] + tree[t + stride]; }
    }
    workgroupBarrier();
}

// Stage 1: workgroup g sums a[i] * b[i] over its chunk [g * chunk, (g + 1) * chunk).
@compute @workgroup_size(256)
fn reduce_dot_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + lid.x; i < end; i = i + 256u) {
        acc = acc + a[i] * b[i];
    }
    tree[lid.x] = acc;
    tree_reduce(lid.x);
    if (lid.x == 0u) { partials[wid.x] = tree[0]; }
}

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

// Stage 1 over quads where n % 4 == 0 (the same chunks, a quarter of the loads): each thread
// sums its quads' products lane by lane, then the four lanes, in a fixed order.
@compute @workgroup_size(256)
fn reduce_dot_partial_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let start = wid.x * p.chunk / 4u;
    let end = min(wid.x * p.chunk + p.chunk, p.n) / 4u;
    var acc = vec4<f32>(0.0);
    for (var q = start + lid.x; q < end; q = q + 256u) {
        acc = acc + a4[q] * b4[q];
    }
    tree[lid.x] = (acc.x + acc.y) + (acc.z + acc.w);
    tree_reduce(lid.x);
    if (lid.x == 0u) { partials[wid.x] = tree[0]; }
}

// Stage 2: one workgroup sums the n partials into out[0].
@compute @workgroup_size(256)
fn reduce_sum_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.n; i = i + 256u) {
        acc = acc + partials[i];
    }
    tree[lid.x] = acc;
    tree_reduce(lid.x);
    if (lid.x == 0u) { out[0] = tree[0]; }
}

// Per-channel dot product of two NCHW tensors: out[c] = sum over n, h, w of a * b.
// One workgroup per channel (wid.x = c).
@compute @workgroup_size(256)
fn reduce_channel_dot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let per_channel = p.batch * p.hw;
    var acc = 0.0;
    for (var j = lid.x; j < per_channel; j = j + 256u) {
        let n = j / p.hw;
        let i = (n * p.channels + c) * p.hw + (j % p.hw);
        acc = acc + a[i] * b[i];
    }
    tree[lid.x] = acc;
    tree_reduce(lid.x);
    if (lid.x == 0u) { out[c] = tree[0]; }
}
