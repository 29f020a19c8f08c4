// Dense f32 C = A B (A: M x K, B: K x N, C: M x N, row-major) in the subgroup style of
// conv2d_subgroup.wgsl, for `adaresnet bench --peak` on adapters whose subgroup is one SIMD
// register. A workgroup is one 8-lane subgroup; lane l owns columns 4 l .. 4 l + 3 of a
// 32 x 32 tile and all 32 rows in registers. Per 4 reduction steps each lane loads 4 vec4 of
// A (steps k .. k + 3 of rows l + 8 q, q < 4) and 4 of B (its columns at each step), and
// `subgroupBroadcast` with constant lanes hands every lane every row: 16 multiply-adds per
// float loaded, the ratio of the conv GEMMs without their gathers. Needs M, N multiples of 32
// and K of 4. `acc` is only indexed by constants, so it stays in registers. `gemm_subgroup4`
// is the same for 4-lane subgroups (see conv2d_subgroup.wgsl): each lane loads the A rows of
// lanes l and l + 4 and owns 4 of 16 columns.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// acc[r] += sum over the 4 steps of s[step] * b[step], s = row r's 4 steps of A.
fn row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, s: vec4<f32>, b0: vec4<f32>,
       b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
    (*acc)[r] = fma(vec4<f32>(s.w), b3, fma(vec4<f32>(s.z), b2,
                fma(vec4<f32>(s.y), b1, fma(vec4<f32>(s.x), b0, (*acc)[r]))));
}

// Rows 8 i .. 8 i + 7: row 8 i + l from lane l's quad of A (with 4 lanes rows 8 i + 4 + l
// from lane l's q4).
fn rows8(acc: ptr<function, array<vec4<f32>, 32>>, i: u32, q: vec4<f32>, q4: vec4<f32>,
         b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>, lanes: u32) {
    row(acc, 8u * i, subgroupBroadcast(q, 0u), b0, b1, b2, b3);
    row(acc, 8u * i + 1u, subgroupBroadcast(q, 1u), b0, b1, b2, b3);
    row(acc, 8u * i + 2u, subgroupBroadcast(q, 2u), b0, b1, b2, b3);
    row(acc, 8u * i + 3u, subgroupBroadcast(q, 3u), b0, b1, b2, b3);
    if (lanes == 8u) {
        row(acc, 8u * i + 4u, subgroupBroadcast(q, 4u), b0, b1, b2, b3);
        row(acc, 8u * i + 5u, subgroupBroadcast(q, 5u), b0, b1, b2, b3);
        row(acc, 8u * i + 6u, subgroupBroadcast(q, 6u), b0, b1, b2, b3);
        row(acc, 8u * i + 7u, subgroupBroadcast(q, 7u), b0, b1, b2, b3);
    } else {
        row(acc, 8u * i + 4u, subgroupBroadcast(q4, 0u), b0, b1, b2, b3);
        row(acc, 8u * i + 5u, subgroupBroadcast(q4, 1u), b0, b1, b2, b3);
        row(acc, 8u * i + 6u, subgroupBroadcast(q4, 2u), b0, b1, b2, b3);
        row(acc, 8u * i + 7u, subgroupBroadcast(q4, 3u), b0, b1, b2, b3);
    }
}

fn store8(acc: ptr<function, array<vec4<f32>, 32>>, i: u32, at: u32, n4: u32) {
    c[at + (8u * i) * n4] = (*acc)[8u * i];
    c[at + (8u * i + 1u) * n4] = (*acc)[8u * i + 1u];
    c[at + (8u * i + 2u) * n4] = (*acc)[8u * i + 2u];
    c[at + (8u * i + 3u) * n4] = (*acc)[8u * i + 3u];
    c[at + (8u * i + 4u) * n4] = (*acc)[8u * i + 4u];
    c[at + (8u * i + 5u) * n4] = (*acc)[8u * i + 5u];
    c[at + (8u * i + 6u) * n4] = (*acc)[8u * i + 6u];
    c[at + (8u * i + 7u) * n4] = (*acc)[8u * i + 7u];
}

fn gemm_lanes(wid: vec3<u32>, lane: u32, lanes: u32) {
    let row0 = wid.y * 32u;
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let col4 = wid.x * lanes + lane;
    var acc: array<vec4<f32>, 32>;
    for (var kq = 0u; kq < k4; kq = kq + 1u) {
        let a0 = a[(row0 + lane) * k4 + kq];
        let a1 = a[(row0 + 8u + lane) * k4 + kq];
        let a2 = a[(row0 + 16u + lane) * k4 + kq];
        let a3 = a[(row0 + 24u + lane) * k4 + kq];
        var h = array<vec4<f32>, 4>();
        if (lanes == 4u) {
            h[0] = a[(row0 + 4u + lane) * k4 + kq];
            h[1] = a[(row0 + 12u + lane) * k4 + kq];
            h[2] = a[(row0 + 20u + lane) * k4 + kq];
            h[3] = a[(row0 + 28u + lane) * k4 + kq];
        }
        let b0 = b[(4u * kq) * n4 + col4];
        let b1 = b[(4u * kq + 1u) * n4 + col4];
        let b2 = b[(4u * kq + 2u) * n4 + col4];
        let b3 = b[(4u * kq + 3u) * n4 + col4];
        rows8(&acc, 0u, a0, h[0], b0, b1, b2, b3, lanes);
        rows8(&acc, 1u, a1, h[1], b0, b1, b2, b3, lanes);
        rows8(&acc, 2u, a2, h[2], b0, b1, b2, b3, lanes);
        rows8(&acc, 3u, a3, h[3], b0, b1, b2, b3, lanes);
    }
    let at = row0 * n4 + col4;
    store8(&acc, 0u, at, n4);
    store8(&acc, 1u, at, n4);
    store8(&acc, 2u, at, n4);
    store8(&acc, 3u, at, n4);
}

@compute @workgroup_size(8)
fn gemm_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    gemm_lanes(wid, lane, 8u);
}

@compute @workgroup_size(4)
fn gemm_subgroup4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    gemm_lanes(wid, lane, 4u);
}
