//! Every entry point fits WebGPU's default limits, so it can run on any adapter: at most 8
//! storage buffers and 12 uniform buffers per shader stage, at most 256 invocations per
//! workgroup, at most 16 KiB of workgroup memory. Needs no adapter.

use adaresnet::gpu::kernels::{validate, SHADERS};

#[test]
fn every_entry_point_fits_webgpu_default_limits() {
    let limits = wgpu::Limits::default();
    let mut over = Vec::new();
    for (file, source) in SHADERS {
        let module = validate(file, source).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
        )
        .validate(&module)
        .unwrap();
        for (i, ep) in module.entry_points.iter().enumerate() {
            let uses = info.get_entry_point(i);
            let (mut storage, mut uniform, mut workgroup_bytes) = (0u32, 0u32, 0u32);
            for (handle, var) in module.global_variables.iter() {
                if uses[handle].is_empty() {
                    continue;
                }
                match var.space {
                    naga::AddressSpace::Storage { .. } => storage += 1,
                    naga::AddressSpace::Uniform => uniform += 1,
                    naga::AddressSpace::WorkGroup => {
                        workgroup_bytes += module.types[var.ty].inner.size(module.to_ctx())
                    }
                    _ => {}
                }
            }
            let invocations: u32 = ep.workgroup_size.iter().product();
            if storage > limits.max_storage_buffers_per_shader_stage
                || uniform > limits.max_uniform_buffers_per_shader_stage
                || invocations > limits.max_compute_invocations_per_workgroup
                || workgroup_bytes > limits.max_compute_workgroup_storage_size
            {
                over.push(format!(
                    "{file}.wgsl {}: {storage} storage buffers, {uniform} uniform, {invocations} \
                     invocations, {workgroup_bytes} bytes of workgroup memory",
                    ep.name
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over WebGPU's default limits:\n{}",
        over.join("\n")
    );
}
