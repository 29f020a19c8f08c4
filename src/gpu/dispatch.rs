//! A dispatch is one kernel launch described as data; a `Program` is a list of them with
//! their pipelines, parameter uniforms and bind groups built once, recorded every step.

use super::Gpu;

/// Work one dispatch does, from the op's own shape arithmetic (for the profiler's GFLOP/s, GB/s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub flops: u64,
    /// Bytes the kernel must read and write at least once (f32 tensors touched).
    pub bytes: u64,
}

/// One kernel launch. Binding 0 is always the entry point's uniform parameters; `buffers`
/// names the storage bindings it uses by their `@binding` index.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// The entry point whose pipeline runs.
    pub entry: &'static str,
    /// What profiles and traces call it: the entry point, unless one entry point serves
    /// several kernels (conv2d's forward and dx GEMM).
    pub name: &'static str,
    /// The layer this launch belongs to (e.g. `stage2.block1.conv2`), for profiles.
    pub label: String,
    pub params: Vec<u8>,
    pub buffers: Vec<(u32, wgpu::Buffer)>,
    pub groups: [u32; 3],
    pub cost: Cost,
}

impl Dispatch {
    pub fn new<P: bytemuck::Pod>(entry: &'static str, params: &P, groups: [u32; 3]) -> Self {
        Self {
            entry,
            name: entry,
            label: String::new(),
            params: bytemuck::bytes_of(params).to_vec(),
            buffers: Vec::new(),
            groups,
            cost: Cost::default(),
        }
    }
    pub fn bind(mut self, binding: u32, buffer: &wgpu::Buffer) -> Self {
        self.buffers.push((binding, buffer.clone()));
        self
    }
    pub fn cost(mut self, flops: u64, bytes: u64) -> Self {
        self.cost = Cost { flops, bytes };
        self
    }
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
}

/// WebGPU's limit on workgroups along one dimension of a dispatch (the default and the
/// guaranteed minimum of `max_compute_workgroups_per_dimension`).
pub const MAX_GROUPS_PER_DIM: usize = 65535;

/// Workgroup counts for `threads` one-dimensional work items with workgroups of `wg`, folded
/// into a second dimension past the 65535 per-dimension limit. Kernels recover the flat index
/// as `(wid.y * nwg.x + wid.x) * WG + lid.x` and bounds-check it.
pub fn groups_1d(threads: u64, wg: u32) -> [u32; 3] {
    let n = threads.div_ceil(wg as u64).max(1);
    let max = MAX_GROUPS_PER_DIM as u64;
    if n <= max {
        [n as u32, 1, 1]
    } else {
        let y = n.div_ceil(max);
        [n.div_ceil(y) as u32, y as u32, 1]
    }
}

struct Prepared {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    params_offset: u64,
}

/// Dispatches ready to record: pipelines fetched, parameters packed into one uniform buffer
/// at aligned offsets, bind groups built. Nothing is allocated when recording.
pub struct Program {
    pub dispatches: Vec<Dispatch>,
    prepared: Vec<Prepared>,
    uniforms: wgpu::Buffer,
}

impl Program {
    pub fn new(gpu: &Gpu, dispatches: Vec<Dispatch>) -> Self {
        let align = gpu.device.limits().min_uniform_buffer_offset_alignment as u64;
        let mut offsets = Vec::with_capacity(dispatches.len());
        let mut size = 0u64;
        for d in &dispatches {
            offsets.push(size);
            size += (d.params.len() as u64).max(16).next_multiple_of(align);
        }
        let uniforms = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch params"),
            size: size.max(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut prepared = Vec::with_capacity(dispatches.len());
        for (d, &offset) in dispatches.iter().zip(&offsets) {
            gpu.queue.write_buffer(&uniforms, offset, &d.params);
            let pipeline = gpu.kernels.pipeline(&gpu.device, d.entry);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset,
                    size: wgpu::BufferSize::new(d.params.len() as u64),
                }),
            }];
            entries.extend(
                d.buffers
                    .iter()
                    .map(|(binding, buffer)| wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: buffer.as_entire_binding(),
                    }),
            );
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            prepared.push(Prepared {
                pipeline,
                bind_group,
                groups: d.groups,
                params_offset: offset,
            });
        }
        Self {
            dispatches,
            prepared,
            uniforms,
        }
    }

    pub fn len(&self) -> usize {
        self.prepared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }

    /// Replaces one dispatch's parameters (e.g. the optimizer's step-dependent factors);
    /// takes effect at the next submit.
    pub fn set_params(&self, gpu: &Gpu, index: usize, params: &[u8]) {
        gpu.queue
            .write_buffer(&self.uniforms, self.prepared[index].params_offset, params);
    }

    /// Records dispatches `range` into `pass`, calling `between(i, pass)` before each one
    /// (where the profiler writes its timestamps).
    pub fn record_with(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        range: std::ops::Range<usize>,
        mut before: impl FnMut(usize, &mut wgpu::ComputePass<'_>),
    ) {
        for i in range {
            before(i, pass);
            let p = &self.prepared[i];
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &p.bind_group, &[]);
            let [x, y, z] = p.groups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_with(pass, 0..self.len(), |_, _| {});
    }
}
