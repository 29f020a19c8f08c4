// Dense f32 C = A B (A: M x K, B: K x N, C: M x N, all row-major): the adapter's own matmul
// ceiling for `adaresnet bench --peak`, which the profile reads every kernel's GFLOP/s
// against. One kernel per kernel style (gpu::choice); this is the tiled one, the style GPUs
// want: 64 x 64 tiles, 256 threads of 4 x 4 outputs, K in chunks of 16 through workgroup
// memory. Needs M, N multiples of 64 and K of 16 (the benchmark picks such sizes). The
// subgroup one is in gemm_subgroup.wgsl.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

const T: u32 = 64u;
const KC: u32 = 16u;

// Chunk step kk of the A tile (64 rows as 16 quads) and of the B tile (64 columns as 16).
var<workgroup> ta: array<vec4<f32>, 256>;
var<workgroup> tb: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row0 = wid.y * T;
    let col0 = wid.x * T;
    let tx = t % 16u; // column quad
    let ty = t / 16u; // row quad
    let n4 = p.n / 4u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + KC) {
        // Thread t stages step k0 + t / 16: rows 4 (t % 16) .. + 3 of A, column quad t % 16.
        let kk = k0 + t / 16u;
        let r = row0 + 4u * (t % 16u);
        ta[t] = vec4<f32>(a[r * p.k + kk], a[(r + 1u) * p.k + kk], a[(r + 2u) * p.k + kk],
                          a[(r + 3u) * p.k + kk]);
        tb[t] = b[kk * n4 + col0 / 4u + t % 16u];
        workgroupBarrier();
        for (var s = 0u; s < KC; s = s + 1u) {
            let ra = ta[s * 16u + ty];
            let rb = tb[s * 16u + tx];
            acc[0] = fma(vec4<f32>(ra.x), rb, acc[0]);
            acc[1] = fma(vec4<f32>(ra.y), rb, acc[1]);
            acc[2] = fma(vec4<f32>(ra.z), rb, acc[2]);
            acc[3] = fma(vec4<f32>(ra.w), rb, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        c[(row0 + 4u * ty + i) * n4 + col0 / 4u + tx] = acc[i];
    }
}
