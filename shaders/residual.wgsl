// The weighted residual add of AdaResNet: y = tfd + w * ipd, optionally fused with ReLU.
// `w` is one learnable scalar (w[0]) or one per channel (w[c], NCHW layout, c = (i / hw) % channels).
// The gradient dw = sum(g * ipd) is a reduction: see reduce.wgsl (no float atomics, deterministic).
// 1-D dispatch folded into y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * 256 + lid.x.

struct ResidualParams {
    n: u32,
    hw: u32,          // spatial size H*W of one channel plane
    channels: u32,
    per_channel: u32, // 1: w has `channels` entries; 0: w[0] for all
    fuse_relu: u32,   // 1: y = relu(tfd + w * ipd)
    inplace: u32,     // backward: 1 when dtfd is dy's own buffer (read dy through dtfd)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ResidualParams;
@group(0) @binding(1) var<storage, read> tfd: array<f32>;
@group(0) @binding(2) var<storage, read> ipd: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dtfd: array<f32>;
@group(0) @binding(7) var<storage, read_write> dipd: array<f32>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

fn weight_at(i: u32) -> f32 {
    if (p.per_channel == 1u) {
        return w[(i / p.hw) % p.channels];
    }
    return w[0];
}

@compute @workgroup_size(256)
fn residual_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    var v = tfd[i] + weight_at(i) * ipd[i];
    if (p.fuse_relu == 1u) { v = max(v, 0.0); }
    y[i] = v;
}

// The upstream gradient: in place (the memory plan gave dtfd dy's dying buffer), dy lives in
// dtfd and the dy binding holds a stand-in, never read. Each invocation reads and writes only
// its own element.
fn dy_at(i: u32) -> f32 {
    if (p.inplace == 1u) {
        return dtfd[i];
    }
    return dy[i];
}

// dtfd = dy, dipd = w * dy (unfused: the block's ReLU, if any, is a separate op).
@compute @workgroup_size(256)
fn residual_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let g = dy_at(i);
    dtfd[i] = g;
    dipd[i] = weight_at(i) * g;
}

// Fused with ReLU: g = dy * [y > 0], with y the fused output (positive exactly where the
// pre-activation was); dtfd = g, dipd = w * g.
@compute @workgroup_size(256)
fn residual_relu_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let g = select(0.0, dy_at(i), y[i] > 0.0);
    dtfd[i] = g;
    dipd[i] = weight_at(i) * g;
}

// Plain elementwise sum y = tfd + ipd: how the backward graph adds the gradients of a tensor
// read by two consumers (a block input feeds both branches).
@compute @workgroup_size(256)
fn add_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    y[i] = tfd[i] + ipd[i];
}

// The same sum written over its first operand, y += ipd, where the memory plan gives the sum
// the dying first gradient's buffer. Each invocation reads and writes only its own element.
@compute @workgroup_size(256)
fn add_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    y[i] = y[i] + ipd[i];
}

// ---- the `_vec4` variants: the same arithmetic per value, one quad per invocation where the
// tensor is whole quads (n % 4 == 0, and H * W % 4 == 0 for one w per channel, so a quad never
// straddles two channels): a quarter of the loads and stores, which on CPU adapters are loops
// over the SIMD lanes. Quad q = flat index, q < n / 4.

@group(0) @binding(1) var<storage, read> tfd4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ipd4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dtfd4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dipd4: array<vec4<f32>>;

fn weight4_at(q: u32) -> vec4<f32> {
    if (p.per_channel == 1u) {
        return vec4<f32>(w[(4u * q / p.hw) % p.channels]);
    }
    return vec4<f32>(w[0]);
}

fn dy4_at(q: u32) -> vec4<f32> {
    if (p.inplace == 1u) {
        return dtfd4[q];
    }
    return dy4[q];
}

@compute @workgroup_size(256)
fn residual_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (q >= p.n / 4u) { return; }
    let v = tfd4[q] + weight4_at(q) * ipd4[q];
    y4[q] = select(v, max(v, vec4<f32>(0.0)), p.fuse_relu == 1u);
}

@compute @workgroup_size(256)
fn residual_backward_input_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (q >= p.n / 4u) { return; }
    let g = dy4_at(q);
    dtfd4[q] = g;
    dipd4[q] = weight4_at(q) * g;
}

@compute @workgroup_size(256)
fn residual_relu_backward_input_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (q >= p.n / 4u) { return; }
    let g = select(vec4<f32>(0.0), dy4_at(q), y4[q] > vec4<f32>(0.0));
    dtfd4[q] = g;
    dipd4[q] = weight4_at(q) * g;
}

@compute @workgroup_size(256)
fn add_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (q >= p.n / 4u) { return; }
    y4[q] = tfd4[q] + ipd4[q];
}

@compute @workgroup_size(256)
fn add_inplace_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (q >= p.n / 4u) { return; }
    y4[q] = y4[q] + ipd4[q];
}
