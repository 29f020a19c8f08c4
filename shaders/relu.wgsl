// ReLU, elementwise over a flat tensor of `n` f32.
// The dispatch is 1-D, folded into y past 65535 workgroups: flat = (wid.y * nwg.x + wid.x) * 256 + lid.x.

struct ReluParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ReluParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// y = max(x, 0)
@compute @workgroup_size(256)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    y[i] = max(x[i], 0.0);
}

// dx = dy where x > 0, else 0 (the subgradient at 0 is taken as 0, as in the CPU twin).
@compute @workgroup_size(256)
fn relu_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    dx[i] = select(0.0, dy[i], x[i] > 0.0);
}
