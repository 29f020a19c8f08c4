// Optimizer steps, in place over one flat parameter tensor of `n` f32 and its gradient.
// Step-dependent factors (Adam's bias-corrected step size `alpha`) are computed on the host in
// f64 and rewritten into the uniform each step, so the kernels are pure elementwise updates.
// Each invocation updates one quad (4 values, the same arithmetic per lane): a quarter of the
// loads, which on CPU adapters are loops over the SIMD lanes. The engine rounds every buffer
// up to whole quads and the padding of a parameter, its gradient and state stays zero, which
// the update keeps zero. 1-D dispatch folded into y past 65535 workgroups:
// flat quad = (wid.y * nwg.x + wid.x) * 256 + lid.x.

struct OptimParams {
    n: u32,
    lr: f32,              // sgd
    momentum: f32,        // sgd
    weight_decay: f32,    // both: L2, added to the gradient
    beta1: f32,           // adam
    beta2: f32,           // adam
    one_minus_beta1: f32, // adam: 1 - beta1 rounded once from f64, not cancelled in f32
    one_minus_beta2: f32, // adam
    eps: f32,             // adam
    alpha: f32,           // adam: lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    kw: u32,              // `_taps`: the conv weight's KW and KH * KW, and its tap window
    khw: u32,
    first_h: u32,
    taps_h: u32,
    first_w: u32,
    taps_w: u32,
}

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> velocity: array<vec4<f32>>; // sgd momentum buffer
@group(0) @binding(4) var<storage, read_write> m: array<vec4<f32>>;        // adam first moment
@group(0) @binding(5) var<storage, read_write> v: array<vec4<f32>>;        // adam second moment

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// PyTorch SGD: g = grad + wd * param; velocity = momentum * velocity + g; param -= lr * velocity.
// With velocity starting at zero the first step is velocity = g, as PyTorch's first step.
@compute @workgroup_size(256)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= (p.n + 3u) / 4u) { return; }
    let w = param[i];
    let g = grad[i] + p.weight_decay * w;
    let vel = p.momentum * velocity[i] + g;
    velocity[i] = vel;
    param[i] = w - p.lr * vel;
}

// Keras Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; param -= alpha m / (sqrt(v) + eps).
@compute @workgroup_size(256)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= (p.n + 3u) / 4u) { return; }
    let w = param[i];
    let g = grad[i] + p.weight_decay * w;
    let m1 = p.beta1 * m[i] + p.one_minus_beta1 * g;
    let v1 = p.beta2 * v[i] + p.one_minus_beta2 * (g * g);
    m[i] = m1;
    v[i] = v1;
    param[i] = w - p.alpha * m1 / (sqrt(v1) + vec4<f32>(p.eps));
}

// ---- `_taps`: a conv weight [Cout, Cin, KH, KW] whose taps outside a window never get a
// gradient (they never reach the image). Without weight decay their state stays zero and
// they never move, so only the window is updated and only the window has state: velocity,
// m and v hold entry e = cell * T + j for the T = taps_h * taps_w window taps j of each
// (co, ci) cell, contiguous, so one invocation updates a quad of entries with vec4 state
// loads (the weight and its gradient stay full-size and are read tap by tap). The same
// arithmetic per value as the kernels above: one tap in nine is the work of a 3x3 kernel on
// a 1x1 map, and a ninth of the state. Entries past the last (the quad padding) read tap 0
// of the weight, update nothing and keep their zero state.

@group(0) @binding(1) var<storage, read_write> param_s: array<f32>;
@group(0) @binding(2) var<storage, read> grad_s: array<f32>;

struct TapQuad {
    live: vec4<bool>,
    at: vec4<u32>, // the entries' flat indices in the weight (0 where not live)
}

fn tap_quad(q: u32) -> TapQuad {
    let taps = p.taps_h * p.taps_w;
    let e = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
    let live = e < vec4<u32>((p.n / p.khw) * taps);
    let j = e % vec4<u32>(taps);
    let at = (e / vec4<u32>(taps)) * p.khw + (vec4<u32>(p.first_h) + j / vec4<u32>(p.taps_w)) * p.kw
        + vec4<u32>(p.first_w) + j % vec4<u32>(p.taps_w);
    return TapQuad(live, select(vec4<u32>(0u), at, live));
}

fn load_taps(t: TapQuad) -> vec4<f32> {
    return vec4<f32>(param_s[t.at.x], param_s[t.at.y], param_s[t.at.z], param_s[t.at.w]);
}

fn grad_taps(t: TapQuad) -> vec4<f32> {
    let g = vec4<f32>(grad_s[t.at.x], grad_s[t.at.y], grad_s[t.at.z], grad_s[t.at.w]);
    return select(vec4<f32>(0.0), g, t.live);
}

fn store_taps(t: TapQuad, w: vec4<f32>) {
    if (t.live.x) { param_s[t.at.x] = w.x; }
    if (t.live.y) { param_s[t.at.y] = w.y; }
    if (t.live.z) { param_s[t.at.z] = w.z; }
    if (t.live.w) { param_s[t.at.w] = w.w; }
}

@compute @workgroup_size(256)
fn sgd_step_taps(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (4u * q >= (p.n / p.khw) * p.taps_h * p.taps_w) { return; }
    let t = tap_quad(q);
    let w = load_taps(t);
    let g = grad_taps(t) + p.weight_decay * w;
    let vel = p.momentum * velocity[q] + g;
    velocity[q] = vel;
    store_taps(t, w - p.lr * vel);
}

@compute @workgroup_size(256)
fn adam_step_taps(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_index(wid, nwg, lid);
    if (4u * q >= (p.n / p.khw) * p.taps_h * p.taps_w) { return; }
    let t = tap_quad(q);
    let w = load_taps(t);
    let g = grad_taps(t) + p.weight_decay * w;
    let m1 = p.beta1 * m[q] + p.one_minus_beta1 * g;
    let v1 = p.beta2 * v[q] + p.one_minus_beta2 * (g * g);
    m[q] = m1;
    v[q] = v1;
    store_taps(t, w - p.alpha * m1 / (sqrt(v1) + vec4<f32>(p.eps)));
}
