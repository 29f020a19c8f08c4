// Dense layer y = x W^T + b with PyTorch's weight layout, and its gradients:
//   x: [N, IN], weight: [OUT, IN], bias: [OUT], y: [N, OUT]
//   dx = dy W          (linear_backward_input)
//   dW = dy^T x        (linear_backward_weight)
//   db = sum_n dy      (linear_backward_bias)
// The three products are one tiled matmul C[M, NC] = A[M, K] B[K, NC], each entry point with
// its own loads because the operands sit in memory differently (and auto layout must see only
// the bindings an entry point uses). A 16x16 workgroup computes a 32x32 tile of C, each thread
// a 2x2 block strided by 16 (so workgroup-memory reads are conflict-free broadcasts), walking
// K in steps of 32 through workgroup memory. Elements outside the matrices load as 0, so any
// size works; only in-range outputs are stored. Every output is written, never accumulated.

struct LinearParams {
    batch: u32,        // N
    in_features: u32,  // IN
    out_features: u32, // OUT
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbias: array<f32>;

const TILE: u32 = 32u;
// Row pitch of the tiles in workgroup memory: 33, not 32, so that the transposing stores of
// K-contiguous operands (consecutive threads writing a column) hit different banks.
const PITCH: u32 = 33u;
// Both tiles are stored K-major: tile_a[k * PITCH + m], tile_b[k * PITCH + n].
var<workgroup> tile_a: array<f32, 1056>; // TILE * PITCH
var<workgroup> tile_b: array<f32, 1056>;

// Where element `e` (0..1024) of a 32x32 operand tile goes, for an operand whose memory is
// contiguous along K (`k_contig`) or along M/N: consecutive threads always read consecutive
// addresses. Returns (k, m) within the tile.
fn tile_coords(e: u32, k_contig: bool) -> vec2<u32> {
    if (k_contig) {
        return vec2<u32>(e % TILE, e / TILE);
    }
    return vec2<u32>(e / TILE, e % TILE);
}

// acc += (this thread's 2x2 block of) tile_a^T tile_b over one K step.
// acc = (c[ty][tx], c[ty][tx + 16], c[ty + 16][tx], c[ty + 16][tx + 16]).
fn tile_product(acc: vec4<f32>, tx: u32, ty: u32) -> vec4<f32> {
    var s = acc;
    for (var k = 0u; k < TILE; k++) {
        let a0 = tile_a[k * PITCH + ty];
        let a1 = tile_a[k * PITCH + ty + 16u];
        let b0 = tile_b[k * PITCH + tx];
        let b1 = tile_b[k * PITCH + tx + 16u];
        s = s + vec4<f32>(a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    }
    return s;
}

// The 2x2 block's (row, col) in C for acc component j.
fn out_coords(wid: vec3<u32>, lid: vec3<u32>, j: u32) -> vec2<u32> {
    return vec2<u32>(wid.y * TILE + lid.y + 16u * (j / 2u), wid.x * TILE + lid.x + 16u * (j % 2u));
}

// y[n, o] = sum_i x[n, i] weight[o, i] + bias[o]: M = N, NC = OUT, K = IN;
// A[n, i] = x[n * IN + i] and B[i, o] = weight[o * IN + i], both contiguous along K.
@compute @workgroup_size(16, 16)
fn linear_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.in_features; k0 += TILE) {
        for (var r = 0u; r < 4u; r++) {
            let c = tile_coords(t + 256u * r, true);
            let k = k0 + c.x;
            var a = 0.0;
            if (m0 + c.y < p.batch && k < p.in_features) { a = x[(m0 + c.y) * p.in_features + k]; }
            tile_a[c.x * PITCH + c.y] = a;
            var b = 0.0;
            if (n0 + c.y < p.out_features && k < p.in_features) { b = weight[(n0 + c.y) * p.in_features + k]; }
            tile_b[c.x * PITCH + c.y] = b;
        }
        workgroupBarrier();
        acc = tile_product(acc, lid.x, lid.y);
        workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
        let rc = out_coords(wid, lid, j);
        if (rc.x < p.batch && rc.y < p.out_features) {
            y[rc.x * p.out_features + rc.y] = acc[j] + bias[rc.y];
        }
    }
}

// dx[n, i] = sum_o dy[n, o] weight[o, i]: M = N, NC = IN, K = OUT;
// A[n, o] = dy[n * OUT + o] (contiguous along K), B[o, i] = weight[o * IN + i] (along NC).
@compute @workgroup_size(16, 16)
fn linear_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.out_features; k0 += TILE) {
        for (var r = 0u; r < 4u; r++) {
            let ca = tile_coords(t + 256u * r, true);
            var a = 0.0;
            if (m0 + ca.y < p.batch && k0 + ca.x < p.out_features) { a = dy[(m0 + ca.y) * p.out_features + k0 + ca.x]; }
            tile_a[ca.x * PITCH + ca.y] = a;
            let cb = tile_coords(t + 256u * r, false);
            var b = 0.0;
            if (k0 + cb.x < p.out_features && n0 + cb.y < p.in_features) { b = weight[(k0 + cb.x) * p.in_features + n0 + cb.y]; }
            tile_b[cb.x * PITCH + cb.y] = b;
        }
        workgroupBarrier();
        acc = tile_product(acc, lid.x, lid.y);
        workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
        let rc = out_coords(wid, lid, j);
        if (rc.x < p.batch && rc.y < p.in_features) {
            dx[rc.x * p.in_features + rc.y] = acc[j];
        }
    }
}

// dweight[o, i] = sum_n dy[n, o] x[n, i]: M = OUT, NC = IN, K = N;
// A[o, n] = dy[n * OUT + o] and B[n, i] = x[n * IN + i], both contiguous along M/NC.
@compute @workgroup_size(16, 16)
fn linear_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.batch; k0 += TILE) {
        for (var r = 0u; r < 4u; r++) {
            let c = tile_coords(t + 256u * r, false);
            let k = k0 + c.x;
            var a = 0.0;
            if (k < p.batch && m0 + c.y < p.out_features) { a = dy[k * p.out_features + m0 + c.y]; }
            tile_a[c.x * PITCH + c.y] = a;
            var b = 0.0;
            if (k < p.batch && n0 + c.y < p.in_features) { b = x[k * p.in_features + n0 + c.y]; }
            tile_b[c.x * PITCH + c.y] = b;
        }
        workgroupBarrier();
        acc = tile_product(acc, lid.x, lid.y);
        workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
        let rc = out_coords(wid, lid, j);
        if (rc.x < p.out_features && rc.y < p.in_features) {
            dweight[rc.x * p.in_features + rc.y] = acc[j];
        }
    }
}

// dbias[o] = sum_n dy[n, o]: one thread per output feature summing its column in order of n
// (deterministic; neighbouring threads read neighbouring addresses). 1-D dispatch folded into
// y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * 256 + lid.x.
@compute @workgroup_size(256)
fn linear_backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (o >= p.out_features) { return; }
    var acc = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        acc = acc + dy[n * p.out_features + o];
    }
    dbias[o] = acc;
}
