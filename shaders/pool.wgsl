// Pooling over NCHW tensors, each (n, c) plane pooled on its own: "planes" = N*C.
//
// Max pool: window KH x KW moved by (stride_h, stride_w) over the input padded by pad_top /
// pad_left (bottom/right padding only sets out_h / out_w). Padded cells never win: they are
// skipped, as if -inf (TF/Keras 'same' max pooling). The launch guarantees every window holds
// at least one input cell (padding < kernel). Ties go to the first maximal cell in row-major
// window order, and both kernels find the winner with the one function window_argmax, so the
// backward routes dy exactly where the forward took y from.
//
// Max pool backward without atomics: one thread per input row gathers dy from every window
// that covers the row, in a fixed order, reading each window's winner from the `argmax` the
// forward saved (finding it again would read the whole window per covering window).
//
// Global average pool: [N, C, H, W] -> [N, C]. Each plane gets a segment of T = 1 << seg_shift
// threads of a 256-thread workgroup (T chosen at launch from H*W): thread u sums cells u,
// u + T, ... in order, then the segment's partial sums combine in a fixed tree in workgroup
// memory (deterministic, as reduce.wgsl). Small planes (the 1x1 to 8x8 that end a ResNet)
// get T = 1, a plain per-thread loop that reaches no barrier: on CPU Vulkan (lavapipe) each
// barrier switches every SIMD slice of the workgroup, far dearer than the few adds per plane.
//
// 1-D dispatches fold into y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * WG + lid.x.

struct PoolParams {
    len: u32,      // max pool: threads, one per row (output rows forward, input rows backward);
                   // avgpool_backward_input: input cells
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
    seg_shift: u32,       // avgpool_forward: log2 of T, the threads per plane (0..=8)
    grid_threads: u32,    // avgpool_backward_input: S, the threads launched
    grid_step_k: u32,     // avgpool_backward_input: S % (in_h * in_w)
    grid_step_plane: u32, // avgpool_backward_input: S / (in_h * in_w)
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
// Max pool: the flat index into x of each output's winner, written forward, read backward.
@group(0) @binding(5) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(6) var<storage, read> argmax_in: array<u32>;

var<workgroup> tree: array<f32, 256>;

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

// y[plane, oh, ow] = max over the window's input cells. One thread per output row (plane, oh),
// walking ow: the division that splits a flat index runs once per row, not per output.
@compute @workgroup_size(256)
fn maxpool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = flat_index(wid, nwg, lid, 256u);
    if (g >= p.len) { return; }
    let plane = g / p.out_h;
    let oh = g % p.out_h;
    let row = g * p.out_w;
    for (var ow = 0u; ow < p.out_w; ow = ow + 1u) {
        let win = window_argmax(plane, oh, ow);
        y[row + ow] = x[win];
        argmax[row + ow] = win;
    }
}

// dx[plane, ih, iw] = sum of dy over the windows covering (ih, iw) whose winner it is. One
// thread per input row (plane, ih): it owns that row of dx, so it may accumulate into it, and
// reads each covering window's saved winner once for the whole row (not once per cell). In padded
// coordinates (r = ih + pad_top) window row oh covers rows [oh * s, oh * s + k), so the
// covering window rows are ceil((r - k + 1) / s) <= oh <= r / s, clipped to [0, out_h). Each
// cell's dy are added in (oh, ow) order, the order of the CPU twin's scatter.
@compute @workgroup_size(256)
fn maxpool_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = flat_index(wid, nwg, lid, 256u);
    if (g >= p.len) { return; }
    let plane = g / p.in_h;
    let r = g % p.in_h + p.pad_top;
    let row = g * p.in_w;
    for (var iw = 0u; iw < p.in_w; iw = iw + 1u) {
        dx[row + iw] = 0.0;
    }
    var oh_lo = 0u;
    if (r + 1u > p.kernel_h) { oh_lo = (r + 1u - p.kernel_h + p.stride_h - 1u) / p.stride_h; }
    let oh_hi = min(r / p.stride_h + 1u, p.out_h);
    let out_base = plane * p.out_h * p.out_w;
    for (var oh = oh_lo; oh < oh_hi; oh = oh + 1u) {
        for (var ow = 0u; ow < p.out_w; ow = ow + 1u) {
            let win = argmax_in[out_base + oh * p.out_w + ow];
            if (win >= row && win < row + p.in_w) {
                dx[win] = dx[win] + dy[out_base + oh * p.out_w + ow];
            }
        }
    }
}

// y[plane] = mean of x over the plane's in_h * in_w cells; plane = flat thread index / T.
@compute @workgroup_size(256)
fn avgpool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let plane = flat_index(wid, nwg, lid, 256u) >> p.seg_shift;
    let u = t & ((1u << p.seg_shift) - 1u);
    let hw = p.in_h * p.in_w;
    // Threads past the last plane add nothing but still reach every barrier.
    var acc = 0.0;
    if (plane < p.planes) {
        let base = plane * hw;
        for (var k = u; k < hw; k = k + (1u << p.seg_shift)) {
            acc = acc + x[base + k];
        }
    }
    tree[t] = acc;
    // The stride bound is uniform, so the barriers are in uniform control flow; T = 1 reaches
    // none. The last step writes the segment's first slot from the thread that reads it.
    for (var stride = (1u << p.seg_shift) >> 1u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (u < stride) { tree[t] = tree[t] + tree[t + stride]; }
    }
    if (plane < p.planes && u == 0u) { y[plane] = tree[t] / f32(hw); }
}

// dx[plane, h, w] = dy[plane] / (in_h * in_w): every cell had the same weight in the mean.
// S threads, each looping over cells i = gid, gid + S, ...: consecutive threads write
// consecutive cells, and the plane i / hw is carried along by additions instead of a division
// per cell (scalarised, hence slow, on CPU backends).
@compute @workgroup_size(256)
fn avgpool_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hw = p.in_h * p.in_w;
    let cells = f32(hw);
    var plane = gid.x / hw;
    var k = gid.x % hw;
    for (var i = gid.x; i < p.len; i = i + p.grid_threads) {
        dx[i] = dy[plane] / cells;
        k = k + p.grid_step_k;
        plane = plane + p.grid_step_plane;
        if (k >= hw) {
            k = k - hw;
            plane = plane + 1u;
        }
    }
}
