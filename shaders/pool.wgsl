// Pooling over NCHW tensors, each (n, c) plane pooled on its own: "planes" = N*C.
//
// Max pool: window KH x KW moved by (stride_h, stride_w) over the input padded by pad_top /
// pad_left (bottom/right padding only sets out_h / out_w). Padded cells never win: they are
// skipped, as if -inf (TF/Keras 'same' max pooling). The launch guarantees every window holds
// at least one input cell (padding < kernel). Ties go to the first maximal cell in row-major
// window order, and both kernels find the winner with the one function window_argmax, so the
// backward routes dy exactly where the forward took y from.
//
// Max pool backward without atomics: one thread per input cell gathers dy from every window
// that covers it and that it wins (recomputing the winner), in a fixed order.
//
// Global average pool: [N, C, H, W] -> [N, C], one 64-thread workgroup per plane with a fixed
// tree sum in workgroup memory (deterministic, as reduce.wgsl).
//
// 1-D dispatches fold into y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * WG + lid.x.

struct PoolParams {
    len: u32,      // threads of the elementwise kernels (outputs of forward, inputs of backward)
    planes: u32,   // N*C
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

const AVG_WG: u32 = 64u;
var<workgroup> tree: array<f32, 64>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, wg: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg + lid.x;
}

// Flat index (into plane `plane` of x) of the winner of output window (oh, ow). Coordinates
// are shifted by the padding so they stay unsigned: padded row r is input row r - pad_top.
fn window_argmax(plane: u32, oh: u32, ow: u32) -> u32 {
    let base = plane * p.in_h * p.in_w;
    let r0 = oh * p.stride_h;
    let c0 = ow * p.stride_w;
    var best = 0.0;
    var best_at = 0xffffffffu;
    for (var kh = 0u; kh < p.kernel_h; kh = kh + 1u) {
        let r = r0 + kh;
        if (r < p.pad_top || r - p.pad_top >= p.in_h) { continue; }
        for (var kw = 0u; kw < p.kernel_w; kw = kw + 1u) {
            let c = c0 + kw;
            if (c < p.pad_left || c - p.pad_left >= p.in_w) { continue; }
            let idx = base + (r - p.pad_top) * p.in_w + (c - p.pad_left);
            let v = x[idx];
            // Strictly greater: a later equal value never displaces the first.
            if (best_at == 0xffffffffu || v > best) {
                best = v;
                best_at = idx;
            }
        }
    }
    return best_at;
}

// y[plane, oh, ow] = max over the window's input cells.
@compute @workgroup_size(256)
fn maxpool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let ow = i % p.out_w;
    let oh = (i / p.out_w) % p.out_h;
    let plane = i / (p.out_w * p.out_h);
    y[i] = x[window_argmax(plane, oh, ow)];
}

// dx[plane, ih, iw] = sum of dy over the windows covering (ih, iw) whose winner it is.
// In padded coordinates (r = ih + pad_top) window oh covers rows [oh * s, oh * s + k), so the
// covering windows are ceil((r - k + 1) / s) <= oh <= r / s, clipped to [0, out_h).
@compute @workgroup_size(256)
fn maxpool_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let plane_size = p.in_h * p.in_w;
    let plane = i / plane_size;
    let r = (i % plane_size) / p.in_w + p.pad_top;
    let c = i % p.in_w + p.pad_left;
    var oh_lo = 0u;
    if (r + 1u > p.kernel_h) { oh_lo = (r + 1u - p.kernel_h + p.stride_h - 1u) / p.stride_h; }
    let oh_hi = min(r / p.stride_h + 1u, p.out_h);
    var ow_lo = 0u;
    if (c + 1u > p.kernel_w) { ow_lo = (c + 1u - p.kernel_w + p.stride_w - 1u) / p.stride_w; }
    let ow_hi = min(c / p.stride_w + 1u, p.out_w);
    let out_base = plane * p.out_h * p.out_w;
    var acc = 0.0;
    for (var oh = oh_lo; oh < oh_hi; oh = oh + 1u) {
        for (var ow = ow_lo; ow < ow_hi; ow = ow + 1u) {
            if (window_argmax(plane, oh, ow) == i) {
                acc = acc + dy[out_base + oh * p.out_w + ow];
            }
        }
    }
    dx[i] = acc;
}

// y[plane] = mean of x over the plane's in_h * in_w cells; plane = the (folded) workgroup index.
@compute @workgroup_size(64)
fn avgpool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let plane = wid.y * nwg.x + wid.x;
    // Uniform across the workgroup (workgroup id and uniforms only), so the barriers below
    // are reached by all invocations or none.
    if (plane >= p.planes) { return; }
    let hw = p.in_h * p.in_w;
    let t = lid.x;
    var acc = 0.0;
    for (var k = t; k < hw; k = k + AVG_WG) {
        acc = acc + x[plane * hw + k];
    }
    tree[t] = acc;
    for (var stride = AVG_WG / 2u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) { tree[t] = tree[t] + tree[t + stride]; }
    }
    if (t == 0u) { y[plane] = tree[0] / f32(hw); }
}

// dx[plane, h, w] = dy[plane] / (in_h * in_w): every cell had the same weight in the mean.
@compute @workgroup_size(256)
fn avgpool_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let hw = p.in_h * p.in_w;
    dx[i] = dy[i / hw] / f32(hw);
}
