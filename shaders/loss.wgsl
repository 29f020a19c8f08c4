// Softmax cross-entropy over logits [N, K] with integer labels [N] (u32), and the softmax
// itself for prediction. Every row is made numerically stable by subtracting its maximum
// before exp, so large logits never overflow.
//
// Out-of-range labels: the data loader rejects them, but if one slips through (label >= K) the
// kernels never index with it: that sample contributes 0 to the loss sum, is not counted as
// correct, and gets a zero gradient row. The mean still divides by N, as the CPU twin does.
//
// Reductions are deterministic fixed trees in workgroup memory (no float atomics): the same
// inputs give bit-identical outputs on every run.

struct LossParams {
    batch: u32,   // N
    classes: u32, // K, at least 1
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;     // [2]: mean loss, correct
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>; // [N, K]
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;   // [N, K]

var<workgroup> pair_tree: array<vec2<f32>, 256>;
var<workgroup> tree: array<f32, 256>;

// One workgroup for the whole batch: thread t takes rows t, t + 256, ... in order and sums
// their losses and hits; a fixed tree then sums the 256 partials. Thread-per-row suits the
// small K of classification heads (a row costs 3K reads), and N of a few thousand needs only
// a few rows per thread.
@compute @workgroup_size(256)
fn softmax_xent_forward(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let k_len = p.classes;
    var loss = 0.0;
    var correct = 0.0;
    for (var n = t; n < p.batch; n += 256u) {
        let base = n * k_len;
        // Max and argmax in one pass; the strict `>` keeps the lowest index among ties.
        var best = logits[base];
        var arg = 0u;
        for (var k = 1u; k < k_len; k++) {
            let z = logits[base + k];
            if (z > best) {
                best = z;
                arg = k;
            }
        }
        var s = 0.0;
        for (var k = 0u; k < k_len; k++) {
            s = s + exp(logits[base + k] - best);
        }
        let label = labels[n];
        if (label < k_len) {
            // -log softmax[label] = log(sum exp(z - max)) - (z[label] - max)
            loss = loss + log(s) - (logits[base + label] - best);
            correct = correct + select(0.0, 1.0, arg == label);
        }
    }
    pair_tree[t] = vec2<f32>(loss, correct);
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) { pair_tree[t] = pair_tree[t] + pair_tree[t + stride]; }
    }
    workgroupBarrier();
    if (t == 0u) {
        out[0] = pair_tree[0].x / f32(p.batch);
        // An exact integer in f32 up to 2^24 samples.
        out[1] = pair_tree[0].y;
    }
}

// Reduces v over the workgroup with `op` (0: max, 1: sum) and returns the result to every
// thread. Every invocation must call it (it contains barriers).
fn workgroup_reduce(t: u32, v: f32, op: u32) -> f32 {
    tree[t] = v;
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        workgroupBarrier();
        if (t < stride) {
            if (op == 0u) {
                tree[t] = max(tree[t], tree[t + stride]);
            } else {
                tree[t] = tree[t] + tree[t + stride];
            }
        }
    }
    workgroupBarrier();
    let r = tree[0];
    // Everyone has read the result before `tree` is reused.
    workgroupBarrier();
    return r;
}

// Row statistics (max, sum of exp(z - max)) of row `row`, the 256 threads striding over K.
// `in_batch` is false for the padding workgroups of a folded dispatch: they still take part in
// the barriers but read nothing.
fn row_stats(row: u32, t: u32, in_batch: bool) -> vec2<f32> {
    let base = row * p.classes;
    var m = 0.0;
    if (in_batch) {
        m = logits[base];
        for (var k = t; k < p.classes; k += 256u) { m = max(m, logits[base + k]); }
    }
    m = workgroup_reduce(t, m, 0u);
    var s = 0.0;
    if (in_batch) {
        for (var k = t; k < p.classes; k += 256u) { s = s + exp(logits[base + k] - m); }
    }
    s = workgroup_reduce(t, s, 1u);
    return vec2<f32>(m, s);
}

// One workgroup per row; the dispatch is folded into y past 65535 rows.
fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// dlogits = (softmax(z) - onehot(label)) / N: the gradient of the mean loss.
@compute @workgroup_size(256)
fn softmax_xent_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = row_index(wid, nwg);
    let in_batch = row < p.batch;
    let st = row_stats(row, lid.x, in_batch);
    if (!in_batch) { return; }
    let base = row * p.classes;
    let label = labels[row];
    let n = f32(p.batch);
    for (var k = lid.x; k < p.classes; k += 256u) {
        var g = exp(logits[base + k] - st.x) / st.y;
        if (k == label) { g = g - 1.0; }
        // An out-of-range label contributed nothing to the loss, so its row has no gradient.
        if (label >= p.classes) { g = 0.0; }
        dlogits[base + k] = g / n;
    }
}

// probs = softmax(z) per row, for prediction.
@compute @workgroup_size(256)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = row_index(wid, nwg);
    let in_batch = row < p.batch;
    let st = row_stats(row, lid.x, in_batch);
    if (!in_batch) { return; }
    let base = row * p.classes;
    for (var k = lid.x; k < p.classes; k += 256u) {
        probs[base + k] = exp(logits[base + k] - st.x) / st.y;
    }
}
